"""Choosing units to remove, zeroing them (structured masks), and gradual structured pruning.

A *masked* model is a plain Keras model in which every weight coupled to a removed unit is
exactly zero (kernel columns and rows, biases, BatchNormalization gamma and beta, attention
head slices). :func:`prunekit.structured.shrink` recognises such units and removes them, so a
masked model saved as ``.keras`` shrinks the same after loading, without any pruning state.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
from keras import ops

from prunekit import _backend
from prunekit.schedules import PruningSchedule, deserialize_schedule
from prunekit.structured.graph import DependencyGraph
from prunekit.structured.importance import GroupCriterion, get_importance, unit_scores

SCOPES = ("uniform", "global")


def validate_ratio(sparsity: Any) -> float:
    """``sparsity`` as a float in [0, 1).

    Example:
        >>> validate_ratio(0.5)
        0.5
    """
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not (
            0.0 <= float(sparsity) < 1.0):
        raise ValueError("sparsity (the fraction of channels, units or heads removed) must be "
                         f"a number in [0, 1). Received: sparsity={sparsity!r}")
    return float(sparsity)


def validate_scope(scope: Any) -> str:
    """``scope`` if it is ``"uniform"`` or ``"global"``."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be 'uniform' (the same fraction of every group) or "
                         f"'global' (one ranking across groups). Received: scope={scope!r}")
    return scope


def select_units(graph: DependencyGraph, sparsity: float, importance: GroupCriterion,
                 scope: str = "uniform", gradients: dict[int, Any] | None = None) -> set[int]:
    """The units (root atoms) to remove at ``sparsity``, lowest importance first.

    ``"uniform"`` removes ``floor(sparsity * size)`` units of every group; ``"global"`` ranks
    all units by their score divided by the mean score of their group (scores of different
    groups are not on one scale) and removes ``floor(sparsity * count)`` of them. Fixed units
    and units the criterion does not score stay; every group keeps at least one unit.
    """
    scores = unit_scores(graph, importance, gradients)
    ranked = []
    for group in graph.groups:
        candidates = [u for u in group.prunable if u in scores]
        if not candidates:
            continue
        mean = float(np.mean([scores[u] for u in candidates])) or 1.0
        order = sorted(candidates, key=lambda u: (scores[u], u))
        limit = min(len(candidates), len(group.units) - 1)
        if scope == "uniform":
            ranked.extend(order[:min(limit, int(sparsity * len(group.units) + 1e-9))])
        else:
            ranked.extend((scores[u] / mean, u, group.index, limit) for u in order)
    if scope == "uniform":
        return set(ranked)
    removed: set[int] = set()
    per_group: dict[int, int] = {}
    target = int(sparsity * len(ranked) + 1e-9)
    for _, unit, index, limit in sorted(ranked):
        if len(removed) == target:
            break
        if per_group.get(index, 0) < limit:
            removed.add(unit)
            per_group[index] = per_group.get(index, 0) + 1
    return removed


def apply_removal(graph: DependencyGraph, removed: set[int]) -> None:
    """Zero every scored weight slice coupled to a unit in ``removed`` (the structured mask)."""
    if not removed:
        return
    pending: dict[int, tuple[Any, np.ndarray]] = {}
    for coupling in graph.couplings:
        if not coupling.scored:
            continue
        roots = graph.roots(coupling.atoms)
        drop = np.flatnonzero(np.isin(roots, list(removed)))
        if not drop.size:
            continue
        var = coupling.variable
        if id(var) not in pending:
            pending[id(var)] = (var, np.array(ops.convert_to_numpy(var.value)))
        values = pending[id(var)][1]
        index = [slice(None)] * values.ndim
        index[coupling.axis] = drop
        values[tuple(index)] = 0
    for var, values in pending.values():
        var.assign(values)


def zero_units(graph: DependencyGraph) -> set[int]:
    """Prunable units whose every scored weight slice is exactly zero (a masked model's).

    Each group keeps at least one unit, even if all of them are zero.
    """
    nonzero: set[int] = set()
    touched: set[int] = set()
    for coupling in graph.couplings:
        if not coupling.scored:
            continue
        values = np.asarray(ops.convert_to_numpy(coupling.variable.value))
        axes = tuple(a for a in range(values.ndim) if a != coupling.axis)
        alive = np.abs(values).max(axis=axes) > 0 if axes else np.abs(values) > 0
        roots = graph.roots(coupling.atoms)
        touched.update(int(r) for r in roots if r >= 0)
        nonzero.update(int(r) for r, a in zip(roots, alive) if r >= 0 and a)
    removed: set[int] = set()
    for group in graph.groups:
        zero = [u for u in group.prunable if u in touched and u not in nonzero]
        if len(zero) == len(group.units):
            zero = zero[1:]
        removed.update(zero)
    return removed


def loss_gradients(model: keras.Model, data: Any, loss: Any = None) -> dict[int, np.ndarray]:
    """``id(variable) -> dL/dw`` for every trainable variable, on one batch ``data=(x, y)``.

    ``loss`` defaults to the compiled loss of ``model``.
    """
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError("Taylor importance needs one batch of data as a tuple (x, y). "
                         f"Received: data={type(data).__name__}")
    loss = loss if loss is not None else getattr(model, "loss", None)
    if loss is None:
        raise ValueError("Taylor importance needs a loss: compile the model or pass loss=. "
                         "Received: loss=None")
    loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    grads = _backend.loss_gradients(model, data[0], data[1], loss_fn)
    return {id(v): g for v, g in zip(model.trainable_variables, grads)}


