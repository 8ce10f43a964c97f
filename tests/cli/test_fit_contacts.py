"""`potts-gwg fit` and `potts-gwg contacts` end to end on the shipped example, and bad input."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from potts_gwg import __version__
from potts_gwg.cli.main import main
from potts_gwg.io.model_file import load_model

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_MSA = REPO_ROOT / "data" / "PF00018_2O9S" / "PF00018_2O9S.fasta"
EXAMPLE_STRUCTURE = REPO_ROOT / "data" / "PF00018_2O9S" / "2O9S_A.pdb"


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


# An earlier model (an npz archive with h and J), which fit replaces when asked to.
EARLIER_MODEL = npz_bytes(h=np.zeros((1, 2)), J=np.zeros((1, 1, 2, 2)))
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def run(*arguments):
    result = CliRunner().invoke(main, [str(argument) for argument in arguments])
    return result


def assert_clean_error(result, *fragments):
    assert result.exit_code != 0
    assert "Traceback" not in result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def test_fit_writes_a_model_with_meta_and_summary(tmp_path):
    output = tmp_path / "sh3.npz"
    result = run("fit", EXAMPLE_MSA, "-o", output, "--device", "cpu", "--seed", "5",
                 "--max-iterations", "20")
    assert result.exit_code == 0, result.stderr
    assert "fit plm: N=920 L=48" in result.stdout
    assert "iteration" in result.stderr
    model = load_model(output)
    assert model.h.shape == (48, 21) and model.alphabet == "ACDEFGHIKLMNPQRSTVWY-"
    assert model.meta["seed"] == 5 and model.meta["method"] == "plm"
    assert model.meta["query_sequence"] == "IAKFNFNGDTQVEMSFRKGERITLLRQVDENWYEGRIPGTSRQGIFPI"
    assert model.meta["hyperparameters"]["lambda_j"] == 0.2


def test_the_default_output_says_when_it_replaces_a_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = run("fit", EXAMPLE_MSA, "--max-iterations", "2")
    assert first.exit_code == 0 and "replacing" not in first.stderr
    again = run("fit", EXAMPLE_MSA, "--max-iterations", "2")
    assert again.exit_code == 0
    assert "replacing PF00018_2O9S.npz, the default output for this alignment (-o names " \
           "another file)" in again.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["PF00018_2O9S.npz"]


def test_fit_is_deterministic_for_a_seed(tmp_path):
    for name in ("a.npz", "b.npz"):
        assert run("fit", EXAMPLE_MSA, "-o", tmp_path / name, "--device", "cpu",
                   "--max-iterations", "10", "-q").exit_code == 0
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_contacts_tsv_sorted_with_one_based_positions(example_model, tmp_path):
    output = tmp_path / "c.tsv"
    assert run("contacts", example_model, "-o", output).exit_code == 0
    lines = output.read_text().splitlines()
    assert lines[0] == "i\tj\tscore" and len(lines) == 1 + 48 * 47 // 2
    rows = [line.split("\t") for line in lines[1:]]
    scores = [float(row[2]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(1 <= int(i) < int(j) <= 48 for i, j, _ in rows)


@pytest.mark.parametrize("contact_format", ["tsv", "mat"])
def test_contacts_output_ending_in_gz_is_gzipped(example_model, tmp_path, contact_format):
    for name in ("c.out", "c.out.gz"):
        assert run("contacts", example_model, "--format", contact_format,
                   "-o", tmp_path / name).exit_code == 0
    packed = (tmp_path / "c.out.gz").read_bytes()
    assert packed[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed) == (tmp_path / "c.out").read_bytes()


def test_contacts_other_formats(example_model, tmp_path):
    assert run("contacts", example_model, "--format", "mat", "-o", tmp_path / "m").exit_code == 0
    matrix = np.loadtxt(tmp_path / "m")
    assert matrix.shape == (48, 48) and np.allclose(matrix, matrix.T)
    # As CCMpred's: APC scores shifted so that the lowest pair is 0 (the diagonal is 0 too)
    run("contacts", example_model, "-o", tmp_path / "m.tsv")
    tsv = {(int(i) - 1, int(j) - 1): float(score) for i, j, score in
           (line.split("\t") for line in (tmp_path / "m.tsv").read_text().splitlines()[1:])}
    assert min(tsv.values()) < 0 and matrix.min() == 0 and (np.diag(matrix) == 0).all()
    assert all(matrix[i, j] == pytest.approx(score - min(tsv.values()), rel=1e-5, abs=1e-5)
               for (i, j), score in tsv.items())
    assert run("contacts", example_model, "--format", "mat", "--min-sep", "6",
               "-o", tmp_path / "m6").exit_code == 0
    near = np.abs(np.subtract.outer(np.arange(48), np.arange(48))) < 6
    separated = np.loadtxt(tmp_path / "m6")
    assert (separated[near] == 0).all() and np.array_equal(separated[~near], matrix[~near])
    assert run("contacts", example_model, "--format", "csv", "--min-sep", "6",
               "-o", tmp_path / "c.csv").exit_code == 0
    csv_lines = (tmp_path / "c.csv").read_text().splitlines()
    assert csv_lines[0] == "i,A_i,j,A_j,fn,cn"
    assert all(int(line.split(",")[2]) - int(line.split(",")[0]) >= 6 for line in csv_lines[1:])
    assert run("contacts", example_model, "--format", "casp", "-o", tmp_path / "rr").exit_code == 0
    casp = (tmp_path / "rr").read_text().splitlines()
    assert casp[0] == "PFRMAT RR" and casp[-1] == "END"
    assert casp[1] == f"TARGET {example_model.stem}"
    remarks = [line for line in casp if line.startswith("REMARK ")]
    assert casp[3:3 + len(remarks)] == remarks and max(len(line) for line in casp) <= 80
    assert "".join(line[len("REMARK "):] for line in remarks).replace(" ", "") == (
        f"model {example_model}" "fit method plm, seed 0, query_name 2O9S_A"
        f"msa {EXAMPLE_MSA}" f"potts-gwg {__version__}").replace(" ", "")  # (long paths wrap)
    model_line = casp.index("MODEL 1")
    assert casp[model_line + 1] == "IAKFNFNGDTQVEMSFRKGERITLLRQVDENWYEGRIPGTSRQGIFPI"
    contact_lines = [line.split() for line in casp[model_line + 2:-1]]
    assert len(contact_lines) == 48 * 47 // 2
    probabilities = [float(p) for _, _, _, _, p in contact_lines]
    assert all(int(i) < int(j) and (low, high) == ("0", "8")
               for i, j, low, high, _ in contact_lines)
    assert probabilities == sorted(probabilities, reverse=True)
    assert probabilities[0] == 1.0 and probabilities[-1] == 0.0
    # p is the pair's, whatever --min-sep (it was rescaled over the pairs written)
    assert run("contacts", example_model, "--format", "casp", "--min-sep", "24",
               "-o", tmp_path / "rr24").exit_code == 0
    p_of = {(i, j): p for i, j, _, _, p in contact_lines}
    far_lines = (tmp_path / "rr24").read_text().splitlines()
    far = [line.split() for line in far_lines[far_lines.index("MODEL 1") + 2:-1]]
    assert far and all(p == p_of[i, j] for i, j, _, _, p in far)
    # csv: fn is the Frobenius norm before APC, cn after (the tsv scores of each).
    for arguments, column in ((["--no-apc"], 4), ([], 5)):
        run("contacts", example_model, *arguments, "-o", tmp_path / "s.tsv")
        expected = {(int(i), int(j)): float(score) for i, j, score in
                    (line.split("\t") for line in
                     (tmp_path / "s.tsv").read_text().splitlines()[1:])}
        rows = [line.split(",") for line in csv_lines[1:]]
        assert all(float(row[column]) == pytest.approx(expected[int(row[0]), int(row[2])],
                                                       rel=1e-5, abs=1e-6) for row in rows)
    assert casp[model_line - 2] == "METHOD Potts model couplings, Frobenius norm with APC"
    assert casp[model_line - 1].startswith("METHOD p = score rescaled to [0, 1] over all pairs")
    assert run("contacts", example_model, "--format", "casp", "--no-apc",
               "-o", tmp_path / "rr_raw").exit_code == 0
    assert "METHOD Potts model couplings, Frobenius norm, no APC" in \
        (tmp_path / "rr_raw").read_text().splitlines()


def assert_usage_error(result, fragment):
    """Click's usage error: exit 2, one 'Error:' line naming the problem, no traceback."""
    assert result.exit_code == 2
    assert "Traceback" not in result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr


