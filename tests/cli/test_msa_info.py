"""``potts-gwg msa-info``: the report on a fixture, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from potts_gwg.cli.main import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "msa"


def run(*arguments: str):
    return CliRunner().invoke(main, ["msa-info", *arguments])


def test_json_report():
    result = run(str(FIXTURES / "hhblits.a3m"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "a3m"
    assert report["n_sequences"] == 4
    assert report["length"] == 10
    assert report["msa_width"] == 10
    assert report["insert_mode"] == "per-row"
    assert report["query"] == "query"
    assert report["query_index"] == 1
    assert report["query_sequence"] == "ACDEFGHIKL"
    assert report["n_nonstandard"] == 0
    assert report["gap_fraction"] == pytest.approx(2 / 40)
    # query, seqA and seqB are >= 80 % identical to one another (one cluster), seqC alone
    assert report["n_effective"] == pytest.approx(2.0)
    assert report["n_effective_per_length"] == pytest.approx(0.2)
    assert report["theta"] == 0.8


def test_json_with_query_file_and_theta():
    result = run(str(FIXTURES / "multiline.fasta"), "--query-file",
                 str(FIXTURES / "multiline_query.fasta"), "--theta", "0.5", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["query"], report["query_index"], report["length"]) == ("template", None, 6)
    assert report["n_effective"] == pytest.approx(1.0)  # all three rows within 50 % identity


def test_table_report():
    result = run(str(FIXTURES / "twoblock.sto"), "--query-index", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    table = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in lines}
    assert table["format"] == "stockholm"
    assert table["sequences (N)"] == "3"
    assert table["query columns (L)"] == "10"
    assert table["insert mode"] == "columns"
    assert table["query"] == "S2/3-12 (record 2)"
    assert len({line.index(value) for line, value in zip(lines, table.values())}) == 1


@pytest.mark.parametrize("content", [b"", b">a\nMK1\n", b"\x00\x01\x02"])
def test_bad_file_is_one_error_line_and_exit_status_2(tmp_path, content):
    path = tmp_path / "broken.fasta"
    path.write_bytes(content)
    result = run(str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error:")
    assert result.stderr.count("\n") == 1
    assert "broken.fasta" in result.stderr
    assert "Traceback" not in result.output


def test_missing_file_and_bad_query_name(tmp_path):
    missing = run(str(tmp_path / "absent.a3m"))
    assert missing.exit_code == 2
    assert missing.stderr == f"error: {tmp_path / 'absent.a3m'}: no such file\n"
    dash = run("-")  # e.g. `zcat x.a3m.gz | potts-gwg msa-info -`
    assert dash.exit_code == 2
    assert dash.stderr.startswith("error: -: no such file (standard input is not read: save ")
    assert dash.stderr.count("\n") == 1
    unknown = run(str(FIXTURES / "psicov.aln"), "--query", "nobody")
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("error:") and "nobody" in unknown.stderr


def test_two_query_options_are_refused():
    result = run(str(FIXTURES / "psicov.aln"), "--query", "seq1", "--query-index", "1")
    assert result.exit_code == 2
    assert "at most one of --query, --query-index, --query-file" in result.stderr


def test_help_describes_the_options():
    result = run("--help")
    assert result.exit_code == 0
    for option in ("--format", "--query", "--query-index", "--query-file", "--theta", "--json"):
        assert option in result.stdout


def test_a_shallow_alignment_is_warned_about(tmp_path):
    shallow = tmp_path / "shallow.fasta"
    # a-b and a-c are neighbours at 80 % identity, b-c not: Neff = 1/3 + 1/2 + 1/2, L = 10
    shallow.write_text(">a\nACDEFGHIKL\n>b\nACDEFGHIKV\n>c\nMCDEFGHIRL\n")
    result = run(str(shallow))
    assert result.exit_code == 0
    assert result.stderr == ("warning: Neff/L = 0.13 is below 1: too few effective sequences "
                             "per position for reliable contacts (expect few correct ones; a "
                             "deeper alignment helps)\n")
    fit = CliRunner().invoke(main, ["fit", str(shallow), "-o", str(tmp_path / "m.npz"),
                                    "--max-iterations", "2"])
    assert fit.exit_code == 0 and "warning: Neff/L = 0.13 is below 1" in fit.stderr
    quiet = CliRunner().invoke(main, ["fit", str(shallow), "-o", str(tmp_path / "q.npz"),
                                      "--max-iterations", "2", "-q"])
    assert quiet.exit_code == 0 and "warning: Neff/L = 0.13 is below 1" in quiet.stderr
    example = Path(__file__).resolve().parents[2] / "data" / "PF00018_2O9S" / \
        "PF00018_2O9S.fasta"
    assert "Neff/L" not in run(str(example)).stderr


def test_threads_caps_torch_s_threads_and_changes_nothing_else():
    """--threads as for fit: on a busy machine all cores' worth of threads made the weights
    of an 8 812-sequence alignment several times slower than one thread."""
    import torch

    before = torch.get_num_threads()
    fixture = str(FIXTURES / "hhblits.a3m")
    try:
        torch.set_num_threads(2)
        plain = run(fixture, "--json")
        capped = run(fixture, "--json", "--threads", "1")
        assert capped.exit_code == 0 and torch.get_num_threads() == 1
        assert json.loads(capped.stdout) == json.loads(plain.stdout)
    finally:
        torch.set_num_threads(before)
