"""Importance of a unit (a channel, unit or head with everything coupled to it), as criteria.

A structured criterion reduces every coupled weight axis to one number per position
(:meth:`GroupCriterion.position_scores`), the graph sums those numbers per unit over all the
layers of its group (the producer's kernel columns and bias, the consumers' input rows,
BatchNormalization's gamma and beta...), and :meth:`GroupCriterion.finish` turns the sums into
scores; the lowest-scoring units are removed. The same objects also mask one weight on its own
(:meth:`compute_mask`: whole output channels, the last axis), so they fit the criteria seam of
:class:`prunekit.PruningCriterion`.

Built-ins (Torch-Pruning's group importances, summed over the group):

* :class:`L1Importance`: ``sum |w|``;  :class:`L2Importance`: ``sqrt(sum w^2)``;
* :class:`BatchNormScale`: ``sum |gamma|`` of the group's BatchNormalization layers (Liu et al.
  2017, "network slimming"); a group without one is left whole;
* :class:`TaylorImportance`: first-order Taylor, ``(sum w * dL/dw)^2`` over the unit's weights
  (Molchanov et al. 2019, "Importance Estimation for Neural Network Pruning"); needs a batch.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from prunekit import masks
from prunekit.criteria import PruningCriterion, Stats


class GroupCriterion(PruningCriterion):
    """Base class of structured criteria: scores of whole output channels or heads."""

    granularity = "output_channel"
    needs_data = False

    def position_scores(self, weight: np.ndarray, axis: int, scale: bool,
                        grad: np.ndarray | None = None) -> np.ndarray | None:
        """One number per index of ``axis`` (summed per unit), or None to ignore this weight.

        Args:
            weight: The weight's values.
            axis: The coupled axis.
            scale: True for a BatchNormalization ``gamma``.
            grad: The loss gradient of the weight (criteria with ``needs_data`` only).
        """
        raise NotImplementedError

    def finish(self, totals: np.ndarray) -> np.ndarray:
        """Scores from the per-unit sums (identity by default)."""
        return totals

    def scores(self, weight: Any, stats: Stats = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} scores whole channels, not weights: "
                                  "it cannot rank single weights across a model.")

    def compute_mask(self, weight: Any, sparsity: Any, stats: Stats = None) -> tuple[Any, Any]:
        """Mask whole output channels (last axis) of one weight by this criterion.

        Example:
            >>> w = ops.convert_to_tensor([[1.0, -3.0, 0.5], [1.0, 0.0, 0.5]])
            >>> mask, t = L1Importance().compute_mask(w, 1 / 3)
            >>> ops.convert_to_numpy(mask).tolist(), float(t)
            ([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]], 2.0)
        """
        channel = self._tensor_channel_scores(weight)
        keep, threshold = masks.mask_from_scores(channel, sparsity)
        mask = ops.broadcast_to(ops.cast(keep, weight.dtype), ops.shape(weight))
        return mask, ops.cast(threshold, weight.dtype)

    def _tensor_channel_scores(self, weight: Any) -> Any:
        axes = tuple(range(len(weight.shape) - 1))
        return ops.sum(ops.abs(weight), axis=axes)


def _reduce(values: np.ndarray, axis: int) -> np.ndarray:
    return values.sum(axis=tuple(a for a in range(values.ndim) if a != axis))


@keras.saving.register_keras_serializable(package="prunekit")
class L1Importance(GroupCriterion):
    """``sum |w|`` over every weight coupled to the unit.

    Example:
        >>> L1Importance().position_scores(np.array([[1.0, -2.0], [3.0, 0.0]]), 1, False)
        array([4., 2.])
    """

    def position_scores(self, weight, axis, scale, grad=None):
        return _reduce(np.abs(weight), axis)


@keras.saving.register_keras_serializable(package="prunekit")
class L2Importance(GroupCriterion):
    """``sqrt(sum w^2)`` over every weight coupled to the unit.

    Example:
        >>> L2Importance().finish(L2Importance().position_scores(np.array([[3.0], [4.0]]), 1,
        ...                                                      False))
        array([5.])
    """

    def position_scores(self, weight, axis, scale, grad=None):
        return _reduce(np.square(weight), axis)

    def finish(self, totals):
        return np.sqrt(totals)

    def _tensor_channel_scores(self, weight):
        axes = tuple(range(len(weight.shape) - 1))
        return ops.sqrt(ops.sum(ops.square(weight), axis=axes))


@keras.saving.register_keras_serializable(package="prunekit")
class BatchNormScale(GroupCriterion):
    """``sum |gamma|`` of the BatchNormalization layers of the unit's group.

    Groups without BatchNormalization get no score and are left whole.

    Example:
        >>> BatchNormScale().position_scores(np.array([0.5, -2.0]), 0, True)
        array([0.5, 2. ])
    """

    def position_scores(self, weight, axis, scale, grad=None):
        return np.abs(weight) if scale else None


@keras.saving.register_keras_serializable(package="prunekit")
class TaylorImportance(GroupCriterion):
    """First-order Taylor: ``(sum w * dL/dw)^2`` over the unit's weights; needs a data batch.

    Example:
        >>> TaylorImportance().finish(TaylorImportance().position_scores(
        ...     np.array([1.0, 2.0]), 0, False, grad=np.array([0.5, -1.0])))
        array([0.25, 4.  ])
    """

    needs_data = True

    def position_scores(self, weight, axis, scale, grad=None):
        if grad is None:
            raise ValueError("TaylorImportance needs gradients: pass data=(x, y).")
        return _reduce(weight * grad, axis)

    def finish(self, totals):
        return np.square(totals)


IMPORTANCES = {"l1": L1Importance, "l2": L2Importance, "bn_scale": BatchNormScale,
               "taylor": TaylorImportance}


def get_importance(importance: str | GroupCriterion) -> GroupCriterion:
    """A structured criterion from its name (``l1``, ``l2``, ``bn_scale``, ``taylor``) or itself.

    Raises:
        ValueError: For an unknown name or an object that is not a GroupCriterion.

    Example:
        >>> get_importance("l2")
        L2Importance()
    """
    if isinstance(importance, GroupCriterion):
        return importance
    if isinstance(importance, str) and importance.lower() in IMPORTANCES:
        return IMPORTANCES[importance.lower()]()
    raise ValueError(f"importance must be one of {sorted(IMPORTANCES)} or a "
                     f"prunekit.structured.GroupCriterion. Received: importance={importance!r}")


def unit_scores(graph: Any, criterion: GroupCriterion,
                gradients: dict[int, np.ndarray] | None = None) -> dict[int, float]:
    """Score every unit of ``graph`` (root atom -> score) by summing over its couplings.

    Units whose couplings the criterion ignores entirely (e.g. no BatchNormalization) get no
    score. ``gradients`` maps ``id(variable)`` to its loss gradient (for Taylor).
    """
    totals = np.zeros(graph.atom_count, dtype=np.float64)
    seen = np.zeros(graph.atom_count, dtype=bool)
    for coupling in graph.couplings:
        if not coupling.scored:
            continue
        values = np.asarray(ops.convert_to_numpy(coupling.variable.value), dtype=np.float64)
        grad = None if gradients is None else gradients.get(id(coupling.variable))
        if criterion.needs_data and grad is None:
            continue
        is_scale = coupling.variable is getattr(coupling.layer, "gamma", None)
        per_position = criterion.position_scores(
            values, coupling.axis, is_scale, None if grad is None else np.asarray(grad, np.float64))
        if per_position is None:
            continue
        roots = graph.roots(coupling.atoms)
        valid = roots >= 0
        np.add.at(totals, roots[valid], per_position[valid])
        seen[roots[valid]] = True
    keys = np.flatnonzero(seen)
    finished = criterion.finish(totals[keys])
    return dict(zip(keys.tolist(), finished.tolist()))
