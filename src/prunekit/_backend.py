"""The one place where prunekit treats backends differently.

The wrapper must refuse to train when ``UpdatePruningStep`` was not used. Under ``jax.jit`` and
``tf.function`` the step is a traced value that cannot be tested in Python, and JAX has no
portable in-graph assertion. The variable's *stored* value can still be read while tracing:
the trainers pass state in as arguments, but the variable keeps the concrete value it had when
training began, which is exactly what the callback sets (-1 -> 0).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def concrete_value(variable: Any) -> np.ndarray | None:
    """Return the variable's current value as NumPy if it is concrete, else None.

    Example:
        >>> v = keras.Variable(3, dtype="int32", trainable=False)
        >>> int(concrete_value(v))
        3
    """
    try:
        return np.asarray(keras.ops.convert_to_numpy(variable.value))
    except Exception:  # A tracer or symbolic tensor: no value while tracing.
        return None


def stored_value(variable: Any) -> np.ndarray:
    """Return the value held by the variable outside any trace (its stored state).

    Example:
        >>> v = keras.Variable(-1, dtype="int32", trainable=False)
        >>> int(stored_value(v))
        -1
    """
    raw = variable._value  # Backend-native storage, bypassing any StatelessScope mapping.
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # Only TF reads variables through a graph: lift to eager.

        with tf.init_scope():
            return np.asarray(raw.numpy())
    return np.asarray(keras.ops.convert_to_numpy(raw))
