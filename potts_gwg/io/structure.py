"""Protein structures (PDB or mmCIF, optionally gzipped) and the query-to-chain mapping.

Distances follow the docs' convention: Cβ–Cβ in Å, Cα for glycine. A residue that lacks the
atom has no coordinates (NaN), and every distance involving it is unknown (NaN), never a
non-contact. Only the first model is read; waters and ligands are skipped, modified amino
acids with a backbone (MSE, …) are kept.

Unobserved residues matter for the mapping: a query residue may belong to a disordered loop.
The file's list of unobserved residues (PDB REMARK 465, mmCIF
``_pdbx_unobs_or_zero_occ_residues``) and gaps in the author numbering put them back into the
chain sequence before aligning; query positions aligned to them are unmapped.
"""

from __future__ import annotations

import gzip
import io
import os
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np
from Bio.Align import PairwiseAligner
from Bio.Data.PDBData import protein_letters_3to1, protein_letters_3to1_extended
from Bio.PDB import MMCIFParser, PDBParser
from Bio.PDB.MMCIF2Dict import MMCIF2Dict

from potts_gwg.errors import InputError

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
BACKBONE_ATOMS = ("N", "CA", "C")
STANDARD_RESIDUES = frozenset(protein_letters_3to1)
MIN_IDENTITY = 0.6
MIN_COVERAGE = 0.5
GZIP_MAGIC = b"\x1f\x8b"
UNKNOWN_RESIDUE = "?"  # an unobserved residue of unknown type (a gap in the numbering)


@dataclass
class ChainResidues:
    """The observed amino-acid residues of one chain, in file order.

    ``residue_ids`` are author numbers with insertion code ("37", "100A"); ``sequence`` has one
    letter per residue (X for a non-standard one); ``coordinates`` is (n, 3) float64 in Å:
    Cβ, Cα for glycine, a NaN row when that atom is missing. ``unobserved`` lists the residues
    the file declares missing from this chain, as (residue id, one letter), in file order.
    """

    chain_id: str
    residue_ids: list[str]
    sequence: str
    coordinates: np.ndarray
    unobserved: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class QueryMapping:
    """Where each query position sits in a chain.

    ``residue_of_position`` is (L,) int: index into the ``ChainResidues`` lists, -1 when the
    position is not aligned to a residue. ``identity`` = identical / aligned positions,
    ``coverage`` = aligned positions / L, ``n_aligned`` = aligned positions.
    """

    residue_of_position: np.ndarray
    identity: float
    coverage: float
    n_aligned: int


def read_chain(path: str | os.PathLike, chain: str | None = None) -> ChainResidues:
    """Read the amino-acid residues of one chain of the first model of a PDB/mmCIF file.

    ``chain`` None picks the only protein chain; a blank chain id is written " ", "" or
    "(blank)" (as the commands print it).
    """
    model, unobserved = _parse(path)
    chains = {c.id: c for c in model if any(_is_amino_acid(r) for r in c)}
    if not chains:
        raise InputError("no amino-acid residues in the first model", path)
    present = ", ".join(repr(name) for name in chains)
    if chain is None:
        if len(chains) > 1:
            raise InputError(f"several chains ({present}); choose one with --chain", path)
        (chain_id,) = chains
    else:
        chain_id = chain if chain.strip() and chain != "(blank)" else " "
        if chain_id not in chains:
            blank = " (a blank id: omit --chain)" if list(chains) == [" "] else ""
            raise InputError(f"no chain {chain!r}; chains present: {present}{blank}", path)
    residues = [r for r in chains[chain_id] if _is_amino_acid(r)]
    return ChainResidues(
        chain_id=chain_id,
        residue_ids=[f"{r.id[1]}{r.id[2].strip()}" for r in residues],
        sequence="".join(_one_letter(r.get_resname()) for r in residues),
        coordinates=np.array([_contact_atom_coordinates(r) for r in residues],
                             dtype=np.float64).reshape(-1, 3),
        unobserved=[(residue_id, _one_letter(name))
                    for residue_id, name in unobserved.get(chain_id, [])],
    )


class NotTheQueryError(InputError):
    """The structure's chain is another protein than the query (or the query is not the
    record the user meant)."""


