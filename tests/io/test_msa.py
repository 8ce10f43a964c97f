"""The alignment reader: formats, insert handling, query choice, errors, and the real families."""

from __future__ import annotations

import csv
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from potts_gwg.alphabet import PROTEIN_ALPHABET
from potts_gwg.errors import InputError
from potts_gwg.io import msa as msa_module
from potts_gwg.io.msa import FORMATS, read_alignment, sniff_format

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "msa"
EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "PF00018_2O9S"
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def encode(*rows: str) -> np.ndarray:
    """Expected indices written out by hand: letters by PROTEIN_ALPHABET, anything else gap."""
    gap = PROTEIN_ALPHABET.index("-")
    return np.array([[PROTEIN_ALPHABET.find(c) if c in PROTEIN_ALPHABET else gap for c in row]
                     for row in rows], dtype=np.uint8)


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# --- formats ---------------------------------------------------------------------------------

def test_a3m_removes_inserts_per_row_and_skips_annotation_records():
    alignment = read_alignment(FIXTURES / "hhblits.a3m")
    assert alignment.format == "a3m"
    assert alignment.insert_mode == "per-row"
    assert alignment.names == ["query", "seqA", "seqB", "seqC"]
    assert alignment.query_name == "query" and alignment.query_record == 0
    assert alignment.query_sequence == "ACDEFGHIKL"
    assert alignment.msa_width == 10
    np.testing.assert_array_equal(alignment.column_indices, np.arange(10))
    np.testing.assert_array_equal(alignment.indices, encode(
        "ACDEFGHIKL", "AC-EFGHIKL", "-CDEFGHIKL", "MNPQRSTVWY"))
    assert alignment.indices.dtype == np.uint8


def test_a2m_drops_insert_columns_and_upper_cases_the_rest():
    alignment = read_alignment(FIXTURES / "inserts.a2m")
    assert alignment.format == "fasta"
    assert alignment.insert_mode == "columns"
    assert alignment.msa_width == 7
    np.testing.assert_array_equal(alignment.column_indices, [0, 1, 2, 3, 4, 6])
    assert alignment.query_sequence == "ACDEGH"
    np.testing.assert_array_equal(alignment.indices, encode(
        "ACDEGH", "ACDEGH", "ACDEGH", "-CDEGY"))


def test_multiline_fasta_with_descriptions_and_a_query_gap():
    alignment = read_alignment(FIXTURES / "multiline.fasta")
    assert alignment.format == "fasta"
    assert alignment.insert_mode == "none"
    assert alignment.names == ["sp|P00001|FIRST", "second", "third"]
    assert alignment.msa_width == 8
    np.testing.assert_array_equal(alignment.column_indices, [0, 1, 2, 3, 4, 5, 7])
    assert alignment.query_sequence == "MKVLIAG"
    np.testing.assert_array_equal(alignment.indices, encode("MKVLIAG", "MKVLIAH", "-KVLIAW"))


def test_multiblock_stockholm_with_annotations_and_an_insert_column():
    alignment = read_alignment(FIXTURES / "twoblock.sto")
    assert alignment.format == "stockholm"
    assert alignment.insert_mode == "columns"
    assert alignment.names == ["Q1/1-10", "S2/3-12", "S3/1-9"]
    assert alignment.msa_width == 10
    assert alignment.query_sequence == "ACDEFGHIK"
    np.testing.assert_array_equal(alignment.column_indices, [0, 1, 2, 3, 4, 5, 6, 8, 9])
    np.testing.assert_array_equal(alignment.indices, encode(
        "ACDEFGHIK", "ACDEFGHIK", "-CDEYGHIK"))


def test_psicov_aln_names_rows_by_number():
    alignment = read_alignment(FIXTURES / "psicov.aln")
    assert alignment.format == "aln"
    assert alignment.names == ["seq1", "seq2", "seq3"]
    assert alignment.n_nonstandard == 1
    np.testing.assert_array_equal(alignment.indices, encode("MKVLIAG", "MKVLVAG", "-KV-IA-"))


