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


def test_a_requested_stop_saves_the_state_after_a_whole_update(known_model, single_thread):
    """Ctrl-C during a fit is polled after each update: the checkpoint then holds a whole
    update, and continuing from it ends as the uninterrupted run."""
    _, x = known_model
    settings = PcdSettings(sampler="gwg", n_chains=64, steps=3, max_iterations=12,
                           target_pearson=None)
    weights, state = independent_start(x, settings)
    whole = fit_pcd(x, weights, N_STATES, state, settings)
    saved, polls = [], []

    def requested() -> bool:
        polls.append(True)
        return len(polls) == 4

    stopped = fit_pcd(x, weights, N_STATES, state, settings, on_checkpoint=saved.append,
                      stop_requested=requested)
    assert stopped.stop_reason == "interrupted" and stopped.iterations == 4
    assert [checkpoint.iteration for checkpoint in saved] == [4]
    rest = fit_pcd(x, weights, N_STATES, saved[0], settings)
    assert rest.iterations == 12 and rest.stop_reason == "max_iterations"
    assert np.array_equal(rest.J, whole.J) and np.array_equal(rest.h, whole.h)


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


def test_target_is_judged_only_on_checks_after_the_minimum_sweeps(known_model, single_thread):
    """L = 5, 3 steps per update: 10 sweeps take 17 updates; with checks every 5 updates the
    first that counts is at 20 (the check at 15 averaged chains of under 10 sweeps). A target
    of -1 is met by any check, so the fit stops exactly there and reports that check."""
    _, x = known_model
    settings = PcdSettings(sampler="gibbs", n_chains=64, steps=3, max_iterations=100,
                           target_pearson=-1.0, check_every=5)
    weights, state = independent_start(x, settings)
    result = fit_pcd(x, weights, N_STATES, state, settings)
    assert (result.stop_reason, result.iterations) == ("target_pearson", 20)
    uncapped = fit_pcd(x, weights, N_STATES, state,
                       dataclasses.replace(settings, max_iterations=20, target_pearson=None))
    assert result.pearson_pairs == uncapped.pearson_pairs


@pytest.mark.parametrize("lambda_group", [0.0, 1.2])
def test_one_update_is_the_penalised_gradient_step(known_model, lambda_group, single_thread):
    """One SGD update, recomputed by hand from its definition: data minus chain statistics
    (the chains the update sampled are in the returned state), minus 2 λ_h/Neff h and
    2 λ_J (L − 1)/Neff J, zero on the diagonal blocks; then group-L1's proximal step shrinks
    each block's Frobenius norm by lr λ_group, to zero below that."""
    _, x = known_model
    x = x[:300]
    weights = torch.rand(300, generator=torch.Generator().manual_seed(5)) + 0.5
    settings = PcdSettings(sampler="gibbs", n_chains=50, steps=4, learning_rate=0.7,
                           lambda_h=0.3, lambda_j=0.05, lambda_group=lambda_group,
                           max_iterations=1, target_pearson=None)
    generator = torch.Generator().manual_seed(6)
    h0 = torch.randn(LENGTH, N_STATES, generator=generator, dtype=torch.float64)
    E = symmetric_couplings(LENGTH, N_STATES, seed=3, scale=0.4).double()
    J0 = E.reshape(LENGTH, N_STATES, LENGTH, N_STATES).permute(0, 2, 1, 3)
    state = initial_state(h0.float(), J0.float(), x, weights, settings, seed=0)
    result = fit_pcd(x, weights, N_STATES, state, settings)

    def frequencies(rows, row_weights):
        one_hot = torch.nn.functional.one_hot(rows, N_STATES).double()   # (n, L, q)
        row_weights = row_weights.double() / row_weights.double().sum()
        sites = torch.einsum("n,nia->ia", row_weights, one_hot)
        pairs = torch.einsum("n,nia,njb->ijab", row_weights, one_hot, one_hot)
        return sites, pairs

    data_sites, data_pairs = frequencies(x, weights)
    chain_sites, chain_pairs = frequencies(result.state.chains, torch.ones(50))
    n_effective = float(weights.double().sum())
    h1 = h0 + 0.7 * (data_sites - chain_sites - 2 * 0.3 / n_effective * h0)
    J1 = J0 + 0.7 * (data_pairs - chain_pairs - 2 * 0.05 * (LENGTH - 1) / n_effective * J0)
    J1[torch.arange(LENGTH), torch.arange(LENGTH)] = 0.0
    norms = J1.square().sum((2, 3), keepdim=True).sqrt()
    J1 = J1 * (1 - 0.7 * lambda_group / norms.clamp_min(1e-12)).clamp_min(0.0)
    np.testing.assert_allclose(result.h, h1.numpy(), atol=2e-6)
    np.testing.assert_allclose(result.J, J1.numpy(), atol=2e-6)
    if lambda_group:
        off_diagonal = ~np.eye(LENGTH, dtype=bool)
        block_norms = np.sqrt((result.J ** 2).sum((2, 3)))[off_diagonal]
        assert (block_norms == 0).any() and (block_norms > 0).any()  # both cases are tested


