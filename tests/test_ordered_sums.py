"""Thread-count-independent reductions: right values, same bits on 1, 2 and 3 threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from potts_gwg.ordered_sums import BLOCK, CHUNK, ordered_dot, ordered_sum

# Lengths: below one chunk, whole chunks, a partial chunk, several blocks plus a tail.
LENGTHS = (1, 1000, 4 * CHUNK, 4 * CHUNK + 17, 2 * BLOCK + 3 * CHUNK + 5)


@pytest.mark.parametrize("length", LENGTHS)
def test_values_match_a_float64_reference(length):
    generator = torch.Generator().manual_seed(length)
    left = torch.randn(length, generator=generator)
    right = torch.randn(length, generator=generator)
    expected_dot = float(left.double().dot(right.double()))
    expected_sum = float(left.double().sum())
    # float32 products and chunk sums: relative error ~1e-7 per term, random signs.
    tolerance = 1e-5 * np.sqrt(length)
    assert ordered_dot(left, right) == pytest.approx(expected_dot, abs=tolerance)
    assert ordered_sum(left) == pytest.approx(expected_sum, abs=tolerance)
    assert ordered_sum(left.view(1, -1)) == ordered_sum(left)


def test_empty_vectors_sum_to_zero():
    assert ordered_sum(torch.zeros(0)) == 0.0
    assert ordered_dot(torch.zeros(0), torch.zeros(0)) == 0.0


def test_results_do_not_depend_on_the_thread_count(restore_threads):
    generator = torch.Generator().manual_seed(0)
    left = torch.randn(BLOCK + 12_345, generator=generator)
    right = torch.randn(BLOCK + 12_345, generator=generator)
    results = set()
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        results.add((ordered_dot(left, right), ordered_sum(left)))
    assert len(results) == 1