def test_gzip_is_told_by_magic_bytes_not_by_name(tmp_path):
    plain = read_alignment(FIXTURES / "multiline.fasta")
    for path in (FIXTURES / "multiline.fasta.gz",
                 shutil.copy(FIXTURES / "multiline.fasta.gz", tmp_path / "renamed.txt")):
        alignment = read_alignment(path)
        assert alignment.format == "fasta"
        np.testing.assert_array_equal(alignment.indices, plain.indices)


def test_windows_line_endings_and_trailing_whitespace():
    assert b"\r\n" in (FIXTURES / "crlf.fasta").read_bytes()
    assert b" \t \n" in (FIXTURES / "trailing_whitespace.aln").read_bytes()
    crlf = read_alignment(FIXTURES / "crlf.fasta")
    assert crlf.names == ["first", "second"]
    np.testing.assert_array_equal(crlf.indices, encode("MKVLIAG", "MKVLIAH"))
    padded = read_alignment(FIXTURES / "trailing_whitespace.aln")
    np.testing.assert_array_equal(padded.indices, read_alignment(FIXTURES / "psicov.aln").indices)


def test_nonstandard_letters_of_either_case_become_gaps_and_are_counted():
    alignment = read_alignment(FIXTURES / "nonstandard.fasta")
    assert alignment.n_nonstandard == 13
    np.testing.assert_array_equal(alignment.indices, encode("ACDEFGHIK", "------*AC", "------ACD"))
    as_query = read_alignment(FIXTURES / "nonstandard.fasta", query_index=2)
    # Unknown residues are positions; the terminator '*' is not (its column is dropped).
    assert as_query.query_sequence == "BJOUXZAC"
    assert as_query.column_indices.tolist() == [0, 1, 2, 3, 4, 5, 7, 8]


def test_gap_fraction_counts_gap_states():
    alignment = read_alignment(FIXTURES / "psicov.aln")
    assert alignment.gap_fraction() == pytest.approx(3 / 21)


def test_single_sequence_and_single_column(tmp_path):
    single = read_alignment(write(tmp_path, "one.fasta", ">only\nMKV\n"))
    assert (single.n_sequences, single.length) == (1, 3)
    narrow = read_alignment(write(tmp_path, "narrow.fasta", ">a\nM\n>b\n-\n>c\nx\n"))
    assert (narrow.n_sequences, narrow.length) == (3, 1)
    np.testing.assert_array_equal(narrow.indices, encode("M", "-", "-"))


def test_lower_case_only_in_residue_columns_is_not_an_insert(tmp_path):
    alignment = read_alignment(write(tmp_path, "lower.fasta", ">a\nmkV\n>b\nMKv\n"))
    assert alignment.insert_mode == "none"
    assert alignment.query_sequence == "MKV"


# --- sniffing and --format -------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("hhblits.a3m", "a3m"), ("inserts.a2m", "fasta"), ("multiline.fasta", "fasta"),
    ("twoblock.sto", "stockholm"), ("psicov.aln", "aln"), ("multiline.fasta.gz", "fasta"),
    ("crlf.fasta", "fasta"), ("trailing_whitespace.aln", "aln")])
def test_sniff_format(name, expected):
    assert sniff_format(FIXTURES / name) == expected


def test_sniff_unequal_rows_without_header_line_is_a3m(tmp_path):
    assert sniff_format(write(tmp_path, "x", ">a\nMKV\n>b\nMkKV\n")) == "a3m"
    assert sniff_format(write(tmp_path, "y", "#A3M#\n>a\nMKV\n>b\nMKV\n")) == "a3m"
    # Another comment on top (ColabFold's '#lengths' line) leaves it to the row lengths: equal
    # rows are aligned FASTA, whose lower case is a residue, not an a3m insert.
    commented = write(tmp_path, "z", "#c\n>q\nACDEFGHIK\n>s1\nA.D-fGHIK\n")
    assert sniff_format(commented) == "fasta"
    assert read_alignment(commented).query_sequence == "ACDEFGHIK"


def test_sniff_rejects_unknown_content(tmp_path):
    with pytest.raises(InputError, match=r"junk\.txt, line 2: cannot tell the alignment format"):
        read_alignment(write(tmp_path, "junk.txt", "\nhello: 42\n"))
    with pytest.raises(InputError, match=r"clustal\.aln: no sequences in the alignment"):
        read_alignment(write(tmp_path, "clustal.aln", "CLUSTAL W (1.83) multiple alignment\n"))


