"""Discrete data sets for energy-based models: one ``.npz`` format, and the shipped digits.

A data file is an ``.npz`` (read without pickle) holding

* ``train``: ``(N, D)`` non-negative integers, one row per example (required);
* ``test``: ``(M, D)`` the same way (optional);
* ``n_states``: scalar, the number of values per site (optional; default max + 1, at least 2;
  2 means binary data);
* ``image_shape``: ``(2,)`` height and width with height · width = D, when rows are images
  (optional; enables image grids and the ResNet energy);
* ``train_labels``, ``test_labels``: ``(N,)``, ``(M,)`` (optional, carried along, unused by
  training).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.npz import read_npz

# data/digits of the checkout, installed as the package ``potts_gwg.digits`` (pip unpacks wheels
# onto the file system, so this is a real path in a checkout, an editable install and a wheel).
DIGITS_PATH = Path(str(files("potts_gwg.digits").joinpath("digits.npz")))


@dataclass
class Dataset:
    """A discrete data set: rows of ``n_sites`` values in ``0..n_states-1``."""

    train: np.ndarray               # (N, D) int64
    test: np.ndarray | None         # (M, D) int64
    n_states: int
    image_shape: tuple[int, int] | None
    source: str

    @property
    def n_sites(self) -> int:
        return self.train.shape[1]

    @property
    def kind(self) -> str:
        """``"binary"`` for two states, ``"categorical"`` otherwise (the engine's kinds)."""
        return "binary" if self.n_states == 2 else "categorical"


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Read and check a data file (format in the module docstring)."""
    path = Path(path)
    arrays = read_npz(path, "data file")
    if "train" not in arrays:
        raise InputError(f"no 'train' array (found: {', '.join(sorted(arrays)) or 'none'})",
                         path)
    train = _rows(arrays["train"], "train", path)
    test = _rows(arrays["test"], "test", path) if "test" in arrays else None
    if test is not None and test.shape[1] != train.shape[1]:
        raise InputError(f"'test' rows have {test.shape[1]} sites but 'train' rows "
                         f"{train.shape[1]}", path)
    largest = int(max(train.max(), test.max() if test is not None else 0))
    if "n_states" in arrays:
        n_states = _scalar(arrays["n_states"], "n_states", path)
        if n_states < 2 or largest >= n_states:
            raise InputError(f"n_states = {n_states} but the data hold the value {largest} "
                             f"(values must lie in 0..{n_states - 1})"
                             if n_states >= 2 else f"n_states must be >= 2, got {n_states}",
                             path)
    else:
        n_states = max(2, largest + 1)
    image_shape = None
    if "image_shape" in arrays:
        shape = arrays["image_shape"]
        if shape.shape != (2,) or shape.dtype.kind not in "iu" or int(np.prod(shape)) != \
                train.shape[1] or shape.min() < 1:
            raise InputError(f"image_shape must be two positive integers whose product is the "
                             f"{train.shape[1]} sites per row, got {shape.tolist()}", path)
        image_shape = (int(shape[0]), int(shape[1]))
    return Dataset(train=train, test=test, n_states=n_states, image_shape=image_shape,
                   source=str(path))


def load_digits() -> Dataset:
    """The shipped binarised 8×8 UCI digits: 1497 train and 300 test images (data/digits/)."""
    return load_dataset(DIGITS_PATH)


def _rows(array: np.ndarray, name: str, path: Path) -> np.ndarray:
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"'{name}' must be a non-empty (examples, sites) array, got shape "
                         f"{array.shape}", path)
    if array.dtype.kind not in "iub":
        raise InputError(f"'{name}' must hold integers, got {array.dtype}", path)
    array = array.astype(np.int64)
    if array.min() < 0:
        row = int(np.argwhere(array < 0)[0, 0])
        raise InputError(f"'{name}' row {row} holds a negative value", path)
    return array


def _scalar(array: np.ndarray, name: str, path: Path) -> int:
    if array.size != 1 or array.dtype.kind not in "iu":
        raise InputError(f"'{name}' must be one integer, got {array.tolist()}", path)
    return int(array.reshape(()))
