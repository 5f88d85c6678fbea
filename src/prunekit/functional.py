"""Pruning Sequential and Functional models: cloned, with each prunable layer wrapped.

``keras.models.clone_model`` rebuilds the graph; each layer of the clone is a wrapper around
the *original* layer object, so the pruned model shares its weights with the model it came
from (as in tfmot). Nested Sequential/Functional models are cloned recursively. Keras Operation
nodes (``x + y``, ``x * y``, ``ops.concatenate`` on symbolic tensors) are not layers and hold
no weights: they are kept as they are. Everything is validated before anything is cloned, so a
model that cannot be pruned as asked is left untouched. Subclassed models are pruned in place
instead (see :mod:`prunekit.subclassed`, which uses this module for the graph blocks it holds).

Example:
    >>> import keras
    >>> inputs = keras.Input((8,))
    >>> hidden = keras.layers.Dense(8)(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(hidden + inputs))
    >>> pruned = prune_graph_model(model, {}, None, skip_unsupported=False)
    >>> [type(layer).__name__ for layer in pruned.layers]
    ['InputLayer', 'PruneLowMagnitude', 'PruneLowMagnitude']
"""

from __future__ import annotations

from typing import Any

import keras
from keras import tree

from prunekit import _keras_compat, global_pruning, registry, summary, walk
from prunekit.summary import SkippedLayer
from prunekit.wrapper import PruneLowMagnitude


def graph_problems(model: keras.Model, policy: Any, path: str = "") -> dict[int, SkippedLayer]:
    """Every layer of a Sequential/Functional ``model`` (recursively) that cannot be wrapped.

    Returns:
        ``{id(layer): SkippedLayer}``; layers the policy excludes are not problems.

    Example:
        >>> graph_problems(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]), None)
        {}
    """
    problems = {}
    for layer in model.layers:  # Layers only: Operation nodes have nothing to prune.
        where = f"{path}{layer.name}"
        if isinstance(layer, (PruneLowMagnitude, keras.layers.InputLayer)):
            continue
        if walk.is_graph_model(layer):
            problems.update(graph_problems(layer, policy, where + "/"))
        elif policy is None or policy.allow_pruning(layer):
            found = registry.find_unsupported(layer, where)
            if found is not None:  # Named after the culprit: a container's unsupported part.
                culprit, culprit_path, reason = found
                problems[id(layer)] = SkippedLayer(culprit_path, type(culprit).__name__, reason)
    return problems


def clone_pruned(model: keras.Model, params: dict[str, Any], policy: Any,
                 skip: set[int] | frozenset[int] = frozenset()) -> keras.Model:
    """Clone a validated graph model, wrapping every layer not in ``skip`` that may be pruned.

    Example:
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> [type(layer).__name__ for layer in clone_pruned(model, {}, None).layers]
        ['PruneLowMagnitude']
    """
    def clone(layer: Any) -> Any:
        if walk.is_operation_node(layer):
            return layer  # `x + y` and friends: no weights, reused as they are.
        if walk.is_graph_model(layer):
            return clone_pruned(layer, params, policy, skip)
        if isinstance(layer, (PruneLowMagnitude, keras.layers.InputLayer)) or id(layer) in skip:
            return layer
        if policy is not None and not policy.allow_pruning(layer):
            return layer
        return PruneLowMagnitude(layer, **params)

    return clone_graph(model, clone)


def prune_graph_model(model: keras.Model, params: dict[str, Any], policy: Any,
                      skip_unsupported: bool) -> keras.Model:
    """Validate, then clone a Sequential/Functional model with wrapped layers.

    The layers left unpruned (``skip_unsupported``) are recorded for
    :func:`prunekit.pruning_report`.

    Example:
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> pruned = prune_graph_model(model, {}, None, False)
        >>> summary.pruning_report(pruned).skipped
        ()
    """
    if policy is not None:
        policy.ensure_model_supports_pruning(model)
    problems = graph_problems(model, policy)
    summary.raise_or_warn(list(problems.values()), skip_unsupported)
    pruned = clone_pruned(model, params, policy, set(problems))
    summary.record_skipped(pruned, tuple(problems.values()))
    global_pruning.link_global_wrappers(walk.iter_wrappers(pruned))
    return pruned


def strip_graph_model(model: keras.Model) -> keras.Model:
    """Clone a graph model with every wrapper replaced by the layer it holds (masks applied).

    Example:
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> stripped = strip_graph_model(clone_pruned(model, {}, None))
        >>> [type(layer).__name__ for layer in stripped.layers]
        ['Dense']
    """
    def unwrap(layer: Any) -> Any:
        if walk.is_graph_model(layer):
            return strip_graph_model(layer)
        if isinstance(layer, PruneLowMagnitude):
            _keras_compat.copy_input_shape(layer, layer.layer)
            return layer.layer
        return layer  # Other layers, and Operation nodes.

    return clone_graph(model, unwrap)


def clone_graph(model: keras.Model, clone_function: Any) -> keras.Model:
    """``keras.models.clone_model`` as tfmot's: same input layer names, and never compiled.

    Keras names a clone's inputs after their tensors (``keras_tensor_3`` for an auto-named
    ``Input``), so Functional inputs are recreated from their layers' configs; and Keras
    compiles a clone of a compiled model with a fresh optimizer, while tfmot returns it
    uncompiled (the model must be compiled again).

    Example:
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> model.compile(loss="mse")
        >>> clone_graph(model, lambda layer: layer).compiled, model.compiled
        (False, True)
    """
    inputs = None
    if walk.is_graph_model(model) and not isinstance(model, keras.Sequential):
        inputs = _same_inputs(model)
    return _keras_compat.clone_model_uncompiled(model, clone_function, inputs)


def _same_inputs(model: keras.Model) -> Any:
    """New ``Input`` tensors for ``model.input``, each from its ``InputLayer``'s config."""
    layers = {id(layer.output): layer for layer in model.layers
              if isinstance(layer, keras.layers.InputLayer)}

    def recreate(tensor: Any) -> Any:
        layer = layers.get(id(tensor))
        if layer is None:
            return keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name)
        return keras.layers.InputLayer.from_config(layer.get_config()).output

    return tree.map_structure(recreate, model.input)
