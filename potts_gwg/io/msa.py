"""Reading multiple sequence alignments: a3m, FASTA/a2m, Stockholm, PSICOV ``.aln`` and Clustal.

Any of them may be gzipped (told by the magic bytes, not the name). The reader applies the
project's conventions (docs/README "Conventions", data/README rules 2 and 3) so that every
command sees the same positions:

* Insert states. a3m (``>`` records of unequal raw length): "per-row" — lower-case letters and
  ``.`` are removed from each row. Rows of equal length (a2m, aligned FASTA, Stockholm, whose
  rows must be of equal length): "columns" — columns holding lower-case letters but no
  upper-case letter are dropped; elsewhere lower case counts as a residue and ``.`` as a gap.
  PSICOV ``.aln`` and Clustal have no insert states: lower case is read as upper case. "none"
  when nothing was removed.
* Query columns: the columns where the query has a residue (not ``-``, ``.`` or the terminator
  ``*``) are kept; position i (1-based) is the i-th of them. An unknown residue (X) is a
  position, encoded as gap.
* Encoding: ``PROTEIN_ALPHABET`` order, non-standard letters (B, J, O, U, X, Z, ``*``) become
  gap and are counted; any other character is an error.

Records: HH-suite annotation records (names starting ``ss_``, ``sa_`` or ``aa_``, as
``ss_pred`` and ``ss_dssp``, and names containing ``_consensus``, which HH-suite skips as a
first record; here anywhere) are not sequences and are not counted by ``query_index``; a
header without a sequence is an error; a Stockholm file is read up to its first ``//`` (which
it must have), its blocks' rows of one width. NUL bytes at the start or
end of a line (MMseqs2/ColabFold entry separators) are dropped; anywhere else they mark a binary
file. Header lines need not be UTF-8 (undecodable bytes are replaced); sequence lines must be.

The work is done on byte strings and numpy arrays (one pass per line, never per character),
and every problem with the input is an :class:`InputError` naming the file and the record or
line.
"""

from __future__ import annotations

import difflib
import gzip
import os
import re
import zlib
from dataclasses import dataclass

import numpy as np

from ..alphabet import PROTEIN_ALPHABET, encoding_table, nonstandard_mask
from ..errors import InputError
from ..progress import progress_bar
from ..settings import integer

FORMATS = ("a3m", "fasta", "stockholm", "aln", "clustal")
FORMAT_ALIASES = {"a2m": "fasta"}

GAP_STATE = PROTEIN_ALPHABET.index("-")
ANNOTATION_PREFIXES = ("ss_", "sa_", "aa_")   # HH-suite: secondary structure, accessibility
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
READ_BLOCK_BYTES = 16 * 2**20
PROGRESS_EVERY_LINES = 2**16
INSERT_BYTES = b"abcdefghijklmnopqrstuvwxyz."
SEQUENCE_LINE = re.compile(rb"[A-Za-z.*-]+")
LINE_END_NULS = re.compile(rb"(?m)^\x00+|\x00+(?=[ \t]*$)")
NOT_A_RESIDUE = b"-.*"      # query letters whose columns are not positions
RESIDUE_RANGE = re.compile(r"(.+)/\d+-\d+")              # a Stockholm name NAME/start-end
CLOSE_NAME_RATIO = 0.8   # a record name this similar to an unknown --query is suggested
CLUSTAL_HEADERS = (b"CLUSTAL", b"MUSCLE", b"PROBCONS")   # first words of Clustal-format files
CONSENSUS_LINE = re.compile(rb"[*:. ]+")                # Clustal's conservation line

_ENCODING = encoding_table(PROTEIN_ALPHABET)
_ALLOWED_BYTE = _ENCODING >= 0
_STATE_OF_BYTE = np.where(_ALLOWED_BYTE, _ENCODING, 255).astype(np.uint8)  # (256,) uint8
_HEADERS = "headers"  # sniffed '>' records: a3m or fasta, decided by the row lengths


class UnknownQueryError(InputError):
    """``query`` names no record of the alignment (callers may say where the name came from)."""


