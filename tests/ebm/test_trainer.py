"""PCD trainer: checkpoint/resume gives the identical run; training moves the model towards
the data (checked by exact enumeration); engine models train; bad settings are refused."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from potts_gwg.ebm.modelfile import load_model_file, save_model_file
from potts_gwg.ebm.networks import EnergySpec, IndependentSites, build_energy
from potts_gwg.ebm.trainer import PCDTrainer, TrainConfig
from potts_gwg.engine import PottsEnergy, StateShapeError
from potts_gwg.errors import InputError

pytestmark = pytest.mark.usefixtures("single_thread")

DIM = 8


def two_mode_data(n: int = 200) -> torch.Tensor:
    """Rows that are all-zeros or all-ones with one random bit flipped: strongly coupled bits
    whose marginals are all 1/2, so the independent base alone cannot fit them."""
    generator = torch.Generator().manual_seed(0)
    modes = torch.randint(2, (n, 1), generator=generator).expand(n, DIM).clone()
    flip = torch.randint(DIM, (n,), generator=generator)
    modes[torch.arange(n), flip] ^= 1
    return modes


def make_trainer(energy: str, sampler: str, seed: int = 3) -> tuple[PCDTrainer, EnergySpec]:
    data = two_mode_data()
    base = IndependentSites.from_data(data, 2)
    spec = EnergySpec(energy=energy, n_sites=DIM, n_states=2, hidden=16, depth=2,
                      image_shape=(2, 4))
    config = TrainConfig(sampler=sampler, steps=5, batch_size=20, buffer_size=50,
                         reinit_rate=0.1, learning_rate=1e-2, ema_decay=0.9, seed=seed)
    return PCDTrainer(build_energy(spec, base, seed), data, base, config), spec


def trainer_arrays(trainer: PCDTrainer) -> dict[str, np.ndarray]:
    return trainer.to_arrays()


@pytest.mark.parametrize("energy, sampler", [("mlp", "gwg"), ("resnet", "gibbs"),
                                             ("rbm", "gwg")])
def test_resume_from_checkpoint_is_identical_to_an_uninterrupted_run(tmp_path, energy, sampler):
    straight, _ = make_trainer(energy, sampler)
    straight.run(8, progress=False)

    first, spec = make_trainer(energy, sampler)
    first.run(4, progress=False)
    path = tmp_path / "checkpoint.npz"
    save_model_file(path, first, spec)
    resumed = load_model_file(path).trainer(two_mode_data())
    assert resumed.iteration == 4
    resumed.run(8, progress=False)

    expected, got = trainer_arrays(straight), trainer_arrays(resumed)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    # and the run really moved: parameters, buffer and EMA all changed after updates 5..8
    after_four = trainer_arrays(first)
    assert not np.array_equal(after_four["buffer"], got["buffer"])
    assert any(not np.array_equal(after_four[name], got[name]) for name in got
               if name.startswith("model/"))


def test_a_different_seed_gives_a_different_run():
    one, _ = make_trainer("mlp", "gwg", seed=3)
    two, _ = make_trainer("mlp", "gwg", seed=4)
    one.run(3, progress=False)
    two.run(3, progress=False)
    assert not np.array_equal(one.to_arrays()["buffer"], two.to_arrays()["buffer"])


ALL_STATES = torch.tensor(list(itertools.product([0, 1], repeat=DIM)))


def mode_mass(model) -> float:
    """Exact probability of the data's support (the two modes and their 1-bit neighbours)."""
    with torch.no_grad():
        log_p = model.log_prob_indices(ALL_STATES).double()
    log_p -= log_p.logsumexp(0)
    ones = ALL_STATES.sum(1)
    support = (ones <= 1) | (ones >= DIM - 1)
    return float(log_p[support].exp().sum())


@pytest.mark.parametrize("sampler", ["gwg", "gibbs"])
def test_pcd_moves_probability_onto_the_data(sampler):
    """The support holds 18 of 256 states; the base puts 7 % of its mass there. After 150
    updates a working trainer has more than half the mass there (in exact terms), which
    a trainer with the sign of the gradient flipped or broken chains does not reach."""
    trainer, _ = make_trainer("mlp", sampler)
    before = mode_mass(trainer.model)
    trainer.run(150, progress=False)
    assert before < 0.1
    assert mode_mass(trainer.model) > 0.5