@pytest.mark.parametrize("contact_format, header_lines, footer_lines", [
    ("tsv", 1, 0), ("csv", 1, 0), ("casp", None, 1)])  # casp: header to MODEL, sequence; END
def test_top_writes_the_best_pairs_of_the_full_ranking(example_model, tmp_path, contact_format,
                                                       header_lines, footer_lines):
    """--top N writes the first N pairs of the list written without it, line for line (CASP's
    p keeps its value: rescaled over every pair); more than there are pairs writes them all."""
    def written(*arguments):
        output = tmp_path / "contacts"
        result = run("contacts", example_model, "--format", contact_format, "--min-sep", "6",
                     "-o", output, *arguments)
        assert result.exit_code == 0, result.stderr
        return output.read_text().splitlines()

    every = written()
    best = written("--top", "5")
    header_lines = header_lines or every.index("MODEL 1") + 2
    pairs = slice(header_lines, len(every) - footer_lines)
    assert len(every[pairs]) == 43 * 42 // 2  # j - i >= 6 among L = 48
    assert best[:header_lines] == every[:header_lines]
    assert best[header_lines:len(best) - footer_lines] == every[pairs][:5]
    assert best[len(best) - footer_lines:] == every[len(every) - footer_lines:]
    assert written("--top", "100000") == every