@dataclass
class Alignment:
    """An alignment reduced to its L query columns and encoded as state indices (N, L)."""

    path: str
    format: str                 # one of FORMATS (detected or forced)
    names: list[str]            # N record names
    indices: np.ndarray         # (N, L) uint8 states in PROTEIN_ALPHABET order, gap = 20
    query_name: str
    query_sequence: str         # the query's L letters, upper case (an X stays X)
    query_record: int | None    # 0-based record of the query; None when from a query file
    msa_width: int              # columns after insert removal, before dropping query gaps
    column_indices: np.ndarray  # (L,) kept columns, 0-based within those msa_width columns
    n_nonstandard: int          # B, J, O, U, X, Z, * in the kept columns, read as gap
    insert_mode: str            # "per-row", "columns" or "none" (what was applied)

    @property
    def n_sequences(self) -> int:
        return self.indices.shape[0]

    @property
    def length(self) -> int:
        return self.indices.shape[1]

    def gap_fraction(self) -> float:
        """Fraction of gap states over the N × L encoded alignment."""
        return float(np.mean(self.indices == GAP_STATE))


@dataclass
class _Record:
    """One sequence as found in the file; the line numbers are kept for error messages."""

    name: str
    line: int
    chunks: list[tuple[int, bytes]]

    def row(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)

    def raw_length(self) -> int:
        return sum(len(chunk) for _, chunk in self.chunks)


def sniff_format(path: str | os.PathLike) -> str:
    """The format of ``path`` judged from its content, one of :data:`FORMATS`."""
    path = os.fspath(path)
    lines = _read_lines(path)
    kind = _sniff(path, lines)
    if kind != _HEADERS:
        return kind
    return _fasta_or_a3m(_parse_headers(path, lines))


def read_alignment(path: str | os.PathLike, format: str | None = None, query: str | None = None,
                   query_index: int | None = None,
                   query_file: str | os.PathLike | None = None,
                   progress: bool | None = False) -> Alignment:
    """Read ``path`` and reduce it to the query columns, encoded (see the module docstring).

    The query is the first record unless ``query`` (a record name), ``query_index`` (1-based
    record number) or ``query_file`` (a FASTA file whose first record is the aligned query row,
    same width as the alignment, not counted as one of its sequences) says otherwise.
    ``progress``: a bar on stderr while reading (None: only when stderr is a terminal).
    """
    path = os.fspath(path)
    if query_index is not None:
        query_index = integer("query_index (1-based)", query_index)  # range: below
    given = [name for name, value in (("query", query), ("query_index", query_index),
                                      ("query_file", query_file)) if value is not None]
    if len(given) > 1:
        raise InputError(f"give at most one way to choose the query, not {' and '.join(given)}",
                         path)
    lines = _read_lines(path, progress)
    kind = _normalise_format(path, format) if format is not None else _sniff(path, lines)
    records = _parse(path, lines, kind, progress)
    if not records:
        raise InputError("no sequences in the alignment", path)
    alignment_format = _fasta_or_a3m(records) if kind == _HEADERS else kind
    rows = _checked_rows(path, records)
    if alignment_format in ("aln", "clustal"):
        rows = [row.upper() for row in rows]
    # Forced FASTA of unequal rows is read as a2m without its '.' padding, i.e. as a3m;
    # Stockholm and .aln rows must be of equal length.
    per_row = alignment_format == "a3m" or (
        alignment_format == "fasta" and len({len(row) for row in rows}) > 1)
    inserts = (_PerRowInserts.fit(path, records, rows) if per_row
               else _ColumnInserts.fit(path, records, rows))
    names = [record.name for record in records]

    if query_file is not None:
        query_source = os.fspath(query_file)
        query_name, query_row = _query_file_row(query_source, inserts)
        query_record = None
    else:
        query_source = path
        query_record = _query_record_index(path, names, query, query_index)
        query_name, query_row = names[query_record], inserts.matrix[query_record]

    columns = np.flatnonzero(~np.isin(query_row, np.frombuffer(NOT_A_RESIDUE, np.uint8)))
    if columns.size == 0:
        raise InputError("the query has no residues: every column is a gap after insert removal",
                         query_source, record=query_name)
    kept = inserts.matrix[:, columns]
    return Alignment(
        path=path, format=alignment_format, names=names,
        indices=np.ascontiguousarray(_STATE_OF_BYTE[kept]),
        query_name=query_name,
        query_sequence=query_row[columns].tobytes().upper().decode("ascii"),
        query_record=query_record, msa_width=inserts.matrix.shape[1], column_indices=columns,
        n_nonstandard=int(nonstandard_mask(kept).sum()), insert_mode=inserts.mode)


