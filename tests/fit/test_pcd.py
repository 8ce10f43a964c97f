"""PCD maximum-likelihood fits: recovery of known couplings, continuation, failure modes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from potts_gwg.contacts import zero_sum_gauge
from potts_gwg.errors import NumericalError
from potts_gwg.fit.pcd import PcdSettings, fit_pcd, initial_state
from potts_gwg.fit.plm import initial_fields

from .known_models import exact_samples, symmetric_couplings

LENGTH, N_STATES = 5, 3


@pytest.fixture(scope="module")
def known_model():
    rng = np.random.default_rng(7)
    h = rng.normal(scale=0.5, size=(LENGTH, N_STATES))
    E = symmetric_couplings(LENGTH, N_STATES, seed=8, scale=0.6).numpy()
    J = E.reshape(LENGTH, N_STATES, LENGTH, N_STATES).transpose(0, 2, 1, 3)
    return J, torch.as_tensor(exact_samples(h, J, 20000, seed=9))


def independent_start(x, settings, seed=0):
    weights = torch.ones(len(x))
    h0 = initial_fields(x, weights, N_STATES)
    J0 = torch.zeros(LENGTH, LENGTH, N_STATES, N_STATES)
    return weights, initial_state(h0, J0, x, weights, settings, seed)


@pytest.mark.parametrize("sampler", ["gwg", "gibbs"])
def test_fit_recovers_known_couplings(known_model, sampler, single_thread):
    """20 000 exact samples of an L=5, q=3 model, 1000 chains, weak penalties, 100 SGD
    updates of step 1. Sampling noise in the data (~1/sqrt(20 000)) and in the chains'
    statistics (~1/sqrt(1000) per update, averaged by the small steps) is small against the
    couplings' spread (~0.5): measured correlation 0.992 for both samplers; bound 0.98."""
    J_true, x = known_model
    settings = PcdSettings(sampler=sampler, n_chains=1000, steps=10, learning_rate=1.0,
                           lambda_h=1e-4, lambda_j=1e-4, max_iterations=100,
                           target_pearson=None)
    weights, state = independent_start(x, settings)
    result = fit_pcd(x, weights, N_STATES, state, settings)
    upper = np.triu_indices(LENGTH, k=1)
    true_blocks = zero_sum_gauge(J_true)[upper].ravel()
    fitted_blocks = zero_sum_gauge(result.J)[upper].ravel()
    assert np.corrcoef(true_blocks, fitted_blocks)[0, 1] > 0.98
    assert np.abs(fitted_blocks - true_blocks).max() < 0.25
    assert result.pearson_pairs > 0.95 and result.stop_reason == "max_iterations"
    np.testing.assert_array_equal(result.J, result.J.transpose(1, 0, 3, 2))
    assert np.all(result.J[np.arange(LENGTH), np.arange(LENGTH)] == 0.0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_continuing_from_the_returned_state_equals_one_run(known_model, optimizer,
                                                           single_thread):
    _, x = known_model
    settings = PcdSettings(sampler="gibbs", n_chains=64, steps=3, max_iterations=12,
                           optimizer=optimizer, learning_rate=0.05, target_pearson=None)
    weights, state = independent_start(x, settings)
    whole = fit_pcd(x, weights, N_STATES, state, settings)
    first = fit_pcd(x, weights, N_STATES, state,
                    dataclasses.replace(settings, max_iterations=5))
    rest = fit_pcd(x, weights, N_STATES, first.state, settings)
    assert rest.iterations == whole.iterations == 12
    assert np.array_equal(rest.J, whole.J) and np.array_equal(rest.h, whole.h)
    assert torch.equal(rest.state.chains, whole.state.chains)


def test_same_seed_same_fit_other_seed_other_fit(known_model, single_thread):
    _, x = known_model
    settings = PcdSettings(n_chains=32, steps=2, max_iterations=4, target_pearson=None)
    results = []
    for seed in (0, 0, 1):
        weights, state = independent_start(x, settings, seed)
        results.append(fit_pcd(x, weights, N_STATES, state, settings).J)
    assert np.array_equal(results[0], results[1])
    assert not np.array_equal(results[0], results[2])


def test_stops_at_target_pearson(known_model, single_thread):
    _, x = known_model
    settings = PcdSettings(sampler="gibbs", n_chains=1000, steps=10, learning_rate=1.0,
                           max_iterations=500, target_pearson=0.9, check_every=5)
    weights, state = independent_start(x, settings)
    result = fit_pcd(x, weights, N_STATES, state, settings)
    assert result.stop_reason == "target_pearson" and result.pearson_pairs >= 0.9
    assert result.iterations < 500 and result.iterations % 5 == 0


def test_divergence_stops_with_a_clear_error(known_model, single_thread):
    _, x = known_model
    settings = PcdSettings(n_chains=16, steps=1, learning_rate=1e38, max_iterations=50,
                           target_pearson=None)
    weights, state = independent_start(x, settings)
    with pytest.raises(NumericalError, match="non-finite .* --learning-rate"):
        fit_pcd(x, weights, N_STATES, state, settings)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="sampler"):
        PcdSettings(sampler="metropolis")
    with pytest.raises(ValueError, match="optimizer"):
        PcdSettings(optimizer="lbfgs")


@pytest.mark.gpu
@pytest.mark.parametrize("sampler", ["gwg", "gibbs"])
def test_gpu_fit_recovers_known_couplings(known_model, sampler):
    """The same recovery on CUDA (other random streams, so the same bound, not equality)."""
    J_true, x = known_model
    settings = PcdSettings(sampler=sampler, n_chains=1000, steps=10, learning_rate=1.0,
                           lambda_h=1e-4, lambda_j=1e-4, max_iterations=100,
                           target_pearson=None)
    x = x.cuda()
    weights = torch.ones(len(x), device="cuda")
    h0 = initial_fields(x, weights, N_STATES)
    J0 = torch.zeros(LENGTH, LENGTH, N_STATES, N_STATES, device="cuda")
    result = fit_pcd(x, weights, N_STATES, initial_state(h0, J0, x, weights, settings, 0),
                     settings)
    upper = np.triu_indices(LENGTH, k=1)
    correlation = np.corrcoef(zero_sum_gauge(J_true)[upper].ravel(),
                              zero_sum_gauge(result.J)[upper].ravel())[0, 1]
    assert correlation > 0.98
