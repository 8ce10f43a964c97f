"""The shared pieces of the kernels: categorical draws, the MH step, state selection."""

from __future__ import annotations

import math

import torch

from potts_gwg.engine import ChainState, metropolis_hastings, select
from potts_gwg.engine.draws import draw_categorical, draw_site_changes

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


def test_draw_site_changes_is_one_softmax_over_all_site_value_pairs():
    logits = torch.randn(1, 6, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    logits[0, torch.arange(6), torch.tensor([0, 1, 2, 3, 0, 1])] = float("-inf")
    batch = logits.expand(DRAWS // 10, 6, 4).contiguous()
    picks, log_probs = draw_site_changes(batch, 10, torch.Generator().manual_seed(2))
    expected = torch.log_softmax(logits.flatten(), 0)
    torch.testing.assert_close(log_probs, expected[picks], rtol=0, atol=1e-12)
    counts = torch.bincount(picks.flatten(), minlength=24).double() / DRAWS
    assert float(counts[torch.isinf(expected)].sum()) == 0
    assert 0.5 * float((counts - expected.exp()).abs().sum()) < frequency_tolerance(DRAWS, 24)


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
