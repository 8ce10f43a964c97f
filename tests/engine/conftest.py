"""Engine tests run torch single-threaded (fixture ``single_thread`` in tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _engine_single_thread(single_thread):
    yield
