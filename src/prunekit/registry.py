"""What may be pruned: the prunable weights of each Keras layer class, and ``PrunableLayer``.

Three answers to "which weights of this layer are pruned", checked in this order:

1. the layer implements :class:`PrunableLayer` (or, duck-typed, has a ``get_prunable_weights``
   method): it says itself;
2. its class is registered here (built-in Keras layers, or ``register_prunable`` for your own):
   the named attributes;
3. it is a *container* -- a built-in one (``LSTM``/``GRU``/``SimpleRNN``/``RNN`` and their
   cells, ``ConvLSTM1D/2D/3D``, ``StackedRNNCells``, ``Bidirectional``, ``TimeDistributed``) or a
   custom layer or subclassed model made of sub-layers and holding no weights of its own: its
   prunable weights are those of its parts, and it is supported when every part is;
4. built-in layers without prunable weights (normalization, pooling, preprocessing, ...) pass
   through: supported, nothing to prune;
5. otherwise the layer is unsupported and pruning it raises an error naming both fixes.

Matching is on the exact class, as in tfmot: a subclass of ``Dense`` is not assumed to keep
``Dense``'s meaning of ``kernel``; register it or implement ``get_prunable_weights``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import keras

from prunekit._keras_compat import ConvLSTMCell, direct_sub_layers, own_variables

_L = keras.layers
_RECURRENT = ("kernel", "recurrent_kernel")
_ATTENTION = ("_query_dense.kernel", "_key_dense.kernel", "_value_dense.kernel",
              "_output_dense.kernel")

# Built-in layers and the attribute names of their prunable weights. Biases are never pruned.
_PRUNABLE: dict[type, tuple[str, ...]] = {
    _L.Dense: ("kernel",),
    _L.EinsumDense: ("kernel",),
    _L.Conv1D: ("kernel",),
    _L.Conv2D: ("kernel",),
    _L.Conv3D: ("kernel",),
    _L.Conv1DTranspose: ("kernel",),
    _L.Conv2DTranspose: ("kernel",),
    _L.Conv3DTranspose: ("kernel",),
    _L.SeparableConv1D: ("pointwise_kernel",),
    _L.SeparableConv2D: ("pointwise_kernel",),
    # tfmot silently leaves depthwise kernels unpruned; prunekit prunes them.
    _L.DepthwiseConv1D: ("kernel",),  # Keras 3 names the depthwise kernel `kernel`.
    _L.DepthwiseConv2D: ("kernel",),
    _L.Embedding: ("embeddings",),
    _L.LSTMCell: _RECURRENT,
    _L.GRUCell: _RECURRENT,
    _L.SimpleRNNCell: _RECURRENT,
    ConvLSTMCell: _RECURRENT,
    # The four projection kernels (rank 3: block and m-by-n sparsity do not apply), as in tfmot.
    _L.MultiHeadAttention: _ATTENTION,
    _L.GroupQueryAttention: _ATTENTION,
}

# Built-in layers whose prunable weights depend on their configuration.
_PRUNABLE_BY_CONFIG: dict[type, Callable[[Any], tuple[str, ...]]] = {
    _L.ReversibleEmbedding: lambda layer: ("embeddings",) if layer.tie_weights
    else ("embeddings", "reverse_embeddings"),
}

# Built-in containers: the sub-layers that hold their weights.
_CONTAINERS: dict[type, Callable[[Any], list[Any]]] = {
    **{cls: (lambda layer: [layer.cell]) for cls in (
        _L.RNN, _L.LSTM, _L.GRU, _L.SimpleRNN, _L.ConvLSTM1D, _L.ConvLSTM2D, _L.ConvLSTM3D)},
    _L.StackedRNNCells: lambda layer: list(layer.cells),
    _L.Bidirectional: lambda layer: [layer.forward_layer, layer.backward_layer],
    _L.TimeDistributed: lambda layer: [layer.layer],
}

# Built-in layers prunekit cannot see into: base classes, and wrappers of foreign code whose
# weights Keras does not describe (JAX/Flax/Torch modules, SavedModels) or rewrites in `call`.
_OPAQUE: frozenset[type] = frozenset({
    _L.Layer, _L.Wrapper, _L.InputLayer, _L.JaxLayer, _L.FlaxLayer, _L.TorchModuleWrapper,
    _L.TFSMLayer, _L.SpectralNormalization, _L.Pipeline,
})


def _builtin_layer_classes() -> set[type]:
    return {obj for obj in vars(_L).values()
            if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)}


# Every other built-in Keras layer has nothing to prune (normalization, pooling, reshaping,
# merging, attention scores, preprocessing...): generated from `keras.layers`, so new Keras
# layers are covered; tests/test_coverage_passthrough.py checks that none holds a prunable weight.
_PASS_THROUGH: frozenset[type] = frozenset(
    _builtin_layer_classes() - set(_PRUNABLE) - set(_PRUNABLE_BY_CONFIG) - set(_CONTAINERS)
    - _OPAQUE
)


class PrunableLayer(abc.ABC):
    """Mixin for custom layers that say which of their weights may be pruned.

    Implement ``get_prunable_weights()`` returning a list of the layer's variables (any rank;
    biases too, if you wish). Duck typing is accepted: any layer with a
    ``get_prunable_weights`` method is prunable.

    Example:
        >>> class MyDense(keras.layers.Dense, PrunableLayer):
        ...     def get_prunable_weights(self):
        ...         return [self.kernel]
        >>> is_supported(MyDense(3))
        True
    """

    @abc.abstractmethod
    def get_prunable_weights(self) -> list[Any]:
        """Return the variables of this layer that should be pruned."""


def register_prunable(layer_class: type, weight_names: list[str] | tuple[str, ...]) -> None:
    """Register a layer class and the attribute names of its prunable weights.

    Args:
        layer_class: A ``keras.layers.Layer`` subclass (matched exactly, not its subclasses).
        weight_names: Attribute names of the variables to prune, e.g. ``["kernel"]``; an empty
            list registers the class as supported with nothing to prune. Dotted names reach
            into sub-layers (``"_query_dense.kernel"``).

    Raises:
        TypeError: If ``layer_class`` is not a Layer subclass or a name is not a string.

    Example:
        >>> class Scale(keras.layers.Layer):
        ...     def build(self, input_shape):
        ...         self.w = self.add_weight(shape=input_shape[-1:])
        ...     def call(self, x):
        ...         return x * self.w
        >>> register_prunable(Scale, ["w"])
        >>> is_supported(Scale())
        True
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(
            "register_prunable expects a keras.layers.Layer subclass. "
            f"Received: layer_class={layer_class!r}"
        )
    if isinstance(weight_names, str) or not all(isinstance(n, str) for n in weight_names):
        raise TypeError(
            "weight_names must be a list of attribute names (strings). "
            f"Received: weight_names={weight_names!r}"
        )
    _PRUNABLE[layer_class] = tuple(weight_names)


