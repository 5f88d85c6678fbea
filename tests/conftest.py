"""Shared test helpers. The suite runs once per backend: KERAS_BACKEND=jax|tensorflow|torch."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


def tfmot_keep_count(size, sparsity):
    """How many of ``size`` weights tfmot keeps at ``sparsity`` (tfmot-behaviour.md §3.1).

    ``max(1, round_half_to_even(float32(size) * (1 - float32(sparsity))))``: this NumPy emulation
    matched TF exactly on 1,500 random cases.
    """
    return max(1, int(np.round(np.float32(size) * (np.float32(1) - np.float32(sparsity)))))


def numpy_global_threshold(scores, sparsity):
    """The global threshold over several score arrays: the k-th largest score of them all.

    ``k = tfmot_keep_count(total size, sparsity)``, found by sorting (the library selects it
    without sorting). For magnitude pruning pass ``[abs(w) for w in weights]``.
    """
    flat = np.concatenate([np.asarray(s, np.float32).ravel() for s in scores])
    return np.sort(flat)[::-1][tfmot_keep_count(flat.size, sparsity) - 1]


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
