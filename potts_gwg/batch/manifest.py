"""Which families a batch runs: a manifest (TSV/CSV) or a folder of MSA files, and shards.

Manifest columns (header line first; other columns are ignored):

* ``id`` — the family's name and its output folder ``OUTDIR/<id>/``: letters, digits, ``_``,
  ``-`` and ``.``, not starting with ``.`` or ``-``; unique (ignoring case).
* ``msa`` (or ``msa_file``) — the alignment.
* optional ``format`` (or ``msa_format``), ``query``, ``query_index``, ``query_file``,
  ``structure`` (or ``structure_file``), ``chain``.

``query`` is ``first``, ``index:N`` (N-th record, 1-based), ``id:NAME`` (record name),
``file:PATH`` (aligned query row in that FASTA file, not a record of the MSA) or a bare record
name (one that starts with a lower-case word and ``:`` must be written ``id:NAME``). A
``chain`` that is blank or ``(blank)`` means the structure's chain has no id (or the
structure has one chain). Relative paths are resolved against the manifest's folder, then
``<folder>/<id>/`` and ``<folder>/families/<id>/`` (the layout of the benchmark data set), the
first that exists. Every problem is an :class:`InputError` naming the manifest and its line.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import InputError
from ..io.msa import FORMAT_ALIASES, FORMATS

MSA_FORMATS = (*FORMATS, *FORMAT_ALIASES)
MSA_SUFFIXES = (".a3m", ".a2m", ".fasta", ".fa", ".fas", ".faa", ".afa", ".aln", ".psicov",
                ".sto", ".stockholm", ".sth", ".clustal", ".clw")
SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
# Names the batch itself writes in OUTDIR: no family may take them.
RESERVED_IDS = frozenset({"summary.tsv", "summary.json", "summary.png", "batch.json"})
COLUMN_ALIASES = {
    "id": ("id",),
    "msa": ("msa", "msa_file"),
    "format": ("format", "msa_format"),
    "query": ("query",),
    "query_index": ("query_index",),
    "query_file": ("query_file",),
    "structure": ("structure", "structure_file", "pdb"),
    "chain": ("chain",),
}
BLANK_CHAIN = ("", "(blank)", "-")


@dataclass(frozen=True)
class FamilySpec:
    """One family of a batch, with every path resolved (absolute)."""

    id: str
    msa: str
    format: str | None = None
    query: str | None = None          # record name
    query_index: int | None = None    # 1-based record number
    query_file: str | None = None     # FASTA file holding the aligned query row
    structure: str | None = None
    chain: str | None = None
    source: str = ""                  # "manifest.tsv, line 3" or the folder: for messages

    def as_dict(self) -> dict:
        return asdict(self)

    def query_description(self) -> str:
        if self.query is not None:
            return f"id:{self.query}"
        if self.query_index is not None:
            return f"index:{self.query_index}"
        if self.query_file is not None:
            return f"file:{self.query_file}"
        return "first"


def read_families(source: str | os.PathLike, msa_format: str | None = None,
                  announce=lambda message: None) -> list[FamilySpec]:
    """The families of a manifest file or of a folder of MSA files, in order (``announce``
    gets a note of the files a folder holds that are not taken as alignments)."""
    path = Path(source)
    if not path.exists():
        raise InputError("no such manifest file or folder", path)
    families = (read_folder(path, msa_format, announce) if path.is_dir()
                else read_manifest(path, msa_format))
    if not families:
        raise InputError("no families to run (empty manifest or no MSA files)", path)
    return families


def read_manifest(path: str | os.PathLike, msa_format: str | None = None) -> list[FamilySpec]:
    """Read and validate a TSV/CSV manifest; ``msa_format`` is the default for a blank format."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the manifest ({error})", path) from None
    lines = text.splitlines()
    header_index = next((index for index, line in enumerate(lines)
                         if line.strip() and not line.startswith("#")), None)
    if header_index is None:
        raise InputError("empty manifest (expected a header line with id and msa columns)", path)
    delimiter = _delimiter(path, lines[header_index])
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = [name.strip().lower() for name in rows[header_index]]
    columns = _columns(path, header, header_index + 1)
    folder = path.resolve().parent
    families: list[FamilySpec] = []
    seen: dict[str, int] = {}
    problems: list[InputError] = []   # every bad row is reported at once, not one per run
    for index in range(header_index + 1, len(rows)):
        row, line = rows[index], index + 1
        if not any(cell.strip() for cell in row) or row[0].startswith("#"):
            continue
        try:
            if len(row) > len(header):
                raise InputError(f"{len(row)} fields but the header has {len(header)} (is the "
                                 f"file {'tab' if delimiter == chr(9) else 'comma'}-separated "
                                 "throughout?)", path, line=line)
            values = {key: (row[position].strip() if position < len(row) else "")
                      for key, position in columns.items()}
            family = _family(path, line, folder, values, msa_format)
            key = family.id.casefold()
            if key in seen:
                raise InputError(f"duplicate id {family.id!r} (first on line {seen[key]}; ids "
                                 "name output folders and must be unique, ignoring case)", path,
                                 line=line)
        except InputError as error:
            problems.append(error)
            continue
        seen[key] = line
        families.append(family)
    if problems:
        raise _all_problems(problems, path)
    return families


