"""Policy tests run torch on one thread: on a small shared CPU, two OpenMP threads competing with
another busy process made tiny training steps ~20x slower than one thread."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
