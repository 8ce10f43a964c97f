"""Site and pair statistics against their one-hot definitions; the Pearson diagnostic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from potts_gwg.fit.statistics import (
    connected_correlations,
    one_hot_rows,
    pair_frequencies,
    pair_mask,
    pearson,
    site_frequencies,
)


def test_pair_frequencies_equal_the_weighted_one_hot_product():
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(4, (300, 7), generator=generator)
    weights = torch.rand(300, generator=generator)
    one_hot = one_hot_rows(x, 4).double()
    expected = one_hot.T @ (one_hot * weights.double()[:, None]) / weights.double().sum()
    # Small chunks exercise the accumulation over chunks.
    pairs = pair_frequencies(x, 4, weights, chunk_bytes=4 * 28 * 50)
    torch.testing.assert_close(pairs.double(), expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(pairs, pairs.T)


def test_unweighted_counts_are_exact():
    x = torch.randint(21, (1000, 30), generator=torch.Generator().manual_seed(1))
    one_hot = one_hot_rows(x, 21)
    assert torch.equal(pair_frequencies(x, 21) * 1000, one_hot.T @ one_hot)


def test_site_frequencies_and_the_pair_diagonal_agree():
    x = torch.randint(3, (50, 4), generator=torch.Generator().manual_seed(2))
    weights = torch.rand(50, generator=torch.Generator().manual_seed(3))
    sites = site_frequencies(x, 3, weights)
    torch.testing.assert_close(sites.sum(1), torch.ones(4))
    torch.testing.assert_close(pair_frequencies(x, 3, weights).diagonal(), sites.reshape(-1))


def test_connected_correlations_cover_each_pair_once():
    length, n_states = 5, 3
    mask = pair_mask(length, n_states)
    assert int(mask.sum()) == length * (length - 1) // 2 * n_states ** 2
    x = torch.randint(n_states, (400, length), generator=torch.Generator().manual_seed(4))
    sites, pairs = site_frequencies(x, n_states), pair_frequencies(x, n_states)
    correlations = connected_correlations(pairs, sites, mask)
    i, a, j, b = 1, 2, 3, 0
    expected = float(((x[:, i] == a) & (x[:, j] == b)).double().mean()
                     - (x[:, i] == a).double().mean() * (x[:, j] == b).double().mean())
    flat = torch.zeros(length * n_states, length * n_states)
    flat[mask] = correlations
    assert float(flat[i * n_states + a, j * n_states + b]) == pytest.approx(expected, abs=1e-6)


def test_pearson_matches_numpy():
    rng = np.random.default_rng(5)
    first, second = rng.normal(size=200), rng.normal(size=200)
    second += first
    assert pearson(torch.tensor(first), torch.tensor(second)) == pytest.approx(
        np.corrcoef(first, second)[0, 1], rel=1e-12)
    assert np.isnan(pearson(torch.zeros(5), torch.ones(5)))
