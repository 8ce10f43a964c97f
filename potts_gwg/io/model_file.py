"""The Potts model file: ``.npz`` with ``h``, ``J``, ``alphabet`` and ``meta``; never pickle.

Schema (docs/README): ``h`` float32 (L, q); ``J`` float32 (L, L, q, q) with
J[i, j, a, b] = J[j, i, b, a] and J[i, i] = 0; ``alphabet`` a string of length q; ``meta`` a
JSON string (method, hyperparameters, seed, Neff, query name and sequence, version), which a
hand-made file may leave out (read as ``{}``).
log p(x) = Σ_i h[i, x_i] + Σ_{i<j} J[i, j, x_i, x_j] − log Z.

Loading goes through :func:`potts_gwg.io.npz.read_npz` (``allow_pickle=False``, headers checked
against the stored bytes): nothing is unpickled or executed.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from .npz import json_meta, meta_array, read_npz

PARAMETER_KEYS = ("h", "J")
REQUIRED_KEYS = (*PARAMETER_KEYS, "alphabet")  # meta may be left out of a hand-made file: {}
SYMMETRY_TOLERANCE = 1e-4
# Bytes of J checked for symmetry at once.
SYMMETRY_BLOCK_BYTES = 16 * 2**20


@dataclass
class PottsModel:
    """Fields ``h`` (L, q) and couplings ``J`` (L, L, q, q), float32 numpy arrays."""

    h: np.ndarray
    J: np.ndarray
    alphabet: str
    meta: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        return self.h.shape[0]

    @property
    def n_states(self) -> int:
        return self.h.shape[1]


def save_model(path: str | os.PathLike, model: PottsModel) -> Path:
    """Write ``model`` atomically to ``path`` (an existing file is replaced only on success).
    ``h`` and ``J`` may also be CPU tensors; ``meta`` must be a dict (the file's JSON object)."""
    if not isinstance(model.meta, dict):
        raise TypeError(f"meta must be a dict, got {type(model.meta).__name__}")
    h, J = np.asarray(model.h), np.asarray(model.J)
    validate_model(h, J, model.alphabet, source=str(path))
    if h.dtype != np.float32 or J.dtype != np.float32:
        with np.errstate(over="ignore"):  # beyond float32's range: inf, refused just below
            h, J = h.astype(np.float32), J.astype(np.float32)
        for name, values in (("h", h), ("J", J)):
            if not np.isfinite(values).all():
                raise InputError(f"'{name}' exceeds the range of float32, the file's type",
                                 path)
    with atomic_path(path, suffix=".npz") as temporary, open(temporary, "wb") as stream:
        np.savez(stream, h=h, J=J, alphabet=np.array(model.alphabet),
                 meta=meta_array(model.meta))
    return Path(path)


def is_model_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an npz archive holding a model's h and J (read from the archive's
    index alone, nothing loaded): what ``fit`` may replace."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {f"{key}.npy" for key in PARAMETER_KEYS} <= set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def load_model(path: str | os.PathLike) -> PottsModel:
    """Read and validate a model file; every problem is an :class:`InputError` naming it."""
    arrays = read_npz(path, "model file")
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise InputError(f"model file lacks {', '.join(missing)} "
                         f"(has {', '.join(arrays) or 'nothing'})", path)
    h, J, alphabet = arrays["h"], arrays["J"], arrays["alphabet"]
    if alphabet.dtype.kind != "U" or alphabet.ndim != 0:
        raise InputError("'alphabet' must be a single string", path)
    meta = json_meta(arrays, path) if "meta" in arrays else {}
    alphabet = str(alphabet)
    validate_model(h, J, alphabet, source=str(path))
    return PottsModel(h=h.astype(np.float32, copy=False), J=J.astype(np.float32, copy=False),
                      alphabet=alphabet, meta=meta)


def validate_model(h: np.ndarray, J: np.ndarray, alphabet: str, source: str) -> None:
    """Check shapes, dtypes, finiteness and the symmetry J[i,j,a,b] = J[j,i,b,a], J[i,i] = 0."""
    if h.dtype.kind != "f" or J.dtype.kind != "f":
        raise InputError(f"'h' and 'J' must be floating point (got {h.dtype}, {J.dtype})",
                         source)
    if h.ndim != 2:
        raise InputError(f"'h' must have shape (L, q), got {h.shape}", source)
    length, n_states = h.shape
    if length < 1 or n_states < 2:
        raise InputError(f"'h' must have L >= 1 and q >= 2, got shape {h.shape}", source)
    if J.shape != (length, length, n_states, n_states):
        raise InputError(f"'J' must have shape (L, L, q, q) = "
                         f"{(length, length, n_states, n_states)}, got {J.shape}", source)
    if len(alphabet) != n_states or len(set(alphabet)) != n_states:
        raise InputError(f"'alphabet' must be {n_states} distinct letters (q), "
                         f"got {alphabet!r}", source)
    # NaN and ±inf reach the extremes (max and min propagate NaN): no mask of J's size.
    J_low, J_high = J.min(initial=0.0), J.max(initial=0.0)
    if not np.isfinite([h.min(initial=0.0), h.max(initial=0.0), J_low, J_high]).all():
        raise InputError("'h' or 'J' contains NaN or infinite values", source)
    diagonal = J[np.arange(length), np.arange(length)]
    if np.abs(diagonal).max(initial=0.0) > 0:
        raise InputError("'J' must be zero on the diagonal blocks J[i, i]", source)
    # Rows i a few at a time: J − Jᵀ whole is a J-sized temporary (370 MB at L = 458).
    rows = max(1, SYMMETRY_BLOCK_BYTES // max(1, J[:1].nbytes))
    asymmetry = max((np.abs(J[start:start + rows] - J[:, start:start + rows].transpose(1, 0, 3, 2))
                     .max(initial=0.0) for start in range(0, length, rows)), default=0.0)
    scale = max(1.0, float(max(J_high, -J_low)))
    if asymmetry > SYMMETRY_TOLERANCE * scale:
        raise InputError(f"'J' is not symmetric (max |J[i,j,a,b] - J[j,i,b,a]| = "
                         f"{asymmetry:.3g})", source)