def test_clustal_written_by_biopython_reads_as_its_fasta(tmp_path):
    """Clustal Omega / MUSCLE output: blocks, residue counts, conservation lines (written by
    Biopython here, the format's reference writer in our dependencies)."""
    from Bio import AlignIO

    fasta = EXAMPLE_DIR / "PF00018_2O9S.fasta"
    alignment = AlignIO.read(fasta, "fasta")[:40]
    clustal = tmp_path / "sh3.aln"
    AlignIO.write(alignment, clustal, "clustal")
    assert clustal.read_text().startswith("CLUSTAL")
    subset = tmp_path / "sh3.fasta"
    AlignIO.write(alignment, subset, "fasta")
    read, expected = read_alignment(clustal), read_alignment(subset)
    assert read.format == "clustal" and sniff_format(clustal) == "clustal"
    assert read.names == expected.names and read.query_sequence == expected.query_sequence
    np.testing.assert_array_equal(read.indices, expected.indices)
    text = "CLUSTAL O(1.2.4) multiple sequence alignment\n\nq    ACDE-G 5\ns1   acde-g 5\n" \
           "     **** *\n\nq    HIK 8\ns1   HI- 7\n     **\n"
    small = read_alignment(write(tmp_path, "small.clw", text))
    np.testing.assert_array_equal(small.indices, encode("ACDEGHIK", "ACDEGHI-"))
    with pytest.raises(InputError, match=r"line 4: expected 'name sequence'"):
        read_alignment(write(tmp_path, "bad.clw", "CLUSTAL W\n\nq ACDE\ns1 AC DE x\n"))
    with pytest.raises(InputError, match=r"record s1: rows differ in length"):
        read_alignment(write(tmp_path, "ragged.clw", "CLUSTAL W\n\nq ACDE\ns1 ACD\nq2 ACDE\n"))


def test_format_override_forces_per_row_inserts_on_equal_width_rows(tmp_path):
    path = write(tmp_path, "equal.fa", ">a\nMkV\n>b\nMKy\n")
    sniffed = read_alignment(path)
    assert (sniffed.format, sniffed.query_sequence) == ("fasta", "MKV")  # 'k' is a residue
    forced = read_alignment(path, format="A3M")
    assert (forced.format, forced.insert_mode, forced.query_sequence) == ("a3m", "per-row", "MV")
    np.testing.assert_array_equal(forced.indices, encode("MV", "MK"))
    ragged = write(tmp_path, "ragged.fa", ">a\nMkV\n>b\nMKV\n>c\nMLV\n")
    with pytest.raises(InputError, match=r"ragged\.fa.*record a.*2 columns, expected 3"):
        read_alignment(ragged, format="a3m")


def test_a2m_is_an_alias_of_fasta():
    assert read_alignment(FIXTURES / "inserts.a2m", format="a2m").format == "fasta"


def test_format_override_to_a_wrong_format_is_an_input_error():
    with pytest.raises(InputError, match=r"psicov\.aln.*before the first '>'"):
        read_alignment(FIXTURES / "psicov.aln", format="fasta")
    with pytest.raises(InputError, match=r"multiline\.fasta.*unknown character '>'"):
        read_alignment(FIXTURES / "multiline.fasta", format="aln")


# --- the query -------------------------------------------------------------------------------

def test_query_by_name_and_by_index_agree():
    by_name = read_alignment(FIXTURES / "multiline.fasta", query="third")
    by_index = read_alignment(FIXTURES / "multiline.fasta", query_index=3)
    assert by_name.query_record == by_index.query_record == 2
    assert by_name.query_sequence == "KVLIAWW"
    np.testing.assert_array_equal(by_name.column_indices, np.arange(1, 8))
    np.testing.assert_array_equal(by_name.indices, by_index.indices)
    np.testing.assert_array_equal(by_name.indices[0], encode("KVLIA-G")[0])


