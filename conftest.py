"""Fixtures shared by the tests and the benchmarks."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """One torch thread: the setting at which torch's CPU kernels repeat bit for bit from one
    process to the next (with more, a kernel may split its work differently), and the fastest
    for small tensor ops on 2 busy cores. The previous count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
