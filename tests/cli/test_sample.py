"""``potts-gwg sample`` end to end on a hand-made tiny model (alphabet "ABC", L = 4)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from potts_gwg.cli.main import main
from potts_gwg.io.model_file import PottsModel, save_model

HEADER = re.compile(r"^>sample_(\d+) chain=(\d+) step=(\d+) seed=(\d+)$")


# A tiny model: intra-op threads only cost time (fixture in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def tiny_model(tmp_path):
    """L = 4, q = 3 over "ABC", written by hand: J couples neighbours towards equal letters."""
    h = np.array([[1.0, 0.0, -1.0], [0.0, 0.5, 0.0], [-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]],
                 dtype=np.float32)
    J = np.zeros((4, 4, 3, 3), dtype=np.float32)
    for i in range(3):
        J[i, i + 1] = J[i + 1, i] = 0.8 * np.eye(3, dtype=np.float32)
    path = tmp_path / "tiny.npz"
    save_model(path, PottsModel(h=h, J=J, alphabet="ABC", meta={"method": "by hand"}))
    return path


def read_fasta(path):
    lines = path.read_text().splitlines()
    return list(zip(lines[0::2], lines[1::2]))


@pytest.mark.parametrize("sampler", ["gwg", "gibbs"])
def test_sample_writes_n_records_of_length_4_over_abc(tiny_model, tmp_path, sampler):
    out = tmp_path / "out.fasta"
    result = CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "25", "--chains", "4",
                                       "--sampler", sampler, "--seed", "3", "--device", "cpu",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    records = read_fasta(out)
    assert len(records) == 25
    for k, (header, sequence) in enumerate(records, start=1):
        number, chain, step, seed = map(int, HEADER.match(header).groups())
        assert (number, chain, seed) == (k, (k - 1) % 4, 3)
        assert step == 10 * 4 + 4 * ((k - 1) // 4 + 1)    # default burn-in 10·L, thin L
        assert len(sequence) == 4 and set(sequence) <= set("ABC")
    summary = result.stdout.strip().splitlines()
    assert len(summary) == 1
    assert "acceptance" in summary[0] and "ESS(energy)" in summary[0] and "seed 3" in summary[0]


def test_same_seed_writes_the_same_file(tiny_model, tmp_path):
    def run(name, seed):
        out = tmp_path / name
        args = ["sample", str(tiny_model), "-n", "40", "--seed", seed, "--device", "cpu",
                "-o", str(out)]
        assert CliRunner().invoke(main, args).exit_code == 0
        return out.read_text()

    assert run("a.fasta", "11") == run("b.fasta", "11")
    assert run("a.fasta", "11") != run("c.fasta", "12")


def test_an_output_name_ending_in_gz_is_gzipped(tiny_model, tmp_path):
    """As the readers take .gz alignments: s.fasta.gz holds the same records, compressed,
    and the same seed gives the same bytes (no time stamp in the gzip header)."""
    import gzip

    def written(name):
        out = tmp_path / name
        assert CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "40", "--seed", "3",
                                         "--device", "cpu", "-o", str(out)]).exit_code == 0
        return out.read_bytes()

    packed = written("s.fasta.gz")
    assert packed[:2] == b"\x1f\x8b" and gzip.decompress(packed) == written("s.fasta")
    assert packed[4:8] == bytes(4) and packed[3] & 0x08 == 0  # no time stamp, no name
    assert written("again.fasta.GZ") == packed


def test_threads_sets_torchs_threads_and_keeps_the_samples(tiny_model, tmp_path):
    import torch

    def run(threads):
        out = tmp_path / f"{threads}.fasta"
        args = ["sample", str(tiny_model), "-n", "12", "--seed", "5", "--device", "cpu",
                "--threads", threads, "-o", str(out)]
        assert CliRunner().invoke(main, args).exit_code == 0
        assert torch.get_num_threads() == int(threads)   # the fixture restores it afterwards
        return out.read_text()

    assert run("2") == run("1")
    refused = CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "1", "-o",
                                        str(tmp_path / "x.fasta"), "--threads", "0"])
    assert refused.exit_code == 2 and "--threads" in refused.output


def test_seed_is_drawn_and_recorded_when_not_given(tiny_model, tmp_path):
    out = tmp_path / "out.fasta"
    result = CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "3", "--device", "cpu",
                                       "-o", str(out)])
    assert result.exit_code == 0
    seeds = {HEADER.match(header).group(4) for header, _ in read_fasta(out)}
    assert len(seeds) == 1 and f"seed {seeds.pop()}" in result.stdout


@pytest.mark.parametrize("make_bad, message", [
    (lambda path: path.write_text("not a model\n"), "not a model file"),
    (lambda path: None, "model file not found"),
    (lambda path: np.savez(path, h=np.zeros((4, 3), np.float32)), "lacks"),
])
def test_bad_model_file_is_one_line_exit_2_and_no_output(tmp_path, make_bad, message):
    bad = tmp_path / "bad.npz"
    make_bad(bad)
    out = tmp_path / "out" / "samples.fasta"
    out.parent.mkdir()
    result = CliRunner().invoke(main, ["sample", str(bad), "-n", "5", "-o", str(out)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


@pytest.mark.parametrize("option, value", [("-n", "0"), ("--chains", "0"), ("--thin", "0"),
                                           ("--burn-in", "-1"), ("--seed", "-5")])
def test_bad_numbers_are_one_line_errors(tiny_model, tmp_path, option, value):
    out = tmp_path / "out.fasta"
    args = ["sample", str(tiny_model), "-n", "5", "-o", str(out), option, value]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and option in result.stderr
    assert not out.exists()


def test_help_describes_the_command():
    result = CliRunner().invoke(main, ["sample", "--help"])
    assert result.exit_code == 0
    for text in ("MODEL", "--sampler", "--chains", "--burn-in", "--thin", "--seed", "--device",
                 "-o, --output", "sample_<k> chain=<c> step=<t> seed=<S>"):
        assert text in result.output


def test_samples_of_a_fitted_model_reproduce_its_alignment(example_model, tmp_path,
                                                           single_thread):
    """The PLM model of the SH3 example against its own MSA: 2000 samples. PLM matches the
    one-site frequencies closely (measured Pearson 0.997) and the connected correlations
    roughly (measured 0.73 at this sample size and seed); a wrong comparison (other columns,
    unweighted vs weighted mix-ups) lands far below the bounds 0.95 and 0.6."""
    from pathlib import Path

    msa = Path(__file__).resolve().parents[2] / "data" / "PF00018_2O9S" / "PF00018_2O9S.fasta"
    out = tmp_path / "samples.fasta"
    result = CliRunner().invoke(main, ["sample", str(example_model), "-n", "2000", "--chains",
                                       "200", "--seed", "1", "-o", str(out), "--device", "cpu",
                                       "--compare-msa", str(msa)])
    assert result.exit_code == 0, result.output
    match = re.search(r"C_ij (\S+), of one-site frequencies (\S+)", result.stdout)
    assert match, result.stdout
    pairs, sites = float(match.group(1)), float(match.group(2))
    assert sites > 0.95 and pairs > 0.6


def exact_distribution(model_path):
    """p(x) of the tiny model by enumerating its 3⁴ = 81 sequences, keyed by letters."""
    from itertools import product

    from potts_gwg.io.model_file import load_model

    model = load_model(model_path)
    states = list(product(range(3), repeat=4))
    energies = np.array([sum(model.h[i, x[i]] for i in range(4))
                         + sum(model.J[i, j, x[i], x[j]] for i in range(4)
                               for j in range(i + 1, 4)) for x in states])
    probabilities = np.exp(energies - energies.max())
    probabilities /= probabilities.sum()
    return {"".join("ABC"[a] for a in x): p for x, p in zip(states, probabilities)}


@pytest.mark.parametrize("sampler", ["gwg", "gibbs"])
def test_samples_follow_the_exact_distribution(tiny_model, tmp_path, sampler):
    """20 000 samples (200 chains, one sweep apart) against enumeration: total variation
    distance measured 0.022 for both samplers at this seed, bound 0.035; samples of the model
    with J × 1.5 land 0.138 from these probabilities."""
    out = tmp_path / "samples.fasta"
    result = CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "20000", "--chains",
                                       "200", "--sampler", sampler, "--seed", "5",
                                       "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    counts = {}
    for _, sequence in read_fasta(out):
        counts[sequence] = counts.get(sequence, 0) + 1
    exact = exact_distribution(tiny_model)
    distance = 0.5 * sum(abs(counts.get(x, 0) / 20000 - p) for x, p in exact.items())
    assert distance < 0.035


def test_a_bad_compare_msa_is_refused_before_sampling_and_keeps_the_output(tiny_model,
                                                                           tmp_path):
    out = tmp_path / "kept.fasta"
    out.write_text("keep\n")
    ragged = tmp_path / "ragged.fasta"
    ragged.write_text(">a\nABCA\n>b\nAB\n")
    result = CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "5", "--device", "cpu",
                                       "-o", str(out), "--compare-msa", str(ragged)])
    assert result.exit_code == 2 and "ragged.fasta" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert out.read_text() == "keep\n" and "sampled" not in result.output


def test_compare_msa_takes_the_query_options(example_model, tmp_path):
    """The SH3 example with its query row moved to a file of its own (as for a model fitted
    with --query-file): the model's query name is then no record of the alignment, and
    --query-file says where the query is. A model over another alphabet is refused."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "data" / "PF00018_2O9S" / \
        "PF00018_2O9S.fasta"
    lines = example.read_text().splitlines()
    query, msa = tmp_path / "query.fasta", tmp_path / "others.fasta"
    query.write_text("\n".join(lines[:2]) + "\n")
    msa.write_text("\n".join(lines[2:]) + "\n")
    arguments = ["sample", str(example_model), "-n", "20", "--device", "cpu", "-o",
                 str(tmp_path / "s.fasta"), "--compare-msa", str(msa)]
    refused = CliRunner().invoke(main, arguments)
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "query '2O9S_A' is not the name of any of the 919 records" in refused.stderr
    assert "(query '2O9S_A' is the model's, from its fit; name this alignment's with --query, " \
        "--query-index or --query-file)" in refused.stderr
    named = CliRunner().invoke(main, [*arguments, "--query", "nope"])  # the user's own name
    assert named.exit_code == 2 and "the model's" not in named.stderr
    result = CliRunner().invoke(main, [*arguments, "--query-file", str(query)])
    assert result.exit_code == 0, result.output
    assert "samples vs" in result.stdout
    # A model fitted with --query-file names it in its meta: no option needed then.
    fitted = tmp_path / "fitted.npz"
    assert CliRunner().invoke(main, ["fit", str(msa), "--query-file", str(query), "-o",
                                     str(fitted), "--max-iterations", "2"]).exit_code == 0
    own = CliRunner().invoke(main, ["sample", str(fitted), *arguments[2:]])
    assert own.exit_code == 0, own.output
    assert "samples vs" in own.stdout


