"""PCD training of joint models on the toy problem (full and missing labels) and their files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from potts_gwg.ebm.joint import MLPJointEnergy, attribute_accuracy, predict_exact
from potts_gwg.ebm.joint_toy import (
    circle_toy,
    labels_to_mode,
    mode_to_labels,
    nearest_mode,
)
from potts_gwg.ebm.joint_train import (
    JointTrainingConfig,
    config_record,
    load_joint_data,
    load_joint_model,
    save_joint_data,
    save_joint_model,
    train_joint,
)
from potts_gwg.errors import InputError

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = {"iterations": 200, "batch_size": 100, "sampler_steps": 5, "buffer_size": 1000,
         "learning_rate": 1e-2, "warmup": 20}


def toy_split(seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    x, y = circle_toy(1000, gen)
    x_test, y_test = circle_toy(500, gen)
    return x, y, x_test, y_test, gen


def test_toy_labels_are_the_bits_of_the_nearest_mode():
    x, y, *_ = toy_split(0)
    assert (labels_to_mode(y) == nearest_mode(x)).float().mean() > 0.999
    assert (mode_to_labels(torch.arange(8))[5] == torch.tensor([1, 0, 1])).all()
    # Each attribute splits the 8 modes 4 / 4.
    assert (mode_to_labels(torch.arange(8)).sum(0) == 4).all()


@pytest.mark.parametrize("fraction, missing, least", [(1.0, "marginal", 0.95),
                                                       (0.2, "marginal", 0.8),
                                                       (0.2, "sample", 0.8)])
def test_training_makes_predictions_accurate(fraction, missing, least):
    x, y, x_test, y_test, gen = toy_split(1)
    labelled = torch.rand(len(x), generator=gen) < fraction
    torch.manual_seed(0)
    model = MLPJointEnergy(2, 3, hidden=(64, 64))
    before, _ = attribute_accuracy(predict_exact(model, x_test), y_test)
    config = JointTrainingConfig(**SMALL, missing=missing)
    result = train_joint(model, x, y, labelled, config, gen, log_every=50)
    after, whole = attribute_accuracy(predict_exact(result.ema, x_test), y_test)
    # Chance is 0.5 per attribute and an untrained net sits near it. After 200 updates
    # (measured here: 1.0 with all labels, 0.96-0.97 with 20 % of them) the attributes
    # are predicted; the bounds leave room for float differences between platforms, as
    # short semi-supervised runs are noisy.
    assert before < 0.8
    assert after > least, (before, after, whole)
    assert len(result.history) == 4 and result.history[-1]["iteration"] == 200


def test_training_is_deterministic_for_a_seed():
    x, y, *_ = toy_split(2)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = MLPJointEnergy(2, 3, hidden=(8,))
        config = JointTrainingConfig(**{**SMALL, "iterations": 5})
        train_joint(model, x, y, torch.ones(len(x), dtype=torch.bool), config,
                    torch.Generator().manual_seed(3))
        runs.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])


def test_float_labels_are_refused_not_truncated():
    """0.9 (or −0.7) became label 0 through .long() and trained without a word."""
    x, y, *_ = toy_split(2)
    model = MLPJointEnergy(2, 3, hidden=(8,))
    config = JointTrainingConfig(**{**SMALL, "iterations": 1})
    with pytest.raises(InputError, match="labels y must be integers, got torch.float32"):
        train_joint(model, x, torch.full(y.shape, 0.9), torch.ones(len(x), dtype=torch.bool),
                    config, torch.Generator().manual_seed(3))


@pytest.mark.parametrize("generator", [None, 3])
def test_the_generator_is_required(generator):
    """None trained from torch's global random state: not the same run for the same seed."""
    x, y, *_ = toy_split(2)
    model = MLPJointEnergy(2, 3, hidden=(8,))
    config = JointTrainingConfig(**{**SMALL, "iterations": 1})
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        train_joint(model, x, y, torch.ones(len(x), dtype=torch.bool), config, generator)


