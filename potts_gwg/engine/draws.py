"""Categorical draws driven by a ``torch.Generator``: one uniform per draw, inverse CDF.

``torch.multinomial`` draws one exponential per category and row; with ~10⁴ categories
per chain (L·q changes) that random-number generation dominated a GWG step. Here a draw
costs a cumulative sum and a binary search, and a softmax over (site, value) is sampled in
two stages (site from the per-site masses, then value within the site), so the cumulative
sums run over L and q entries, not L·q, which also keeps their float32 rounding small.
"""

from __future__ import annotations

import torch
from torch import Tensor


def draw_categorical(probs: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` draws with replacement from each row of ``probs (R, K)`` (unnormalised, ≥ 0).

    Returns ``(R, n)`` long. Zero-mass categories are never drawn: u lies in (0, total] and
    the first index with cdf ≥ u has positive mass.
    """
    cdf = probs.cumsum(1)
    uniform = 1 - torch.rand((probs.shape[0], n), generator=generator, dtype=cdf.dtype,
                             device=cdf.device)
    return torch.searchsorted(cdf, uniform * cdf[:, -1:])


def draw_site_changes(logits: Tensor, n: int,
                      generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` draws of k = i·q + a from softmax over all of ``logits (B, L, q)`` (−inf allowed).

    Returns the flat indices ``(B, n)`` and their log-probabilities ``(B, n)``. Weights are
    taken relative to each chain's largest logit, so the total mass lies in [1, L·q].
    """
    batch, length, q = logits.shape
    peak = logits.flatten(1).amax(1)                                       # (B,)
    weights = (logits - peak.view(batch, 1, 1)).exp_()                     # (B, L, q)
    site_mass = weights.sum(2)                                             # (B, L)
    sites = draw_categorical(site_mass, n, generator)                      # (B, n)
    within = weights.gather(1, sites.unsqueeze(-1).expand(batch, n, q))    # (B, n, q)
    values = draw_categorical(within.view(batch * n, q), 1, generator).view(batch, n)
    picks = sites * q + values
    log_total = peak + site_mass.sum(1).log()
    return picks, logits.flatten(1).gather(1, picks) - log_total.unsqueeze(1)
