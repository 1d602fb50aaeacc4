"""Fixtures for the simulation tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """Run on one intra-op thread: these problems are tiny, and on a shared 2-core machine
    torch's thread pool spins against other processes (tiny matmuls get ~100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