def _all_problems(problems: list[InputError], path: Path) -> InputError:
    """One error (one line) for every bad row: the first in full, the others after it."""
    if len(problems) == 1:
        return problems[0]
    prefix = f"{path}, "
    parts = [str(problem).removeprefix(prefix) for problem in problems]
    return InputError(f"{len(problems)} bad rows: " + "; ".join(parts), path)


def read_folder(folder: str | os.PathLike, msa_format: str | None = None,
                announce=lambda message: None) -> list[FamilySpec]:
    """Every MSA file in ``folder`` (by suffix, gzipped or not), id = name without suffixes;
    the other files (not hidden ones) are named on ``announce``, so none is left out unseen."""
    folder = Path(folder).resolve()
    families, seen, others = [], {}, []
    for path in sorted(folder.iterdir()):
        name = path.name.removesuffix(".gz")
        suffix = Path(name).suffix.lower()
        if name.startswith(".") or not path.is_file() or suffix not in MSA_SUFFIXES:
            if path.is_file() and not name.startswith("."):
                others.append(path.name)
            continue
        family_id = re.sub(r"[^A-Za-z0-9_.\-]", "_", Path(name).stem).lstrip(".-") or "family"
        _check_id(family_id, folder, None)
        key = family_id.casefold()
        if key in seen:
            raise InputError(f"{path.name} and {seen[key]} would both be family {family_id!r}; "
                             "rename one or use a manifest", folder)
        seen[key] = path.name
        families.append(FamilySpec(id=family_id, msa=str(path), format=msa_format,
                                   source=str(path)))
    if others:
        shown = ", ".join(others[:5]) + (f", … ({len(others)} in all)" if len(others) > 5 else "")
        announce(f"{folder}: not taken as alignments (suffix not one of "
                 f"{' '.join(MSA_SUFFIXES)}, optionally .gz; a manifest names any file): "
                 f"{shown}")
    return families


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/5"`` -> (2, 5); 1 <= I <= N."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise InputError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/4")
    return int(match.group(1)), int(match.group(2))


def select_shard(families: list, shard: tuple[int, int] | None) -> list:
    """Shard I of N: the families at positions I-1, I-1+N, I-1+2N, … (manifest order)."""
    if shard is None:
        return list(families)
    index, count = shard
    return [family for position, family in enumerate(families) if position % count == index - 1]