def is_pass_through(layer: Any) -> bool:
    """Return whether ``layer`` is supported with nothing to prune (a built-in without kernels).

    Example:
        >>> is_pass_through(keras.layers.Dropout(0.1)), is_pass_through(keras.layers.Dense(2))
        (True, False)
    """
    return not _declares_weights(layer) and (
        type(layer) in _PASS_THROUGH or isinstance(layer, keras.layers.InputLayer))


def _declares_weights(layer: Any) -> bool:
    """Whether the layer itself names its prunable weights (method or registry entry)."""
    return (callable(getattr(layer, "get_prunable_weights", None))
            or type(layer) in _PRUNABLE or type(layer) in _PRUNABLE_BY_CONFIG)


def sub_layers(layer: Any) -> list[Any]:
    """The direct sub-layers of ``layer`` (cells for recurrent layers, wrapped layers, ...).

    Example:
        >>> [type(part).__name__ for part in sub_layers(keras.layers.LSTM(2))]
        ['LSTMCell']
    """
    if type(layer) in _CONTAINERS:
        return _CONTAINERS[type(layer)](layer)
    return direct_sub_layers(layer)


def is_custom_container(layer: Any) -> bool:
    """Whether ``layer`` is a custom layer or subclassed model pruned through its sub-layers.

    Example:
        >>> class Block(keras.layers.Layer):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.dense = keras.layers.Dense(2)
        >>> is_custom_container(Block()), is_custom_container(keras.layers.Dense(2))
        (True, False)
    """
    return (not _declares_weights(layer) and not is_pass_through(layer)
            and type(layer) not in _CONTAINERS and bool(sub_layers(layer)))


def own_weight_names(layer: Any) -> list[str]:
    """Names of the variables ``layer`` creates itself (not through sub-layers)."""
    return [v.name for v in own_variables(layer)]


