"""The one place where prunekit deals with differences between backends.

* Reading the pruning step. The wrapper must refuse to train when ``UpdatePruningStep`` was
  not used. Eagerly (PyTorch, and JAX/TensorFlow outside a trace) the new step has a value and
  is checked directly; under ``jax.jit`` and ``tf.function`` it is a traced value that cannot be
  tested in Python (and JAX has no portable in-graph assertion), so :func:`concrete_value`
  returns None and the wrapper decides from a Python flag the callback sets instead.
* Full precision under mixed precision: :func:`full_precision_scope` (see its docstring for
  the Torch-specific reason).
* The masked weight's straight-through estimator, :func:`masked_weight`: one fused expression
  under XLA (JAX, TensorFlow), one autograd function on eager PyTorch.

Keras internals used here (and the JAX trainer's state re-attachment after a failed step) live
in :mod:`prunekit._keras_compat`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from prunekit._keras_compat import AutocastScope


def concrete_value(value: Any) -> np.ndarray | None:
    """Return a variable's or tensor's current value as NumPy if it is concrete, else None.

    Example:
        >>> v = keras.Variable(3, dtype="int32", trainable=False)
        >>> int(concrete_value(v)), int(concrete_value(keras.ops.add(v.value, 1)))
        (3, 4)
    """
    if isinstance(value, keras.Variable):
        value = value.value
    try:
        return np.asarray(keras.ops.convert_to_numpy(value))
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


def masked_weight(value: Any, mask: Any, straight_through: bool) -> Any:
    """``value * mask``; with ``straight_through``, its gradient flows to ``value`` unmasked.

    The straight-through form is ``value + stop_gradient(value * mask - value)``: its value is
    exactly ``value * mask`` and its gradient with respect to ``value`` is the identity (see
    :mod:`prunekit.wrapper`). JAX and TensorFlow compile it into one fused loop; PyTorch runs
    eagerly, where its four element-wise passes over every pruned weight would run one by one
    at each training step, so there a small autograd function does one multiplication forward
    and passes the gradient through unchanged.

    Args:
        value: The weight, any shape, float.
        mask: 0/1 of ``value``'s shape, any dtype (cast to ``value``'s).
        straight_through: True in training (gradient flows to pruned weights too).

    Returns:
        ``value * mask`` in ``value``'s dtype.

    Example:
        >>> w = keras.ops.convert_to_tensor([1.0, -2.0])
        >>> keras.ops.convert_to_numpy(masked_weight(w, keras.ops.convert_to_tensor([0, 1]),
        ...                                          straight_through=True)).tolist()
        [0.0, -2.0]
    """
    mask = keras.ops.cast(mask, value.dtype)
    if not straight_through:
        return keras.ops.multiply(value, mask)
    if keras.backend.backend() == "torch":
        return _torch_straight_through().apply(value, mask)
    masked = keras.ops.multiply(value, mask)
    return value + keras.ops.stop_gradient(masked - value)


_TORCH_STRAIGHT_THROUGH: list[Any] = []


def _torch_straight_through() -> Any:
    """A ``torch.autograd.Function``: forward ``w * mask``, backward the identity for ``w``."""
    if not _TORCH_STRAIGHT_THROUGH:
        import torch

        class StraightThrough(torch.autograd.Function):
            @staticmethod
            def forward(ctx: Any, weight: Any, mask: Any) -> Any:
                return weight * mask

            @staticmethod
            def backward(ctx: Any, grad: Any) -> tuple[Any, None]:
                return grad, None

        _TORCH_STRAIGHT_THROUGH.append(StraightThrough)
    return _TORCH_STRAIGHT_THROUGH[0]