def test_query_file_is_not_counted_as_a_sequence():
    alignment = read_alignment(FIXTURES / "multiline.fasta",
                               query_file=FIXTURES / "multiline_query.fasta")
    assert alignment.query_record is None
    assert alignment.query_name == "template"
    assert alignment.n_sequences == 3
    assert alignment.query_sequence == "KVLIAG"
    np.testing.assert_array_equal(alignment.indices, encode("KVLIA-", "KVLIAG", "KVLIAW"))


def test_query_file_follows_the_insert_columns(tmp_path):
    raw_width = write(tmp_path, "q1.fasta", ">t\nACkDEmG-H\n")
    trimmed = write(tmp_path, "q2.fasta", ">t\nACDEG-H\n")
    for query_file in (raw_width, trimmed):
        alignment = read_alignment(FIXTURES / "inserts.a2m", query_file=query_file)
        assert alignment.query_sequence == "ACDEGH"


def test_terminator_in_the_query_is_not_a_position(tmp_path):
    a3m = read_alignment(write(tmp_path, "star.a3m", ">q\nACDEFGHIK*\n>s1\nACDaEFGHIK*\n"))
    fasta = read_alignment(write(tmp_path, "star.fa", ">q\nACD*FGHIK*\n>s1\nACDEFGHIKL\n"))
    assert (a3m.length, a3m.query_sequence) == (9, "ACDEFGHIK")
    assert (fasta.length, fasta.query_sequence) == (8, "ACDFGHIK")
    assert fasta.column_indices.tolist() == [0, 1, 2, 4, 5, 6, 7, 8]


def test_query_name_without_its_residue_range(tmp_path):
    path = write(tmp_path, "pfam.sto", "# STOCKHOLM 1.0\nP1/1-9 ACDEFGHIK\nQ2/5-12 ACD-FGHIK\n"
                                       "Q2/30-38 ACDEFGHI-\nQ22/5-12 ACDEFGHIK\n//\n")
    assert read_alignment(path, query="Q2/5-12").query_record == 1
    assert read_alignment(path, query="P1").query_record == 0
    with pytest.raises(InputError, match=r"query 'Q2' names 2 records \(2, 3\)"):
        read_alignment(path, query="Q2")
    other = write(tmp_path, "slash.fa", ">tr/ABC\nACD\n>sp/ABC\nACD\n")
    with pytest.raises(InputError, match=r"query 'tr' is not the name of any"):
        read_alignment(other, query="tr")  # only a residue range is left out


def test_an_unknown_query_name_suggests_close_ones(tmp_path):
    path = write(tmp_path, "named.fa", ">seq_2634\nACD\n>P0ABQ4.1 DHFR\nACD\n>other\nACD\n")
    with pytest.raises(InputError, match=r"query 'seq2634' is not the name of any of the 3 "
                                         r"records; did you mean 'seq_2634'\?$"):
        read_alignment(path, query="seq2634")
    with pytest.raises(InputError, match=r"did you mean 'P0ABQ4\.1'\?$"):
        read_alignment(path, query="P0ABQ4")
    with pytest.raises(InputError, match=r"any of the 3 records$"):
        read_alignment(path, query="unrelated")


def test_psicov_rows_have_no_insert_states(tmp_path):
    lower = read_alignment(write(tmp_path, "lower.aln", "acdefghik\nacd-fghik\n"))
    assert (lower.format, lower.insert_mode, lower.query_sequence) == ("aln", "none", "ACDEFGHIK")
    np.testing.assert_array_equal(lower.indices, encode("ACDEFGHIK", "ACD-FGHIK"))


def test_hhsuite_annotation_records_are_skipped_by_its_own_rule(tmp_path):
    path = write(tmp_path, "annotated.a3m",
                 ">ss_cons\nCCHHHHEEEC\n>sa_dssp\nAABBBAAAAB\n>aa_x\nACDEFGHIKL\n"
                 ">fam_consensus_1\nACDEFGHIKL\n>q\nACD-FGHIKL\n>s1\nACDEFGH-KL\n")
    alignment = read_alignment(path)
    assert alignment.names == ["q", "s1"] and alignment.query_sequence == "ACDFGHIKL"


