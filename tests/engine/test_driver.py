"""The chain driver and the ESS estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from potts_gwg.engine import (GibbsSampler, GWGSampler, LatticeIsingEnergy, MetropolisSampler,
                              effective_sample_size, run_chains)

from .exact import random_potts, random_rbm


def test_burn_in_and_thinning_keep_the_states_at_the_right_steps():
    model = random_potts()
    sampler = GWGSampler()
    x0 = torch.zeros(5, 4, dtype=torch.long)
    samples, diagnostics = run_chains(sampler, model, x0, n_samples=4, burn_in=3, thin=2,
                                      generator=torch.Generator().manual_seed(0),
                                      progress=False)
    assert samples.shape == (4, 5, 4) and samples.dtype == torch.long
    assert diagnostics.steps.tolist() == [5, 7, 9, 11]
    # The same kernel stepped by hand with the same generator passes through those states.
    generator = torch.Generator().manual_seed(0)
    state = sampler.init(model, x0)
    by_hand = {}
    for step in range(1, 12):
        state, _ = sampler.step(model, state, generator)
        by_hand[step] = state.x
    for k, step in enumerate(diagnostics.steps.tolist()):
        assert torch.equal(samples[k], by_hand[step])
    torch.testing.assert_close(diagnostics.statistic[-1], model(samples[-1]))
    assert 0 < diagnostics.acceptance_rate <= 1
    assert diagnostics.acceptance_per_chain.shape == (5,)


@pytest.mark.parametrize("sampler, model", [
    (GibbsSampler("random"), random_potts()), (GWGSampler(), random_potts()),
    (MetropolisSampler(), random_potts()), (GWGSampler(n_flips=2), random_rbm()),
    (GWGSampler(local_fields=False), random_potts())], ids=str)
def test_same_seed_same_samples(sampler, model):
    x0 = torch.zeros(8, model.n_sites, dtype=torch.long)

    def draw(seed: int) -> torch.Tensor:
        return run_chains(sampler, model, x0, n_samples=20, burn_in=5, thin=3,
                          generator=torch.Generator().manual_seed(seed), progress=False)[0]

    first = draw(42)
    assert torch.equal(first, draw(42))
    assert not torch.equal(first, draw(43))


def test_gibbs_acceptance_is_one_and_changes_are_counted():
    _, diagnostics = run_chains(GibbsSampler(), random_potts(),
                                torch.zeros(64, 4, dtype=torch.long), n_samples=50,
                                generator=torch.Generator().manual_seed(1), progress=False)
    assert diagnostics.acceptance_rate == 1.0
    assert 0 < diagnostics.sites_changed_per_step < 1


def test_custom_statistic_and_ess_of_mean_spin():
    model = LatticeIsingEnergy((4, 4), coupling=0.2)
    _, diagnostics = run_chains(
        GWGSampler(), model, torch.zeros(6, 16, dtype=torch.long), n_samples=400, burn_in=50,
        generator=torch.Generator().manual_seed(2), progress=False,
        statistic=lambda state: (2 * state.x - 1).double().mean(1))
    assert diagnostics.statistic.shape == (400, 6)
    assert diagnostics.statistic.abs().max() <= 1
    assert torch.all(diagnostics.ess_per_chain > 1) and torch.all(diagnostics.ess_per_chain < 400)
    assert diagnostics.ess == pytest.approx(float(diagnostics.ess_per_chain.sum()))


def test_progress_bar_is_silent_when_stderr_is_not_a_terminal(capsys):
    run_chains(GibbsSampler(), random_potts(), torch.zeros(2, 4, dtype=torch.long),
               n_samples=3, generator=torch.Generator().manual_seed(0), progress=True)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("lengths, error, message", [
    ({"n_samples": 0}, ValueError, "n_samples must be >= 1, got 0"),
    ({"n_samples": 2.5}, TypeError, "n_samples must be an integer, got 2.5"),
    ({"n_samples": 2, "thin": 1.5}, TypeError, "thin must be an integer"),
    ({"n_samples": 2, "burn_in": -1}, ValueError, "burn_in must be >= 0"),
])
def test_bad_run_lengths_are_refused(lengths, error, message):
    with pytest.raises(error, match=message):
        run_chains(GibbsSampler(), random_potts(), torch.zeros(2, 4, dtype=torch.long),
                   progress=False, **lengths)


def test_numpy_counts_are_used_as_plain_ints():
    """np.int8 counts overflowed in burn_in + n_samples * thin: 0 steps and uninitialised
    samples came back."""
    samples, diagnostics = run_chains(
        GibbsSampler(), random_potts(), torch.zeros(2, 4, dtype=torch.long), np.int8(3),
        burn_in=np.int8(100), thin=np.int8(100), generator=torch.Generator().manual_seed(0),
        progress=False)
    assert diagnostics.steps.tolist() == [200, 300, 400]
    assert samples.min() >= 0 and samples.max() < 3 and diagnostics.sites_changed_per_step > 0


def test_ess_is_nan_when_no_chain_has_one():
    """Fewer than 4 samples per chain: every chain's ESS is NaN, and so is the total (it
    read 0.0, as if the chains had not mixed at all)."""
    _, diagnostics = run_chains(GibbsSampler(), random_potts(),
                                torch.zeros(3, 4, dtype=torch.long), n_samples=2,
                                generator=torch.Generator().manual_seed(0), progress=False)
    assert diagnostics.ess_per_chain.isnan().all() and math.isnan(diagnostics.ess)


def test_a_seed_in_place_of_a_generator_is_refused():
    with pytest.raises(TypeError, match="generator must be a torch.Generator .* got int"):
        run_chains(GibbsSampler(), random_potts(), torch.zeros(2, 4, dtype=torch.long),
                   n_samples=1, generator=0, progress=False)


def ar1(phi: float, n: int, chains: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, chains, generator=generator, dtype=torch.float64)
    trace = torch.empty_like(noise)
    trace[0] = noise[0] / math.sqrt(1 - phi ** 2)   # stationary start
    for t in range(1, n):
        trace[t] = phi * trace[t - 1] + noise[t]
    return trace


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_ess_of_an_ar1_process_matches_its_integrated_autocorrelation_time(phi):
    # τ = (1 + φ)/(1 − φ), so ESS = n (1 − φ)/(1 + φ). The initial-sequence estimate from
    # n = 4000 has a relative sd ≈ sqrt(2(2M+1)/n) ≲ 0.15 per chain for φ = 0.9 (M ≈ 20
    # lags); averaged over 64 chains the mean is within ≈ 2 %, so 10 % is > 5 sd (plus the
    # estimator's small downward bias at φ = 0.9).
    n, chains = 4000, 64
    ess = effective_sample_size(ar1(phi, n, chains, seed=int(phi * 10)))
    assert ess.shape == (chains,)
    expected = n * (1 - phi) / (1 + phi)
    assert float(ess.mean()) == pytest.approx(expected, rel=0.10)


def test_ess_of_a_constant_chain_is_nan():
    trace = torch.cat([torch.ones(100, 1), torch.randn(100, 1)], 1)
    ess = effective_sample_size(trace)
    assert math.isnan(ess[0]) and ess[1] > 0