def test_engine_potts_model_is_trained_through_its_buffers():
    """An engine model without parameters (PottsEnergy: buffers only) gets them promoted."""
    data = torch.randint(3, (40, 4), generator=torch.Generator().manual_seed(0))
    model = PottsEnergy(torch.zeros(4, 3), torch.zeros(4, 4, 3, 3))
    base = IndependentSites.from_data(data, 3)
    trainer = PCDTrainer(model, data, base, TrainConfig(steps=3, batch_size=10,
                                                        buffer_size=20, seed=0))
    assert {name for name, _ in model.named_parameters()} == {"h", "couplings"}
    trainer.run(2, progress=False)
    assert float(model.h.detach().abs().sum()) > 0


def test_trained_potts_model_keeps_its_constraints_and_exact_local_fields():
    """J[i, i] = 0 and symmetric J after training: without them the local-field samplers'
    differences F[i, a] − F[i, x_i] are not the energy changes (they were off by 0.28 and the
    fast Gibbs/GWG chains sampled another distribution)."""
    generator = torch.Generator().manual_seed(1)
    data = torch.randint(3, (300, 3), generator=generator)
    data[:, 1] = data[:, 0]  # a strong coupling to learn
    model = PottsEnergy(torch.zeros(3, 3), torch.zeros(3, 3, 3, 3))
    trainer = PCDTrainer(model, data, IndependentSites.from_data(data, 3),
                         TrainConfig(steps=2, batch_size=64, buffer_size=128,
                                     learning_rate=0.05, seed=0))
    trainer.run(40, progress=False)
    with torch.no_grad():
        J = model.J
        assert float(J.abs().max()) > 0.1                       # it did learn couplings
        assert float(J.diagonal(dim1=0, dim2=1).abs().max()) == 0
        assert torch.equal(J, J.permute(1, 0, 3, 2))
        x = torch.randint(3, (50, 3), generator=generator)
        fields = model.local_fields(x)
        for site, value in itertools.product(range(3), range(3)):
            changed = x.clone()
            changed[:, site] = value
            exact = model.log_prob_indices(changed) - model.log_prob_indices(x)
            local = fields[:, site, value] - fields.gather(2, x.unsqueeze(2))[:, site, 0]
            torch.testing.assert_close(local, exact, rtol=0, atol=1e-5)


