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

    Returns the flat indices ``(B, n)`` and their log-probabilities ``(B, n)``.
    """
    batch, length, q = logits.shape
    site_log_mass = logits.logsumexp(2)                                    # (B, L)
    log_total = site_log_mass.logsumexp(1, keepdim=True)                   # (B, 1)
    sites = draw_categorical((site_log_mass - log_total).exp(), n, generator)
    at_sites = logits.gather(1, sites.unsqueeze(-1).expand(batch, n, q))   # (B, n, q)
    within = (at_sites - site_log_mass.gather(1, sites).unsqueeze(-1)).exp()
    values = draw_categorical(within.view(batch * n, q), 1, generator).view(batch, n)
    log_probs = at_sites.gather(2, values.unsqueeze(-1)).squeeze(-1) - log_total
    return sites * q + values, log_probs
