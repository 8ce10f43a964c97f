"""Dot products and sums of long vectors whose value does not depend on the CPU thread count.

Why: on CPU, torch's reductions to one number (``sum()``, ``dot``, ``norm``) give each thread
a partial sum, so their rounding changes with the number of threads; L-BFGS feeds those
numbers into its line search and history, and the fitted model moved with it (PLM on 1guuA:
J differed by up to 0.018 between 1 and 2 threads, enough to swap single contacts). Here a
vector is cut into fixed chunks of ``CHUNK`` elements; torch reduces each chunk (a row) on one
thread in one order, and the chunk totals are added in float64 in a fixed order: the same
number on any thread count, at about 1.4x the time of ``torch.dot`` (92 M elements, 2 threads:
46 vs 32 ms). On a GPU the plain call is kept: its reductions do not depend on a thread count.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Elements of one chunk, summed by one thread. Below ATen's parallel grain (32 768), so the
# last, partial chunk is summed serially too.
CHUNK = 1 << 14
# Elements per pass: bounds the float32 temporary of a dot product (16 MB).
BLOCK = 1 << 22


def _chunked_total(values: Tensor) -> Tensor:
    """Σ values (flat, at most a few BLOCKs) as a float64 scalar tensor, in a fixed order."""
    whole = values.numel() - values.numel() % CHUNK
    chunk_totals = values[:whole].view(-1, CHUNK).sum(dim=1)
    return chunk_totals.double().sum() + values[whole:].sum().double()


def _blocked_total(numel: int, block: Callable[[int, int], Tensor]) -> Tensor:
    """Σ over the BLOCKs ``block(start, stop)`` of a flat CPU vector of ``numel`` elements,
    as a float64 scalar tensor."""
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, numel, BLOCK):
        total += _chunked_total(block(start, min(start + BLOCK, numel)))
    return total


def ordered_total(values: Tensor) -> Tensor:
    """Σ values (any shape) as a float64 scalar tensor on their device, in a fixed order on
    CPU; no host-device synchronisation (accumulate several, read them once)."""
    flat = values.reshape(-1)
    if flat.device.type != "cpu":
        return flat.sum(dtype=torch.float64)
    return _blocked_total(flat.numel(), lambda start, stop: flat[start:stop])


def ordered_sum(values: Tensor) -> float:
    """Σ values (any shape) as a Python float, the same on any number of CPU threads."""
    return float(ordered_total(values))


def ordered_dot(left: Tensor, right: Tensor) -> float:
    """left · right of two flat float tensors, the same on any number of CPU threads."""
    if left.device.type != "cpu":
        return float(torch.dot(left, right))
    return float(_blocked_total(left.numel(),
                                lambda start, stop: left[start:stop] * right[start:stop]))