def _read_lines(path: str, progress: bool | None = False) -> list[bytes]:
    """The file's lines with surrounding whitespace stripped (gzip undone, CRLF accepted).

    Read block by block (a progress bar over the bytes on disk when ``progress`` asks), so the
    whole text and its lines are never held twice. Raises InputError for anything that is not
    a readable, non-empty text file.
    """
    if not os.path.exists(path):
        if str(path) == "-":
            raise InputError("no such file (standard input is not read: save the alignment "
                             "to a file and give its name; the fit records it, and --resume "
                             "reads it again)", path)
        raise InputError("no such file", path)
    if os.path.isdir(path):
        raise InputError("is a directory, not an alignment file", path)
    lines: list[bytes] = []
    try:
        with open(path, "rb") as handle, progress_bar(
                total=os.fstat(handle.fileno()).st_size, desc="reading", unit="B",
                enabled=progress) as bar:
            is_gzip = handle.read(2) == GZIP_MAGIC
            handle.seek(0)
            stream = gzip.GzipFile(fileobj=handle) if is_gzip else handle
            unfinished: list[bytes] = []  # blocks of a line not yet ended by a newline
            while block := stream.read(READ_BLOCK_BYTES):
                cut = block.rfind(b"\n") + 1
                if cut:
                    _append_lines(path, lines, b"".join(unfinished) + block[:cut])
                    unfinished.clear()
                unfinished.append(block[cut:])
                bar.update(handle.tell() - bar.n)
            _append_lines(path, lines, b"".join(unfinished))
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise InputError(f"corrupt or truncated gzip data ({error})", path) from None
    except OSError as error:
        raise InputError(f"cannot read the file ({error.strerror or error})", path) from None
    if not any(lines):
        raise InputError("empty file", path)
    return lines


def _append_lines(path: str, lines: list[bytes], text: bytes) -> None:
    """Check a block of whole lines (NULs only at line ends, UTF-8 sequence lines) and append
    its stripped lines. A lone CR ends a line, as CRLF and LF do, in every line number."""
    if not lines:
        text = text.removeprefix(UTF8_BOM)
    if b"\r" in text:
        text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b"\0" in text:
        text = LINE_END_NULS.sub(b"", text)
    nul = text.find(b"\0")
    if nul >= 0:
        raise InputError("binary file (NUL byte), not an alignment", path,
                         line=len(lines) + text.count(b"\n", 0, nul) + 1)
    if not text:
        return
    block = [line.strip() for line in text.split(b"\n")]
    if text.endswith(b"\n"):
        block.pop()
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        for number, line in enumerate(block):
            block[number] = _decoded_line(path, line, len(lines) + number + 1)
    lines.extend(block)


def _decoded_line(path: str, line: bytes, number: int) -> bytes:
    """``line`` if it is UTF-8; a header or comment with its undecodable bytes replaced (only
    names are used, and a description in Latin-1 should not cost the file); else InputError."""
    try:
        line.decode("utf-8")
        return line
    except UnicodeDecodeError as error:
        if line.startswith((b">", b"#")):
            return line.decode("utf-8", "replace").encode("utf-8")
        raise InputError(f"not a text file: byte 0x{line[error.start]:02x} is not UTF-8", path,
                         line=number) from None


def _normalise_format(path: str, format: str) -> str:
    name = format.lower()
    name = FORMAT_ALIASES.get(name, name)
    if name not in FORMATS:
        raise InputError(f"unknown alignment format {format!r} "
                         f"(known: {', '.join(FORMATS + tuple(FORMAT_ALIASES))})", path)
    return name