def _delimiter(path: Path, header: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".csv":
        return ","
    return "\t" if "\t" in header else ","


def _columns(path: Path, header: list[str], line: int) -> dict[str, int]:
    columns = {}
    for key, aliases in COLUMN_ALIASES.items():
        found = [name for name in aliases if name in header]
        if len(found) > 1:
            raise InputError(f"columns {' and '.join(found)} both give the {key}; keep one",
                             path, line=line)
        if found:
            columns[key] = header.index(found[0])
    missing = [" or ".join(COLUMN_ALIASES[key]) for key in ("id", "msa") if key not in columns]
    if missing:
        raise InputError(f"missing column {', '.join(missing)} (header has: "
                         f"{', '.join(name for name in header if name) or 'nothing'})",
                         path, line=line)
    return columns


def _family(path: Path, line: int, folder: Path, values: dict[str, str],
            msa_format: str | None) -> FamilySpec:
    family_id = values["id"]
    _check_id(family_id, path, line)

    def resolve(value: str, what: str) -> str:
        candidate = Path(os.path.expanduser(value))
        tried = [candidate] if candidate.is_absolute() else \
            [folder / candidate, folder / family_id / candidate,
             folder / "families" / family_id / candidate]
        for option in tried:
            if option.is_file():
                return str(option.resolve())
        raise InputError(f"family {family_id}: {what} file {value!r} not found (looked for "
                         f"{tried[0]}{' and in the family folders' if len(tried) > 1 else ''})",
                         path, line=line)

    if not values["msa"]:
        raise InputError(f"family {family_id}: the msa column is empty", path, line=line)
    msa = resolve(values["msa"], "msa")
    format_value = values.get("format", "").lower() or msa_format
    if format_value is not None and format_value not in MSA_FORMATS:
        raise InputError(f"family {family_id}: unknown format {format_value!r} (one of "
                         f"{', '.join(MSA_FORMATS)})", path, line=line)
    query, query_index, query_file = _query(path, line, family_id, values, resolve)
    structure = resolve(values["structure"], "structure") if values.get("structure") else None
    chain_value = values.get("chain", "")
    chain = None if chain_value.lower() in BLANK_CHAIN else chain_value
    if chain is not None and structure is None:
        raise InputError(f"family {family_id}: chain {chain!r} given without a structure",
                         path, line=line)
    return FamilySpec(id=family_id, msa=msa, format=format_value, query=query,
                      query_index=query_index, query_file=query_file, structure=structure,
                      chain=chain, source=f"{path}, line {line}")


def _query(path: Path, line: int, family_id: str, values: dict[str, str], resolve):
    """(name, index, file) from the query, query_index and query_file columns."""
    text = values.get("query", "")
    index_text = values.get("query_index", "")
    file_text = values.get("query_file", "")
    query = query_index = query_file = None
    kind, separator, rest = text.partition(":")
    kind = kind.strip().lower()
    if text == "" or text.lower() == "first":
        pass
    elif separator and kind in ("index", "id", "file", "name"):
        rest = rest.strip()
        if not rest:
            raise InputError(f"family {family_id}: query {text!r} has nothing after "
                             f"'{kind}:' (forms: first, index:N, id:NAME, file:PATH)",
                             path, line=line)
        if kind == "index":
            query_index = _positive(path, line, family_id, rest, f"query {text!r}")
        elif kind == "file":
            query_file = resolve(rest, "query")
        else:
            query = rest
    elif separator and re.fullmatch(r"[a-z]+", text.partition(":")[0]):
        raise InputError(f"family {family_id}: bad query form {text!r} (forms: first, "
                         "index:N, id:NAME, file:PATH; a record name that starts with a word "
                         "and ':' is written id:NAME)", path, line=line)
    else:
        query = text
    if index_text:
        query_index_column = _positive(path, line, family_id, index_text, "query_index")
        if query_index is not None and query_index != query_index_column or \
                query is not None or query_file is not None:
            raise InputError(f"family {family_id}: query {text!r} and query_index "
                             f"{index_text!r} disagree; give one", path, line=line)
        query_index = query_index_column
    if file_text:
        if query is not None or query_index is not None or query_file is not None:
            raise InputError(f"family {family_id}: give the query in one column only "
                             "(query, query_index or query_file)", path, line=line)
        query_file = resolve(file_text, "query")
    return query, query_index, query_file


def _positive(path: Path, line: int, family_id: str, text: str, what: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"family {family_id}: {what}: expected a record number >= 1 "
                         f"(1-based), not {text!r}", path, line=line)
    return int(text)


def _check_id(family_id: str, path, line: int | None) -> None:
    if not family_id:
        raise InputError("empty id", path, line=line)
    if not SAFE_ID.match(family_id) or family_id in (".", "..") or \
            family_id.lower() in RESERVED_IDS:
        raise InputError(f"id {family_id!r} is not a safe folder name (letters, digits, '_', "
                         "'-', '.', at most 128 characters, not starting with '.' or '-', not "
                         f"{', '.join(sorted(RESERVED_IDS))}): ids name the output folders "
                         "OUTDIR/<id>/", path, line=line)
