"""Model files: round trip, validation, and refusal of pickled content without unpickling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from potts_gwg.errors import InputError
from potts_gwg.io import model_file
from potts_gwg.io.model_file import PottsModel, load_model, save_model


def tiny_model(length: int = 4, alphabet: str = "ABC") -> PottsModel:
    rng = np.random.default_rng(0)
    q = len(alphabet)
    J = rng.normal(size=(length, length, q, q)).astype(np.float32)
    J = 0.5 * (J + J.transpose(1, 0, 3, 2))
    J[np.arange(length), np.arange(length)] = 0.0
    return PottsModel(h=rng.normal(size=(length, q)).astype(np.float32), J=J,
                      alphabet=alphabet, meta={"method": "hand-made", "seed": 1})


def test_round_trip(tmp_path):
    model = tiny_model()
    path = save_model(tmp_path / "m.npz", model)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.h, model.h)
    np.testing.assert_array_equal(loaded.J, model.J)
    assert loaded.alphabet == "ABC" and loaded.meta == model.meta
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


class _Exploit:
    """Unpickling this would create the marker file."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_objects_are_refused_without_being_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    _Exploit.marker = marker
    model = tiny_model()
    path = tmp_path / "evil.npz"
    np.savez(path, h=model.h, J=model.J, alphabet=np.array("ABC"),
             meta=np.array([_Exploit()], dtype=object))
    with pytest.raises(InputError, match="pickled objects"):
        load_model(path)
    assert not marker.exists()


def test_a_plain_pickle_file_is_not_a_model(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps({"h": 1}))
    with pytest.raises(InputError, match="not a model file"):
        load_model(path)


@pytest.mark.parametrize("change, message", [
    (lambda arrays: arrays.pop("J"), "lacks J"),
    (lambda arrays: arrays.update(J=arrays["J"][:2]), "shape"),
    (lambda arrays: arrays.update(alphabet=np.array("AB")), "alphabet"),
    (lambda arrays: arrays.update(meta=np.array("{not json")), "JSON"),
    (lambda arrays: arrays["h"].__setitem__((0, 0), np.nan), "NaN"),
    (lambda arrays: arrays["J"].__setitem__((0, 1, 0, 1), 9.0), "symmetric"),
    (lambda arrays: arrays["J"].__setitem__((1, 1, 0, 1), 9.0), "diagonal"),
])
def test_invalid_models_are_refused_with_the_reason(tmp_path, change, message):
    model = tiny_model()
    arrays = {"h": model.h.copy(), "J": model.J.copy(), "alphabet": np.array("ABC"),
              "meta": np.array(json.dumps({}))}
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=message) as caught:
        load_model(path)
    assert "bad.npz" in str(caught.value)


@pytest.mark.parametrize("change, message", [
    (lambda J: J.__setitem__((5, 0, 0, 1), np.nan), "NaN"),
    (lambda J: J.__setitem__((0, 5, 2, 1), -np.inf), "NaN or infinite"),
    (lambda J: J.__setitem__((5, 4, 0, 1), 9.0), "symmetric"),
])
def test_problems_in_the_last_rows_are_found_when_rows_are_checked_a_few_at_a_time(
        tmp_path, monkeypatch, change, message):
    """The symmetry check reads J a few rows at a time: with one row per block, a problem in
    the last row is still found."""
    monkeypatch.setattr(model_file, "SYMMETRY_BLOCK_BYTES", 1)
    model = tiny_model(length=6)
    save_model(tmp_path / "good.npz", model)
    assert np.array_equal(load_model(tmp_path / "good.npz").J, model.J)
    J = model.J.copy()
    change(J)
    np.savez(tmp_path / "bad.npz", h=model.h, J=J, alphabet=np.array("ABC"),
             meta=np.array(json.dumps({})))
    with pytest.raises(InputError, match=message):
        load_model(tmp_path / "bad.npz")


def test_truncated_and_missing_files(tmp_path):
    path = save_model(tmp_path / "m.npz", tiny_model())
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match="cut.npz"):
        load_model(truncated)
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "absent.npz")


def test_numpy_numbers_in_the_meta_are_stored_as_json_numbers(tmp_path):
    h, J = np.zeros((2, 3), np.float32), np.zeros((2, 2, 3, 3), np.float32)
    meta = {"seed": np.int64(4), "theta": np.float32(0.5), "lengths": np.arange(3)}
    path = save_model(tmp_path / "m.npz", PottsModel(h, J, "AC-", meta))
    assert load_model(path).meta == {"seed": 4, "theta": 0.5, "lengths": [0, 1, 2]}
    with pytest.raises(TypeError, match=r"set \{1\} cannot be stored as JSON meta"):
        save_model(tmp_path / "bad.npz", PottsModel(h, J, "AC-", {"x": {1}}))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m.npz"]


def test_parameters_beyond_float32_are_refused_before_writing(tmp_path):
    """Finite as float64, inf in the float32 file: load_model would refuse what was saved."""
    h, J = np.full((2, 3), 1e300), np.zeros((2, 2, 3, 3))
    with pytest.raises(InputError, match="exceeds the range of float32"):
        save_model(tmp_path / "m.npz", PottsModel(h, J, "AC-", {}))
    assert not (tmp_path / "m.npz").exists()


def test_tensors_are_saved_and_a_meta_that_is_not_a_dict_is_refused(tmp_path):
    import torch

    h, J = torch.zeros(2, 3), torch.zeros(2, 2, 3, 3)
    path = save_model(tmp_path / "m.npz", PottsModel(h, J, "AC-", {"seed": 1}))
    assert load_model(path).h.shape == (2, 3)
    with pytest.raises(TypeError, match="meta must be a dict, got list"):
        save_model(tmp_path / "bad.npz", PottsModel(h, J, "AC-", [("seed", 1)]))
    assert not (tmp_path / "bad.npz").exists()


def test_a_hand_made_file_without_meta_loads_with_an_empty_meta(tmp_path):
    """The README offers `sample` any valid model file, hand-made ones included."""
    path = tmp_path / "hand.npz"
    np.savez(path, h=np.zeros((2, 3), np.float32), J=np.zeros((2, 2, 3, 3), np.float32),
             alphabet=np.array("abc"))
    model = load_model(path)
    assert model.meta == {} and model.alphabet == "abc" and model.length == 2
    np.savez(path, h=np.zeros((2, 3), np.float32), alphabet=np.array("abc"))
    with pytest.raises(InputError, match=r"hand\.npz: model file lacks J \(has h, alphabet\)"):
        load_model(path)
