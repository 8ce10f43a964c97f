"""Engine tests run torch single-threaded: their tensors are small and many, and on a busy
2-core machine intra-op threads cost more than they give (and timings become erratic)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
