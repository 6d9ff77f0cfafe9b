"""Every policy test runs torch on one thread (`one_torch_thread` in tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    yield
