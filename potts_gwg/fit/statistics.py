"""One- and two-site statistics of sequences, and how well a model reproduces the data's.

Pure functions on ``(N, L)`` index tensors. Two-site frequencies are held as one symmetric
``(L·q, L·q)`` matrix F2[(i, a), (j, b)] = Σ_n w_n [x_ni = a][x_nj = b] / Σ_n w_n, the same
layout as the couplings of :class:`~potts_gwg.engine.potts.PottsEnergy`, so a PCD gradient
is a difference of two such matrices. The diagonal blocks F2[(i, ·), (i, ·)] hold the
one-site frequencies on their diagonal and are never used as pair statistics.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..ordered_sums import ordered_sum, ordered_total
from ..row_sums import summed_rows

DEFAULT_CHUNK_BYTES = 256 * 2**20
BLOCK_BYTES = 64 * 2**20   # float64 block rows of the correlations' Pearson on a GPU


def one_hot_rows(indices: Tensor, n_states: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(N, L)`` indices -> ``(N, L·q)`` one-hot rows in ``dtype``, written directly: no
    int64 one-hot in between (that would be 3x the float32 rows' memory at its peak)."""
    n_rows, length = indices.shape
    columns = indices.long() + torch.arange(0, length * n_states, n_states,
                                            device=indices.device)
    rows = torch.zeros((n_rows, length * n_states), dtype=dtype, device=indices.device)
    return rows.scatter_(1, columns, 1.0)


def _total_weight(n_sequences: int, weights: Tensor | None) -> float:
    """Σ w_n, the same on any CPU thread count (N alone for uniform weights: no GPU sync)."""
    return float(n_sequences) if weights is None else ordered_sum(weights)


def site_frequencies(indices: Tensor, n_states: int, weights: Tensor | None = None) -> Tensor:
    """Weighted one-site frequencies ``(L, q)``; ``weights`` (N,) default uniform."""
    n_sequences, length = indices.shape
    total = _total_weight(n_sequences, weights)
    if weights is None:
        weights = torch.ones(n_sequences, dtype=torch.float32, device=indices.device)
    counts = torch.zeros(length, n_states, dtype=torch.float32, device=indices.device)
    counts.scatter_add_(1, indices.long().T, weights.to(torch.float32).expand(length, -1))
    return counts / total


