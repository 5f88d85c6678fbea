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


def reattach_jax_state() -> None:
    """Give a model back its variable values after a failed first JAX training step.

    Keras's JAX ``fit`` detaches the values from the model's variables while an epoch runs
    (they live in the trainer's local ``state``) and reattaches them at the epoch's end. An
    error raised while the first step is traced -- the missing-callback error -- would leave
    the model without values, unusable for the retry the error message asks for. This finds the
    trainer's ``state`` on the stack and reattaches it, as Keras's ``jax_state_sync`` would.
    Other backends keep values in their variables; nothing to do there.
    """
    if keras.backend.backend() != "jax":
        return
    import inspect

    names = ("trainable_variables", "non_trainable_variables", "optimizer_variables",
             "metrics_variables")
    frame = inspect.currentframe()
    while frame is not None:
        model, state = frame.f_locals.get("self"), frame.f_locals.get("state")
        if (frame.f_code.co_name == "fit" and isinstance(model, keras.Model)
                and isinstance(state, tuple) and len(state) == len(names)):
            owners = (model.trainable_variables, model.non_trainable_variables,
                      model.optimizer.variables, model.metrics_variables)
            for variables, values in zip(owners, state):
                for variable, value in zip(variables, values):
                    variable._direct_assign(value)  # Bypass the trace's StatelessScope.
            return
        frame = frame.f_back


def full_precision_scope() -> Any:
    """A scope in which float variables read and write in their storage dtype.

    Inside a mixed-precision layer call Keras casts variables to the compute dtype when they
    are read (so masks would be ranked on float16 copies, where rounding creates ties) -- and
    on the Torch backend ``variable.assign`` then writes into that cast copy and is lost
    (``Variable._direct_assign`` copies into ``self.value``). Reading and assigning pruning
    state inside this scope avoids both, on every backend.

    Example:
        >>> with full_precision_scope():
        ...     pass
    """
    from keras.src.backend import AutocastScope  # Not exported publicly.

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