def test_top_does_not_change_the_precision(example_model, tmp_path):
    def precision(*arguments):
        result = run("contacts", example_model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "A",
                     "--json", "-o", tmp_path / "c.tsv", *arguments)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)["precision"]

    assert precision("--top", "3") == precision()
    assert len((tmp_path / "c.tsv").read_text().splitlines()) == 1 + 48 * 47 // 2


def test_top_is_refused_for_the_matrix_and_below_one(example_model, tmp_path):
    output = tmp_path / "m"
    assert_usage_error(run("contacts", example_model, "--format", "mat", "--top", "5",
                           "-o", output), "--top")
    assert_usage_error(run("contacts", example_model, "--top", "0", "-o", output), "--top")
    assert not output.exists()
    output.write_text("kept")
    assert_usage_error(run("contacts", example_model, "--format", "mat", "--top", "5",
                           "-o", output), "--format mat")
    assert output.read_text() == "kept"


def test_quiet_contacts_keep_the_precision_and_drop_the_notes(example_model, tmp_path):
    arguments = ["contacts", example_model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "A",
                 "-o", tmp_path / "c.tsv", "--plot", tmp_path / "map.png"]
    loud, quiet = run(*arguments), run(*arguments, "-q")
    assert loud.exit_code == 0 and quiet.exit_code == 0, quiet.stderr
    assert "wrote tsv contacts to" in loud.stdout and "wrote contact map to" in loud.stdout
    assert "wrote" not in quiet.stdout + quiet.stderr
    assert quiet.stdout == "".join(line + "\n" for line in loud.stdout.splitlines()
                                   if not line.startswith("wrote "))
    assert "|i-j|>=6" in quiet.stdout and "query positions aligned" in quiet.stdout
    silent = run("contacts", example_model, "-o", tmp_path / "c.tsv", "-q")
    assert silent.exit_code == 0 and silent.stdout == silent.stderr == ""
    assert_clean_error(run("contacts", tmp_path / "missing.npz", "-q"), "missing.npz")