def pair_frequencies(indices: Tensor, n_states: int, weights: Tensor | None = None,
                     chunk_bytes: int = DEFAULT_CHUNK_BYTES, out: Tensor | None = None
                     ) -> Tensor:
    """Weighted two-site frequencies as a symmetric ``(L·q, L·q)`` matrix (see module doc).

    Row (i, a) is the weighted sum of the one-hot rows of the sequences with x_i = a: one
    ``embedding_bag`` over the one-hot rows, grouped by the row each sequence picks at each
    site. That is N·L·(L·q) additions, q times fewer than the one-hot matrix product, and
    exact for integer counts. Chunked over sequences so at most ``chunk_bytes`` of one-hot
    rows are held at once. The first chunk's sums go straight into the result, ``out`` if
    given (a PCD fit's buffer, reused every update: no fresh (L·q)² array and its page faults).
    """
    n_sequences, length = indices.shape
    width = length * n_states
    total_weight = _total_weight(n_sequences, weights)
    if weights is not None:   # uniform (the PCD chains): the faster unweighted sums
        weights = weights.to(torch.float32)
    total = out if out is not None else torch.empty(width, width, dtype=torch.float32,
                                                    device=indices.device)
    site_offsets = torch.arange(length, device=indices.device) * n_states
    all_rows = torch.arange(width, device=indices.device)
    rows_per_chunk = max(1, chunk_bytes // (4 * width))
    for start in range(0, n_sequences, rows_per_chunk):
        chunk = indices[start:start + rows_per_chunk].long()
        picked = (chunk + site_offsets).reshape(-1)
        picked, order = torch.sort(picked, stable=True)
        members = order // length                    # the sequence behind each pick
        # Where each row's picks begin (searchsorted, not bincount: no device-to-host sync)
        starts = torch.searchsorted(picked, all_rows)
        sums = summed_rows(members, one_hot_rows(chunk, n_states), starts,
                           per_sample_weights=None if weights is None else
                           weights[start:start + rows_per_chunk][members],
                           out=total if start == 0 else None)
        if start > 0:
            total += sums
    if n_sequences == 0:
        total.zero_()
    return total.div_(total_weight)


def correlations_pearson(pairs: Tensor, sites: Tensor, other_pairs: Tensor,
                         other_sites: Tensor, sites_per_block: int | None = None) -> float:
    """Pearson correlation of two sets of connected correlations
    C_ij(a, b) = f_ij(a, b) − f_i(a) f_j(b) over all pairs i < j and all states a, b, from
    pair ``(L·q, L·q)`` and site ``(L, q)`` frequencies.

    The block rows of ``sites_per_block`` sites at a time (q·s × (L − 1 − i)·q values, in
    float64, the pairs j <= i masked out): no (L·q)² temporaries, and the five sums add up in
    a fixed order, so the number (and a PCD run's stop) is the same on any CPU thread count.
    Default: one site on the CPU (cache-sized rows); on a GPU as many as ``BLOCK_BYTES``
    allows, since there each site's ~17 small kernels would cost more in launches than in work.
    """
    length, n_states = sites.shape
    if sites_per_block is None:
        row_bytes = 8 * n_states * length * n_states
        sites_per_block = 1 if sites.device.type == "cpu" else max(1, BLOCK_BYTES // row_bytes)
    flat, other_flat = sites.reshape(-1).double(), other_sites.reshape(-1).double()
    site_of = (torch.arange(length, device=sites.device).repeat_interleave(n_states)
               if sites_per_block > 1 else None)      # the site of each row/column
    totals = torch.zeros(5, dtype=torch.float64, device=sites.device)
    for first_site in range(0, length - 1, sites_per_block):
        last_site = min(first_site + sites_per_block, length - 1)
        rows = slice(first_site * n_states, last_site * n_states)
        columns = slice((first_site + 1) * n_states, None)
        first = pairs[rows, columns].double() - flat[rows, None] * flat[None, columns]
        second = (other_pairs[rows, columns].double()
                  - other_flat[rows, None] * other_flat[None, columns])
        if last_site - first_site > 1:  # zero the pairs j <= i of the block's later sites
            upper = site_of[columns][None, :] > site_of[rows][:, None]
            first.mul_(upper)
            second.mul_(upper)
        totals += torch.stack([ordered_total(first), ordered_total(second),
                               ordered_total(first * first), ordered_total(second * second),
                               ordered_total(first * second)])
    count = n_states * n_states * length * (length - 1) // 2
    if count == 0:
        return float("nan")
    total_first, total_second, squares_first, squares_second, products = totals.tolist()
    covariance = products - total_first * total_second / count
    variances = ((squares_first - total_first ** 2 / count)
                 * (squares_second - total_second ** 2 / count))
    return covariance / math.sqrt(variances) if variances > 0 else float("nan")


def pearson(first: Tensor, second: Tensor) -> float:
    """Pearson correlation of two flat tensors (float64 accumulation)."""
    first = first.double() - first.double().mean()
    second = second.double() - second.double().mean()
    denominator = float(first.norm() * second.norm())
    return float(first @ second) / denominator if denominator > 0 else float("nan")


class DataStatistics:
    """An alignment's weighted statistics, computed once, and how well others reproduce them."""

    def __init__(self, data: Tensor, n_states: int, weights: Tensor | None = None):
        self.sites = site_frequencies(data, n_states, weights)
        self.pairs = pair_frequencies(data, n_states, weights)

    def pearson(self, sites: Tensor, pairs: Tensor) -> tuple[float, float]:
        """Pearson correlations with other site ``(L, q)`` and pair ``(L·q, L·q)``
        frequencies: of the connected correlations C_ij(a, b) over all pairs i < j, and of
        the one-site frequencies (the two numbers adabmDCA reports). Returns (pairs, sites)."""
        return (correlations_pearson(pairs, sites, self.pairs, self.sites),
                pearson(sites.flatten(), self.sites.flatten()))


def statistics_agreement(samples: Tensor, data: Tensor, n_states: int,
                         data_weights: Tensor | None = None) -> tuple[float, float]:
    """How well ``samples`` (M, L) reproduce ``data`` (N, L): :meth:`DataStatistics.pearson`
    of the samples' unweighted statistics. Returns (pairs, sites)."""
    return DataStatistics(data, n_states, data_weights).pearson(
        site_frequencies(samples, n_states), pair_frequencies(samples, n_states))
