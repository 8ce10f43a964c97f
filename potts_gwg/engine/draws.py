"""Categorical draws driven by a ``torch.Generator``: one uniform per draw, inverse CDF.

``torch.multinomial`` draws one exponential per category and row; with ~10⁴ categories
per chain (L·q changes) that random-number generation dominated a GWG step. Here a draw
costs a cumulative sum and a binary search. GWG samples its softmax over (site, value) in
two stages (site from the per-site masses, then value within the site), so cumulative sums
run over L and q entries, not L·q, which also keeps their float32 rounding small.
"""

from __future__ import annotations

import torch
from torch import Tensor


def draw_categorical(probs: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` draws with replacement from each row of ``probs (R, K)`` (unnormalised, ≥ 0).

    Returns ``(R, n)`` long. Zero-mass categories are never drawn: u lies in (0, total] and
    the first index with cdf ≥ u has positive mass. A row with a NaN or infinite mass (an
    overflowing model) still gets valid indices (the last category), so the caller's
    Metropolis-Hastings test (a NaN rejects) and its finiteness checks decide, not an
    out-of-range index.
    """
    cdf = probs.cumsum(1)
    uniform = 1 - torch.rand((probs.shape[0], n), generator=generator, dtype=cdf.dtype,
                             device=cdf.device)
    return torch.searchsorted(cdf, uniform * cdf[:, -1:]).clamp_(max=probs.shape[1] - 1)


def draw_from_logits(logits: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` draws with replacement from softmax of each row of ``logits (R, K)`` (−inf allowed)."""
    return draw_categorical((logits - logits.amax(1, keepdim=True)).exp_(), n, generator)


def site_log_masses(d: Tensor, temperature: float) -> Tensor:
    """log Σ_a exp(d[:, i, a] / T) for each site: ``d (B, L, q)`` -> ``(B, L)``.

    Relative to one peak per chain, so the full array goes through a single in-place exp; a
    site whose mass underflows (below e^-87 of the peak in float32) gets −inf, i.e. is never
    proposed, as its probability is below 10⁻³⁸.
    """
    peak = d.flatten(1).amax(1)
    offset = (-peak / temperature).view(-1, 1, 1)
    mass = torch.add(offset, d, alpha=1 / temperature).exp_().sum(2)
    return mass.log_().add_((peak / temperature).unsqueeze(1))
