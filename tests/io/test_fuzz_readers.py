"""Fuzzing every reader: random and mutated inputs parse or raise a one-line InputError.

Readers: alignments (a3m, FASTA/a2m, Stockholm, PSICOV aln; sniffed or forced; gzipped),
model files (.npz), structures (PDB, mmCIF; gzipped). Inputs are valid files mutated the way
files get broken (truncated, bytes flipped, lines inserted, deleted or repeated, garbage, binary
junk, empty, huge lines, CRLF, gzip of any of these) and random token soup. Anything but a
result or an InputError naming the file on one line is a reader bug. The number of examples
comes from the hypothesis profile (tests/conftest.py: "ci" by default, "thorough" for
benchmarks/reliability_inputs.py); tests/io/test_msa.py has the round-trip properties.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from potts_gwg.alphabet import PROTEIN_ALPHABET
from potts_gwg.errors import InputError
from potts_gwg.io.model_file import PottsModel, load_model
from potts_gwg.io.msa import FORMATS, read_alignment
from potts_gwg.io.structure import map_query_to_chain, read_chain

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MSA_SEEDS = sorted(path for folder in (FIXTURES / "msa", FIXTURES / "corpus")
                   for path in folder.iterdir() if path.is_file())
STRUCTURE_SEEDS = sorted((FIXTURES / "corpus" / "structures").iterdir())
STRUCTURE_QUERY = "GIDPFTGEAIAK"  # the chain of the structure seeds
TOKENS = [b">", b">ss_pred\n", b">x_consensus\n", b"#A3M#\n", b"# STOCKHOLM 1.0\n", b"//\n",
          b"CLUSTAL W\n", b" **:. \n",
          b"#=GC SS_cons ", b"#=GF ID x\n", b"\n", b"\r\n", b" ", b"\t", b"-", b".", b"*",
          b"ACDEF", b"acdkwy", b"BJOUXZ", b"x", b"\x00", b"\xff", b"\xe9", b"\xc3\xa9", b"1",
          b"name ", b"\x1c", b"\x85", b"\xef\xbb\xbf", b"\x1f\x8b"]


def one_line_error_naming(error: InputError, path: Path) -> None:
    message = str(error)
    assert "\n" not in message and "\r" not in message, message
    assert path.name in message, message


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data`` broken in one to four of the ways files get broken, maybe gzipped after."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from([
            "truncate", "flip", "insert_bytes", "delete_bytes", "insert_line", "delete_line",
            "repeat_line", "huge_line", "garbage", "binary", "empty", "crlf", "none"]))
        at = draw(st.integers(0, len(data)))
        lines = bytes(data).split(b"\n")
        line = draw(st.integers(0, max(0, len(lines) - 1)))
        if action == "truncate":
            del data[at:]
        elif action == "flip" and data:
            position = min(at, len(data) - 1)
            data[position] ^= draw(st.integers(1, 255))
        elif action == "insert_bytes":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete_bytes":
            del data[at:at + draw(st.integers(1, 16))]
        elif action in ("insert_line", "delete_line", "repeat_line", "huge_line"):
            if action == "insert_line":
                lines.insert(line, b"".join(draw(st.lists(st.sampled_from(TOKENS), max_size=6))))
            elif action == "delete_line":
                del lines[line]
            elif action == "repeat_line":
                lines.insert(line, lines[line])
            else:
                lines.insert(line, draw(st.sampled_from([b"A", b"a", b">", b"-"]))
                             * draw(st.integers(10_000, 200_000)))
            data = bytearray(b"\n".join(lines))
        elif action == "garbage":
            data[at:at] = b"".join(draw(st.lists(st.sampled_from(TOKENS), min_size=1,
                                                 max_size=12)))
        elif action == "binary":
            data[at:at] = bytes(draw(st.binary(min_size=1, max_size=64)))
        elif action == "empty":
            data = bytearray()
        elif action == "crlf":
            data = bytearray(bytes(data).replace(b"\n", b"\r\n"))
    data = bytes(data)
    if draw(st.booleans()):
        data = gzip.compress(data, mtime=0)
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
    return data


token_soup = st.lists(st.sampled_from(TOKENS), max_size=40).map(b"".join)


@st.composite
def alignment_inputs(draw):
    """(file name, bytes): a mutated seed file or random token soup."""
    if draw(st.integers(0, 4)) == 0:
        return "soup.txt", draw(token_soup)
    seed = draw(st.sampled_from(MSA_SEEDS))
    return seed.name, draw(mutated(seed.read_bytes()))


@given(alignment_inputs(), st.sampled_from([None, *FORMATS, "a2m"]),
       st.one_of(st.none(), st.integers(-1, 6), st.sampled_from(["query", "seq", "hit1", ""])))
def test_alignment_reader(tmp_path_factory, named_input, format, query):
    name, data = named_input
    path = tmp_path_factory.mktemp("msa") / name
    path.write_bytes(data)
    query_arguments = ({"query_index": query} if isinstance(query, int)
                       else {} if query is None else {"query": query})
    try:
        alignment = read_alignment(path, format=format, **query_arguments)
    except InputError as error:
        one_line_error_naming(error, path)
        return
    n_sequences, length = alignment.indices.shape
    assert n_sequences == len(alignment.names) >= 1 and length >= 1
    assert alignment.indices.dtype == np.uint8
    assert int(alignment.indices.max()) < len(PROTEIN_ALPHABET)
    assert len(alignment.query_sequence) == length == len(alignment.column_indices)
    assert alignment.format in FORMATS
    assert 0 <= alignment.n_nonstandard <= alignment.indices.size


def small_model() -> PottsModel:
    rng = np.random.default_rng(0)
    length, alphabet = 3, "AC-"
    J = rng.normal(size=(length, length, 3, 3)).astype(np.float32)
    J = 0.5 * (J + J.transpose(1, 0, 3, 2))
    J[np.arange(length), np.arange(length)] = 0.0
    return PottsModel(h=rng.normal(size=(length, 3)).astype(np.float32), J=J,
                      alphabet=alphabet, meta={"method": "fuzz", "seed": 0})


def valid_model_bytes() -> bytes:
    stream = io.BytesIO()
    model = small_model()
    np.savez(stream, h=model.h, J=model.J, alphabet=np.array(model.alphabet),
             meta=np.array(json.dumps(model.meta)))
    return stream.getvalue()


ARRAYS = st.one_of(
    st.builds(lambda shape, dtype: np.zeros(shape, dtype=dtype),
              st.lists(st.integers(0, 4), max_size=4).map(tuple),
              st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.bool_,
                               np.complex64, "U3", "S3"])),
    st.sampled_from([np.array("AC-"), np.array("{}"), np.array("[1]"), np.array("not json"),
                     np.array(b"AC-"), np.array(["A", "C", "-"]), np.array(np.nan),
                     np.full((3, 3), np.inf, dtype=np.float32),
                     small_model().h, small_model().J, small_model().J[:, :, :2, :2],
                     np.array([{"a": 1}], dtype=object)]))


@st.composite
def model_archives(draw) -> bytes:
    """An .npz with the expected keys (or others) holding arrays of any shape and dtype,
    then maybe mutated as bytes."""
    if draw(st.booleans()):
        arrays = draw(st.dictionaries(st.sampled_from(["h", "J", "alphabet", "meta", "x"]),
                                      ARRAYS, max_size=5))
        stream = io.BytesIO()
        np.savez(stream, **arrays)
        data = stream.getvalue()
    else:
        data = valid_model_bytes()
    return draw(mutated(data)) if draw(st.booleans()) else data


@given(model_archives())
def test_model_file_reader(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    path.write_bytes(data)
    try:
        model = load_model(path)
    except InputError as error:
        one_line_error_naming(error, path)
        return
    assert model.h.dtype == np.float32 and model.J.dtype == np.float32
    assert model.J.shape == (model.length, model.length, model.n_states, model.n_states)
    assert len(model.alphabet) == model.n_states and isinstance(model.meta, dict)


def test_model_file_with_a_lying_array_header_is_refused(tmp_path):
    """A header may claim an enormous array: refused from the header, nothing allocated."""
    data = valid_model_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["J.npy"] = members["J.npy"].replace(b"(3, 3, 3, 3)", b"(300000, 300000, 3, 3)")
    path = tmp_path / "lying.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    try:
        load_model(path)
    except InputError as error:
        one_line_error_naming(error, path)
        assert "J" in str(error)
    else:
        raise AssertionError("a header claiming 8e11 values was accepted")


@given(st.sampled_from(STRUCTURE_SEEDS).flatmap(
    lambda seed: st.tuples(st.just(seed.name), mutated(seed.read_bytes()))))
def test_structure_reader(tmp_path_factory, named_input):
    name, data = named_input
    path = tmp_path_factory.mktemp("structure") / name
    path.write_bytes(data)
    try:
        residues = read_chain(path)
        mapping = map_query_to_chain(STRUCTURE_QUERY, residues, path)
    except InputError as error:
        one_line_error_naming(error, path)
        return
    assert residues.coordinates.shape == (len(residues.sequence), 3)
    assert len(residues.residue_ids) == len(residues.sequence)
    assert mapping.residue_of_position.shape == (len(STRUCTURE_QUERY),)
    assert mapping.residue_of_position.max() < len(residues.sequence)
