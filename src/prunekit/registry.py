"""What may be pruned: the prunable weights of each Keras layer class, and ``PrunableLayer``.

Three answers to "which weights of this layer are pruned", checked in this order:

1. the layer implements :class:`PrunableLayer` (or, duck-typed, has a ``get_prunable_weights``
   method): it says itself;
2. its class is registered here (built-in Keras layers, or ``register_prunable`` for your own):
   the named attributes;
3. otherwise the layer is unsupported and pruning it raises an error naming both fixes.

Matching is on the exact class, as in tfmot: a subclass of ``Dense`` is not assumed to keep
``Dense``'s meaning of ``kernel``; register it or implement ``get_prunable_weights``.
"""

from __future__ import annotations

import abc
from typing import Any

import keras

_L = keras.layers

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
    _L.DepthwiseConv1D: ("depthwise_kernel",),
    _L.DepthwiseConv2D: ("depthwise_kernel",),
    _L.Embedding: ("embeddings",),
}

# Layers that are supported but have nothing to prune (they are wrapped and left as they are).
_PASS_THROUGH_NAMES = (
    "ELU", "LeakyReLU", "ReLU", "PReLU", "Softmax", "Activation", "ActivityRegularization",
    "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout", "GaussianDropout", "GaussianNoise",
    "Flatten", "Lambda", "Masking", "Permute", "RepeatVector", "Reshape", "Identity",
    "Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract",
    "BatchNormalization", "LayerNormalization", "UnitNormalization",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
)
_PASS_THROUGH: set[type] = {getattr(_L, n) for n in _PASS_THROUGH_NAMES if hasattr(_L, n)}


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


def is_supported(layer: Any) -> bool:
    """Return whether ``layer`` can be wrapped for pruning.

    Example:
        >>> is_supported(keras.layers.Dense(2)), is_supported(keras.layers.Dropout(0.1))
        (True, True)
    """
    return (
        callable(getattr(layer, "get_prunable_weights", None))
        or type(layer) in _PRUNABLE
        or type(layer) in _PASS_THROUGH
    )


def _resolve(layer: Any, dotted: str) -> Any:
    obj = layer
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def get_prunable_weights(layer: Any) -> list[Any]:
    """Return the variables of a built ``layer`` that pruning masks.

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
    if type(layer) in _PASS_THROUGH:
        return []
    raise unsupported_layer_error(layer)


def unsupported_layer_error(layer: Any) -> ValueError:
    """Build the error raised for a layer prunekit does not know how to prune."""
    name = type(layer).__name__
    return ValueError(
        f"Layer '{getattr(layer, 'name', name)}' of class {name} is not supported for pruning. "
        "Expected a built-in layer with prunable weights (Dense, Conv*, Embedding, ...), a "
        "layer without weights, or a custom layer that implements "
        "`prunekit.PrunableLayer.get_prunable_weights()`; or register its class with "
        f"`prunekit.register_prunable({name}, ['kernel'])`. Received: {type(layer)}"
    )
