"""The one safe way this package reads ``.npz`` files: model files, checkpoints, EBM data.

* ``numpy.load(allow_pickle=False)``: an object array (which would need unpickling) is
  refused before anything is executed;
* every array's ``.npy`` header is checked against the bytes stored for it before numpy
  allocates what the header claims, so a damaged or hostile header (shape (300000, 300000,
  21, 21)) fails cleanly instead of exhausting memory;
* every problem is one :class:`InputError` naming the file and what kind of file it should be.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError


def read_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """All arrays of the archive at ``path``, a ``what`` (e.g. "model file")."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found", path)
    if not path.is_file():
        raise InputError("not a file", path)
    try:
        open(path, "rb").close()
    except OSError as error:  # zipfile.is_zipfile would call it "not an .npz archive"
        raise InputError(f"cannot read the {what} ({error.strerror})", path) from None
    if not zipfile.is_zipfile(path):
        raise InputError(f"not a {what} (expected an .npz archive)", path)
    try:
        _check_array_headers(path, what)
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except InputError:
        raise
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise InputError(f"{what} contains pickled objects; refused without loading them",
                             path) from None
        raise InputError(f"corrupt {what} ({_first_line(error)})", path) from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as error:
        raise InputError(f"corrupt {what} ({_first_line(error)})", path) from None


def json_meta(arrays: dict[str, np.ndarray], path: str | os.PathLike,
              key: str = "meta") -> dict:
    """The JSON object stored as the 0-d string array ``key``."""
    text = arrays[key]
    if text.dtype.kind != "U" or text.ndim != 0:
        raise InputError(f"'{key}' must be a JSON string", path)
    try:
        meta = json.loads(str(text))
    except json.JSONDecodeError as error:
        raise InputError(f"'{key}' is not valid JSON ({error.msg})", path) from None
    if not isinstance(meta, dict):
        raise InputError(f"'{key}' must be a JSON object", path)
    return meta


def meta_array(meta: dict) -> np.ndarray:
    """``meta`` as the 0-d JSON string array that :func:`json_meta` reads back. numpy scalars
    and arrays in it (a seed taken from an array) are stored as numbers and lists."""
    return np.array(json.dumps(meta, default=_plain_json))


def _plain_json(value):
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r} cannot be stored as JSON meta")


def _check_array_headers(path: Path, what: str) -> None:
    """Refuse an array whose .npy header disagrees with the bytes stored for it."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename.removesuffix(".npy")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version not in ((1, 0), (2, 0)):
                    raise InputError(f"corrupt {what} ('{key}' has .npy format version "
                                     f"{version})", path)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
                stored = info.file_size - member.tell()
            claimed = math.prod(shape) * dtype.itemsize
            if not dtype.hasobject and claimed != stored:
                raise InputError(f"corrupt {what} ('{key}' claims shape {shape} of {dtype}, "
                                 f"{claimed} bytes, but {stored} bytes are stored)", path)


def _first_line(error: Exception) -> str:
    text = str(error).splitlines()
    return text[0][:160] if text else type(error).__name__