def find_unsupported(layer: Any, path: str | None = None) -> tuple[Any, str, str] | None:
    """Find the layer that keeps ``layer`` from being pruned: ``(culprit, its path, reason)``.

    The culprit is ``layer`` itself or, for a container, the innermost part at fault (a custom
    RNN cell, a sub-layer of a custom block). Returns None when ``layer`` can be pruned.

    Example:
        >>> find_unsupported(keras.layers.LSTM(2)) is None
        True
        >>> class Odd(keras.layers.Layer):
        ...     pass
        >>> find_unsupported(Odd(name="odd"))[1:]
        ('odd', 'its class Odd is neither a built-in layer prunekit knows nor a PrunableLayer')
    """
    path = path or layer.name
    if _declares_weights(layer) or is_pass_through(layer):
        return None
    if type(layer) not in _CONTAINERS:
        if not is_custom_container(layer):
            return layer, path, (f"its class {type(layer).__name__} is neither a built-in layer "
                                 "prunekit knows nor a PrunableLayer")
        own = own_weight_names(layer)
        if own:
            return layer, path, (f"it holds weights of its own ({', '.join(own)}) besides its "
                                 "sub-layers, and prunekit cannot tell whether they may be pruned")
    for part in sub_layers(layer):
        found = find_unsupported(part, f"{path}/{part.name}")
        if found is not None:
            return found
    return None


def unsupported_reason(layer: Any) -> str | None:
    """Return why ``layer`` cannot be pruned, or None when it can.

    Example:
        >>> unsupported_reason(keras.layers.Bidirectional(keras.layers.GRU(2))) is None
        True
    """
    found = find_unsupported(layer)
    if found is None:
        return None
    culprit, path, reason = found
    return reason if culprit is layer else f"its part '{path}' cannot be pruned: {reason}"


def is_supported(layer: Any) -> bool:
    """Return whether ``layer`` can be wrapped for pruning.

    Example:
        >>> is_supported(keras.layers.Dense(2)), is_supported(keras.layers.Dropout(0.1))
        (True, True)
    """
    return unsupported_reason(layer) is None


def _resolve(layer: Any, dotted: str) -> Any:
    obj = layer
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def get_prunable_weights(layer: Any) -> list[Any]:
    """Return the variables of a built ``layer`` that pruning masks.

    For a container (an RNN, ``Bidirectional``, a custom block...) these are the prunable
    weights of all its parts, each once.

    Example:
        >>> layer = keras.layers.Dense(3)
        >>> layer.build((None, 4))
        >>> [w.name for w in get_prunable_weights(layer)]
        ['kernel']
    """
    if callable(getattr(layer, "get_prunable_weights", None)):
        return list(layer.get_prunable_weights())
    if type(layer) in _PRUNABLE:
        return [_resolve(layer, name) for name in _PRUNABLE[type(layer)]]
    if type(layer) in _PRUNABLE_BY_CONFIG:
        return [_resolve(layer, name) for name in _PRUNABLE_BY_CONFIG[type(layer)](layer)]
    if is_pass_through(layer):
        return []
    if find_unsupported(layer) is not None:
        raise unsupported_layer_error(layer)
    weights: dict[int, Any] = {}
    for part in sub_layers(layer):
        for weight in get_prunable_weights(part):
            weights.setdefault(id(weight), weight)
    return list(weights.values())


def unsupported_error(path: str, class_name: str, reason: str, detail: str = "") -> ValueError:
    """The error for an unsupported layer: where it is, why, and both fixes.

    Example:
        >>> str(unsupported_error("block/odd", "Odd", "unknown")).split(":")[0]
        "Layer 'block/odd' of class Odd is not supported for pruning"
    """
    return ValueError(
        f"Layer '{path}' of class {class_name} is not supported for pruning: {reason}. Either "
        f"implement `get_prunable_weights()` on {class_name} (see `prunekit.PrunableLayer`; "
        "return the variables to prune), or register its class with "
        f"`prunekit.register_prunable({class_name}, ['kernel'])` (use [] for nothing to "
        "prune). To leave such layers unpruned instead, pass `skip_unsupported=True` to "
        f"`prune_low_magnitude`.{detail}"
    )


def unsupported_layer_error(layer: Any, path: str | None = None) -> ValueError:
    """Build the error raised for a layer prunekit does not know how to prune.

    The message names the layer at fault by its path in the model (for a container, the
    innermost part that is not supported), why, and both fixes.

    Args:
        layer: The layer.
        path: Where the layer sits in the model (``"encoder/block_1"``); default its name.

    Example:
        >>> class Odd(keras.layers.Layer):
        ...     pass
        >>> "register_prunable(Odd" in str(unsupported_layer_error(Odd(name="odd")))
        True
    """
    found = find_unsupported(layer, path)
    culprit, path, reason = found or (layer, path or layer.name, "it is not supported")
    return unsupported_error(path, type(culprit).__name__, reason,
                             f" Received: {type(culprit)}")
