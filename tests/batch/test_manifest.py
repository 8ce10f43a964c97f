"""Manifests and folders of MSAs, shards, device planning: no fits, fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from potts_gwg.batch import (
    parse_devices,
    parse_shard,
    plan_slots,
    read_families,
    select_shard,
)
from potts_gwg.errors import DeviceError, InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "data" / "PF00018_2O9S"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def msa(tmp_path) -> Path:
    return write(tmp_path / "a.fasta", ">q\nACDE\n>b\nACDF\n")


def test_manifest_resolves_relative_paths_and_query_forms(tmp_path, msa):
    (tmp_path / "fam").mkdir()
    write(tmp_path / "fam" / "q.fasta", ">row\nACDE\n")
    write(tmp_path / "s.pdb", "")
    manifest = write(tmp_path / "m.tsv",
                     "id\tmsa\tquery\tstructure\tchain\textra\n"
                     "a\ta.fasta\tfirst\ts.pdb\t(blank)\tignored\n"
                     "b\ta.fasta\tindex:2\t\t\t\n"
                     "c\ta.fasta\tid:b\t\t\t\n"
                     "fam\ta.fasta\tfile:q.fasta\ts.pdb\tA\t\n"
                     "\n"
                     "e\ta.fasta\tb\t\t\t\n")
    families = read_families(manifest)
    assert [family.id for family in families] == ["a", "b", "c", "fam", "e"]
    a, b, c, fam, e = families
    assert a.msa == str(msa.resolve()) and a.structure == str((tmp_path / "s.pdb").resolve())
    assert a.chain is None and a.query_description() == "first"
    assert b.query_index == 2 and c.query == "b" and e.query == "b"
    assert fam.query_file == str((tmp_path / "fam" / "q.fasta").resolve()) and fam.chain == "A"
    assert a.source.endswith("m.tsv, line 2")


def test_csv_manifest_with_query_index_column(tmp_path, msa):
    manifest = write(tmp_path / "m.csv", "id,msa,query_index,format\nx,a.fasta,2,fasta\n")
    (family,) = read_families(manifest)
    assert family.query_index == 2 and family.format == "fasta"


@pytest.mark.parametrize("text, fragments", [
    ("name\tmsa\nx\ta.fasta\n", ["m.tsv, line 1", "missing column id"]),
    ("id\tstructure\nx\ta.pdb\n", ["line 1", "missing column msa or msa_file"]),
    ("id\tmsa\nx\tmissing.fasta\n", ["m.tsv, line 2", "msa file 'missing.fasta' not found"]),
    ("id\tmsa\nx\ta.fasta\nX\ta.fasta\n", ["line 3", "duplicate id 'X'", "line 2"]),
    ("id\tmsa\tquery\nx\ta.fasta\tindex:zero\n", ["line 2", "record number"]),
    ("id\tmsa\tquery\nx\ta.fasta\tindex:0\n", ["line 2", "record number"]),
    ("id\tmsa\tquery\nx\ta.fasta\trecord:3\n", ["line 2", "bad query form 'record:3'"]),
    ("id\tmsa\tquery\nx\ta.fasta\tfile:nope.fasta\n", ["line 2", "query file 'nope.fasta'"]),
    ("id\tmsa\tquery\tquery_index\nx\ta.fasta\tid:b\t2\n", ["line 2", "disagree"]),
    ("id\tmsa\nx\t\n", ["line 2", "msa column is empty"]),
    ("id\tmsa\tformat\nx\ta.fasta\tphylip\n", ["line 2", "unknown format 'phylip'"]),
    ("id\tmsa\tchain\nx\ta.fasta\tA\n", ["line 2", "chain 'A' given without a structure"]),
    ("id\tmsa\n\ta.fasta\n", ["line 2", "empty id"]),
    ("id\tmsa\n../escape\ta.fasta\n", ["line 2", "not a safe folder name"]),
    ("id\tmsa\n/abs\ta.fasta\n", ["line 2", "not a safe folder name"]),
    ("id\tmsa\n..\ta.fasta\n", ["line 2", "not a safe folder name"]),
    ("id\tmsa\nsub/../../x\ta.fasta\n", ["line 2", "not a safe folder name"]),
    ("id\tmsa\nsub/x\ta.fasta\n", ["line 2", "not a safe folder name"]),
    ("id\tmsa\n..\\x\ta.fasta\n", ["line 2", "not a safe folder name"]),
    ("id\tmsa\n~\ta.fasta\n", ["line 2", "not a safe folder name"]),
    ("id\tmsa\n.hidden\ta.fasta\n", ["line 2", "not a safe folder name"]),
    ("id\tmsa\na b\ta.fasta\n", ["line 2", "not a safe folder name"]),
    ("id\tmsa\nsummary.tsv\ta.fasta\n", ["line 2", "not a safe folder name"]),
    ("id\tmsa\nx\ta.fasta\tsurplus\n", ["line 2", "3 fields but the header has 2"]),
    ("", ["empty manifest"]),
])
def test_manifest_errors_name_the_file_and_line(tmp_path, msa, text, fragments):
    manifest = write(tmp_path / "m.tsv", text)
    with pytest.raises(InputError) as caught:
        read_families(manifest)
    message = str(caught.value)
    assert message.startswith(str(manifest)), message
    for fragment in fragments:
        assert fragment in message, message


def test_every_bad_row_is_reported_at_once(tmp_path, msa):
    """Three mistakes took three runs to find, one error each."""
    manifest = write(tmp_path / "m.tsv", "id\tmsa\tquery\n"
                     "a\ta.fasta\tbad:1\n"
                     "a\ta.fasta\tfirst\n"
                     "b\tmissing.fasta\tfirst\n"
                     "A\ta.fasta\tfirst\n")
    with pytest.raises(InputError) as caught:
        read_families(manifest)
    message = str(caught.value)
    assert message.startswith(f"{manifest}: 3 bad rows: line 2: family a: bad query form "
                              "'bad:1'")
    assert "; line 4: family b: msa file 'missing.fasta' not found" in message
    assert message.endswith("; line 5: duplicate id 'A' (first on line 3; ids name output "
                            "folders and must be unique, ignoring case)")
    assert "\n" not in message


def test_missing_input_and_empty_folder(tmp_path):
    with pytest.raises(InputError, match="no such manifest file or folder"):
        read_families(tmp_path / "nothing.tsv")
    write(tmp_path / "notes.txt", "x")
    with pytest.raises(InputError, match="no families to run"):
        read_families(tmp_path)


def test_folder_of_msas(tmp_path):
    for name in ("b.a3m", "a.fasta.gz", "c d.aln", "skip.pdb", ".hidden.fasta"):
        write(tmp_path / name, "")
    notes = []
    families = read_families(tmp_path, msa_format="a3m", announce=notes.append)
    assert [family.id for family in families] == ["a", "b", "c_d"]
    assert len(notes) == 1 and notes[0].startswith(f"{tmp_path}: not taken as alignments")
    assert notes[0].endswith("a manifest names any file): skip.pdb")
    assert all(family.format == "a3m" for family in families)
    write(tmp_path / "a.a3m", "")
    with pytest.raises(InputError, match="would both be family 'a'"):
        read_families(tmp_path)


@pytest.mark.skipif(not (SHARED_DATA / "manifest.tsv").exists(), reason="no ../shared/data")
def test_benchmark_manifest_layout_reads_as_it_is():
    families = {family.id: family for family in read_families(SHARED_DATA / "manifest.tsv")}
    assert len(families) == 9
    for family in families.values():
        assert Path(family.msa).parent.name == family.id and Path(family.structure).is_file()
    assert families["1guuA"].chain is None and families["1guuA"].format == "aln"
    assert families["1atzA"].query_index == 2635
    assert families["PHO85_2PK9"].query == "2pk9_Sc_CMGC_CDK_CDK5"
    assert Path(families["PF00018_2O9S"].query_file).name == "query.fasta"
    assert families["S1A_3TGI"].chain == "E"


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_the_manifest_exactly_once(count):
    families = list(range(23))
    shards = [select_shard(families, (index, count)) for index in range(1, count + 1)]
    assert sorted(item for shard in shards for item in shard) == families
    assert shards[0][:2] == [0, count][: len(shards[0][:2])]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_bad_shard(text):
    with pytest.raises(InputError, match="--shard"):
        parse_shard(text)


def test_devices_and_slots():
    assert parse_devices("auto", cuda_count=0) == ["cpu"]
    assert parse_devices("auto", cuda_count=2) == ["cuda:0", "cuda:1"]
    assert parse_devices("cpu,cuda:1,cuda:1", cuda_count=2) == ["cpu", "cuda:1"]
    with pytest.raises(DeviceError):
        parse_devices("cuda:0", cuda_count=0)
    for unknown in ("tpu", "gpu"):  # as every command's --device: auto, cpu, cuda[:N]
        with pytest.raises(InputError, match=f"unknown device '{unknown}'"):
            parse_devices(unknown, cuda_count=2)
    cpu = plan_slots(["cpu"], workers=2, threads=None, cores=2)
    assert [(slot.device, slot.threads) for slot in cpu] == [("cpu", 1), ("cpu", 1)]
    assert all(slot.elastic for slot in cpu)
    assert not any(slot.elastic for slot in plan_slots(["cpu"], 2, threads=1, cores=2))
    assert [slot.threads for slot in plan_slots(["cpu"], None, None, cores=8)] == [8]
    messages = []
    gpus = plan_slots(["cuda:0", "cuda:1"], workers=4, threads=None, announce=messages.append,
                      cores=8)
    assert [slot.device for slot in gpus] == ["cuda:0", "cuda:1"] and messages
    mixed = plan_slots(["cpu", "cuda:0"], workers=3, threads=2, cores=8)
    assert [(slot.device, slot.threads) for slot in mixed] == \
        [("cuda:0", 2), ("cpu", 2), ("cpu", 2)]


def test_example_manifest_reads():
    families = read_families(REPO_ROOT / "examples" / "batch_manifest.tsv")
    assert [family.id for family in families] == ["sh3", "sh3_no_structure"]
    assert families[0].msa == str(EXAMPLE / "PF00018_2O9S.fasta") and families[0].chain == "A"
    assert families[1].query == "2O9S_A" and families[1].structure is None