def test_colabfold_nul_separators_and_latin1_descriptions_are_read(tmp_path):
    path = write(tmp_path, "cf.a3m", b"#9\t1\n>101\nACDEFGHIK\n>UniRef100_A\t140 caf\xe9\n"
                                     b"ACDaEFGHIK\n\0>UniRef100_B\t100\nAC-EFGHIK\n\0")
    alignment = read_alignment(path)
    assert alignment.format == "a3m" and alignment.names == ["101", "UniRef100_A", "UniRef100_B"]
    spaced = read_alignment(write(tmp_path, "nul_space.a3m", b">q\nACD\0 \n>s\nAC-\n"))
    np.testing.assert_array_equal(spaced.indices, encode("ACD", "AC-"))
    np.testing.assert_array_equal(alignment.indices,
                                  encode("ACDEFGHIK", "ACDEFGHIK", "AC-EFGHIK"))


# --- errors ----------------------------------------------------------------------------------

def corrupt_gzip(tmp_path: Path) -> Path:
    data = bytearray(gzip.compress(b">a\nMKV\n" * 50, mtime=0))
    data[len(data) // 2] ^= 0xFF
    return write(tmp_path, "corrupt.gz", bytes(data))


BAD_FILES = [
    ("empty.fasta", b"", "empty file"),
    ("blank.fasta", b" \n\r\n\t\n", "empty file"),
    ("nul.fasta", b">a\nMK\0V\n", "binary file"),
    ("latin1.fasta", b">a\nMK\xe9V\n", "line 2: not a text file: byte 0xe9 is not UTF-8"),
    ("truncated.gz", gzip.compress(b">a\nMKV\n" * 200, mtime=0)[:30], "gzip"),
    ("headless.fasta", b"MKV\n>a\nMKV\n", "line 1.*before the first '>'"),
    ("hollow.fasta", b">a\nMKV\n>b\n>c\nMKV\n", "line 3, record b: header without a sequence"),
    ("ragged.fasta", b">a\nMKV\n>b\nMKV\n>c\nMK\n",
     "record c: rows differ in length.*2 columns, expected 3"),
    ("ragged.sto", b"# STOCKHOLM 1.0\na MKV\nb MK\nc MKV\n//\n", "record b: rows differ"),
    ("ragged.aln", b"MKV\nMK\nMKV\n", "record seq2: rows differ"),
    ("tie.fasta", b">a\nMKVL\n>b\nMK\n", "record b: rows differ.*2 columns, expected 4"),
    ("short_block.sto", b"# STOCKHOLM 1.0\na MKV\nb MKV\n\na LIV\n//\n",
     "line 3, record b: this row is missing from alignment block 2"),
    # Ragged blocks whose rows add up to one length would shift every later column.
    ("ragged_blocks.sto", b"# STOCKHOLM 1.0\nq ACDEF\ns ACD\n\nq GH\ns GHIK\n//\n",
     "line 3, record s: rows differ in length: this row has 3 columns in alignment block 1, "
     "expected 5"),
    ("digit.fasta", b">a\nMKV\n>b\nMK\nV1\n", r"line 5, record b: unknown character '1'"),
    ("space.aln", b"MKV\nM V\n", r"line 2, record seq2: unknown character ' '"),
    ("utf8.fasta", ">a\nMK\u00e9\n".encode(), "unknown character byte 0xc3"),
    ("unterminated.sto", b"# STOCKHOLM 1.0\na MKV\nb MKL\n\n", "no '//' line ends"),
    ("stockholm_fields.sto", b"# STOCKHOLM 1.0\na MKV extra\n//\n",
     "line 2: expected 'name sequence'"),
    ("annotations_only.a3m", b"#A3M#\n>ss_pred\nCCH\n>x_consensus\nMKV\n", "no sequences"),
    ("no_rows.sto", b"# STOCKHOLM 1.0\n#=GF ID x\n//\n", "no sequences"),
    ("gapped_query.fasta", b">a\n-.-\n>b\nMKV\n", "record a: the query has no residues"),
    ("inserts_only.a3m", b"#A3M#\n>a\nmkv\n>b\nmkv\n", "record a: the query has no residues"),
    # Stockholm and PSICOV rows are of equal length: the a3m rule must not "repair" them.
    ("ragged_insert.sto", b"# STOCKHOLM 1.0\nq ACDEFGHIK\ns1 ACDaEFGHIK\n//\n",
     "line 3, record s1: rows differ in length: this row has 10 columns in alignment block 1, "
     "expected 9"),
    ("ragged_insert.aln", b"ACDEFGHIK\nACDaEFGHIK\nACDEFGHIK\n", "record seq2: rows differ"),
    ("lone_cr.fasta", b">q\nACDEF\rGHIK\n>s1\nACD-FGHIK\n>s2\nAC--FGH\xe9K\n",
     "line 7: not a text file"),
    ("inner_nul.a3m", b">q\nACD\0EF\n", "line 2: binary file"),
]


@pytest.mark.parametrize("name, content, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_raise_input_error_naming_the_file(tmp_path, name, content, message):
    path = write(tmp_path, name, content)
    with pytest.raises(InputError, match=f"{name}.*{message}"):
        read_alignment(path)


def test_missing_file_directory_and_corrupt_gzip(tmp_path):
    with pytest.raises(InputError, match=r"absent\.fasta: no such file"):
        read_alignment(tmp_path / "absent.fasta")
    with pytest.raises(InputError, match="is a directory"):
        read_alignment(tmp_path)
    with pytest.raises(InputError, match=r"corrupt\.gz: corrupt or truncated gzip"):
        read_alignment(corrupt_gzip(tmp_path))


def test_bad_arguments():
    path = FIXTURES / "multiline.fasta"
    with pytest.raises(InputError, match=r"multiline\.fasta: unknown alignment format 'phylip'"):
        read_alignment(path, format="phylip")
    with pytest.raises(InputError, match=r"multiline\.fasta: query 'nobody'.*any of the 3"):
        read_alignment(path, query="nobody")
    for index in (0, 4):
        with pytest.raises(InputError, match=rf"query index {index} is out of range.* 3 records"):
            read_alignment(path, query_index=index)
    with pytest.raises(InputError, match="at most one way to choose the query"):
        read_alignment(path, query="second", query_index=2)


def test_a_query_name_shared_by_several_records_is_refused(tmp_path):
    path = write(tmp_path, "twins.fasta", ">a\nACDE\n>b\nACDF\n>a\nACDG\n")
    with pytest.raises(InputError, match=r"twins\.fasta: query 'a' names 2 records \(1, 3\); "
                                         r"choose one with --query-index"):
        read_alignment(path, query="a")
    assert read_alignment(path, query_index=3).query_sequence == "ACDG"


def test_bad_query_files(tmp_path):
    path = FIXTURES / "multiline.fasta"
    cases = [
        (tmp_path / "absent_query.fasta", "no such file"),
        (write(tmp_path, "empty_query.fasta", ""), "empty file"),
        (write(tmp_path, "comment_query.fasta", "# nothing\n"), "no sequence record"),
        (write(tmp_path, "wide_query.fasta", ">t\nMKVLIAGHH\n"),
         "record t: the query row has 9 columns.* 8"),
        (write(tmp_path, "gap_query.fasta", ">t\n--------\n"),
         "record t: the query has no residues"),
        (write(tmp_path, "odd_query.fasta", ">t\nMKVLIAG!\n"), "record t: unknown character '!'"),
        (write(tmp_path, "two_query.fasta", ">t\nMKVLIAGH\n>u\nMKVLIAGH\n"),
         "line 3, record u: the query file has 2 records"),
    ]
    for query_file, message in cases:
        with pytest.raises(InputError, match=f"{query_file.name}.*{message}"):
            read_alignment(path, query_file=query_file)


# --- the real families -----------------------------------------------------------------------

FAMILIES = ["1guuA", "PF00018_2O9S", "1atzA", "PF00072_1MVO", "DHFR_1RX2", "S1A_3TGI", "16pkA",
            "PHO85_2PK9", "CRY2_4I6E"]


def manifest_row(family_id: str) -> dict:
    if not (SHARED_DATA / "manifest.tsv").exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    with open(SHARED_DATA / "manifest.tsv", newline="") as handle:
        return next(row for row in csv.DictReader(handle, delimiter="\t") if row["id"] == family_id)


def query_arguments(query: str, family: Path) -> dict:
    """The manifest's query column (first, index:N, id:NAME, file:PATH) as keyword arguments."""
    kind, _, value = query.partition(":")
    if kind == "index":
        return {"query_index": int(value)}
    if kind == "id":
        return {"query": value}
    if kind == "file":
        return {"query_file": family / value}
    return {}


@pytest.mark.parametrize("family_id", FAMILIES)
def test_real_families(family_id):
    row = manifest_row(family_id)
    family = SHARED_DATA / "families" / family_id
    alignment = read_alignment(family / row["msa_file"], **query_arguments(row["query"], family))
    with open(family / "mapping.tsv", newline="") as handle:
        mapping = list(csv.DictReader(handle, delimiter="\t"))
    assert alignment.length == int(row["length"])
    assert alignment.n_sequences == int(row["n_seqs"])
    assert alignment.msa_width == int(row["msa_width"])
    assert alignment.insert_mode == row["insert_mode"]
    assert alignment.query_sequence == "".join(entry["query_aa"] for entry in mapping)
    np.testing.assert_array_equal(alignment.column_indices + 1,
                                  [int(entry["msa_col"]) for entry in mapping])


# --- properties (examples per test: the hypothesis profile, tests/conftest.py) --------------

MATCH_STATES = "ACDEFGHIKLMNPQRSTVWYBJOUXZ*-"
INSERT_STATES = "acdefghiklmnpqrstvwyx."
NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_|/.:-]{0,11}", fullmatch=True).filter(
    lambda name: not name.startswith(("ss_", "sa_", "aa_")) and "_consensus" not in name)


