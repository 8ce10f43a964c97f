"""The shared pieces of the kernels: categorical draws, the MH step, state selection."""

from __future__ import annotations

import math

import pytest
import torch

from potts_gwg.engine import ChainState, GWGSampler, metropolis_hastings, select
from potts_gwg.engine.draws import draw_categorical, draw_from_logits, site_log_masses
from potts_gwg.engine.samplers import gwg

from .exact import random_ising, random_potts

DRAWS = 200_000


def frequency_tolerance(n: int, k: int) -> float:
    """TV bound for n independent draws over k categories, as in exact.tv_tolerance:
    E[TV] ≤ ½·sqrt(k/n) (Cauchy–Schwarz) plus a McDiarmid margin for δ = 1e-6."""
    return 0.5 * math.sqrt(k / n) + math.sqrt(math.log(1e6) / (2 * n))


def test_draw_categorical_matches_probabilities_and_never_draws_zero_mass():
    weights = torch.tensor([[0.0, 3.0, 1.0, 0.0, 6.0]] * 4)   # unnormalised, zeros at 0 and 3
    draws = draw_categorical(weights, DRAWS // 4, torch.Generator().manual_seed(0))
    assert draws.shape == (4, DRAWS // 4)
    counts = torch.bincount(draws.flatten(), minlength=5).double() / DRAWS
    assert counts[0] == 0 and counts[3] == 0
    tv = 0.5 * float((counts - weights[0] / weights[0].sum()).abs().sum())
    assert tv < frequency_tolerance(DRAWS, 5)


def test_rows_of_overflowed_mass_still_give_valid_indices():
    """NaN or infinite masses (a diverging model) must not index past the row: the caller's
    MH test and finiteness checks report the divergence, not an index error."""
    weights = torch.tensor([[1.0, float("nan"), 2.0], [float("inf"), 1.0, float("inf")],
                            [1.0, 2.0, 3.0]])
    draws = draw_categorical(weights, 50, torch.Generator().manual_seed(2))
    assert draws.min() >= 0 and draws.max() <= 2


def test_draw_from_logits_and_site_log_masses():
    logits = torch.tensor([[1.0, float("-inf"), 0.0, 3.0]], dtype=torch.float64)
    draws = draw_from_logits(logits.expand(4, 4).contiguous(), DRAWS // 4,
                             torch.Generator().manual_seed(1))
    counts = torch.bincount(draws.flatten(), minlength=4).double() / DRAWS
    assert counts[1] == 0
    assert 0.5 * float((counts - logits.softmax(1)[0]).abs().sum()) < frequency_tolerance(DRAWS, 4)
    d = 30 * torch.randn(5, 6, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    d[:, :, 0] = float("-inf")
    torch.testing.assert_close(site_log_masses(d, 2.0), (d / 2).logsumexp(2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("model_name, local_fields", [
    ("potts", True), ("potts", False), ("ising", True)])
def test_gwg_draws_changes_with_its_proposal_probabilities(monkeypatch, model_name,
                                                           local_fields):
    # With every proposal accepted, the change each chain made is a draw from q(· | x0).
    monkeypatch.setattr(gwg, "metropolis_hastings",
                        lambda delta_f, *rest: torch.ones_like(delta_f, dtype=torch.bool))
    model = random_potts(coupling_scale=1.5) if model_name == "potts" else random_ising()
    sampler = GWGSampler(local_fields=local_fields)
    x0 = torch.randint(model.n_states, (1, model.n_sites),
                       generator=torch.Generator().manual_seed(3))
    state = sampler.init(model, x0.expand(DRAWS, -1).contiguous())
    expected = sampler.proposal_log_probs(model, state)[0].exp()
    moved, _ = sampler.step(model, state, torch.Generator().manual_seed(4))
    site = (moved.x != x0).long().argmax(1)
    assert torch.all((moved.x != x0).sum(1) == 1)
    changes = site * model.n_states + moved.x.gather(1, site.unsqueeze(1)).squeeze(1)
    counts = torch.bincount(changes, minlength=len(expected)).double() / DRAWS
    assert float(counts[expected == 0].sum()) == 0
    tolerance = frequency_tolerance(DRAWS, int((expected > 0).sum()))
    assert 0.5 * float((counts - expected).abs().sum()) < tolerance


def test_metropolis_hastings_accepts_with_probability_min_one_exp():
    log_accept = torch.tensor([-3.0, -1.0, -0.1, 0.0, 2.0, float("-inf"), float("nan")])
    n = 40_000
    generator = torch.Generator().manual_seed(3)
    accepted = torch.stack([
        metropolis_hastings(log_accept.double(), 0.0, 0.0, generator) for _ in range(n)])
    rate = accepted.double().mean(0)
    expected = torch.tensor([math.exp(-3), math.exp(-1), math.exp(-0.1), 1, 1, 0, 0],
                            dtype=torch.float64)
    # Binomial standard error ≤ 0.5/sqrt(n) = 0.0025; 6 of them ≈ 1.5e-9 two-sided per entry.
    assert float((rate - expected).abs().max()) < 6 * 0.5 / math.sqrt(n)
    # Splitting log_accept into Δf and proposal terms gives the same decisions.
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    delta_f, reverse, forward = torch.randn(3, 1000, generator=generator, dtype=torch.float64)
    assert torch.equal(metropolis_hastings(delta_f, reverse, forward, g1),
                       metropolis_hastings(delta_f + reverse - forward, 0.0, 0.0, g2))


def test_select_takes_proposal_where_accepted_and_keeps_none_fields():
    current = ChainState(x=torch.zeros(3, 2, dtype=torch.long), log_prob=torch.zeros(3),
                         fields=torch.zeros(3, 2, 4), position=1)
    proposal = ChainState(x=torch.ones(3, 2, dtype=torch.long), log_prob=torch.ones(3),
                          fields=torch.ones(3, 2, 4), position=1)
    chosen = select(torch.tensor([True, False, True]), proposal, current)
    assert chosen.x[:, 0].tolist() == [1, 0, 1]
    assert chosen.log_prob.tolist() == [1, 0, 1]
    assert chosen.fields[:, 1, 3].tolist() == [1, 0, 1]
    assert chosen.grad is None and chosen.position == 1
