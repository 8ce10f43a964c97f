"""Sequence weights: the definition on hand-made cases, and chunking that changes nothing."""

from __future__ import annotations

import numpy as np
import torch

from potts_gwg.weights import effective_number, sequence_weights


def brute_force_weights(indices: np.ndarray, theta: float) -> np.ndarray:
    identity = (indices[:, None, :] == indices[None, :, :]).mean(axis=2)
    return 1.0 / (identity >= theta).sum(axis=1)


def test_identical_and_near_identical_sequences_share_weight():
    base = np.zeros(10, dtype=np.uint8)
    close = base.copy()
    close[:2] = 3                       # identity 0.8: counts as a neighbour (>= theta)
    far = base.copy()
    far[:3] = 5                         # identity 0.7: does not
    indices = np.stack([base, base, close, far])
    weights = sequence_weights(indices, n_states=21, theta=0.8)
    np.testing.assert_allclose(weights.numpy(), [1 / 3, 1 / 3, 1 / 3, 1.0])
    assert abs(effective_number(weights) - 2.0) < 1e-6


def test_weights_match_brute_force_and_do_not_depend_on_chunking():
    rng = np.random.default_rng(0)
    parents = rng.integers(0, 21, size=(20, 30))
    indices = parents[rng.integers(0, 20, size=300)]
    mutate = rng.random(indices.shape) < 0.1
    indices = np.where(mutate, rng.integers(0, 21, size=indices.shape), indices)
    expected = brute_force_weights(indices, 0.8)
    whole = sequence_weights(indices, 21, 0.8)
    chunked = sequence_weights(indices, 21, 0.8, chunk_bytes=4 * 300 * 7)  # 7 rows a chunk
    np.testing.assert_allclose(whole.numpy(), expected, rtol=1e-6)
    assert torch.equal(whole, chunked)
