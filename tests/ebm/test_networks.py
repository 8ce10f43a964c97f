"""Energies: shapes over binary and one-hot inputs, the base distribution, descriptions."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from potts_gwg.ebm.networks import EnergySpec, IndependentSites, build_energy
from potts_gwg.engine import StateShapeError
from potts_gwg.errors import InputError

pytestmark = pytest.mark.usefixtures("single_thread")


def test_base_is_normalised_and_sampled_at_its_marginals():
    table = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]], dtype=torch.float64)
    base = IndependentSites(table)
    states = torch.tensor(list(itertools.product([0, 1], repeat=3)))
    assert float(base.log_prob_indices(states).logsumexp(0)) == pytest.approx(0, abs=1e-12)
    draws = base.sample(20000, torch.Generator().manual_seed(0))
    expected = torch.softmax(table, 1)[:, 1]
    # binomial standard error of a frequency from 20000 draws is < 0.0036; 5 of them
    assert torch.allclose(draws.double().mean(0), expected, atol=0.018)


def test_base_from_data_uses_smoothed_marginals():
    data = torch.tensor([[0, 2], [0, 2], [1, 2]])
    base = IndependentSites.from_data(data, 3, pseudo_count=1.0)
    assert torch.allclose(base.table.exp(), torch.tensor([[3 / 6, 2 / 6, 1 / 6],
                                                          [1 / 6, 1 / 6, 4 / 6]]))


@pytest.mark.parametrize("energy, n_states", [("mlp", 2), ("mlp", 3), ("resnet", 2),
                                              ("resnet", 4), ("rbm", 2)])
def test_energies_map_states_to_one_value_each(energy, n_states):
    spec = EnergySpec(energy=energy, n_sites=6, n_states=n_states, hidden=8, depth=1,
                      image_shape=(2, 3))
    base = IndependentSites(torch.zeros(6, n_states))
    model = build_energy(spec, base, seed=0)
    x = torch.randint(n_states, (5, 6), generator=torch.Generator().manual_seed(1))
    values = model(x)
    assert values.shape == (5,) and bool(torch.isfinite(values).all())
    value, grad = model.log_prob_and_grad(x)
    assert grad.shape == ((5, 6) if n_states == 2 else (5, 6, n_states))
    assert torch.allclose(value, values.detach())


def test_net_plus_base_is_the_base_when_the_net_is_constant():
    base = IndependentSites(torch.randn(4, 2, generator=torch.Generator().manual_seed(0)))
    model = build_energy(EnergySpec(energy="mlp", n_sites=4, n_states=2, hidden=3), base, 0)
    with torch.no_grad():
        model.net.layers[-1].weight.zero_()
        model.net.layers[-1].bias.fill_(0.7)
    x = torch.tensor(list(itertools.product([0, 1], repeat=4)))
    assert torch.allclose(model(x), base(x) + 0.7, atol=1e-6)


def test_same_seed_same_weights_and_global_rng_untouched():
    base = IndependentSites(torch.zeros(4, 2))
    spec = EnergySpec(energy="mlp", n_sites=4, n_states=2, hidden=3)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    one, two = build_energy(spec, base, 5), build_energy(spec, base, 5)
    assert torch.equal(torch.random.get_rng_state(), state)
    for a, b in zip(one.parameters(), two.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("change, message", [
    ({"energy": "cnn"}, "unknown energy 'cnn'"),
    ({"energy": "rbm", "n_states": 3}, "the RBM energy needs binary data"),
    ({"energy": "resnet"}, "the ResNet energy needs image data"),
    ({"energy": "resnet", "image_shape": (2, 2), "depth": 0}, "depth must be >= 1, got 0"),
    ({"depth": -1}, "depth must be >= 0, got -1"),
    ({"hidden": 0}, "hidden must be >= 1, got 0"),
    ({"hidden": 2.5}, "hidden must be an integer, got 2.5 (float)"),
    ({"hidden": 16.0}, "hidden must be an integer, got 16.0 (float)"),
    ({"depth": True}, "depth must be an integer, got True (bool)"),
    ({"n_sites": 0}, "n_sites must be >= 1, got 0"),
    ({"n_sites": float("nan")}, "n_sites must be an integer, got nan (float)"),
    ({"n_sites": float("inf")}, "n_sites must be an integer, got inf (float)"),
    ({"n_states": 1}, "n_states must be >= 2, got 1"),
    ({"n_states": "2"}, "n_states must be an integer, got '2' (str)"),
    ({"image_shape": (2, 3)}, "image_shape must be two sides whose product is the 4 sites"),
    ({"image_shape": (4,)}, "image_shape must be two sides whose product is the 4 sites"),
    ({"image_shape": 4}, "image_shape must be two sides whose product is the 4 sites"),
    ({"image_shape": (2, 2.0)}, "image_shape must be an integer, got 2.0 (float)"),
])
def test_bad_descriptions_are_one_line_input_errors_naming_the_setting(change, message):
    with pytest.raises(InputError) as caught:
        EnergySpec(**{"energy": "mlp", "n_sites": 4, "n_states": 2, **change})
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_numpy_scalars_become_plain_ints_that_serialise_to_json():
    spec = EnergySpec(energy="resnet", n_sites=np.int64(6), n_states=np.uint8(3),
                      hidden=np.int32(8), depth=np.int16(1),
                      image_shape=tuple(np.array([2, 3])))
    assert (spec.n_sites, spec.n_states, spec.hidden, spec.depth, spec.image_shape) \
        == (6, 3, 8, 1, (2, 3))
    assert {type(value) for value in (spec.n_sites, spec.n_states, spec.hidden, spec.depth,
                                      *spec.image_shape)} == {int}
    assert EnergySpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_description_round_trips_through_json():
    spec = EnergySpec(energy="resnet", n_sites=64, n_states=2, image_shape=(8, 8))
    assert EnergySpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    with pytest.raises(InputError, match="bad energy description"):
        EnergySpec.from_json({"energy": "mlp", "colour": "red"})


@pytest.mark.parametrize("data, n_states, message", [
    (torch.tensor([[0, 1], [1, 2]]), 2, "values must be 0 or 1"),
    (torch.tensor([[0.0, 1.5]]), 4, "indices must be an integer tensor"),
    (torch.tensor([0, 1]), 2, r"data must be a \(N, D\) tensor"),
])
def test_independent_sites_from_data_checks_the_states(data, n_states, message):
    """train + 1 failed in one_hot ("Class values must be smaller than num_classes")."""
    with pytest.raises(StateShapeError, match=message):
        IndependentSites.from_data(data, n_states)