def test_max_time_stops_and_counts_the_time_of_earlier_runs(known_model, single_thread):
    _, x = known_model
    settings = PcdSettings(n_chains=16, steps=2, max_iterations=1000, max_time=0.2,
                           target_pearson=None)
    weights, state = independent_start(x, settings)
    result = fit_pcd(x, weights, N_STATES, state, settings)
    assert result.stop_reason == "max_time" and 0 < result.iterations < 1000
    assert 0.2 <= result.seconds == result.state.seconds
    again = fit_pcd(x, weights, N_STATES, result.state, settings)  # its time is already spent
    assert (again.stop_reason, again.iterations) == ("max_time", result.iterations)


def test_chains_start_at_rows_drawn_in_proportion_to_the_weights(known_model):
    _, x = known_model
    weights = torch.zeros(len(x))
    weights[[3, 8]] = torch.tensor([1.0, 3.0])
    settings = PcdSettings(n_chains=4000, target_pearson=None)
    state = initial_state(torch.zeros(LENGTH, N_STATES),
                          torch.zeros(LENGTH, LENGTH, N_STATES, N_STATES), x, weights,
                          settings, seed=0)
    from_row_8 = (state.chains == x[8]).all(1)
    assert ((state.chains == x[3]).all(1) | from_row_8).all()
    # Binomial(4000, 3/4): standard deviation 0.0068; bound at about 4 of them.
    assert abs(float(from_row_8.double().mean()) - 0.75) < 0.03


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


@pytest.mark.parametrize("change, message", [
    ({"n_chains": 1}, "n_chains must be >= 2"), ({"check_every": 0}, "check_every must be >= 1"),
    ({"max_iterations": 0}, "max_iterations must be >= 1"), ({"steps": 0}, "steps must be >= 1"),
    ({"learning_rate": -1.0}, "learning_rate must be > 0"),
    ({"lambda_j": -0.5}, "must be >= 0"), ({"max_time": -1.0}, "max_time must be >= 0"),
    ({"target_pearson": 1.5}, "target_pearson must be <= 1")])
def test_bad_settings_are_refused_when_made(change, message):
    """From Python they raised deep inside the fit (ZeroDivisionError for check_every = 0) or
    ran silently (steps = 0 meant the default, a negative rate climbed downhill)."""
    with pytest.raises(ValueError, match=message):
        PcdSettings(**change)


def test_a_state_continued_with_other_chains_or_optimizer_is_refused(known_model):
    """fit_pcd silently kept the state's chain count, and an sgd state under Adam was a
    KeyError deep inside the update."""
    _, x = known_model
    settings = PcdSettings(n_chains=16, steps=1, max_iterations=2, target_pearson=None)
    weights, state = independent_start(x, settings)
    with pytest.raises(ValueError, match="the state has 16 chains, the settings n_chains=32"):
        fit_pcd(x, weights, N_STATES, state, dataclasses.replace(settings, n_chains=32))
    with pytest.raises(ValueError, match="another optimizer than 'adam'"):
        fit_pcd(x, weights, N_STATES, state, dataclasses.replace(settings, optimizer="adam"))


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (2 ** 63, ValueError),
                                         (1.5, TypeError), (None, TypeError)])
def test_initial_state_checks_the_seed(seed, error):
    """As fit --seed: 0..2^63 - 1 (a float or None failed inside torch, -1 was taken)."""
    h0, J0 = torch.zeros(3, 2), torch.zeros(3, 3, 2, 2)
    x = torch.zeros(4, 3, dtype=torch.long)
    with pytest.raises(error, match="seed"):
        initial_state(h0, J0, x, torch.ones(4), PcdSettings(n_chains=4), seed)
    assert initial_state(h0, J0, x, torch.ones(4), PcdSettings(n_chains=4),
                         np.int64(3)).chains.shape == (4, 3)
