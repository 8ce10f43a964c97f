"""Every sampler on every model small enough to enumerate samples the exact distribution.

One sample per chain (its final state) and independent chains: the n = 2¹⁵ samples of a
check are independent, so n_eff = n and the TV tolerance of ``exact.tv_tolerance`` applies
(≈ 0.03–0.045 here; a correct sampler fails a check with probability ≤ 1e-6). When these
tests were written, a GWG whose MH correction was off by 10 % (log-proposal terms × 0.9)
failed most of them, and one without the reverse proposal had TV ≈ 0.3.
"""

from __future__ import annotations

import pytest
import torch

from potts_gwg.engine import GibbsSampler, GWGSampler, MetropolisSampler

from .exact import (exact_samples, random_ising, random_mlp, random_potts, random_rbm,
                    total_variation, tv_tolerance)

CHAINS = 2 ** 15
MODELS = {"potts-L4-q3": random_potts, "ising-D8": random_ising, "rbm-6-visible": random_rbm,
          "mlp-8-bits": random_mlp}
SAMPLERS = {
    "gibbs-systematic": lambda: GibbsSampler("systematic"),
    "gibbs-random": lambda: GibbsSampler("random"),
    "gwg": lambda: GWGSampler(),
    "gwg-3-flips": lambda: GWGSampler(n_flips=3),
    "metropolis": lambda: MetropolisSampler(),
    # The generic path on the Potts model (full f and autograd, as in the paper).
    "gwg-generic": lambda: GWGSampler(local_fields=False),
    "gibbs-generic": lambda: GibbsSampler(local_fields=False),
    "metropolis-generic": lambda: MetropolisSampler(local_fields=False),
}
# Steps from a uniform start: when written, doubling these changed no TV measurably (the
# Ising model, the most peaked, needs the most; uniform-start TVs are 0.4–0.8).
BURN_IN = {"potts-L4-q3": 100, "ising-D8": 200, "rbm-6-visible": 100, "mlp-8-bits": 100}


def applicable(model_name: str, sampler_name: str) -> bool:
    binary = model_name != "potts-L4-q3"
    if sampler_name == "gwg-3-flips":
        return binary
    return not sampler_name.endswith("-generic") or not binary


CASES = [(m, s) for m in MODELS for s in SAMPLERS if applicable(m, s)]


def run(model, sampler, x0: torch.Tensor, steps: int, generator: torch.Generator):
    state = sampler.init(model, x0)
    for _ in range(steps):
        state, _ = sampler.step(model, state, generator)
    return state


@pytest.mark.parametrize("model_name, sampler_name", CASES)
def test_chains_from_uniform_start_reach_the_exact_distribution(model_name, sampler_name):
    model, sampler = MODELS[model_name](), SAMPLERS[sampler_name]()
    generator = torch.Generator().manual_seed(11)
    x0 = torch.randint(model.n_states, (CHAINS, model.n_sites), generator=generator)
    state = run(model, sampler, x0, BURN_IN[model_name], generator)
    assert total_variation(state.x, model) < tv_tolerance(model, CHAINS)
    # The kernels' running f(x) is the energy of the state they hold (float64 here).
    torch.testing.assert_close(state.log_prob, model(state.x), rtol=0, atol=1e-9)


@pytest.mark.parametrize("model_name, sampler_name", CASES)
def test_chains_started_from_exact_samples_stay_exact(model_name, sampler_name):
    model, sampler = MODELS[model_name](), SAMPLERS[sampler_name]()
    generator = torch.Generator().manual_seed(12)
    x0 = exact_samples(model, CHAINS, generator)
    assert total_variation(x0, model) < tv_tolerance(model, CHAINS)
    state = run(model, sampler, x0, 3 * model.n_sites, generator)
    assert total_variation(state.x, model) < tv_tolerance(model, CHAINS)
