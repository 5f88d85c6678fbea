"""Inference latency of one or more models, timed alternately in one process."""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from prunekit import _backend


def measure_latency(models: list[keras.Model], batch_sizes: tuple[int, ...] = (1, 32),
                    repeats: int = 20, warmup: int = 3, seed: int = 0
                    ) -> list[dict[int, float]]:
    """Median seconds per forward pass of every model at every batch size.

    The models are timed alternately (one call of each in turn, ``repeats`` rounds) on the
    same random input, after ``warmup`` calls each (compilation), with the backend's compiled
    inference function.

    Args:
        models: Models with the same input shape.
        batch_sizes: Batch sizes to time.
        repeats: Timed calls per model and batch size.
        warmup: Untimed calls first.
        seed: Seed of the random input.

    Returns:
        One ``{batch_size: seconds}`` per model.

    Raises:
        ValueError: If ``repeats`` or a batch size is not a positive integer.

    Example:
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> sorted(measure_latency([m], (1, 2), repeats=2, warmup=1)[0])
        [1, 2]
    """
    for name, value in [("repeats", repeats)] + [("batch_size", b) for b in batch_sizes]:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    functions = [_backend.inference_function(m) for m in models]
    rng = np.random.default_rng(seed)
    shape = tuple(d or 1 for d in models[0].inputs[0].shape[1:])
    result: list[dict[int, float]] = [{} for _ in models]
    for batch in batch_sizes:
        x = keras.ops.convert_to_tensor(
            rng.standard_normal((batch, *shape)).astype(models[0].inputs[0].dtype))
        for f in functions:
            for _ in range(warmup):
                f(x)
        times: list[list[float]] = [[] for _ in models]
        for _ in range(repeats):
            for i, f in enumerate(functions):
                start = time.perf_counter()
                f(x)
                times[i].append(time.perf_counter() - start)
        for i in range(len(models)):
            result[i][batch] = float(np.median(times[i]))
    return result