def test_model_and_data_files_round_trip(tmp_path):
    torch.manual_seed(0)
    model = MLPJointEnergy(2, 3, n_states=4, label_kind="categorical", hidden=(5, 6))
    path = save_joint_model(tmp_path / "m.npz", model, {"seed": 4})
    loaded, meta = load_joint_model(path)
    assert meta["seed"] == 4 and loaded.hidden == (5, 6) and loaded.label_kind == "categorical"
    x = torch.randn(7, 2)
    y = torch.randint(4, (7, 3))
    assert torch.equal(loaded(x, y), model(x, y))

    labelled = torch.tensor([True, False] * 3 + [True])
    data = save_joint_data(tmp_path / "d.npz", x, y, labelled, {"source": "test"})
    x2, y2, labelled2, meta2 = load_joint_data(data)
    assert torch.equal(x2, x) and torch.equal(labelled2, labelled)
    assert torch.equal(y2[labelled], y[labelled]) and (y2[~labelled] == 0).all()
    assert meta2 == {"source": "test"}


def test_bad_data_files_name_the_problem(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.zeros((3, 2), np.float32), y=np.array([[0, 1], [-1, 1], [1, 1]]))
    with pytest.raises(InputError, match="row 1 of 'y' is partly missing"):
        load_joint_data(path)
    np.savez(path, x=np.array([[0, 1], [np.nan, 0]], np.float32), y=np.zeros((2, 1), int))
    with pytest.raises(InputError, match="NaN"):
        load_joint_data(path)
    np.savez(path, x=np.zeros((2, 2), np.float32), y=np.array(["a", "b"], dtype=object))
    with pytest.raises(InputError, match="pickled"):
        load_joint_data(path)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(InputError, match="not a joint data file"):
        load_joint_data(tmp_path / "text.npz")
    with pytest.raises(InputError, match="joint model"):
        load_joint_model(tmp_path / "text.npz")
    np.savez(tmp_path / "list.npz", meta=np.array(json.dumps({"architecture": ["mlp"]})))
    with pytest.raises(InputError, match="has no MLP architecture"):
        load_joint_model(tmp_path / "list.npz")
    with pytest.raises(InputError, match="missing"):
        JointTrainingConfig(missing="guess").validate()


@pytest.mark.parametrize("change, message", [
    ({"iterations": 0}, "iterations must be >= 1, got 0"),
    ({"batch_size": 10.0}, "batch_size must be an integer, got 10.0 (float)"),
    ({"warmup": True}, "warmup must be an integer, got True (bool)"),
    ({"learning_rate": float("nan")}, "learning_rate must be finite, got nan"),
    ({"reinit_rate": -0.5}, "reinit_rate must be >= 0, got -0.5"),
    ({"step_size": float("inf")}, "step_size must be finite, got inf"),
    ({"temperature": 0}, "temperature must be > 0, got 0.0"),
    ({"ema": 1}, "ema must be < 1, got 1.0"),
    ({"label_sampler": "hmc"}, "label_sampler must be one of gwg, gibbs, got 'hmc'"),
    ({"missing": "guess"}, "missing must be one of marginal, sample, got 'guess'"),
])
def test_bad_settings_are_one_line_input_errors_naming_the_setting(change, message):
    with pytest.raises(InputError) as caught:
        JointTrainingConfig(**change).validate()
    assert str(caught.value).startswith(message)


def test_numpy_settings_become_plain_numbers_that_serialise_to_json():
    config = JointTrainingConfig(iterations=np.int64(5), buffer_size=np.int32(100),
                                 learning_rate=np.float32(0.5), ema=np.float64(0.9))
    config.validate()
    record = config_record(config)
    assert (type(record["iterations"]), type(record["buffer_size"])) == (int, int)
    assert (type(record["learning_rate"]), type(record["ema"])) == (float, float)
    assert json.loads(json.dumps(record))["learning_rate"] == 0.5