def map_query_to_chain(query_sequence: str, residues: ChainResidues,
                       path: str | os.PathLike | None = None) -> QueryMapping:
    """Align the query (one letter per query position) to the chain, globally, end gaps free.

    Raises InputError when the structure is not of the query protein (identity < 0.6 or
    coverage < 0.5); ``path`` names the structure in that message.
    """
    query = query_sequence.upper()
    if not query:
        raise InputError("empty query sequence", path)
    full_sequence, residue_of_letter = _sequence_with_unobserved(residues, len(query))
    alignment = _aligner().align(full_sequence, query)[0]
    letter_index, query_index = alignment.indices
    chain_index = np.where(letter_index >= 0, residue_of_letter[letter_index], -1)
    aligned = (chain_index >= 0) & (query_index >= 0)
    residue_of_position = np.full(len(query), -1, dtype=np.int64)
    residue_of_position[query_index[aligned]] = chain_index[aligned]
    n_aligned = int(aligned.sum())
    n_identical = sum(residues.sequence[c] == query[q]
                      for c, q in zip(chain_index[aligned], query_index[aligned]))
    identity = n_identical / n_aligned if n_aligned else 0.0
    coverage = n_aligned / len(query)
    if identity < MIN_IDENTITY or coverage < MIN_COVERAGE:
        # End gaps are free: an unrelated sequence is placed beside the chain, not on it.
        detail = ("the sequences do not align" if n_aligned == 0 else
                  f"identity {identity:.3f} (need {MIN_IDENTITY}), coverage {coverage:.3f} "
                  f"(need {MIN_COVERAGE})")
        raise NotTheQueryError(f"chain {residues.chain_id!r} is not the query protein: "
                               f"{detail}", path)
    return QueryMapping(residue_of_position, identity, coverage, n_aligned)


def query_distances(query_sequence: str, path: str | os.PathLike, chain: str | None = None
                    ) -> tuple[np.ndarray, QueryMapping, ChainResidues]:
    """(L, L) float64 Cβ distances in Å between query positions, NaN where unknown."""
    residues = read_chain(path, chain)
    mapping = map_query_to_chain(query_sequence, residues, path)
    coordinates = np.full((len(query_sequence), 3), np.nan)
    mapped = mapping.residue_of_position >= 0
    coordinates[mapped] = residues.coordinates[mapping.residue_of_position[mapped]]
    differences = coordinates[:, None, :] - coordinates[None, :, :]
    return np.sqrt((differences ** 2).sum(axis=-1)), mapping, residues


def _sequence_with_unobserved(residues: ChainResidues, max_fill: int
                              ) -> tuple[str, np.ndarray]:
    """The chain sequence with unobserved residues put back, and each letter's residue index.

    An unobserved residue goes where its author number falls: before the first observed
    residue, after the last, or between two observed ones whose numbers bracket it. Numbers
    missing between two observed residues with no unobserved record get UNKNOWN_RESIDUE,
    unless the jump is longer than ``max_fill`` (then it is a renumbering, not a lost loop).
    Observed letters carry their index into ``residues``; put-back letters carry -1.
    """
    unobserved_letters: dict[int, list[str]] = {}
    for residue_id, letter in residues.unobserved:
        unobserved_letters.setdefault(_residue_number(residue_id), []).append(letter)
    listed_numbers = sorted(unobserved_letters)
    letters: list[str] = []
    residue_of_letter: list[int] = []

    def put_back(after: int | None, before: int | None) -> None:
        """Append the residues numbered strictly between two observed ones (None: no bound)."""
        if after is not None and before is not None and before - after - 1 <= max_fill:
            inserted = [letter for number in range(after + 1, before)
                        for letter in unobserved_letters.get(number, [UNKNOWN_RESIDUE])]
        else:
            inserted = [letter for number in listed_numbers
                        if (after is None or number > after)
                        and (before is None or number < before)
                        for letter in unobserved_letters[number]]
        letters.extend(inserted)
        residue_of_letter.extend([-1] * len(inserted))

    previous = None
    for index, residue_id in enumerate(residues.residue_ids):
        number = _residue_number(residue_id)
        put_back(previous, number)
        letters.append(residues.sequence[index])
        residue_of_letter.append(index)
        previous = number
    put_back(previous, None)
    return "".join(letters), np.array(residue_of_letter, dtype=np.int64)


def _residue_number(residue_id: str) -> int:
    """The author residue number without its insertion code ("100A" -> 100)."""
    return int(residue_id.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))


