"""Real-world awkward alignments (tests/fixtures/corpus/): how each one is read, or refused.

Each file gets one test stating the outcome: read (N, L, the query, non-standard letters
counted) or refused with an InputError that names the file and the record or line. Every file
also goes through ``potts-gwg msa-info``: exit 0 or 2, an ``error:`` line, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from potts_gwg.cli.main import main

from potts_gwg.alphabet import PROTEIN_ALPHABET
from potts_gwg.errors import InputError
from potts_gwg.io.msa import read_alignment

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
GAP = PROTEIN_ALPHABET.index("-")


def encode(*rows: str) -> np.ndarray:
    return np.array([[PROTEIN_ALPHABET.find(c) if c in PROTEIN_ALPHABET else GAP for c in row]
                     for row in rows], dtype=np.uint8)


def test_hhblits_a3m_with_comment_lines_annotation_records_and_descriptions():
    for name in ("hhblits_headers.a3m", "hhblits_headers.a3m.gz"):
        alignment = read_alignment(CORPUS / name)
        assert alignment.format == "a3m" and alignment.insert_mode == "per-row"
        # ss_pred, ss_conf and query_consensus are not sequences; names stop at the first space
        assert alignment.names == ["tr|Q9XYZ1|QUERY_HUMAN", "UniRef100_A0A001",
                                   "UniRef100_A0A002"]
        assert alignment.query_record == 0
        assert (alignment.n_sequences, alignment.length) == (3, 12)
        assert alignment.query_sequence == "MKVLAGHIKLWE"
        np.testing.assert_array_equal(alignment.indices, encode(
            "MKVLAGHIKLWE", "MKVLAGHIKLWE", "--VLAGHIKLW-"))  # 'gq' inserts removed
        assert alignment.n_nonstandard == 0


def test_nonstandard_letters_are_gaps_and_counted():
    alignment = read_alignment(CORPUS / "nonstandard_letters.fasta")
    assert (alignment.n_sequences, alignment.length) == (4, 10)
    # withX: X X; ambiguous: B Z J; selenocysteine: U O *
    assert alignment.n_nonstandard == 8
    np.testing.assert_array_equal(alignment.indices[1:], encode(
        "MK-LAGH-KL", "-K-LAG-IKL", "MK-LAG-IK-"))
    as_query = read_alignment(CORPUS / "nonstandard_letters.fasta", query="ambiguous")
    assert as_query.query_sequence == "BKZLAGJIKL"  # the query keeps its letters, upper case


def test_windows_line_endings():
    assert b"\r\n" in (CORPUS / "windows_line_endings.a3m").read_bytes()
    alignment = read_alignment(CORPUS / "windows_line_endings.a3m")
    assert alignment.format == "a3m" and alignment.names == ["query", "hit1", "hit2"]
    np.testing.assert_array_equal(alignment.indices, encode("MKVLAG", "MKVLAG", "-KVLAG"))


def test_trailing_whitespace_and_blank_lines():
    assert b"   \n" in (CORPUS / "trailing_whitespace.fasta").read_bytes()
    alignment = read_alignment(CORPUS / "trailing_whitespace.fasta")
    assert alignment.names == ["query", "hit1", "hit2"]
    np.testing.assert_array_equal(alignment.indices, encode("MKVLAG", "MKVLAH", "-KVLAG"))


def test_lower_case_rows_of_an_aligned_fasta_are_residues():
    alignment = read_alignment(CORPUS / "lowercase_rows.fasta")
    assert alignment.insert_mode == "none"  # every column has an upper-case letter
    np.testing.assert_array_equal(alignment.indices, encode("MKVLAG", "MKVLAG", "MKVLAG"))


def test_lower_case_only_row_is_residues_when_sniffed_and_refused_as_a3m():
    path = CORPUS / "lowercase_only_row.a3m"
    sniffed = read_alignment(path)  # no '#A3M#' line, equal widths: aligned FASTA
    assert (sniffed.format, sniffed.n_sequences, sniffed.length) == ("fasta", 3, 6)
    with pytest.raises(InputError, match=r"lowercase_only_row\.a3m, line 5, record "
                                         r"all_inserts: rows differ.* 0 columns, expected 6"):
        read_alignment(path, format="a3m")


def test_duplicate_names_are_kept_and_an_ambiguous_query_name_is_refused():
    alignment = read_alignment(CORPUS / "duplicate_names.fasta")
    assert alignment.names == ["seq", "seq", "other", "seq"]
    assert alignment.n_sequences == 4
    with pytest.raises(InputError, match=r"query 'seq' names 3 records \(1, 2, 4\)"):
        read_alignment(CORPUS / "duplicate_names.fasta", query="seq")
    assert read_alignment(CORPUS / "duplicate_names.fasta", query="other").query_record == 2
    by_index = read_alignment(CORPUS / "duplicate_names.fasta", query_index=4)
    assert by_index.query_sequence == "KVLAG"


def test_query_gaps_drop_their_columns():
    alignment = read_alignment(CORPUS / "query_with_gaps.fasta")
    assert alignment.msa_width == 9
    np.testing.assert_array_equal(alignment.column_indices, [0, 2, 3, 6, 7, 8])
    assert alignment.query_sequence == "MKVLAG"
    np.testing.assert_array_equal(alignment.indices, encode("MKVLAG", "MKVLAG", "M-VLAH"))


def test_stockholm_with_an_empty_block_is_read():
    alignment = read_alignment(CORPUS / "empty_block.sto")
    assert alignment.format == "stockholm"
    assert alignment.names == ["query/1-6", "hit1/3-8"]
    np.testing.assert_array_equal(alignment.indices, encode("MKVLAG", "MKVLAH"))


def test_stockholm_without_rows_is_refused():
    with pytest.raises(InputError, match=r"empty_alignment\.sto: no sequences"):
        read_alignment(CORPUS / "empty_alignment.sto")


def test_one_sequence_alignment():
    alignment = read_alignment(CORPUS / "single_sequence.a3m")
    assert (alignment.n_sequences, alignment.length) == (1, 10)
    assert alignment.query_name == "lonely"


def test_one_column_alignment():
    alignment = read_alignment(CORPUS / "single_column.fasta")
    assert (alignment.n_sequences, alignment.length) == (4, 1)
    np.testing.assert_array_equal(alignment.indices, encode("M", "M", "-", "L"))


def test_header_without_sequence_is_refused_naming_the_record_and_line():
    with pytest.raises(InputError, match=r"header_without_sequence\.a3m, line 4, record "
                                         r"truncated_hit: header without a sequence"):
        read_alignment(CORPUS / "header_without_sequence.a3m")


REFUSED = {"empty_alignment.sto", "header_without_sequence.a3m"}


@pytest.mark.parametrize("name", sorted(path.name for path in CORPUS.iterdir() if path.is_file()))
def test_msa_info_on_every_corpus_file(name):
    result = CliRunner().invoke(main, ["msa-info", "--json", str(CORPUS / name)])
    assert "Traceback" not in result.output
    if name in REFUSED:
        assert result.exit_code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0]
        assert result.stdout == ""
    else:
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        alignment = read_alignment(CORPUS / name)
        assert (report["n_sequences"], report["length"]) == (alignment.n_sequences,
                                                            alignment.length)
        assert 1 <= report["n_effective"] <= report["n_sequences"]