@pytest.mark.parametrize("change, message", [
    ({"sampler": "hmc"}, "unknown sampler"),
    ({"steps": 0}, "steps must be >= 1, got 0"),
    ({"steps": 2.5}, "steps must be an integer, got 2.5 (float)"),
    ({"steps": 5.0}, "steps must be an integer, got 5.0 (float)"),
    ({"batch_size": True}, "batch_size must be an integer, got True (bool)"),
    ({"buffer_size": "50"}, "buffer_size must be an integer, got '50' (str)"),
    ({"batch_size": 60}, "--batch-size (60) cannot exceed --buffer-size (50)"),
    ({"reinit_rate": 1.5}, "reinit_rate must be <= 1, got 1.5"),
    ({"reinit_rate": math.nan}, "reinit_rate must be finite, got nan"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0, got 0.0"),
    ({"learning_rate": math.nan}, "learning_rate must be finite, got nan"),
    ({"learning_rate": math.inf}, "learning_rate must be finite, got inf"),
    ({"learning_rate": np.float32("-inf")}, "learning_rate must be finite, got -inf"),
    ({"ema_decay": 1.0}, "ema_decay must be < 1, got 1.0"),
    ({"ema_decay": -0.1}, "ema_decay must be >= 0, got -0.1"),
    ({"ema_decay": False}, "ema_decay must be a number, got False (bool)"),
    ({"seed": -1}, "seed must be in 0..9223372036854775807, got -1"),
    ({"seed": 1.0}, "seed must be an integer"),
])
def test_bad_settings_are_one_line_input_errors_naming_the_setting(change, message):
    with pytest.raises(InputError) as caught:
        TrainConfig(**{"steps": 5, "batch_size": 20, "buffer_size": 50, **change})
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_numpy_scalars_become_plain_numbers_that_serialise_to_json():
    config = TrainConfig(steps=np.int64(5), batch_size=np.int32(20), buffer_size=np.uint16(50),
                         reinit_rate=np.float32(0.5), learning_rate=np.float64(1e-2),
                         ema_decay=np.float16(0.5), seed=np.int64(7))
    record = config.to_json()
    assert record == {"sampler": "gwg", "steps": 5, "batch_size": 20, "buffer_size": 50,
                      "reinit_rate": 0.5, "learning_rate": 1e-2, "ema_decay": 0.5, "seed": 7}
    assert [type(record[name]) for name in ("steps", "batch_size", "buffer_size", "seed")] \
        == [int] * 4
    assert [type(record[name]) for name in ("reinit_rate", "learning_rate", "ema_decay")] \
        == [float] * 3
    assert TrainConfig(**json.loads(json.dumps(record))) == config


@pytest.mark.parametrize("part, change, message", [
    ("config", {"learning_rate": math.nan}, "learning_rate must be finite, got nan"),
    ("config", {"steps": 2.5}, "steps must be an integer, got 2.5 (float)"),
    ("spec", {"hidden": 0}, "hidden must be >= 1, got 0"),
])
def test_a_model_file_with_bad_settings_is_refused_naming_file_and_setting(tmp_path, part,
                                                                           change, message):
    trainer, spec = make_trainer("mlp", "gwg")
    path = tmp_path / "model.npz"
    save_model_file(path, trainer, spec)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta[part].update(change)
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(InputError) as caught:
        load_model_file(path)
    assert str(caught.value) == f"{path}: not a potts-gwg EBM model file ({message})"


def test_data_that_break_the_model_contract_are_refused():
    data = two_mode_data()
    base = IndependentSites.from_data(data, 2)
    model = build_energy(EnergySpec(energy="mlp", n_sites=DIM, n_states=2, hidden=4), base, 0)
    with pytest.raises(InputError):
        PCDTrainer(model, data + 1, base, TrainConfig(batch_size=10, buffer_size=20))


@pytest.mark.parametrize("arguments, error, message", [
    ((2.5,), TypeError, "iterations must be an integer, got 2.5"),
    ((2, -1.0), ValueError, "max_seconds must be >= 0 or None, got -1.0"),
])
def test_run_checks_its_counts(arguments, error, message):
    trainer, _ = make_trainer("mlp", "gwg")
    with pytest.raises(error, match=message):
        trainer.run(*arguments, progress=False)
    assert trainer.iteration == 0
    trainer.run(1, math.inf, progress=False)  # inf: no time limit, as before
    assert trainer.iteration == 1


def test_ema_model_is_a_copy_with_the_averaged_parameters():
    trainer, _ = make_trainer("mlp", "gwg")
    trainer.run(3, progress=False)
    averaged = trainer.ema_model()
    for name, value in averaged.named_parameters():
        assert torch.equal(value, trainer.ema[name]) and not value.requires_grad
    current = dict(trainer.model.named_parameters())
    assert any(not torch.equal(current[name], trainer.ema[name]) for name in current)


def test_base_on_another_device_than_the_data_is_refused_when_the_trainer_is_made():
    """`ebm train --device cuda` once passed a base left on the CPU (Module.cpu() moves in
    place) with data on the GPU; the first update failed deep inside torch's sampling."""
    data = torch.randint(3, (40, 4), generator=torch.Generator().manual_seed(0))
    model = PottsEnergy(torch.zeros(4, 3), torch.zeros(4, 4, 3, 3))
    base = IndependentSites.from_data(data, 3).to("meta")
    with pytest.raises(InputError, match="base distribution is on meta, the data on cpu"):
        PCDTrainer(model, data, base, TrainConfig(steps=1, batch_size=10, buffer_size=20))
    # Data that is no tensor is named as such first (numpy arrays have a .device too).
    with pytest.raises(StateShapeError):
        PCDTrainer(model, data.numpy(), base, TrainConfig(steps=1, batch_size=10,
                                                          buffer_size=20))