class StructuredPruning(keras.callbacks.Callback):
    """Gradual structured pruning during ``fit``: a schedule drives which units are zeroed.

    Created by :func:`prune_structured`. At every training batch the step advances (the first
    batch is step 1, as with ``UpdatePruningStep``); when the schedule says so, units are
    ranked again and the lowest are selected; before every batch and at every epoch end the
    selected units' weights are set to zero (tfmot's mask semantics). Units that are already
    zero when training starts (a masked model saved and loaded again) stay selected. With
    ``log_dir``, the fraction of removed units is written for TensorBoard at every epoch end.
    """

    def __init__(self, model: keras.Model, schedule: PruningSchedule, importance: GroupCriterion,
                 scope: str, data: Any = None, loss: Any = None, log_dir: str | None = None
                 ) -> None:
        super().__init__()
        self.graph = DependencyGraph(model)
        self.schedule, self.importance, self.scope = schedule, importance, scope
        self.data, self.loss, self.log_dir = data, loss, log_dir
        self.step = 0
        self.removed = zero_units(self.graph)
        self._writer = None

    @property
    def sparsity(self) -> float:
        """Fraction of all units (of groups that can shrink) currently removed."""
        total = sum(len(g.units) for g in self.graph.groups if g.prunable)
        return len(self.removed) / total if total else 0.0

    def _sync(self) -> None:
        sync = getattr(self.model, "jax_state_sync", None)  # JAX keeps state in the trainer:
        if sync is not None:  # write it to the variables, and make fit read them back.
            sync()

    def on_train_begin(self, logs: Any = None) -> None:
        per_call = getattr(self.model, "steps_per_execution", 1) or 1
        if int(per_call) > 1:
            raise ValueError(
                "prune_structured counts steps and zeroes units between batches: compile the "
                "model with steps_per_execution=1 (Keras runs callbacks once per execution). "
                f"Received: steps_per_execution={per_call}")

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.step += 1
        should, sparsity = self.schedule(ops.convert_to_tensor(self.step, "int32"))
        if bool(ops.convert_to_numpy(should)):
            self._sync()
            grads = (loss_gradients(self.graph.model, self.data, self.loss)
                     if self.importance.needs_data else None)
            self.removed = select_units(self.graph, float(ops.convert_to_numpy(sparsity)),
                                        self.importance, self.scope, grads)
        if self.removed:
            self._sync()
            apply_removal(self.graph, self.removed)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self._sync()
        apply_removal(self.graph, self.removed)
        if self.log_dir:
            if self._writer is None:
                from tensorboard.summary import Writer

                os.makedirs(self.log_dir, exist_ok=True)
                self._writer = Writer(self.log_dir)
            self._writer.add_scalar("structured/sparsity", self.sparsity, self.step)
            self._writer.flush()

    def on_train_end(self, logs: Any = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def prune_structured(model: keras.Model, schedule: PruningSchedule | dict[str, Any],
                     importance: str | GroupCriterion = "l2", scope: str = "uniform",
                     data: Any = None, loss: Any = None, log_dir: str | None = None
                     ) -> StructuredPruning:
    """Gradual structured pruning of ``model``: returns the callback to pass to ``fit``.

    The schedule's sparsity is the fraction of units (channels, RNN units, heads) removed in
    every group (``scope="uniform"``) or across groups (``"global"``). The model stays a plain
    Keras model whose removed units are exactly zero; save it as usual and call
    :func:`prunekit.structured.shrink` on it (or on the loaded file) to get the smaller model.

    Args:
        model: A Functional or Sequential model.
        schedule: A :class:`prunekit.PruningSchedule` (``ConstantSparsity``, ``PolynomialDecay``).
        importance: ``"l1"``, ``"l2"``, ``"bn_scale"``, ``"taylor"`` or a ``GroupCriterion``.
        scope: ``"uniform"`` or ``"global"``.
        data: ``(x, y)``, a batch for Taylor importance.
        loss: Loss for Taylor importance (default: the compiled loss).
        log_dir: Optional TensorBoard folder for the removed fraction.

    Returns:
        A :class:`StructuredPruning` callback.

    Raises:
        ValueError: For a model without a graph, an unknown importance or scope, a Taylor
            importance without data, or an invalid schedule.

    Example:
        >>> import prunekit
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
        ...                           keras.layers.Dense(1)])
        >>> model.compile("sgd", "mse")
        >>> pruning = prune_structured(model, prunekit.ConstantSparsity(0.5, 0, frequency=1))
        >>> _ = model.fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0, callbacks=[pruning])
        >>> pruning.sparsity
        0.5
    """
    importance = get_importance(importance)
    scope = validate_scope(scope)
    schedule = deserialize_schedule(schedule)
    if importance.needs_data and data is None:
        raise ValueError(f"{type(importance).__name__} needs a batch of data: pass data=(x, y). "
                         "Received: data=None")
    return StructuredPruning(model, schedule, importance, scope, data, loss, log_dir)
