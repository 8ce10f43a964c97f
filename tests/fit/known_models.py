"""Small Potts models with known parameters and exact samples from them, for fit tests."""

from __future__ import annotations

import itertools

import numpy as np
import torch


def symmetric_couplings(length, n_states, seed, scale=0.5):
    generator = torch.Generator().manual_seed(seed)
    E = torch.randn(length * n_states, length * n_states, generator=generator,
                    dtype=torch.float64) * scale
    E = 0.5 * (E + E.T)
    blocks = E.view(length, n_states, length, n_states)
    for i in range(length):
        blocks[i, :, i, :] = 0.0
    return E


def exact_samples(h, J, n_samples, seed):
    """Draw from p(x) ∝ exp(Σ h + Σ_{i<j} J) by enumerating all q^L states."""
    length, n_states = h.shape
    states = np.array(list(itertools.product(range(n_states), repeat=length)))
    log_p = h[np.arange(length), states].sum(axis=1)
    for i in range(length):
        for j in range(i + 1, length):
            log_p += J[i, j, states[:, i], states[:, j]]
    p = np.exp(log_p - log_p.max())
    rng = np.random.default_rng(seed)
    return states[rng.choice(len(states), size=n_samples, p=p / p.sum())]