def test_no_apc_gives_plain_frobenius(example_model, tmp_path):
    run("contacts", example_model, "--format", "mat", "-o", tmp_path / "apc")
    run("contacts", example_model, "--format", "mat", "--no-apc", "-o", tmp_path / "raw")
    apc, raw = np.loadtxt(tmp_path / "apc"), np.loadtxt(tmp_path / "raw")
    assert (raw >= 0).all() and not np.allclose(apc, raw)


def test_contacts_with_structure_reports_precision_and_plots(example_model, tmp_path):
    result = run("contacts", example_model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "A",
                 "--json", "--plot", tmp_path / "map.png")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    table = {(row["min_separation"], row["top"]): row["precision"] for row in summary["precision"]}
    assert set(table) == {(s, t) for s in (6, 12, 24) for t in ("L", "L/2", "L/5")}
    # CCMpred reaches 0.583 top-L and 1.000 top-L/5 here (docs/README); we must not be far off.
    assert table[(6, "L")] >= 0.55 and table[(6, "L/5")] >= 0.9
    assert summary["structure_mapping"]["identity"] == 1.0
    assert summary["model"]["method"] == "plm" and summary["model"]["seed"] == 0
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = run("contacts", example_model, "--pdb", EXAMPLE_STRUCTURE)
    assert text.exit_code == 0 and "|i-j|>=6" in text.stdout
    assert "48/48 query positions aligned, 48 with coordinates" in text.stdout
    assert "*" not in text.stdout


def test_precision_over_fewer_than_k_known_pairs_is_marked(example_model, tmp_path):
    """A C-alpha-only structure leaves only Gly positions with coordinates: the precision
    is over a handful of pairs, which the text says (it read like a full top-L before)."""
    ca_only = tmp_path / "ca_only.pdb"
    ca_only.write_text("".join(line for line in EXAMPLE_STRUCTURE.read_text().splitlines(True)
                               if not line.startswith("ATOM") or line[12:16] == " CA "))
    result = run("contacts", example_model, "--pdb", ca_only, "--chain", "A")
    assert result.exit_code == 0, result.stderr
    glycines = sum(letter == "G" for letter in load_model(example_model).meta["query_sequence"])
    assert f"48/48 query positions aligned, {glycines} with coordinates" in result.stdout
    assert re.search(r"\|i-j\|>=6 +\d\.\d{3}\* +\d\.\d{3}\*", result.stdout)
    assert "*: over fewer than k pairs" in result.stdout
    summary = json.loads(run("contacts", example_model, "--pdb", ca_only, "--json").stdout)
    assert summary["structure_mapping"]["n_with_coordinates"] == glycines
    assert all(row["n_evaluated"] < row["k"] for row in summary["precision"])


def test_unknown_method_is_a_clean_error(tmp_path):
    result = run("fit", EXAMPLE_MSA, "--method", "magic", "-o", tmp_path / "m.npz")
    assert result.exit_code == 2 and "magic" in result.stderr
    assert not (tmp_path / "m.npz").exists()


def test_device_cuda_without_gpu_is_a_clean_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run("fit", EXAMPLE_MSA, "--device", "cuda", "-o", tmp_path / "m.npz")
    assert_clean_error(result, "no CUDA GPU")
    assert not (tmp_path / "m.npz").exists()


def test_bad_msa_leaves_no_output_and_keeps_an_existing_file(tmp_path):
    bad = tmp_path / "bad.fasta"
    bad.write_text(">a\nACDE\n>b\nAC\n")
    output = tmp_path / "m.npz"
    output.write_bytes(EARLIER_MODEL)
    result = run("fit", bad, "-o", output)
    assert_clean_error(result, "bad.fasta")
    assert output.read_bytes() == EARLIER_MODEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fasta", "m.npz"]


BAD_MSAS = {  # issue 3's list of bad inputs: file name -> (content, what the message names)
    "empty.fasta": (b"", "empty file"),
    "binary.fasta": (b">a\nAC\0DE\n", "binary file"),
    "ragged.fasta": (b">a\nACDE\n>b\nAC\n", "record b"),
    "headless.fasta": (b"ACDE\n>a\nACDE\n", "line 1"),
    "gapped_query.fasta": (b">a\n----\n>b\nACDE\n", "record a"),
    "truncated.fasta.gz": (gzip.compress(b">a\nACDE\n" * 300, mtime=0)[:40], "gzip"),
}