def test_compare_msa_needs_a_protein_model(tiny_model, tmp_path):
    msa = tmp_path / "msa.fasta"
    msa.write_text(">a\nACDE\n>b\nACDF\n")
    result = CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "5", "--device", "cpu",
                                       "-o", str(tmp_path / "s.fasta"), "--compare-msa",
                                       str(msa)])
    assert result.exit_code == 2 and "alphabet" in result.stderr
    assert not (tmp_path / "s.fasta").exists()


def test_dash_writes_the_samples_to_standard_output(tiny_model, tmp_path):
    result = CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "3", "--seed", "2",
                                       "--device", "cpu", "-o", "-"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 6 and all(HEADER.match(line) for line in lines[0::2])
    assert "sampled 3 sequences" in result.stderr and not (tmp_path / "-").exists()


def test_quiet_drops_the_progress_and_the_device_note_and_keeps_the_summary(tiny_model,
                                                                            tmp_path,
                                                                            monkeypatch):
    """-q as on fit: no bar and no note of what --device auto chose; the summary line (the
    result: acceptance, ESS) and the samples are the same as without it."""
    import potts_gwg.engine

    real_run_chains, bars = potts_gwg.engine.run_chains, []

    def recording_run_chains(*arguments, progress, **options):
        bars.append(progress)
        return real_run_chains(*arguments, progress=progress, **options)

    monkeypatch.setattr(potts_gwg.engine, "run_chains", recording_run_chains)
    outputs = []
    for extra in ([], ["-q"]):
        out = tmp_path / f"out{len(outputs)}.fasta"
        result = CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "6", "--seed", "4",
                                           "--device", "auto", "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        outputs.append((result, out.read_text()))
    (loud, loud_samples), (quiet, quiet_samples) = outputs
    assert bars == [True, False]
    assert "device: auto -> " in loud.stderr and quiet.stderr == ""
    assert quiet_samples == loud_samples
    assert quiet.stdout.startswith("sampled 6 sequences") and "acceptance" in quiet.stdout
    on_stdout = CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "2", "--seed", "4",
                                          "--device", "auto", "-o", "-", "-q"])
    assert on_stdout.exit_code == 0, on_stdout.output
    assert on_stdout.stderr.startswith("sampled 2 sequences")
    assert len(on_stdout.stderr.splitlines()) == 1


