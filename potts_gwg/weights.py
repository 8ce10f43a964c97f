"""Sequence weights that correct for redundancy in an alignment.

w_n = 1 / #{m : identity(n, m) >= theta}, identity counted over the L query columns (a gap
matching a gap counts, as in CCMpred), so every sequence counts itself; Neff = Σ_n w_n.
The N × N identity matrix is never held: rows are processed in chunks sized to a memory
budget, as one-hot matrix products (the same code on CPU and GPU).
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_THETA = 0.8
DEFAULT_CHUNK_BYTES = 256 * 2**20


def sequence_weights(indices: np.ndarray | torch.Tensor, n_states: int, theta: float = DEFAULT_THETA,
                     device: torch.device | str | None = None,
                     chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Weights (N,) float32 on ``device`` for encoded sequences ``indices`` (N, L).

    ``theta`` in (0, 1]; ``theta >= 1`` still clusters identical sequences only. A ``theta``
    of 0 or less is rejected by the caller's option parsing; here it would give w = 1/N.
    """
    states = torch.as_tensor(np.asarray(indices) if not torch.is_tensor(indices) else indices)
    device = torch.device(device) if device is not None else states.device
    states = states.to(device=device, dtype=torch.long)
    n_sequences, length = states.shape
    if n_sequences == 0:
        return torch.zeros(0, dtype=torch.float32, device=device)
    one_hot = torch.nn.functional.one_hot(states, n_states).reshape(n_sequences, -1)
    # Matches are counted exactly in float32 (integers < 2**24); bf16 would not be exact.
    one_hot = one_hot.to(torch.float32)
    threshold = theta * length - 1e-4  # identity >= theta  <=>  matches >= theta * L
    rows_per_chunk = chunk_rows(n_sequences, chunk_bytes)
    neighbours = torch.empty(n_sequences, dtype=torch.float32, device=device)
    for start in range(0, n_sequences, rows_per_chunk):
        stop = min(n_sequences, start + rows_per_chunk)
        matches = one_hot[start:stop] @ one_hot.T
        neighbours[start:stop] = (matches >= threshold).sum(dim=1).to(torch.float32)
    return 1.0 / neighbours


def effective_number(weights: torch.Tensor) -> float:
    """Neff = Σ_n w_n."""
    return float(weights.sum())


def chunk_rows(n_sequences: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Rows per chunk for an N-column float32 block within ``chunk_bytes``."""
    return max(1, min(n_sequences, chunk_bytes // (4 * max(1, n_sequences))))
