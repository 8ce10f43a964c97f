"""Categorical draws shared by the kernels (potts_gwg/engine/draws.py)."""

from __future__ import annotations

import torch

from potts_gwg.engine.draws import draw_categorical, draw_from_logits, site_log_masses

from .exact import frequency_tolerance

DRAWS = 200_000


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
