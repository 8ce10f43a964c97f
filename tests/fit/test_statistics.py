"""Site and pair statistics against their one-hot definitions; the Pearson diagnostic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from potts_gwg.fit.statistics import (
    correlations_pearson,
    one_hot_rows,
    pair_frequencies,
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


@pytest.mark.parametrize("chunk_bytes", [4 * 28 * 50, 2**20])
def test_pair_frequencies_into_a_reused_buffer_equal_fresh_ones(chunk_bytes):
    generator = torch.Generator().manual_seed(3)
    x = torch.randint(4, (300, 7), generator=generator)
    weights = torch.rand(300, generator=generator)
    buffer = torch.full((28, 28), float("nan"))  # whatever it held is overwritten
    result = pair_frequencies(x, 4, weights, chunk_bytes=chunk_bytes, out=buffer)
    assert result is buffer
    assert torch.equal(buffer, pair_frequencies(x, 4, weights, chunk_bytes=chunk_bytes))


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


def connected_correlations_by_definition(x: np.ndarray, n_states: int) -> np.ndarray:
    """C_ij(a, b) of the rows of ``x`` for every i < j, a, b, from indicator means."""
    length = x.shape[1]
    return np.array([((x[:, i] == a) & (x[:, j] == b)).mean()
                     - (x[:, i] == a).mean() * (x[:, j] == b).mean()
                     for i in range(length) for j in range(i + 1, length)
                     for a in range(n_states) for b in range(n_states)])


def test_correlations_pearson_equals_the_definition_over_each_pair_once():
    length, n_states = 6, 3
    generator = torch.Generator().manual_seed(4)
    x = torch.randint(n_states, (400, length), generator=generator)
    y = x.clone()
    y[:150] = torch.randint(n_states, (150, length), generator=generator)  # partly related
    expected = np.corrcoef(connected_correlations_by_definition(x.numpy(), n_states),
                           connected_correlations_by_definition(y.numpy(), n_states))[0, 1]
    value = correlations_pearson(pair_frequencies(x, n_states), site_frequencies(x, n_states),
                                 pair_frequencies(y, n_states), site_frequencies(y, n_states))
    assert 0.3 < expected < 0.99 and value == pytest.approx(expected, rel=1e-6)
    assert np.isnan(correlations_pearson(pair_frequencies(x[:, :1], n_states),
                                         site_frequencies(x[:, :1], n_states),
                                         pair_frequencies(y[:, :1], n_states),
                                         site_frequencies(y[:, :1], n_states)))


def test_correlations_pearson_in_blocks_of_sites_equals_one_site_at_a_time():
    """The GPU path takes many sites per block (masking the pairs j <= i): same number."""
    generator = torch.Generator().manual_seed(8)
    x = torch.randint(4, (200, 9), generator=generator)
    y = x.clone()
    y[:80] = torch.randint(4, (80, 9), generator=generator)
    arguments = (pair_frequencies(x, 4), site_frequencies(x, 4), pair_frequencies(y, 4),
                 site_frequencies(y, 4))
    one = correlations_pearson(*arguments, sites_per_block=1)
    assert 0.3 < one < 0.99
    for block in (2, 3, 8, 100):
        assert correlations_pearson(*arguments, sites_per_block=block) == \
            pytest.approx(one, rel=1e-12, abs=0)
    assert correlations_pearson(*arguments) == one   # the CPU default: one site


def test_correlations_pearson_does_not_depend_on_the_thread_count():
    """L·q = 1050: block rows of up to 50 × 1000 values, above torch's parallel grain."""
    generator = torch.Generator().manual_seed(6)
    x = torch.randint(21, (300, 50), generator=generator)
    y = torch.randint(21, (300, 50), generator=generator)
    arguments = (pair_frequencies(x, 21), site_frequencies(x, 21), pair_frequencies(y, 21),
                 site_frequencies(y, 21))
    threads = torch.get_num_threads()
    try:
        values = []
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            values.append(correlations_pearson(*arguments))
    finally:
        torch.set_num_threads(threads)
    assert values[0] == values[1] == values[2]


def test_pearson_matches_numpy():
    rng = np.random.default_rng(5)
    first, second = rng.normal(size=200), rng.normal(size=200)
    second += first
    assert pearson(torch.tensor(first), torch.tensor(second)) == pytest.approx(
        np.corrcoef(first, second)[0, 1], rel=1e-12)
    assert np.isnan(pearson(torch.zeros(5), torch.ones(5)))
