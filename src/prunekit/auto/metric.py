"""The figure a budget is held on: which metric, how it is computed, and what a drop is.

Metrics are computed here in NumPy from the model's predictions in the data's own units (a
regression model predicts its targets' units; nothing is rescaled), so the scan, the budget
check and the tests all use one definition:

* ``accuracy``: the share of rows whose arg-max output (or, for one output, ``output > 0.5``)
  equals the integer label; higher is better.
* ``mse`` / ``mae``: mean squared / absolute error; lower is better.

A **drop** is how much worse a value is than the baseline: ``baseline - value`` for accuracy,
``value - baseline`` for errors; a relative budget divides it by ``|baseline|``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from prunekit.auto.data import AutoPruneError

#: Metric name -> +1 when higher is better, -1 when lower is better.
METRICS = {"accuracy": 1, "mse": -1, "mae": -1}
#: Names Keras models are compiled with, mapped to the metrics above.
_ALIASES = {
    "accuracy": "accuracy", "acc": "accuracy", "sparse_categorical_accuracy": "accuracy",
    "categorical_accuracy": "accuracy", "binary_accuracy": "accuracy",
    "mse": "mse", "mean_squared_error": "mse", "meansquarederror": "mse",
    "mae": "mae", "mean_absolute_error": "mae", "meanabsoluteerror": "mae",
}
_CLASSIFICATION_LOSSES = ("crossentropy", "hinge")


def metric_name(name: str) -> str:
    """The metric a Keras metric or loss name stands for.

    Raises:
        AutoPruneError: A name that is not one of :data:`METRICS` (or an alias of one).

    Example:
        >>> metric_name("sparse_categorical_accuracy"), metric_name("mean_squared_error")
        ('accuracy', 'mse')
    """
    key = str(name).lower().replace(" ", "_")
    if key not in _ALIASES:
        raise AutoPruneError(f"--metric must be one of {', '.join(METRICS)} (or a Keras alias "
                             f"such as sparse_categorical_accuracy). Received: {name!r}")
    return _ALIASES[key]


def _names(entry: Any) -> list[str]:
    """Names found in a compile config's ``loss`` or ``metrics`` entry (nested lists, dicts)."""
    if entry is None:
        return []
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, dict):
        inner = entry.get("config")
        found = [entry["class_name"]] if "class_name" in entry else []
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            found.append(inner["name"])
        return found + ([inner] if isinstance(inner, str) else [])
    if isinstance(entry, (list, tuple)):
        return [name for item in entry for name in _names(item)]
    return []


def default_metric(model: Any, n_outputs: int) -> tuple[str, str]:
    """The metric to budget when none is given, and why.

    The first compiled metric prunekit knows; else the one the compiled loss implies
    (cross-entropy -> accuracy, MSE/MAE -> itself); else ``accuracy`` for several outputs and
    ``mse`` for one.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        >>> model.compile(loss="mae")
        >>> default_metric(model, 1)
        ('mae', 'the model was compiled with loss mae')
    """
    config = model.get_compile_config() if getattr(model, "compiled", False) else None
    config = config or {}
    for name in _names(config.get("metrics")):
        if str(name).lower() in _ALIASES:
            return _ALIASES[str(name).lower()], f"the model was compiled with metric {name}"
    for name in _names(config.get("loss")):
        low = str(name).lower()
        if low in _ALIASES:
            return _ALIASES[low], f"the model was compiled with loss {name}"
        if any(word in low for word in _CLASSIFICATION_LOSSES):
            return "accuracy", f"the model was compiled with loss {name}"
    if n_outputs > 1:
        return "accuracy", f"the model has {n_outputs} outputs (a classifier)"
    return "mse", "the model has one output (a regression)"