def test_quiet_with_progress_is_refused_and_errors_still_print(tiny_model, tmp_path):
    out = tmp_path / "out.fasta"
    both = CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "2", "-o", str(out),
                                     "-q", "--progress"])
    assert both.exit_code == 2 and "Traceback" not in both.output
    assert [line for line in both.stderr.splitlines() if line.startswith("Error:")] == \
        ["Error: -q/--quiet and --progress contradict each other"]
    assert CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "2", "-o", str(out),
                                     "-q", "--no-progress", "--device", "cpu"]).exit_code == 0
    bad = CliRunner().invoke(main, ["sample", str(tmp_path / "missing.npz"), "-n", "2",
                                    "-o", str(tmp_path / "x.fasta"), "-q"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")
    assert len(bad.stderr.splitlines()) == 1 and not (tmp_path / "x.fasta").exists()


@pytest.mark.gpu
def test_samples_follow_the_exact_distribution_on_the_gpu(tiny_model, tmp_path):
    """The CLI on CUDA (other random streams than the CPU's, so the same bound, not the same
    file): TV of 20 000 GWG samples against enumeration below 0.035."""
    out = tmp_path / "samples.fasta"
    result = CliRunner().invoke(main, ["sample", str(tiny_model), "-n", "20000", "--chains",
                                       "200", "--seed", "5", "--device", "cuda", "-o",
                                       str(out)])
    assert result.exit_code == 0, result.output
    assert "cuda" in result.stdout
    counts = {}
    for _, sequence in read_fasta(out):
        counts[sequence] = counts.get(sequence, 0) + 1
    exact = exact_distribution(tiny_model)
    assert 0.5 * sum(abs(counts.get(x, 0) / 20000 - p) for x, p in exact.items()) < 0.035
