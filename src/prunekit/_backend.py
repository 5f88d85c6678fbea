"""The one place where prunekit deals with differences between backends.

* Reading the pruning step. The wrapper must refuse to train when ``UpdatePruningStep`` was
  not used. Eagerly (PyTorch, and JAX/TensorFlow outside a trace) the new step has a value and
  is checked directly; under ``jax.jit`` and ``tf.function`` it is a traced value that cannot be
  tested in Python (and JAX has no portable in-graph assertion), so :func:`concrete_value`
  returns None and the wrapper decides from a Python flag the callback sets instead.
* Full precision under mixed precision: :func:`full_precision_scope` (see its docstring for
  the Torch-specific reason).

Keras internals used here (and the JAX trainer's state re-attachment after a failed step) live
in :mod:`prunekit._keras_compat`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from prunekit._keras_compat import AutocastScope


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


def full_precision_scope() -> Any:
    """A scope in which float variables read and write in their storage dtype.

    Inside a mixed-precision layer call Keras casts variables to the compute dtype when they
    are read (so masks would be ranked on float16 copies, where rounding creates ties) -- and
    on the Torch backend ``variable.assign`` then writes into that cast copy and is lost
    (its assignment copies into the variable's current value). Reading and assigning pruning
    state inside this scope avoids both, on every backend.

    Example:
        >>> with full_precision_scope():
        ...     pass
    """
    return AutocastScope(None)


def full_precision(variable: Any) -> Any:
    """The variable's value in its storage dtype, even inside a mixed-precision layer call.

    Example:
        >>> float(full_precision(keras.Variable(1.5)))
        1.5
    """
    with full_precision_scope():
        return keras.ops.convert_to_tensor(variable.value)