def _sniff(path: str, lines: list[bytes]) -> str:
    """'stockholm', 'a3m', 'aln' or _HEADERS, from the first non-empty line."""
    number, first = next((number, line) for number, line in enumerate(lines, 1) if line)
    if first.startswith(b"# STOCKHOLM"):
        return "stockholm"
    if first.startswith(b">"):
        return _HEADERS
    if first.startswith(b"#"):  # '#A3M#' or another comment ahead of the first header
        content = next((line for line in lines[number:] if line and not line.startswith(b"#")),
                       b"")
        if content.startswith(b">"):
            return "a3m" if first.startswith(b"#A3M#") else _HEADERS
    elif first.upper().startswith(CLUSTAL_HEADERS):
        return "clustal"
    elif SEQUENCE_LINE.fullmatch(first):
        # A '>' further down means FASTA with a stray line on top, not one sequence per line.
        return _HEADERS if any(line.startswith(b">") for line in lines) else "aln"
    shown = first[:40].decode("utf-8", "replace")
    raise InputError(f"cannot tell the alignment format from {shown!r}; expected '>' headers, "
                     "'# STOCKHOLM 1.0' or one sequence per line (or give the format)", path,
                     line=number)


def _fasta_or_a3m(records: list[_Record]) -> str:
    """Header records of unequal raw length are a3m (inserts removed per row), else FASTA."""
    return "fasta" if len({record.raw_length() for record in records}) <= 1 else "a3m"


def _parse(path: str, lines: list[bytes], kind: str, progress: bool | None = False
           ) -> list[_Record]:
    if kind == "stockholm":
        return _parse_stockholm(path, lines)
    if kind == "clustal":
        return _parse_clustal(path, lines)
    if kind == "aln":
        return [_Record(f"seq{k}", number, [(number, line)])
                for k, (number, line) in enumerate(
                    ((number, line) for number, line in enumerate(lines, 1) if line), 1)]
    return _parse_headers(path, lines, progress)


def _parse_headers(path: str, lines: list[bytes], progress: bool | None = False
                   ) -> list[_Record]:
    """FASTA/a2m/a3m records; '#' lines and hhblits annotation records are not sequences.

    A header without any sequence line is an error (a truncated or broken file, usually).
    """
    records: list[_Record] = []
    current = None
    with progress_bar(total=len(lines), desc="parsing", unit="line", enabled=progress) as bar:
        for number, line in enumerate(lines, 1):
            if not number % PROGRESS_EVERY_LINES:
                bar.update(PROGRESS_EVERY_LINES)
            if not line or line.startswith(b"#"):
                continue
            if line.startswith(b">"):
                name = _header_name(line, len(records) + 1)
                current = _Record(name, number, [])
                if not _is_annotation(name):
                    records.append(current)
            elif current is None:
                raise InputError("sequence line before the first '>' header", path, line=number)
            else:
                current.chunks.append((number, line))
    empty = next((record for record in records if not record.chunks), None)
    if empty is not None:
        raise InputError("header without a sequence", path, record=empty.name, line=empty.line)
    return records


def _header_name(line: bytes, number: int) -> str:
    """The first word after '>'; 'seq<k>' for a header without one."""
    words = line[1:].split(None, 1)
    return words[0].decode("utf-8") if words else f"seq{number}"


def _is_annotation(name: str) -> bool:
    """HH-suite puts secondary structure, accessibility and consensus rows among the records
    (its reader skips ``ss_*``, ``sa_*``, ``aa_*``, and ``*_consensus*`` as the first)."""
    return name.startswith(ANNOTATION_PREFIXES) or "_consensus" in name


def _parse_stockholm(path: str, lines: list[bytes]) -> list[_Record]:
    """Rows of the first alignment (up to '//'); blocks are joined by row name. Without a
    '//' the file may be truncated at a block boundary, which would silently shorten every
    row: refused."""
    records: dict[str, _Record] = {}
    for number, line in enumerate(lines, 1):
        if line.startswith(b"//"):
            break
        if not line or line.startswith(b"#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise InputError("expected 'name sequence' on a Stockholm alignment line", path,
                             line=number)
        name = fields[0].decode("utf-8")
        record = records.setdefault(name, _Record(name, number, []))
        record.chunks.append((number, fields[1]))
    else:
        raise InputError("no '//' line ends the Stockholm alignment: the file may be "
                         "truncated", path)
    rows = list(records.values())
    _check_blocks(path, rows)
    return rows


