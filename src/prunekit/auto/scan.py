"""The sensitivity scan: how much each prunable layer alone can lose before the metric suffers.

For every pruning unit (a layer wrapped by :func:`prunekit.prune_low_magnitude`: a Dense, a
Conv, an LSTM with its kernels...) and every sparsity of a ladder, the unit's weights are
masked one-shot by the criterion (magnitude by default, each weight tensor on its own), every
other unit stays dense, and the metric is measured on the held-out rows. No training: a ladder
of 8 sparsities over ``L`` units costs ``8 L + 1`` forward passes over the validation rows.

This is the sensitivity analysis of Han et al., "Learning both Weights and Connections for
Efficient Neural Networks" (NeurIPS 2015, figure 5: pruning sensitivity per layer), used
there, as here, to choose per-layer pruning rates.

The masks go into a pruned copy's mask variables; the weights themselves are never written, and
the user's model is not touched (the copy shares no variables with it).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from prunekit.auto.metric import Budget, metric_value
from prunekit.auto.model import copy_model, predict

#: The default ladder of sparsities scanned for every unit.
DEFAULT_LADDER = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclasses.dataclass
class LayerCurve:
    """One unit's scan: the metric at each sparsity of the ladder, the others dense.

    Attributes:
        name: The wrapped layer's name (``name#2`` for a second layer of that name).
        params: Number of prunable weights (elements of the masked tensors).
        sparsities: The ladder.
        values: The metric at each sparsity.
        drops: The budgeted drop at each sparsity (see :class:`~prunekit.auto.metric.Budget`).
    """

    name: str
    params: int
    sparsities: list[float]
    values: list[float]
    drops: list[float]


@dataclasses.dataclass
class ScanResult:
    """The sensitivity scan of a model.

    Attributes:
        metric: The metric measured.
        baseline: The metric of the dense model on the same rows.
        ladder: The sparsities scanned.
        layers: One :class:`LayerCurve` per unit, in model order.
        skipped: Layers that cannot be pruned, with the reason.
    """

    metric: str
    baseline: float
    ladder: list[float]
    layers: list[LayerCurve]
    skipped: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The scan as JSON-able data."""
        return dataclasses.asdict(self)


def pruned_copy(model: Any, sample: np.ndarray) -> tuple[Any, list[str]]:
    """A copy of ``model`` with every prunable layer wrapped, and the layers left dense.

    Layers prunekit cannot prune are left as they are (``skip_unsupported``) and returned as
    ``"path (class): reason"``. The copy is built by one forward pass on ``sample``.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> pruned, skipped = pruned_copy(model, np.zeros((1, 3), "float32"))
        >>> [type(layer).__name__ for layer in pruned.layers], skipped
        (['PruneLowMagnitude'], [])
    """
    from prunekit import prune, summary

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped layers are reported with the results
        pruned = prune.prune_low_magnitude(copy_model(model, sample), skip_unsupported=True)
    predict(pruned, sample[:1])  # builds wrappers not built by cloning
    skipped = [f"{s.path} ({s.class_name}): {s.reason}"
               for s in summary.pruning_report(pruned).skipped]
    return pruned, skipped


def units(pruned: Any) -> list[tuple[str, Any]]:
    """``(name, wrapper)`` for every wrapper with prunable weights, names made unique.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
        >>> [name for name, _ in units(pruned_copy(model, np.zeros((1, 3), "float32"))[0])]
        ['d']
    """
    from prunekit import walk

    found, seen = [], {}
    for wrapper in walk.iter_wrappers(pruned):
        if not wrapper.prunable_weights:
            continue
        name = wrapper.layer.name
        seen[name] = seen.get(name, 0) + 1
        found.append((name if seen[name] == 1 else f"{name}#{seen[name]}", wrapper))
    return found


def set_masks(wrapper: Any, sparsity: float) -> None:
    """Put the criterion's one-shot masks at ``sparsity`` into ``wrapper``'s mask variables.

    ``sparsity`` 0 restores all-ones masks.
    """
    import keras

    for variable, weight in zip(wrapper.masks, wrapper.prunable_weights):
        if sparsity <= 0:
            variable.assign(keras.ops.ones(weight.shape, variable.dtype))
    if sparsity > 0:
        for variable, (mask, _) in zip(wrapper.masks, wrapper.compute_masks(float(sparsity))):
            variable.assign(mask)


def unit_params(wrapper: Any) -> int:
    """Number of weight elements ``wrapper`` masks."""
    return int(sum(int(np.prod(w.shape)) for w in wrapper.prunable_weights))


def sensitivity_scan(model: Any, x_val: np.ndarray, y_val: np.ndarray, budget: Budget,
                     ladder: tuple[float, ...] = DEFAULT_LADDER) -> ScanResult:
    """Scan every prunable layer of ``model`` at every sparsity of ``ladder``, one at a time.

    Args:
        model: A built Keras model (not changed).
        x_val: Held-out inputs.
        y_val: Held-out targets.
        budget: Gives the metric and how a drop is measured.
        ladder: Sparsities in (0, 1), increasing.

    Returns:
        The :class:`ScanResult`.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="d")])
        >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
        >>> scan = sensitivity_scan(model, x, x.sum(axis=1), Budget("mse", 0.1), (0.5,))
        >>> [layer.name for layer in scan.layers], len(scan.layers[0].values)
        (['d'], 1)
    """
    pruned, skipped = pruned_copy(model, x_val)
    baseline = metric_value(budget.metric, y_val, predict(pruned, x_val))
    curves = []
    for name, wrapper in units(pruned):
        values = []
        for sparsity in ladder:
            set_masks(wrapper, sparsity)
            values.append(metric_value(budget.metric, y_val, predict(pruned, x_val)))
        set_masks(wrapper, 0.0)
        curves.append(LayerCurve(name, unit_params(wrapper), [float(s) for s in ladder], values,
                                 [budget.drop(baseline, v) for v in values]))
    return ScanResult(budget.metric, baseline, [float(s) for s in ladder], curves, skipped)