@st.composite
def alignments(draw):
    """Rows of match states (the query with at least one residue) and unique names."""
    n_rows = draw(st.integers(1, 5))
    width = draw(st.integers(1, 8))
    rows = draw(st.lists(st.text(MATCH_STATES, min_size=width, max_size=width),
                         min_size=n_rows, max_size=n_rows))
    residue_at = draw(st.integers(0, width - 1))
    query = list(rows[0])
    query[residue_at] = draw(st.sampled_from("ACDEFGHIKLMNPQRSTVWYX"))
    rows[0] = "".join(query)
    names = draw(st.lists(NAMES, min_size=n_rows, max_size=n_rows, unique=True))
    return names, rows


def wrapped(row: str, line_width: int) -> str:
    return "\n".join(row[start:start + line_width] for start in range(0, len(row), line_width))


@st.composite
def written_alignments(draw):
    """(file bytes, forced format or None, names, match rows) in one of the formats."""
    names, rows = draw(alignments())
    style = draw(st.sampled_from(["fasta", "a2m", "a3m", "a3m-forced", "stockholm", "aln"]))
    forced = None
    if style == "fasta":
        line_width = draw(st.integers(1, 8))
        text = "".join(f">{name} some words\n{wrapped(row, line_width)}\n"
                       for name, row in zip(names, rows))
    elif style == "a2m":
        n_inserts = draw(st.integers(0, 3))
        positions = sorted(draw(st.lists(st.integers(0, len(rows[0])), min_size=n_inserts,
                                         max_size=n_inserts)))
        padded = []
        for row in rows:
            cells = list(row)
            for position in reversed(positions):
                cells.insert(position, draw(st.sampled_from("acdkwy.-")))
            padded.append("".join(cells))
        text = "".join(f">{name}\n{row}\n" for name, row in zip(names, padded))
    elif style.startswith("a3m"):
        with_inserts = []
        for row in rows:
            pieces = draw(st.lists(st.text(INSERT_STATES, max_size=2), min_size=len(row) + 1,
                                   max_size=len(row) + 1))
            with_inserts.append(pieces[0] + "".join(c + p for c, p in zip(row, pieces[1:])))
        text = "".join(f">{name}\n{row}\n" for name, row in zip(names, with_inserts))
        if style == "a3m":
            text = "#A3M#\n" + text
        else:
            forced = "a3m"
    elif style == "stockholm":
        cut = draw(st.integers(0, len(rows[0])))
        blocks = [[row[:cut] for row in rows], [row[cut:] for row in rows]]
        body = "\n".join("".join(f"{name}  {part}\n" for name, part in zip(names, block) if part)
                         + "#=GC SS_cons  " + "H" * max(1, len(block[0])) + "\n"
                         for block in blocks)
        text = f"# STOCKHOLM 1.0\n#=GF ID random\n\n{body}//\n"
    else:
        text = "".join(row + "\n" for row in rows)
    data = text.encode()
    if draw(st.booleans()):
        data = data.replace(b"\n", b"\r\n")
    if draw(st.booleans()):
        data = gzip.compress(data, mtime=0)
    return data, forced, (names if style != "aln" else None), rows


