"""Blocked row sums equal one ``embedding_bag`` call, bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from potts_gwg.row_sums import CACHE_BYTES, column_block, summed_rows


@pytest.mark.parametrize("n_rows, width", [(3318, 3318), (9, 5), (5000, 1000), (700, 16)])
def test_two_dimensional_bags_equal_one_call(n_rows, width):
    generator = torch.Generator().manual_seed(n_rows)
    table = torch.randn(n_rows, width, generator=generator)
    indices = torch.randint(0, n_rows, (257, 40), generator=generator)
    expected = functional.embedding_bag(indices, table, mode="sum")
    assert torch.equal(summed_rows(indices, table), expected)


def test_flat_bags_with_offsets_and_weights_equal_one_call():
    # the shape of PLM's transposed lookup and of the weighted pair frequencies: bags of
    # different sizes, an empty one among them
    generator = torch.Generator().manual_seed(1)
    table = torch.randn(4000, 777, generator=generator)
    indices = torch.randint(0, 4000, (3000,), generator=generator)
    offsets = torch.tensor([0, 5, 5, 100, 2999])
    weights = torch.rand(3000, generator=generator)
    expected = functional.embedding_bag(indices, table, offsets, mode="sum",
                                        per_sample_weights=weights)
    assert torch.equal(summed_rows(indices, table, offsets, weights), expected)


@pytest.mark.parametrize("n_rows, width", [(3318, 3318), (9, 5)])  # blocks, one block
def test_sums_written_into_a_given_buffer_equal_one_call(n_rows, width):
    generator = torch.Generator().manual_seed(3)
    table = torch.randn(n_rows, width, generator=generator)
    indices = torch.randint(0, n_rows, (100, 12), generator=generator)
    buffer = torch.full((100, width), float("nan"))
    assert summed_rows(indices, table, out=buffer) is buffer
    assert torch.equal(buffer, functional.embedding_bag(indices, table, mode="sum"))


def test_a_buffer_of_another_shape_or_dtype_is_refused():
    table, indices = torch.randn(9, 5), torch.zeros(4, 2, dtype=torch.long)
    for buffer in (torch.empty(5, 5), torch.empty(4, 5, dtype=torch.float64)):
        with pytest.raises(ValueError, match=r"out must be \(4, 5\) torch.float32"):
            summed_rows(indices, table, out=buffer)


def test_gradient_flows_to_the_table_as_with_one_call():
    generator = torch.Generator().manual_seed(2)
    table = torch.randn(3000, 300, generator=generator, requires_grad=True)
    indices = torch.randint(0, 3000, (50, 7), generator=generator)
    (summed_rows(indices, table) ** 2).sum().backward()
    blocked = table.grad.clone()
    table.grad = None
    (functional.embedding_bag(indices, table, mode="sum") ** 2).sum().backward()
    assert torch.allclose(blocked, table.grad, rtol=1e-6, atol=1e-6)


def test_a_block_fits_the_cache_unless_the_table_is_too_tall():
    assert column_block(3318, 4) == 64            # 849 KiB of DHFR's coupling matrix
    assert column_block(10, 4) == 256             # short tables: widest block
    assert column_block(100_000, 4) == 16         # tall tables: narrowest, even if larger
    for rows in (100, 3318, 9618, 15260):
        block = column_block(rows, 4)
        assert block == 16 or block * rows * 4 <= CACHE_BYTES