@pytest.mark.parametrize("name", sorted(BAD_MSAS))
def test_each_bad_msa_is_one_line_exit_2_and_keeps_the_output(tmp_path, name):
    content, fragment = BAD_MSAS[name]
    msa = tmp_path / name
    msa.write_bytes(content)
    output = tmp_path / "m.npz"
    output.write_bytes(EARLIER_MODEL)
    result = run("fit", msa, "-o", output)
    assert result.exit_code == 2
    assert_clean_error(result, name, fragment)
    assert output.read_bytes() == EARLIER_MODEL
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([name, "m.npz"])


@pytest.mark.parametrize("arguments, fragment", [
    (["--query", "nobody"], "query 'nobody' is not the name"),
    (["--query-index", "9999"], "query index 9999 is out of range"),
])
def test_a_query_that_does_not_exist_is_one_line_exit_2(tmp_path, arguments, fragment):
    result = run("fit", EXAMPLE_MSA, "-o", tmp_path / "m.npz", *arguments)
    assert result.exit_code == 2
    assert_clean_error(result, "PF00018_2O9S.fasta", fragment)
    assert not (tmp_path / "m.npz").exists()


def test_a_folder_given_as_an_input_or_output_is_one_line_exit_2(example_model, tmp_path):
    """Click's own checks gave three-line usage errors for these; the readers say it in one."""
    for arguments, message in [
            (["fit", tmp_path, "-o", tmp_path / "m.npz"], "is a directory, not an alignment"),
            (["fit", EXAMPLE_MSA, "-o", tmp_path], "is a folder; give a file name"),
            (["contacts", tmp_path], "not a file"),
            (["contacts", example_model, "--pdb", tmp_path], "cannot read structure file"),
            (["fit", EXAMPLE_MSA, "-o", tmp_path / "new" / "m.npz"],
             f"the folder {tmp_path / 'new'} does not exist; create it first")]:
        result = run(*arguments)
        assert result.exit_code == 2, arguments
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert sorted(tmp_path.iterdir()) == []


def test_missing_msa_is_one_line_exit_2(tmp_path):
    """Refused before --device auto's note on where it runs: the error is the only line."""
    result = run("fit", tmp_path / "absent.fasta", "-o", tmp_path / "m.npz")
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / 'absent.fasta'}: no such file\n"
    assert not (tmp_path / "m.npz").exists()


def test_a_model_replaces_an_earlier_model_but_no_other_file(tmp_path):
    """`fit a.fasta -o b.fasta` (a slip of the finger) would have replaced the alignment
    b.fasta with a model; an earlier model (or an empty file) is replaced as asked."""
    others = {"other.fasta": b">keep\nACDE\n",
              "samples.npz": npz_bytes(samples=np.zeros((2, 3))),  # an archive, no model
              "notes.zip": b"PK\x03\x04 not even a whole archive"}
    for name, content in others.items():
        other = tmp_path / name
        other.write_bytes(content)
        result = run("fit", EXAMPLE_MSA, "-o", other, "--max-iterations", "2")
        assert result.exit_code == 2
        assert result.stderr == (f"error: {other}: exists and is no model file (an npz archive "
                                 "with h and J): the model would replace it; give another "
                                 "name, or delete the file first\n")
        assert other.read_bytes() == content
    model = tmp_path / "m.npz"
    model.touch()  # an empty file is replaced as well
    for _ in range(2):  # the second run replaces the first run's model
        result = run("fit", EXAMPLE_MSA, "-o", model, "--max-iterations", "2", "-q")
        assert result.exit_code == 0, result.output
        assert load_model(model).J.shape == (48, 48, 21, 21)


def test_refused_when_memory_is_too_small(tmp_path):
    result = run("fit", EXAMPLE_MSA, "--max-memory", "1M", "-o", tmp_path / "m.npz")
    assert_clean_error(result, "needs about", "largest L")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("content", [b"", b"not a model", pickle.dumps({"h": [1.0]})])
