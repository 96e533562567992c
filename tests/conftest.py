"""Fixtures every test gets. Shared helpers live in support modules: `tests.shared_data`
(the ../shared location), `tests.gradient_check` (per-backend gradients)."""

import keras
import pytest


@pytest.fixture(autouse=True)
def _reset_policy():
    # A test that sets mixed precision must not leak it into the next one.
    yield
    keras.config.set_dtype_policy("float32")