def _check_blocks(path: str, rows: list[_Record]) -> None:
    """Every Stockholm row has a piece in each block, and a block's pieces are of one width
    (the most common; on a tie the first row's): ragged blocks whose rows still add up to one
    length would shift columns silently."""
    for block in range(max((len(row.chunks) for row in rows), default=0)):
        for row in rows:
            if block >= len(row.chunks):
                raise InputError(f"this row is missing from alignment block {block + 1}", path,
                                 record=row.name, line=row.chunks[-1][0])
        widths = [len(row.chunks[block][1]) for row in rows]
        width, odd = _expected_width(widths)
        if odd is not None:
            raise InputError(f"rows differ in length: this row has {widths[odd]} columns in "
                             f"alignment block {block + 1}, expected {width} (most rows)",
                             path, record=rows[odd].name, line=rows[odd].chunks[block][0])


def _parse_clustal(path: str, lines: list[bytes]) -> list[_Record]:
    """Rows of a Clustal alignment: after its header line, blocks of 'name sequence [count]'
    lines joined by name; conservation lines (only '*', ':', '.' and spaces) are skipped."""
    records: dict[str, _Record] = {}
    header = next(number for number, line in enumerate(lines, 1) if line)
    for number, line in enumerate(lines[header:], header + 1):
        if not line or CONSENSUS_LINE.fullmatch(line):
            continue
        fields = line.split()
        if len(fields) == 3 and fields[2].isdigit():  # the residue count ending a line
            fields = fields[:2]
        if len(fields) != 2:
            raise InputError("expected 'name sequence' on a Clustal alignment line", path,
                             line=number)
        name = fields[0].decode("utf-8")
        records.setdefault(name, _Record(name, number, [])).chunks.append((number, fields[1]))
    return list(records.values())


def _checked_rows(path: str, records: list[_Record]) -> list[bytes]:
    """The raw rows; InputError at the first character that is neither a letter nor -.*"""
    rows = [record.row() for record in records]
    invalid = np.flatnonzero(~_ALLOWED_BYTE[np.frombuffer(b"".join(rows), dtype=np.uint8)])
    if invalid.size:
        ends = np.cumsum([len(row) for row in rows])
        k = int(np.searchsorted(ends, invalid[0], side="right"))
        _raise_unknown_character(path, records[k], int(invalid[0] - (ends[k] - len(rows[k]))))
    return rows


def _raise_unknown_character(path: str, record: _Record, offset: int) -> None:
    for number, chunk in record.chunks:
        if offset < len(chunk):
            byte = chunk[offset]
            shown = repr(chr(byte)) if 32 <= byte < 127 else f"byte 0x{byte:02x}"
            raise InputError(f"unknown character {shown} in the sequence (allowed: letters, "
                             "'-', '.', '*')", path, record=record.name, line=number)
        offset -= len(chunk)


def _common_width(path: str, records: list[_Record], rows: list[bytes], after: str) -> int:
    """The length every row has; InputError naming the first row of another length."""
    lengths = [len(row) for row in rows]
    width, odd = _expected_width(lengths)
    if odd is not None:
        record = records[odd]
        raise InputError(f"rows differ in length{after}: this row has {lengths[odd]} "
                         f"columns, expected {width} (most rows)", path, record=record.name,
                         line=record.line)
    return width


def _expected_width(lengths: list[int]) -> tuple[int, int | None]:
    """The most common of ``lengths`` and the index of the first other one (None if none).

    Among equally common lengths the first row's (the query, usually): with two rows, the odd
    one out is then the second; else the smallest.
    """
    array = np.array(lengths)
    values, counts = np.unique(array, return_counts=True)
    common = values[counts == counts.max()]
    width = int(array[0]) if array[0] in common else int(common[0])
    odd = np.flatnonzero(array != width)
    return width, int(odd[0]) if odd.size else None