@given(written_alignments())
def test_round_trip_in_every_format(tmp_path_factory, example):
    data, forced, names, rows = example
    path = tmp_path_factory.mktemp("round") / "alignment"
    path.write_bytes(data)
    alignment = read_alignment(path, format=forced)
    kept = [column for column, state in enumerate(rows[0]) if state not in "-*"]
    expected = encode(*("".join(row[column] for column in kept) for row in rows))
    np.testing.assert_array_equal(alignment.indices, expected)
    assert alignment.query_sequence == "".join(rows[0][column] for column in kept)
    assert alignment.names == (names or [f"seq{k}" for k in range(1, len(rows) + 1)])
    assert alignment.format in FORMATS


VALID_FILES = sorted(path for path in FIXTURES.iterdir() if path.name != "multiline_query.fasta")


@given(source=st.sampled_from(VALID_FILES),
       edits=st.lists(st.tuples(st.floats(0, 1), st.sampled_from(["replace", "insert", "delete"]),
                                st.binary(min_size=1, max_size=3)), min_size=1, max_size=4),
       truncate=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_files_parse_or_raise_input_error(tmp_path_factory, source, edits, truncate):
    data = bytearray(source.read_bytes())
    for where, action, payload in edits:
        at = min(int(where * len(data)), max(len(data) - 1, 0))
        if action == "replace":
            data[at:at + len(payload)] = payload
        elif action == "insert":
            data[at:at] = payload
        else:
            del data[at:at + len(payload)]
    if truncate is not None:
        del data[int(truncate * len(data)):]
    path = tmp_path_factory.mktemp("mutated") / source.name
    path.write_bytes(bytes(data))
    try:
        alignment = read_alignment(path)
    except InputError as error:
        assert source.name in str(error)
    else:
        assert alignment.indices.shape == (len(alignment.names), alignment.length)


# --- reading in blocks -----------------------------------------------------------------------

@pytest.mark.parametrize("block_bytes", [1, 3, 7, 64])
def test_block_boundaries_change_nothing(monkeypatch, tmp_path, block_bytes):
    """Lines, CRLF pairs and multi-byte UTF-8 letters split across blocks read as one."""
    expected = {path.name: read_alignment(path) for path in VALID_FILES}
    utf8 = write(tmp_path, "utf8_name.fasta", ">caf\u00e9 \u00e9t\u00e9\nMKV\n>b\nMKL\n")
    nul = write(tmp_path, "late_nul.fasta", b">a\nMKV\n>b\nMK\0V\n")
    monkeypatch.setattr(msa_module, "READ_BLOCK_BYTES", block_bytes)
    for path in VALID_FILES:
        alignment = read_alignment(path)
        assert alignment.names == expected[path.name].names
        np.testing.assert_array_equal(alignment.indices, expected[path.name].indices)
    assert read_alignment(utf8).names == ["caf\u00e9", "b"]
    with pytest.raises(InputError, match=r"late_nul\.fasta, line 4: binary file"):
        read_alignment(nul)


def test_progress_bar_on_stderr_only_when_asked(capsys):
    path = FIXTURES / "multiline.fasta"
    read_alignment(path, progress=True)
    assert "reading" in capsys.readouterr().err
    read_alignment(path)
    read_alignment(path, progress=None)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


def test_query_index_takes_numpy_integers_and_refuses_text():
    path = EXAMPLE_DIR / "PF00018_2O9S.fasta"
    second = read_alignment(path, query_index=np.int64(2))
    assert second.query_name == read_alignment(path, query_index=2).query_name
    with pytest.raises(TypeError, match=r"query_index \(1-based\) must be an integer, got '2'"):
        read_alignment(path, query_index="2")
