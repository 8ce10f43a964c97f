"""The accept/reject step every kernel shares, and state selection (potts_gwg/engine/mh.py)."""

from __future__ import annotations

import math

import torch

from potts_gwg.engine import ChainState, metropolis_hastings, select


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