class _PerRowInserts:
    """a3m rule: lower-case letters and '.' are removed from every row."""

    def __init__(self, matrix: np.ndarray, mode: str):
        self.matrix = matrix
        self.mode = mode

    @classmethod
    def fit(cls, path: str, records: list[_Record], rows: list[bytes]) -> _PerRowInserts:
        stripped = [row.translate(None, INSERT_BYTES) for row in rows]
        width = _common_width(path, records, stripped, " after removing insert states "
                              "(lower-case letters and '.')")
        removed = sum(len(row) for row in stripped) != sum(len(row) for row in rows)
        matrix = np.frombuffer(b"".join(stripped), dtype=np.uint8).reshape(len(rows), width)
        return cls(matrix, "per-row" if removed else "none")

    def apply(self, row: bytes) -> bytes:
        return row.translate(None, INSERT_BYTES)


class _ColumnInserts:
    """a2m rule for equal-width rows: drop columns with lower case but no upper case."""

    def __init__(self, matrix: np.ndarray, raw_width: int, kept: np.ndarray):
        self.matrix = matrix
        self.raw_width = raw_width
        self.kept = kept
        self.mode = "none" if kept.all() else "columns"

    @classmethod
    def fit(cls, path: str, records: list[_Record], rows: list[bytes]) -> _ColumnInserts:
        width = _common_width(path, records, rows, "")
        raw = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), width)
        has_lower = ((raw >= ord("a")) & (raw <= ord("z"))).any(axis=0)
        has_upper = ((raw >= ord("A")) & (raw <= ord("Z"))).any(axis=0)
        kept = ~(has_lower & ~has_upper)
        return cls(raw[:, kept], raw.shape[1], kept)

    def apply(self, row: bytes) -> bytes:
        """A row of the raw width loses the dropped columns; other widths are left as they are."""
        if len(row) != self.raw_width:
            return row
        return np.frombuffer(row, dtype=np.uint8)[self.kept].tobytes()


def _query_file_row(query_path: str, inserts: _PerRowInserts | _ColumnInserts
                    ) -> tuple[str, np.ndarray]:
    """Name and row (after the alignment's insert handling) of the one record of a FASTA
    file (several would leave the query ambiguous)."""
    records = _parse_headers(query_path, _read_lines(query_path))
    if not records:
        raise InputError("no sequence record in the query file", query_path)
    if len(records) > 1:
        raise InputError(f"the query file has {len(records)} records; give a file with the "
                         "query row only", query_path, record=records[1].name,
                         line=records[1].line)
    record = records[0]
    row = inserts.apply(_checked_rows(query_path, [record])[0])
    width = inserts.matrix.shape[1]
    if len(row) != width:
        raise InputError(f"the query row has {len(row)} columns after insert removal, the "
                         f"alignment has {width}", query_path, record=record.name,
                         line=record.line)
    return record.name, np.frombuffer(row, dtype=np.uint8)


def _query_record_index(path: str, names: list[str], query: str | None,
                        query_index: int | None) -> int:
    """0-based record of the query: by name (which must be unique; a name without its
    '/start-end' suffix is accepted when no record has the exact name), by 1-based number,
    or the first."""
    if query is not None:
        matches = [index for index, name in enumerate(names) if name == query]
        if not matches:  # Pfam/Stockholm names carry the residue range: 'P12345/10-60'
            matches = [index for index, name in enumerate(names)
                       if (found := RESIDUE_RANGE.fullmatch(name)) and found[1] == query]
        if not matches:
            close = difflib.get_close_matches(query, names, n=3, cutoff=CLOSE_NAME_RATIO)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownQueryError(f"query {query!r} is not the name of any of the "
                                    f"{len(names)} records{hint}", path)
        if len(matches) > 1:
            numbers = ", ".join(str(index + 1) for index in matches[:5])
            more = ", ..." if len(matches) > 5 else ""
            raise InputError(f"query {query!r} names {len(matches)} records ({numbers}{more}); "
                             "choose one with --query-index", path)
        return matches[0]
    if query_index is not None:
        if not 1 <= query_index <= len(names):
            raise InputError(f"query index {query_index} is out of range: the alignment has "
                             f"{len(names)} records", path)
        return query_index - 1
    return 0