def _aligner() -> PairwiseAligner:
    """Global alignment, match 2 / mismatch -1 / gap open -5 / extend -0.5, end gaps free.

    UNKNOWN_RESIDUE scores 0 against any query letter.
    """
    aligner = PairwiseAligner(mode="global", match_score=2.0, mismatch_score=-1.0,
                              open_gap_score=-5.0, extend_gap_score=-0.5,
                              wildcard=UNKNOWN_RESIDUE)
    aligner.end_gap_score = 0.0
    return aligner


def _parse(path: str | os.PathLike):
    """Parse the file (format sniffed from its content).

    Returns the first model and, per chain id, its unobserved residues as
    (residue id, residue name) in file order.
    """
    text = _read_text(path)
    lines = text.lstrip().splitlines()
    is_mmcif = (lines[0].startswith("data_")
                or any(line.startswith("_atom_site.") for line in lines))
    parser = MMCIFParser(QUIET=True) if is_mmcif else PDBParser(QUIET=True)
    kind = "mmCIF" if is_mmcif else "PDB"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            structure = parser.get_structure("structure", io.StringIO(text))
            records = (_mmcif_unobserved(MMCIF2Dict(io.StringIO(text))) if is_mmcif
                       else _pdb_unobserved(structure.header))
        except Exception as error:  # noqa: BLE001 - Biopython raises many types for bad input
            detail = f"missing field {error}" if isinstance(error, KeyError) else str(error)
            raise InputError(f"cannot parse as {kind}: {detail}", path) from None
    models = list(structure)
    if not models:
        raise InputError("no ATOM/HETATM records: not a PDB or mmCIF structure", path)
    first_model = models[0].serial_num
    unobserved: dict[str, list[tuple[str, str]]] = {}
    for model, chain_id, residue_id, name in records:
        if model in (None, first_model):
            unobserved.setdefault(chain_id or " ", []).append((residue_id, name))
    return models[0], unobserved


def _pdb_unobserved(header: dict) -> list[tuple]:
    """(model, chain id, residue id, residue name) of the REMARK 465 records."""
    return [(record["model"], record["chain"], f"{record['ssseq']}{record['insertion'] or ''}",
             record["res_name"]) for record in header.get("missing_residues", [])]


def _mmcif_unobserved(mmcif: dict) -> list[tuple]:
    """(model, chain id, residue id, residue name) of unobserved polymer residues."""
    prefix = "_pdbx_unobs_or_zero_occ_residues."
    if prefix + "auth_seq_id" not in mmcif:
        return []
    columns = [mmcif[prefix + name] for name in (
        "PDB_model_num", "polymer_flag", "occupancy_flag", "auth_asym_id", "auth_seq_id",
        "PDB_ins_code", "auth_comp_id")]
    return [(int(model) if model.isdigit() else None, chain_id,
             seq_id + (insertion if insertion not in "?." else ""), name)
            for model, polymer, unobserved, chain_id, seq_id, insertion, name in zip(*columns)
            if polymer == "Y" and unobserved == "1" and seq_id.lstrip("-").isdigit()]


def _read_text(path: str | os.PathLike) -> str:
    """The file's text, gunzipped when it starts with the gzip magic bytes."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as error:
        raise InputError(f"cannot read structure file: {error.strerror}", path) from None
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise InputError(f"truncated or corrupt gzip data: {error}", path) from None
    if b"\x00" in data:
        raise InputError("binary data, not a PDB or mmCIF structure", path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not a text file, not a PDB or mmCIF structure", path) from None
    if not text.strip():  # str.strip: also Unicode white space such as \x1c-\x1f, \x85
        raise InputError("empty structure file", path)
    return text


def _is_amino_acid(residue) -> bool:
    """Polymer amino acids: ATOM residues with a Cα, and modified amino acids (MSE, SEP, …)
    with a backbone. Waters and ligands (HETATM, including free standard amino acids) are not.
    """
    if not residue.id[0].strip():
        return "CA" in residue
    name = residue.get_resname().strip().upper()
    return (name in protein_letters_3to1_extended and name not in STANDARD_RESIDUES
            and all(atom in residue for atom in BACKBONE_ATOMS))


def _one_letter(residue_name: str) -> str:
    letter = protein_letters_3to1_extended.get(residue_name.strip().upper(), "X")
    return letter if letter in AMINO_ACIDS else "X"


def _contact_atom_coordinates(residue) -> np.ndarray:
    """Cβ (Cα for glycine) position in Å, or NaN when that atom is missing."""
    atom_name = "CA" if residue.get_resname() == "GLY" else "CB"
    if atom_name not in residue:
        return np.full(3, np.nan)
    return residue[atom_name].coord.astype(np.float64)
