"""The shipped digits and the data-file reader's checks."""

from __future__ import annotations

import numpy as np
import pytest

from potts_gwg.ebm.data import DIGITS_PATH, load_dataset, load_digits
from potts_gwg.errors import InputError


def test_digits_have_the_documented_shapes_split_and_bits():
    digits = load_digits()
    assert digits.train.shape == (1497, 64) and digits.test.shape == (300, 64)
    assert digits.n_states == 2 and digits.kind == "binary" and digits.image_shape == (8, 8)
    assert set(np.unique(digits.train)) == {0, 1} and set(np.unique(digits.test)) == {0, 1}
    # 29.3 % of all pixels are on (SOURCE.md), and the split is not sorted by label
    on = np.concatenate([digits.train, digits.test]).mean()
    assert on == pytest.approx(0.2929, abs=5e-4)
    with np.load(DIGITS_PATH, allow_pickle=False) as archive:
        assert set(np.unique(archive["test_labels"])) == set(range(10))


def test_digits_ship_their_licence_and_source():
    folder = DIGITS_PATH.parent
    licence = (folder / "LICENSE").read_text()
    source = (folder / "SOURCE.md").read_text()
    assert "CC BY 4.0" in licence and "Alpaydin" in licence and "Kaynak" in licence
    assert "10.24432/C50P49" in source and "default_rng(0)" in source


def write(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("arrays, message", [
    ({"test": np.zeros((2, 3), np.uint8)}, "no 'train' array"),
    ({"train": np.zeros((0, 3), np.uint8)}, "non-empty"),
    ({"train": np.zeros((2, 3), np.float32)}, "must hold integers"),
    ({"train": np.array([[0, 1], [-1, 0]])}, "row 1 holds a negative value"),
    ({"train": np.zeros((2, 3), np.uint8), "test": np.zeros((2, 4), np.uint8)}, "4 sites"),
    ({"train": np.array([[0, 3]]), "n_states": np.array(3)}, "hold the value 3"),
    ({"train": np.zeros((2, 6), np.uint8), "image_shape": np.array([2, 2])}, "product"),
])
def test_bad_data_files_are_one_line_input_errors(tmp_path, arrays, message):
    path = write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=message) as caught:
        load_dataset(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="data file not found"):
        load_dataset(tmp_path / "absent.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(InputError, match="not a data file"):
        load_dataset(tmp_path / "text.npz")


def test_categorical_data_infer_their_number_of_states(tmp_path):
    data = load_dataset(write(tmp_path / "cat.npz", train=np.array([[0, 4], [2, 1]])))
    assert data.n_states == 5 and data.kind == "categorical" and data.test is None