def check_targets(metric: str, y: np.ndarray, n_outputs: int, where: str = "the targets") -> None:
    """Refuse targets the metric cannot score against the model's outputs.

    Raises:
        AutoPruneError: For accuracy, labels that are not integers in ``[0, n_outputs)`` (or
            0/1 for one output); for errors, targets whose width is not the outputs'.

    Example:
        >>> check_targets("accuracy", np.array([0.0, 2.0]), 2)
        Traceback (most recent call last):
        ...
        prunekit.auto.data.AutoPruneError: the targets must be class labels 0..1 ... in [0, 2].
    """
    if metric == "accuracy":
        classes = max(n_outputs, 2)
        if y.ndim != 1 or np.any(y != np.round(y)) or y.min() < 0 or y.max() >= classes:
            raise AutoPruneError(
                f"{where} must be class labels 0..{classes - 1} for a model with {n_outputs} "
                f"output{'s' * (n_outputs > 1)} (accuracy); found "
                + (f"shape {y.shape}." if y.ndim != 1
                   else f"values in [{y.min():g}, {y.max():g}]."))
        return
    width = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
    if width != n_outputs:
        raise AutoPruneError(f"{where} have {width} value(s) per row; the model has {n_outputs} "
                             f"output(s) ({metric}): expected one target per output.")


def metric_value(metric: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """``metric`` of predictions ``y_pred`` against ``y_true`` (see the module docstring).

    Example:
        >>> metric_value("accuracy", np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]]))
        0.5
        >>> metric_value("mse", np.array([1.0, 2.0]), np.array([[1.0], [4.0]]))
        2.0
    """
    y_pred = np.asarray(y_pred, dtype="float64")
    if metric == "accuracy":
        labels = (np.argmax(y_pred, axis=-1) if y_pred.ndim > 1 and y_pred.shape[-1] > 1
                  else (y_pred.reshape(len(y_pred)) > 0.5).astype(int))
        return float(np.mean(labels == np.asarray(y_true).reshape(len(labels))))
    diff = y_pred.reshape(len(y_pred), -1) - np.asarray(y_true, "float64").reshape(len(y_pred), -1)
    return float(np.mean(diff**2) if metric == "mse" else np.mean(np.abs(diff)))


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much worse than the baseline the pruned model may be.

    Attributes:
        metric: One of :data:`METRICS`.
        max_drop: The largest drop allowed (a fraction of ``|baseline|`` if ``relative``).
        relative: Whether ``max_drop`` is relative to the baseline.
    """

    metric: str
    max_drop: float
    relative: bool = True

    def drop(self, baseline: float, value: float) -> float:
        """How much worse ``value`` is than ``baseline`` (negative: better), as budgeted.

        Example:
            >>> Budget("accuracy", 0.01).drop(0.9, 0.891)
            0.01
        """
        worse = (baseline - value) * METRICS[self.metric]
        return round(worse / abs(baseline), 12) if self.relative and baseline else round(worse, 12)

    def holds(self, baseline: float, value: float) -> bool:
        """Whether ``value`` is within the budget.

        Example:
            >>> Budget("mse", 0.1, relative=False).holds(1.0, 1.05)
            True
        """
        return self.drop(baseline, value) <= self.max_drop

    def describe(self) -> str:
        """The budget in words.

        Example:
            >>> Budget("accuracy", 0.01).describe()
            'accuracy at most 1% worse than the baseline (relative)'
        """
        amount = f"{self.max_drop:.4g}" if not self.relative else f"{self.max_drop * 100:.4g}%"
        kind = "relative" if self.relative else f"absolute, in {self.metric} units"
        return f"{self.metric} at most {amount} worse than the baseline ({kind})"


def parse_max_drop(text: str | float) -> tuple[float, bool]:
    """``"1%"`` -> ``(0.01, True)`` (relative); ``"0.02"`` or ``0.02`` -> absolute.

    Raises:
        AutoPruneError: Not a number (with an optional ``%``) or negative.

    Example:
        >>> parse_max_drop("1%"), parse_max_drop("0.5")
        ((0.01, True), (0.5, False))
    """
    raw = str(text).strip()
    relative = raw.endswith("%")
    try:
        value = float(raw.rstrip("%")) / (100 if relative else 1)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise AutoPruneError("--max-drop must be a number >= 0, with % for a drop relative to "
                             f"the baseline (e.g. 1%) or without for metric units (e.g. 0.02). "
                             f"Received: --max-drop={text!r}")
    return value, relative
