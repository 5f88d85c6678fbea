"""Physically smaller models: rebuild every layer with fewer units and sliced weights.

The surgery table is :mod:`prunekit.structured.rules` (each layer class's ``new_config``); the
weights are sliced here along the axes the dependency graph coupled to removed units. The
input model is never modified.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
from keras import ops

from prunekit import _keras_compat
from prunekit.structured import rules
from prunekit.structured.cost import LayerChange, ShrinkReport, layer_macs
from prunekit.structured.graph import DependencyGraph
from prunekit.structured.importance import GroupCriterion, get_importance
from prunekit.structured.pruning import (loss_gradients, select_units, validate_ratio,
                                         validate_scope, zero_units)


def shrink(model: keras.Model, sparsity: float | None = None,
           importance: str | GroupCriterion = "l2", scope: str = "uniform", data: Any = None,
           loss: Any = None) -> tuple[keras.Model, ShrinkReport]:
    """Return a smaller plain Keras model and a report of what was removed.

    Without ``sparsity``, the units removed are those whose coupled weights are all exactly
    zero (a model masked by :func:`prune_structured` or :func:`prune_groups`): the smaller
    model then predicts what the masked one does. With ``sparsity``, units are first chosen by
    ``importance`` (one-shot pruning; fine-tune the result).

    Args:
        model: A Functional or Sequential model.
        sparsity: Fraction of units removed (per group for ``scope="uniform"``, across groups
            for ``"global"``), or None to remove the zeroed units.
        importance: ``"l1"``, ``"l2"``, ``"bn_scale"``, ``"taylor"`` or a ``GroupCriterion``.
        scope: ``"uniform"`` or ``"global"``.
        data: ``(x, y)`` for Taylor importance.
        loss: Loss for Taylor importance (default: the compiled loss).

    Returns:
        ``(smaller_model, report)``; ``str(report)`` is a per-layer table.

    Raises:
        ValueError: For a subclassed model, an invalid sparsity, importance or scope.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="h"),
        ...                           keras.layers.Dense(1, name="out")])
        >>> small, report = shrink(model, sparsity=0.5)
        >>> small.get_layer("h").units, tuple(small.get_layer("out").kernel.shape)
        (4, (4, 1))
    """
    graph, removed = _plan(model, sparsity, importance, scope, data, loss)
    return rebuild(graph, removed)


def prune_groups(model: keras.Model, sparsity: float, importance: str | GroupCriterion = "l2",
                 scope: str = "uniform", data: Any = None, loss: Any = None) -> keras.Model:
    """One-shot structured masking: a copy of ``model`` with the chosen units zeroed.

    :func:`shrink` of the result removes exactly those units. Useful to evaluate or fine-tune
    at full size; usually ``shrink(model, sparsity)`` and fine-tuning the smaller model is
    what you want.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
        ...                           keras.layers.Dense(1)])
        >>> masked = prune_groups(model, 0.25)
        >>> int((np.abs(masked.layers[0].kernel.numpy()).max(axis=0) == 0).sum())
        2
    """
    from prunekit.structured.pruning import apply_removal

    graph, removed = _plan(model, validate_ratio(sparsity), importance, scope, data, loss)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy_graph = DependencyGraph(copy)
    apply_removal(copy_graph, removed)  # Traced in the same order: the same atom ids.
    return copy


def _plan(model, sparsity, importance, scope, data, loss):
    criterion = get_importance(importance)
    scope = validate_scope(scope)
    if sparsity is not None:
        sparsity = validate_ratio(sparsity)
    graph = DependencyGraph(model)
    if sparsity is None:
        return graph, zero_units(graph)
    grads = loss_gradients(model, data, loss) if criterion.needs_data else None
    return graph, select_units(graph, sparsity, criterion, scope, grads)


def _flat(structure: Any) -> list[Any]:
    return [t for t in keras.tree.flatten(structure) if isinstance(t, keras.KerasTensor)]


def rebuild(graph: DependencyGraph, removed: set[int]) -> tuple[keras.Model, ShrinkReport]:
    """Build the smaller model of ``graph`` without the units ``removed``."""
    model = graph.model
    by_variable: dict[int, list[Any]] = {}
    for coupling in graph.couplings:
        by_variable.setdefault(id(coupling.variable), []).append(coupling)
    spaces: dict[int, list[Any]] = {}
    for space in graph.spaces:
        spaces.setdefault(id(space.layer), []).append(space)
    tensors: dict[int, Any] = {}
    new_ops: dict[int, Any] = {}
    report = ShrinkReport(left_whole=list(graph.left_whole) + _whole_groups(graph))
    inputs = []
    for node in graph.nodes:
        op = node.operation
        if isinstance(op, keras.layers.InputLayer):
            for t in node.outputs:
                tensors[id(t)] = keras.Input(batch_shape=t.shape, dtype=t.dtype, name=op.name)
                inputs.append(tensors[id(t)])
            continue
        first = id(op) not in new_ops
        args, kwargs = node.arguments.fill_in(tensors)
        if first:
            new_inputs = _flat((args, kwargs))
            width = new_inputs[0].shape[-1] if new_inputs and new_inputs[0].shape else None
            new_ops[id(op)] = _new_operation(op, spaces.get(id(op), []), graph, removed, width)
        new = new_ops[id(op)]
        with _zero_initializers(new if first else None):
            outputs = new(*args, **kwargs)
        for old, out in zip(node.outputs, _flat(outputs)):
            tensors[id(old)] = out
        if first and isinstance(op, keras.layers.Layer):
            _copy_weights(op, new, by_variable, graph, removed)
            after = SimpleNamespace(input_tensors=_flat((args, kwargs)), outputs=_flat(outputs))
            report.layers.append(_change(op, new, node, after, spaces.get(id(op), []), graph,
                                         removed))
    outputs = [tensors[id(t)] for t in model.outputs]
    outputs = outputs if len(outputs) > 1 else outputs[0]
    if isinstance(model, keras.Sequential):
        layers = [new_ops[id(n.operation)] for n in graph.nodes
                  if not isinstance(n.operation, keras.layers.InputLayer)]
        small = keras.Sequential([inputs[0], *layers], name=model.name)
    else:
        small = keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)
    return small, report


@contextlib.contextmanager
def _zero_initializers(layer: Any) -> Iterator[None]:
    """Build ``layer`` with zeros instead of its initializers, then give them back.

    Every weight of a rebuilt layer is overwritten with the sliced old one: drawing random
    values first would be wasted work (on JAX, one compilation per weight shape, most of the
    time of a shrink). The layer's config keeps its own initializers.
    """
    saved = []
    if isinstance(layer, keras.layers.Layer):
        for owner in [layer, *_keras_compat.all_sub_layers(layer)]:
            for name, value in list(vars(owner).items()):
                if isinstance(value, keras.initializers.Initializer):
                    saved.append((owner, name, value))
                    setattr(owner, name, keras.initializers.Zeros())
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _new_operation(op: Any, op_spaces: list[Any], graph: DependencyGraph, removed: set[int],
                   input_width: int | None):
    if not isinstance(op, keras.layers.Layer):
        return op  # keras.ops operations are stateless: reuse them.
    kept: dict[str, Any] = {s.kind: sum(1 for r in graph.roots(s.atoms) if int(r) not in removed)
                            for s in op_spaces}
    kept["input_width"] = input_width  # The first input's new channel count.
    config = rules.rule_for(op).new_config(op, op.get_config(), kept)
    return type(op).from_config(config)


def _copy_weights(old: Any, new: Any, by_variable: dict[int, list[Any]],
                  graph: DependencyGraph, removed: set[int]) -> None:
    values = []
    for variable in old.weights:
        array = np.asarray(ops.convert_to_numpy(variable.value))
        for coupling in by_variable.get(id(variable), []):
            array = np.take(array, graph.kept_positions(coupling, removed), axis=coupling.axis)
        values.append(array)
    if values:
        new.set_weights(values)


def _change(old, new, node, after, op_spaces, graph, removed) -> LayerChange:
    before_units = sum(len(s.atoms) for s in op_spaces) if op_spaces else None
    after_units = (sum(1 for s in op_spaces for r in graph.roots(s.atoms)
                       if int(r) not in removed) if op_spaces else None)
    return LayerChange(old.name, type(old).__name__, before_units, after_units,
                       int(old.count_params()), int(new.count_params()),
                       layer_macs(old, node), layer_macs(new, after))


def _whole_groups(graph: DependencyGraph) -> list[tuple[str, str]]:
    return [(", ".join(g.layers), g.reasons[0]) for g in graph.groups
            if not g.prunable and g.reasons]
