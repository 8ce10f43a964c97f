"""Memory estimates and the refusal message."""

from __future__ import annotations

import pytest
import torch

from potts_gwg.errors import InputError, ResourceError
from potts_gwg.fit.memory import (
    HOST_ALLOCATOR_SLACK_BYTES,
    check_fit_memory,
    fit_bytes,
    largest_length,
    parse_size,
    plm_bytes,
)


def test_estimate_grows_with_length_and_sequences():
    assert plm_bytes(1000, 200, 21, 10) < plm_bytes(1000, 400, 21, 10)
    assert plm_bytes(1000, 200, 21, 10) < plm_bytes(100000, 200, 21, 10)


def test_largest_length_is_the_boundary():
    budget = 8 * 2**30
    length = largest_length(5000, 21, 10, budget)
    assert plm_bytes(5000, length, 21, 10) <= budget < plm_bytes(5000, length + 1, 21, 10)


def test_synthetic_l1000_fits_an_80_gb_gpu_by_the_estimate():
    assert plm_bytes(5000, 1000, 21, 10, on_gpu=True) < 78 * 2**30


def test_refusal_names_estimate_and_largest_length():
    with pytest.raises(ResourceError, match=r"needs about .* the largest L that fits .* is \d+"):
        check_fit_memory(5000, 1000, 21, 10, torch.device("cpu"), max_memory=2**30)


@pytest.mark.parametrize("text, expected", [("8G", 8 * 2**30), ("512M", 512 * 2**20),
                                            ("1.5GiB", int(1.5 * 2**30)), ("1000", 1000)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_rejects_nonsense():
    with pytest.raises(InputError, match="--max-memory"):
        parse_size("lots")



def test_plm_estimate_covers_the_measured_peak():
    """benchmarks/fit_memory.py measured 16.42 and 16.14 coupling-sized arrays at the PLM peak
    (L = 200 and 300, N = 2000, history 5: 15 arrays and two (N, L·q) buffers)."""
    for length, measured in ((200, 16.42), (300, 16.14)):
        array_bytes = (length * 21) ** 2 * 4
        estimate = plm_bytes(2000, length, 21, 5)
        assert measured * array_bytes < estimate < (measured + 2) * array_bytes
    # On an H200 (2026-12-04, with the one-hot rows the GPU multiplies by): 16.94 at L = 300.
    array_bytes = (300 * 21) ** 2 * 4
    assert 16.94 * array_bytes < plm_bytes(2000, 300, 21, 5, on_gpu=True) \
        < 18.94 * array_bytes


def test_pcd_estimate_counts_its_optimizer_and_start():
    """benchmarks/fit_memory.py measures the peaks this formula must cover: 8.3 and 14.4
    coupling-sized arrays for plain steps and Adam with glibc's default allocator, against 9
    and 15; 9.14 and 14.28 on an H200 (L = 300), against 10 and 16 there; with the command's
    allocator settings 11.0 and 16.0 at L = 200, which the CPU slack (3.6 such arrays there)
    covers."""
    array_bytes = (200 * 21) ** 2 * 4
    plain = fit_bytes(200, 200, 21, 5, pcd_chains=16, plm_init=False)
    adam = fit_bytes(200, 200, 21, 5, pcd_chains=16, plm_init=False, adam=True)
    assert 9 * array_bytes < plain < 10 * array_bytes
    on_gpu = fit_bytes(200, 200, 21, 5, pcd_chains=16, plm_init=False, on_gpu=True)
    assert on_gpu - plain == array_bytes
    assert adam - plain == 6 * array_bytes
    assert fit_bytes(200, 200, 21, 5, pcd_chains=16) == max(plain, plm_bytes(200, 200, 21, 5))
    needed = plain + HOST_ALLOCATOR_SLACK_BYTES  # on a CPU
    with pytest.raises(ResourceError, match="a PCD fit with 16 chains of L=200"):
        check_fit_memory(200, 200, 21, 5, torch.device("cpu"), max_memory=needed - 1,
                         pcd_chains=16, plm_init=False)
    assert check_fit_memory(200, 200, 21, 5, torch.device("cpu"), max_memory=needed,
                            pcd_chains=16, plm_init=False) == needed
