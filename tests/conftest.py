"""Shared test helpers. The suite runs once per backend: KERAS_BACKEND=jax|tensorflow|torch."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


def to_numpy(value):
    """Any variable or tensor as a NumPy array."""
    if hasattr(value, "value"):
        value = value.value
    return np.asarray(keras.ops.convert_to_numpy(value))


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a clean Keras session and a fixed seed."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {BACKEND}"
