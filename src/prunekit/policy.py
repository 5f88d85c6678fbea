"""Model-level rules for what to prune: ``PruningPolicy`` and ``PruneForLatencyOnXNNPack``.

A policy is consulted by :func:`prunekit.prune_low_magnitude` when it prunes a whole model:
``ensure_model_supports_pruning(model)`` first (it raises ``ValueError`` to refuse the model),
then ``allow_pruning(layer)`` for each layer (False leaves the layer as it is).

Example:
    >>> import keras, prunekit
    >>> class DenseOnly(PruningPolicy):
    ...     def allow_pruning(self, layer):
    ...         return isinstance(layer, keras.layers.Dense)
    ...     def ensure_model_supports_pruning(self, model):
    ...         pass
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
    ...                           keras.layers.Dropout(0.1)])
    >>> pruned = prunekit.prune_low_magnitude(model, pruning_policy=DenseOnly())
    >>> [type(layer).__name__ for layer in pruned.layers]
    ['PruneLowMagnitude', 'Dropout']
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from typing import Any

import keras

from prunekit import _keras_compat, walk

_L = keras.layers
_XNNPACK_ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "sigmoid")


class PruningPolicy(abc.ABC):
    """Decides which layers of a model are pruned, and which models may be pruned at all.

    Subclass it and implement both methods; pass an instance as ``pruning_policy`` to
    :func:`prunekit.prune_low_magnitude`.

    Example:
        >>> class Nothing(PruningPolicy):
        ...     def allow_pruning(self, layer):
        ...         return False
        ...     def ensure_model_supports_pruning(self, model):
        ...         pass
        >>> Nothing().allow_pruning(keras.layers.Dense(2))
        False
    """

    @abc.abstractmethod
    def allow_pruning(self, layer: keras.layers.Layer) -> bool:
        """Return whether ``layer`` should be wrapped for pruning."""

    @abc.abstractmethod
    def ensure_model_supports_pruning(self, model: keras.Model) -> None:
        """Raise ``ValueError`` if ``model`` cannot be pruned under this policy."""


class PruneForLatencyOnXNNPack(PruningPolicy):
    """Prune only 1x1 ``Conv2D`` layers of a model that XNNPACK's sparse inference can run.

    The model must be a built Sequential or Functional model containing, in every input
    branch, a ``Conv2D`` 3x3 / stride 2 / 'valid' over 3 input channels right after a
    ``ZeroPadding2D(1)``, and in every output branch a ``GlobalAveragePooling2D``; every layer
    in between must be supported by XNNPACK's sparse subgraph (1x1 ``Conv2D``, suitable
    ``DepthwiseConv2D``, ``Add``, ``Multiply``, ``ZeroPadding2D``, ReLU-family activations,
    ``BatchNormalization`` on the channel axis, bilinear ``UpSampling2D``, ``Dropout``,
    ``GlobalAveragePooling2D`` with ``keepdims``, and the Keras operations ``x + y``,
    ``x - y`` and ``x * y`` with the ``Identity`` layer -- tfmot's ``TFOpLambda`` add,
    subtract, multiply and identity). Semantics and messages follow tfmot.

    References: Fast Sparse ConvNets (arXiv:1911.09723); XNNPACK sparse inference.

    Example:
        >>> i = keras.Input((8, 8, 3))
        >>> x = keras.layers.ZeroPadding2D(1)(i)
        >>> x = keras.layers.Conv2D(8, 3, strides=2, padding="valid")(x)
        >>> x = keras.layers.Conv2D(8, 1)(x)
        >>> model = keras.Model(i, keras.layers.GlobalAveragePooling2D()(x))
        >>> PruneForLatencyOnXNNPack().ensure_model_supports_pruning(model)
    """

    def allow_pruning(self, layer: keras.layers.Layer) -> bool:
        """Allow only ``Conv2D`` layers (subclasses too) with a 1x1 kernel."""
        layer = walk.unwrap(layer)
        return isinstance(layer, _L.Conv2D) and tuple(layer.kernel_size) == (1, 1)

    # ------------------------------------------------------------------------ graph walking
    # Layers and Keras Operation nodes (`x + r`) alike, through prunekit.walk.
    @staticmethod
    def _lookup_layers(sources: Iterable[Any], stop: Callable[[Any], bool],
                       step: Callable[[Any], list[Any]]) -> set[Any]:
        """Walk from ``sources`` until ``stop`` holds; a dead end anywhere gives no result."""
        to_visit, seen, found = list(sources), set(map(id, sources)), set()
        while to_visit:
            layer = to_visit.pop()
            if stop(layer):
                found.add(layer)
                continue
            following = step(layer)
            if not following:
                return set()
            for nxt in following:
                if id(nxt) not in seen:
                    seen.add(id(nxt))
                    to_visit.append(nxt)
        return found

    @staticmethod
    def _padding_is(layer: Any, pad: int) -> bool:
        return (isinstance(layer, _L.ZeroPadding2D)
                and tuple(map(tuple, layer.padding)) == ((pad, pad), (pad, pad)))

    def _is_start(self, layer: Any) -> bool:
        """Conv2D 3x3 over 3 channels, stride 2, 'valid', fed only by ZeroPadding2D(1)."""
        if not isinstance(layer, _L.Conv2D) or not hasattr(layer, "kernel"):
            return False
        producers = walk.producers(layer)
        return (tuple(layer.kernel.shape[:3]) == (3, 3, 3) and tuple(layer.strides) == (2, 2)
                and layer.padding.lower() == "valid" and len(producers) == 1
                and self._padding_is(producers[0], 1))

    def _depthwise_supported(self, layer: Any) -> bool:
        producers = walk.producers(layer)
        padded = producers[0] if len(producers) == 1 else None
        size, strides = tuple(layer.kernel_size), tuple(layer.strides)
        padding = layer.padding.lower()
        cases = [
            size == (k, k) and ((strides == (1, 1) and padding == "same")
                                or (strides == (2, 2) and padding == "valid"
                                    and self._padding_is(padded, k // 2)))
            for k in (3, 5)
        ]
        return (layer.depth_multiplier == 1 and tuple(layer.dilation_rate) == (1, 1)
                and any(cases))

    def _is_supported(self, layer: Any) -> bool:
        """Whether XNNPACK's sparse subgraph can run ``layer`` (a layer or an operation)."""
        if walk.is_operation_node(layer):
            return isinstance(layer, _keras_compat.ELEMENTWISE_OPS)
        simple = (_L.Add, _L.Multiply, _L.ZeroPadding2D, _L.ReLU, _L.LeakyReLU, _L.ELU,
                  _L.Dropout, _L.Identity)  # Identity: tfmot's TFOpLambda `tf.identity`.
        if isinstance(layer, simple):
            return True
        if isinstance(layer, _L.DepthwiseConv2D):
            return self._depthwise_supported(layer)
        if isinstance(layer, _L.Conv2D):
            return (layer.groups == 1 and tuple(layer.dilation_rate) == (1, 1)
                    and tuple(layer.kernel_size) == (1, 1) and tuple(layer.strides) == (1, 1))
        if isinstance(layer, _L.GlobalAveragePooling2D):
            return bool(layer.keepdims)
        if isinstance(layer, _L.BatchNormalization):
            axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
            return [a % 4 for a in axis] == [3]
        if isinstance(layer, _L.UpSampling2D):
            return layer.interpolation == "bilinear"
        if isinstance(layer, _L.Activation):
            return keras.activations.serialize(layer.activation) in _XNNPACK_ACTIVATIONS
        return False

    # ------------------------------------------------------------------------ the check
    def ensure_model_supports_pruning(self, model: keras.Model) -> None:
        """Raise ``ValueError`` unless ``model`` has an XNNPACK-sparse-compatible graph."""
        if not walk.is_graph_model(model):
            raise ValueError("Subclassed models are not supported currently.")
        if not model.built or not model.inputs:
            raise ValueError("Unbuilt models are not supported currently.")
        start = self._lookup_layers(walk.input_operations(model), self._is_start,
                                    walk.consumers)
        if not start:
            raise ValueError(
                "Could not find `Conv2D 3x3` layer with stride 2x2, `input filters == 3` and "
                "`VALID` padding and preceding `ZeroPadding2D` with `padding == 1` in all "
                "input branches of the model")
        end = self._lookup_layers(walk.output_operations(model),
                                  lambda layer: isinstance(layer, _L.GlobalAveragePooling2D),
                                  walk.producers)
        if not end:
            raise ValueError(
                "Could not find a `GlobalAveragePooling2D` layer in all output branches")
        end_ids = {id(layer) for layer in end}

        def visit(layer: Any) -> bool:
            if id(layer) not in end_ids and not self._is_supported(layer):
                raise ValueError(f"Layer {type(layer).__name__} is not supported for the "
                                 f"{type(self).__name__} pruning policy")
            return id(layer) in end_ids

        self._lookup_layers([c for layer in start for c in walk.consumers(layer)], visit,
                            walk.consumers)