def test_contacts_refuses_non_models(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    assert_clean_error(run("contacts", path, "-o", tmp_path / "c.tsv"), "model.npz")
    assert not (tmp_path / "c.tsv").exists()


def test_contacts_missing_model_and_absent_chain(example_model, tmp_path):
    output = tmp_path / "c.tsv"
    assert_clean_error(run("contacts", tmp_path / "absent.npz", "-o", output), "absent.npz")
    assert_clean_error(run("contacts", example_model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "Z",
                           "-o", output), "2O9S_A.pdb")
    assert not output.exists()


def test_structure_of_another_protein_is_refused(example_model, tmp_path):
    other = SHARED_DATA / "families" / "DHFR_1RX2" / "1RX2.pdb"
    if not other.exists():
        pytest.skip("shared benchmark data not present")
    output = tmp_path / "c.tsv"
    result = run("contacts", example_model, "--pdb", other, "-o", output)
    assert_clean_error(result, "1RX2.pdb", "is not the query protein",
                       "the model's query is the record '2O9S_A': if that is not this "
                       "protein, fit again with --query, --query-index or --query-file")
    assert not output.exists()


def test_a_query_unrelated_to_the_chain_is_said_not_to_align(tmp_path):
    """The first record of 1atzA's alignment is a distant homologue of the structure's
    protein: end gaps being free, nothing aligns (it said identity 0.000, coverage 0.000)."""
    family = SHARED_DATA / "families" / "1atzA"
    if not family.exists():
        pytest.skip("shared benchmark data not present")
    model = tmp_path / "first.npz"
    assert run("fit", family / "1atzA.fas", "-o", model, "--max-iterations", "2",
               "--threads", "1").exit_code == 0
    result = run("contacts", model, "--pdb", family / "1atzA.pdb")
    assert_clean_error(result, "is not the query protein: the sequences do not align; the "
                       "model's query is the record")


def test_a_structure_that_covers_too_little_of_the_query_writes_nothing(example_model,
                                                                         tmp_path):
    """The corpus' 13-residue fragment of 2O9S: identical letters, but 6 % of the query (no
    shared data needed, unlike the test above)."""
    fragment = REPO_ROOT / "tests" / "fixtures" / "corpus" / "structures" / "small.pdb"
    output, plot = tmp_path / "c.tsv", tmp_path / "map.png"
    result = run("contacts", example_model, "--pdb", fragment, "-o", output, "--plot", plot)
    assert_clean_error(result, "small.pdb")
    assert "is not the query protein" in result.stderr and "coverage 0.062" in result.stderr
    assert not output.exists() and not plot.exists()


def test_structure_that_is_not_a_structure(example_model, tmp_path):
    fake = tmp_path / "fake.pdb"
    fake.write_text("hello\n")
    assert_clean_error(run("contacts", example_model, "--pdb", fake, "-o", tmp_path / "c.tsv"),
                       "fake.pdb")
    assert not (tmp_path / "c.tsv").exists()


def test_unusable_output_paths_are_refused_before_the_work(example_model, tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("keep")
    for arguments in (["fit", EXAMPLE_MSA, "-o", plain / "m.npz"],
                      ["contacts", example_model, "-o", plain / "c.tsv"],
                      ["contacts", example_model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "A",
                       "--plot", plain / "map.png"],
                      ["contacts", example_model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "A",
                       "--plot", tmp_path / "map.jpg"],
                      ["sample", example_model, "-n", "2", "-o", tmp_path]):
        result = run(*arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert "fit plm:" not in result.output and "sampled" not in result.output
    assert plain.read_text() == "keep"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plain.txt"]


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(example_model, tmp_path):
    msa = tmp_path / "family.fasta"
    msa.write_bytes(EXAMPLE_MSA.read_bytes())
    model = tmp_path / "model.npz"
    model.write_bytes(Path(example_model).read_bytes())
    for arguments in (["fit", msa, "-o", msa],
                      ["contacts", model, "-o", model],
                      ["contacts", model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "A",
                       "--plot", model],
                      ["sample", model, "-n", "2", "-o", model],
                      ["sample", model, "-n", "2", "-o", msa, "--compare-msa", msa]):
        assert_clean_error(run(*arguments), "is also an input of this command")
    assert msa.read_bytes() == EXAMPLE_MSA.read_bytes()
    assert model.read_bytes() == Path(example_model).read_bytes()
    assert_clean_error(run("contacts", model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "A",
                           "-o", tmp_path / "x.png", "--plot", tmp_path / "x.png"),
                       "both the contacts output and the --plot picture")
    assert_clean_error(run("fit", msa, "-o", "-"), "-: this output is a file")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["family.fasta", "model.npz"]


def test_contacts_on_standard_output_keep_it_clean(example_model):
    result = run("contacts", example_model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "A",
                 "-o", "-")
    assert result.exit_code == 0
    assert result.stdout.startswith("i\tj\tscore\n")
    assert all(re.fullmatch(r"\d+\t\d+\t-?[\d.e+-]+", line)
               for line in result.stdout.splitlines()[1:])
    assert "|i-j|>=6" in result.stderr and "query positions aligned" in result.stderr
    assert_clean_error(run("contacts", example_model, "--json", "-o", "-"),
                       "-o - and --json would both write to standard output")


def test_contacts_and_plot_are_replaced_together(example_model, tmp_path, monkeypatch):
    """A failure while drawing keeps the old contacts file too (they were written one after
    the other: the contacts were already replaced when the plot failed)."""
    import potts_gwg.plot

    contacts, picture = tmp_path / "c.tsv", tmp_path / "map.png"
    contacts.write_text("old contacts")
    picture.write_text("old picture")

    def failing_save(figure, path, extension):
        Path(path).write_text("half a picture")
        raise KeyboardInterrupt

    monkeypatch.setattr(potts_gwg.plot, "save_figure", failing_save)
    try:
        result = run("contacts", example_model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "A",
                     "-o", contacts, "--plot", picture)
    except KeyboardInterrupt:
        pytest.fail("the Ctrl-C escaped the command line")
    assert result.exit_code == 130 and "error: interrupted" in result.stderr
    assert contacts.read_text() == "old contacts" and picture.read_text() == "old picture"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["c.tsv", "map.png"]


def test_contacts_write_through_a_symbolic_link(example_model, tmp_path):
    real = tmp_path / "results" / "c.tsv"
    real.parent.mkdir()
    link = tmp_path / "latest.tsv"
    link.symlink_to(real)
    assert run("contacts", example_model, "-o", link).exit_code == 0
    assert link.is_symlink() and real.read_text().startswith("i\tj\tscore\n")


def test_no_pair_to_score_is_n_a_in_the_table_and_null_in_json(tmp_path):
    """A one-column model has no pair at |i - j| >= 6: its precision is undefined, shown as
    n/a (text) and null (JSON, which has no NaN), not as 'nan'."""
    msa = tmp_path / "one.fasta"
    msa.write_text(">a\nA\n>b\nC\n>c\nD\n")
    model = tmp_path / "one.npz"
    assert run("fit", msa, "-o", model, "--threads", "1").exit_code == 0
    text = run("contacts", model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "A")
    assert text.exit_code == 0 and "nan" not in text.stdout
    assert "|i-j|>=6         n/a       n/a       n/a" in text.stdout
    summary = json.loads(run("contacts", model, "--pdb", EXAMPLE_STRUCTURE, "--chain", "A",
                             "--json").stdout)
    assert all(row["precision"] is None for row in summary["precision"])


def test_a_separation_no_pair_reaches_is_warned_about(example_model, tmp_path):
    result = run("contacts", example_model, "--min-sep", "48", "-o", tmp_path / "c.tsv", "-q")
    assert result.exit_code == 0
    assert result.stderr == "warning: no pair has |i-j| >= 48 (L = 48): the output lists none\n"
    assert (tmp_path / "c.tsv").read_text() == "i\tj\tscore\n"
    assert run("contacts", example_model, "--min-sep", "47", "-o", tmp_path / "d.tsv",
               "-q").stderr == ""
