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


def loss_gradients(model: Any, x: Any, y: Any, loss_fn: Any) -> list[np.ndarray]:
    """Gradients of ``mean(loss_fn(y, model(x)))`` for ``model.trainable_variables`` (NumPy).

    Inference mode (``training=False``). Each backend computes gradients its own way; this is
    the one place that knows how.

    Example:
        >>> m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False,
        ...                       kernel_initializer="ones")])
        >>> [g.tolist() for g in loss_gradients(m, np.ones((1, 1)), np.zeros((1, 1)),
        ...                                     keras.losses.mean_squared_error)]
        [[[2.0]]]
    """
    ops = keras.ops
    backend = keras.backend.backend()
    x, y = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
    trainable = model.trainable_variables
    if backend == "jax":
        import jax

        others = [v.value for v in model.non_trainable_variables]

        def loss(values: Any) -> Any:
            pred, _ = model.stateless_call(values, others, x, training=False)
            return ops.mean(loss_fn(y, pred))

        grads = jax.grad(loss)([v.value for v in trainable])
    elif backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = ops.mean(loss_fn(y, model(x, training=False)))
        grads = tape.gradient(value, trainable)
    elif backend == "torch":
        for v in trainable:
            v.value.grad = None
        ops.mean(loss_fn(y, model(x, training=False))).backward()
        grads = [v.value.grad for v in trainable]
        for v in trainable:  # Leave no gradients behind on the model's parameters.
            v.value.grad = None
    else:
        raise NotImplementedError(f"Gradients are not implemented for backend {backend!r}.")
    return [np.zeros(v.shape, "float32") if g is None else np.asarray(ops.convert_to_numpy(g))
            for v, g in zip(trainable, grads)]


def inference_function(model: Any) -> Any:
    """A compiled ``x -> model(x, training=False)`` that returns only when the result is ready.

    JAX: ``jax.jit`` of ``stateless_call``; TensorFlow: ``tf.function``; PyTorch: eager under
    ``torch.no_grad``. Used to time inference with as little framework overhead as each
    backend allows (``predict_on_batch`` adds about a millisecond per call).

    Example:
        >>> f = inference_function(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
        >>> f(np.ones((3, 2), "float32")).shape
        (3, 1)
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        values = ([v.value for v in model.trainable_variables],
                  [v.value for v in model.non_trainable_variables])
        run = jax.jit(lambda t, n, x: model.stateless_call(t, n, x, training=False)[0])
        return lambda x: np.asarray(jax.block_until_ready(run(*values, x)))
    if backend == "tensorflow":
        import tensorflow as tf

        run = tf.function(lambda x: model(x, training=False))
        return lambda x: run(x).numpy()
    if backend == "torch":
        import torch

        def run_torch(x: Any) -> Any:
            with torch.no_grad():
                return keras.ops.convert_to_numpy(model(x, training=False))

        return run_torch
    return lambda x: np.asarray(model.predict_on_batch(x))


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
