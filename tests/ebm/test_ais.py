"""AIS against exact log Z on models small enough to enumerate (2¹⁰ states)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from potts_gwg.ebm.ais import annealed_importance_sampling, temperatures
from potts_gwg.ebm.networks import EnergySpec, IndependentSites, build_energy
from potts_gwg.engine import PottsEnergy, RBMEnergy
from potts_gwg.errors import InputError

pytestmark = pytest.mark.usefixtures("single_thread")

DIM = 10
ALL_STATES = torch.tensor(list(itertools.product([0, 1], repeat=DIM)))
# AIS's mean weight is an unbiased estimate of Z; log Ẑ is biased low by about se²/2 and
# spread by se. With 300 temperatures × 400 chains the weights are nearly equal (effective
# chains > 200 of 400 on these models, se < 0.04), so 0.15 nats is > 4 standard errors.
TOLERANCE_NATS = 0.15


def exact_log_z(model) -> float:
    with torch.no_grad():
        return float(model.log_prob_indices(ALL_STATES).double().logsumexp(0))


def random_rbm(seed: int) -> RBMEnergy:
    generator = torch.Generator().manual_seed(seed)
    return RBMEnergy(torch.randn(6, DIM, generator=generator, dtype=torch.float64),
                     0.5 * torch.randn(DIM, generator=generator, dtype=torch.float64),
                     torch.randn(6, generator=generator, dtype=torch.float64))


def skewed_base(seed: int) -> IndependentSites:
    generator = torch.Generator().manual_seed(seed)
    return IndependentSites(torch.randn(DIM, 2, generator=generator, dtype=torch.float64))


def random_mlp(seed: int):
    """An MLP energy plus base, weights scaled up so that the net varies over states (its
    standard deviation over the 2¹⁰ states is 3.6 nats, log Z = 1.6)."""
    spec = EnergySpec(energy="mlp", n_sites=DIM, n_states=2, hidden=16, depth=2)
    model = build_energy(spec, skewed_base(seed), seed=seed).double()
    with torch.no_grad():
        for parameter in model.net.parameters():
            parameter.mul_(5.0)
    return model


@pytest.mark.parametrize("make_model", [random_rbm, random_mlp], ids=["rbm", "mlp+base"])
def test_ais_log_z_matches_enumeration(make_model):
    model = make_model(0)
    base = skewed_base(1)
    exact = exact_log_z(model)
    result = annealed_importance_sampling(model, base, n_temperatures=300, n_chains=400,
                                          generator=torch.Generator().manual_seed(2),
                                          progress=False)
    assert abs(exact) > 1.0     # not trivially the base's log Z = 0
    assert result.effective_chains > 200
    assert result.standard_error < TOLERANCE_NATS / 4
    assert abs(result.log_z - exact) < TOLERANCE_NATS, (result.log_z, exact)


@pytest.mark.parametrize("q", [3, 2])
def test_ais_on_a_categorical_model_matches_enumeration(q):
    """Potts model, 5 sites × q states, from a categorical base: the one-hot path of the
    annealed energy and of GWG. Same tolerance as above. With q = 2 the base's table reads
    as binary by its shape; the categorical model decides (it was refused)."""
    generator = torch.Generator().manual_seed(7)
    h = torch.randn(5, q, generator=generator, dtype=torch.float64)
    J = 0.7 * torch.randn(5, 5, q, q, generator=generator, dtype=torch.float64)
    J = 0.5 * (J + J.permute(1, 0, 3, 2))
    J[torch.arange(5), torch.arange(5)] = 0
    model = PottsEnergy(h, J)
    base = IndependentSites(torch.randn(5, q, generator=generator, dtype=torch.float64))
    states = torch.tensor(list(itertools.product(range(q), repeat=5)))
    exact = float(model.log_prob_indices(states).logsumexp(0))
    result = annealed_importance_sampling(model, base, n_temperatures=300, n_chains=400,
                                          generator=torch.Generator().manual_seed(8),
                                          progress=False)
    assert abs(exact) > 1.0 and result.standard_error < TOLERANCE_NATS / 4
    assert abs(result.log_z - exact) < TOLERANCE_NATS, (result.log_z, exact)


def test_log_likelihood_matches_exact_mean_log_prob():
    model, base = random_rbm(3), skewed_base(4)
    data = ALL_STATES[torch.randperm(len(ALL_STATES), generator=torch.Generator()
                                     .manual_seed(5))[:50]]
    exact = float(model.log_prob_indices(data).mean()) - exact_log_z(model)
    result = annealed_importance_sampling(model, base, n_temperatures=300, n_chains=400,
                                          generator=torch.Generator().manual_seed(6),
                                          progress=False)
    report = result.log_likelihood(model, data)
    assert abs(report["log_likelihood_nats"] - exact) < TOLERANCE_NATS
    assert report["bits_per_dim"] == pytest.approx(-report["log_likelihood_nats"]
                                                   / (DIM * torch.log(torch.tensor(2.0)).item()))


def test_too_few_temperatures_underestimates_with_a_larger_error():
    """One temperature is plain importance sampling from the base: far worse, and its
    standard error says so (the estimate is not silently precise)."""
    model, base = random_rbm(0), skewed_base(1)
    rough = annealed_importance_sampling(model, base, n_temperatures=1, n_chains=400,
                                         generator=torch.Generator().manual_seed(2),
                                         progress=False)
    fine = annealed_importance_sampling(model, base, n_temperatures=300, n_chains=400,
                                        generator=torch.Generator().manual_seed(2),
                                        progress=False)
    assert rough.standard_error > 5 * fine.standard_error
    assert rough.effective_chains < fine.effective_chains


@pytest.mark.parametrize("schedule", ["sigmoid", "linear"])
def test_temperatures_run_from_0_to_1_increasing(schedule):
    betas = temperatures(50, schedule)
    assert betas[0] == 0 and betas[-1] == 1 and len(betas) == 51
    assert bool((betas.diff() > 0).all())


def test_bad_settings_are_input_errors():
    with pytest.raises(InputError, match="schedule"):
        temperatures(10, "cosine")
    with pytest.raises(InputError, match=r"n_temperatures must be an integer, got 10\.0"):
        temperatures(10.0)
    with pytest.raises(InputError, match="chains"):
        annealed_importance_sampling(random_rbm(0), skewed_base(1), n_chains=1)
    with pytest.raises(InputError, match="does not match"):
        annealed_importance_sampling(random_rbm(0), IndependentSites(torch.zeros(DIM + 1, 2)))
    with pytest.raises(TypeError, match="generator must be a torch.Generator .* got int"):
        annealed_importance_sampling(random_rbm(0), skewed_base(1), generator=0,
                                     progress=False)  # a seed failed inside torch


@pytest.mark.parametrize("change, message", [
    ({"n_chains": 1}, "n_chains must be >= 2, got 1"),
    ({"n_chains": 8.0}, "n_chains must be an integer, got 8.0 (float)"),
    ({"n_temperatures": 0}, "n_temperatures must be >= 1, got 0"),
    ({"n_temperatures": True}, "n_temperatures must be an integer, got True (bool)"),
    ({"n_temperatures": float("inf")}, "n_temperatures must be an integer, got inf (float)"),
    ({"steps_per_temperature": 0}, "steps_per_temperature must be >= 1, got 0"),
    ({"steps_per_temperature": float("nan")},
     "steps_per_temperature must be an integer, got nan (float)"),
])
def test_bad_counts_are_one_line_input_errors_naming_the_setting(change, message):
    with pytest.raises(InputError) as caught:
        annealed_importance_sampling(random_rbm(0), skewed_base(1), progress=False, **change)
    assert str(caught.value).startswith(message)


def test_numpy_counts_are_accepted_and_recorded_as_plain_ints():
    result = annealed_importance_sampling(random_rbm(0), skewed_base(1),
                                          n_temperatures=np.int64(3), n_chains=np.int32(4),
                                          steps_per_temperature=np.uint8(1),
                                          generator=torch.Generator().manual_seed(0),
                                          progress=False)
    assert (type(result.n_temperatures), type(result.steps_per_temperature)) == (int, int)
    assert result.log_weights.shape == (4,)
    json.dumps({"n_temperatures": result.n_temperatures,
                "steps_per_temperature": result.steps_per_temperature})
