"""What a trained model holds and takes: kernel sparsity, zeros, and its compressed sizes.

The article's gzipped size is :func:`prunekit.export.sizes.gzipped_size` (one function for every
command); this module adds the figures the study and the sweep put beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _arrays(weights: Any) -> list[np.ndarray]:
    import keras

    return [np.asarray(keras.ops.convert_to_numpy(w)) for w in weights]


def kernel_sparsity(model: Any) -> dict[str, float]:
    """Fraction of exact zeros in each kernel of a plain (stripped) model, by layer name.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="d")])
        >>> _ = model.layers[0].kernel.assign([[0.0, 1.0], [0.0, 0.0]])
        >>> kernel_sparsity(model)
        {'d': 0.75}
    """
    result = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            result[layer.name] = float(np.mean(_arrays([kernel])[0] == 0))
    return result


def zero_counts(model: Any, layers: set[str] | None = None) -> tuple[int, int]:
    """``(zeros, elements)`` over the kernels of ``layers`` (``None``: every kernel).

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="d")])
        >>> _ = model.layers[0].kernel.assign([[0.0, 1.0], [0.0, 0.0]])
        >>> zero_counts(model)
        (3, 4)
    """
    zeros = total = 0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and (layers is None or layer.name in layers):
            values = _arrays([kernel])[0]
            zeros, total = zeros + int(np.sum(values == 0)), total + values.size
    return zeros, total


def weight_counts(model: Any) -> tuple[int, int]:
    """``(weights, nonzeros)`` over every weight of ``model`` (biases included).

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
        >>> weight_counts(model)[0]
        6
    """
    arrays = _arrays(model.weights)
    return int(sum(a.size for a in arrays)), int(sum(np.count_nonzero(a) for a in arrays))


def int8_size(model: Any) -> int | None:
    """Bytes of :mod:`prunekit.export`'s int8 compressed sparse format of a plain model.

    Returns:
        The size, or ``None`` when the model cannot be encoded (the figure is optional: it must
        never sink a run).

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(128)])
        >>> 0 < int8_size(model) < 10 * 128 * 4
        True
    """
    from prunekit.export import encode_model

    try:
        return len(encode_model(model, "int8").data)
    except Exception:  # noqa: BLE001 - an optional column must never sink a run.
        return None
