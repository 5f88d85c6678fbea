"""What pruning did to a model: ``pruning_report`` (the record) and ``pruning_summary`` (the table).

* :func:`pruning_report` returns a :class:`PruningReport`: the layers a model has pruned, and
  those ``prune_low_magnitude(..., skip_unsupported=True)`` left unpruned, each with the reason
  (a :class:`SkippedLayer`) -- in the spirit of the report ``keras.Model.quantize`` gives.
* :func:`pruning_summary` prints, like ``model.summary()``, a per-weight table of what is
  pruned: shape, parameters, zeros, sparsity, threshold and schedule.

Example:
    >>> import keras, prunekit
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    >>> rows = pruning_summary(prunekit.prune_low_magnitude(model), print_fn=lambda text: None)
    >>> rows[0]["path"], rows[0]["weight"], rows[0]["parameters"]
    ('prune_low_magnitude_d', 'kernel', 12)
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from prunekit import registry, walk
from prunekit.wrapper import PruneLowMagnitude

_COLUMNS = (("path", "Layer (path)"), ("weight", "Weight"), ("shape", "Shape"),
            ("parameters", "Params"), ("zeros", "Zeros"), ("sparsity", "Sparsity"),
            ("threshold", "Threshold"), ("schedule", "Schedule"))


def relative_labels(weights: list[Any]) -> list[str]:
    """Unique short names for weights of one layer: their paths minus the common prefix.

    Example:
        >>> v = [keras.Variable(1.0, name="kernel"), keras.Variable(1.0, name="bias")]
        >>> relative_labels(v)
        ['kernel', 'bias']
    """
    parts = [w.path.split("/") for w in weights]
    common = 0
    if parts:
        shortest = min(len(p) for p in parts) - 1
        while common < shortest and len({p[common] for p in parts}) == 1:
            common += 1
    labels = ["/".join(p[common:]) for p in parts]
    if len(set(labels)) < len(labels):
        labels = [f"{label}_{i}" for i, label in enumerate(labels)]
    return labels


def weight_labels(wrapper: Any) -> list[str]:
    """Names of a wrapper's pruned weights inside the wrapped layer (``kernel``,
    ``query/kernel``, ``forward_lstm/lstm_cell/kernel``): unique within the wrapper.

    Example:
        >>> import prunekit
        >>> wrapper = prunekit.prune_low_magnitude(keras.layers.LSTM(2))
        >>> wrapper.build((None, 3, 4))
        >>> weight_labels(wrapper)
        ['kernel', 'recurrent_kernel']
    """
    return relative_labels(wrapper.prunable_weights)


def _to_numpy(value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def _rows_for(path: str, layer: Any) -> list[dict[str, Any]]:
    if isinstance(layer, PruneLowMagnitude):
        if not layer.built:
            return []
        schedule = repr(layer.pruning_schedule)
        if layer.pruning_scope == "global":
            schedule += " [global]"
        items = [(label, _to_numpy(w.value) * _to_numpy(m.value), float(_to_numpy(t.value)))
                 for label, w, m, t in zip(weight_labels(layer), layer.prunable_weights,
                                           layer.masks, layer.thresholds)]
    elif (registry.is_pass_through(layer) or not layer.built
          or registry.is_custom_container(layer) or not registry.is_supported(layer)):
        return []
    else:  # A plain (e.g. stripped) layer: count zeros in the weights themselves.
        weights = registry.get_prunable_weights(layer)
        schedule = None
        items = [(label, _to_numpy(w.value), None)
                 for label, w in zip(relative_labels(weights), weights)]
    rows = []
    for label, values, threshold in items:
        zeros = int(np.sum(values == 0))
        rows.append({"path": path, "weight": label, "shape": tuple(values.shape),
                     "parameters": int(values.size), "zeros": zeros,
                     "sparsity": zeros / values.size if values.size else 0.0,
                     "threshold": threshold, "schedule": schedule})
    return rows


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "sparsity":
        return f"{100 * value:.2f}%"
    if key == "threshold":
        return f"{value:.6g}"
    return str(value)


def format_summary(name: str, rows: list[dict[str, Any]]) -> str:
    """Render rows from :func:`pruning_summary` as a table with model totals.

    Example:
        >>> print(format_summary("m", []).splitlines()[0])
        Pruning summary: "m"
    """
    table = [[title for _, title in _COLUMNS]]
    table += [[_cell(key, row[key]) for key, _ in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS))]
    numeric = {"parameters", "zeros", "sparsity", "threshold"}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if key in numeric else c.ljust(w)
                         for c, w, (key, _) in zip(cells, widths, _COLUMNS)).rstrip()

    rule = "─" * len(line(table[0]))
    params = sum(row["parameters"] for row in rows)
    zeros = sum(row["zeros"] for row in rows)
    sparsity = zeros / params if params else 0.0
    return "\n".join([f'Pruning summary: "{name}"', rule, line(table[0]), rule,
                      *(line(cells) for cells in table[1:]), rule,
                      f" Prunable parameters: {params:,}", f" Zeros: {zeros:,}",
                      f" Sparsity: {100 * sparsity:.2f}%", rule])


def pruning_summary(model: keras.Model,
                    print_fn: Callable[[str], Any] | None = None) -> list[dict[str, Any]]:
    """Print and return a per-weight table of a pruned (or stripped) model's sparsity.

    One row per prunable weight: the layer's path in the model, the weight's name inside the
    layer, its shape, parameter count, number of zeros and sparsity, and -- for weights
    pruned by a wrapper -- the mask threshold and the schedule. Zeros are counted in the
    weights the model computes with: ``w * mask`` under a wrapper, the weights themselves in a
    plain (stripped) model, whose prunable weights are those the registry names (kernels,
    embeddings...). The printout ends with the totals over all rows.

    Args:
        model: A model (pruned, stripped or plain; Sequential, Functional or subclassed).
        print_fn: Called with the table text; default ``print``.

    Returns:
        The rows, as dicts with keys ``path``, ``weight``, ``shape``, ``parameters``,
        ``zeros``, ``sparsity``, ``threshold`` and ``schedule`` (None where not pruned).

    Example:
        >>> import prunekit
        >>> base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> rows = pruning_summary(prunekit.strip_pruning(prunekit.prune_low_magnitude(base)),
        ...                        print_fn=lambda text: None)
        >>> rows[0]["weight"], rows[0]["schedule"]
        ('kernel', None)
    """
    rows = [row for path, layer in walk.iter_layers(model) for row in _rows_for(path, layer)]
    (print_fn or print)(format_summary(model.name, rows))
    return rows


# ------------------------------------------------------------------------------ the report
@dataclasses.dataclass(frozen=True)
class SkippedLayer:
    """A layer ``prune_low_magnitude(..., skip_unsupported=True)`` left unpruned, and why.

    For a container (an RNN with a custom cell, a custom block), the layer named is the part
    at fault; the whole container is left unwrapped.

    Attributes:
        path: Where the layer sits in the model: layer names joined by ``/`` in a Sequential
            or Functional model (``"encoder/block_1/odd"``), the attribute path in a
            subclassed one (``'parts["odd"]'``).
        class_name: The layer's class.
        reason: Why prunekit cannot prune it.

    Example:
        >>> SkippedLayer("odd", "Odd", "unknown layer").path
        'odd'
    """

    path: str
    class_name: str
    reason: str


@dataclasses.dataclass(frozen=True)
class PruningReport:
    """Which layers of a model are pruned, and which were skipped and why.

    Attributes:
        pruned: Paths (layer names joined by ``/``) of the layers whose weights pruning
            wrappers prune, in the model's layer order (layers without prunable weights, which
            tfmot's rule wraps too, are not listed).
        skipped: The layers ``prune_low_magnitude(..., skip_unsupported=True)`` left unpruned
            (:class:`SkippedLayer`), in the order they were found.

    Example:
        >>> report = PruningReport(("dense",), (SkippedLayer("odd", "Odd", "unknown"),))
        >>> print(report)
        Pruned 1 layer(s): dense
        Skipped 1 layer(s):
          'odd' (Odd): unknown
    """

    pruned: tuple[str, ...] = ()
    skipped: tuple[SkippedLayer, ...] = ()

    def __str__(self) -> str:
        lines = [f"Pruned {len(self.pruned)} layer(s): {', '.join(self.pruned) or '-'}"]
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} layer(s):")
            lines += [f"  '{s.path}' ({s.class_name}): {s.reason}" for s in self.skipped]
        return "\n".join(lines)


_SKIPPED = "_prunekit_skipped"  # Where prune_low_magnitude records skipped layers on a model.


def record_skipped(model: keras.Model, skipped: tuple[SkippedLayer, ...]) -> None:
    """Record on ``model`` the layers pruning skipped (a plain attribute Keras does not track).

    Example:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
        >>> record_skipped(model, (SkippedLayer("odd", "Odd", "unknown"),))
        >>> pruning_report(model).skipped[0].path
        'odd'
    """
    object.__setattr__(model, _SKIPPED, tuple(skipped))


def forget_skipped(model: keras.Model) -> None:
    """Remove the record of :func:`record_skipped` (a stripped model is no longer pruned)."""
    if _SKIPPED in vars(model):
        object.__delattr__(model, _SKIPPED)


def pruning_report(model: keras.Model) -> PruningReport:
    """Return which layers of ``model`` are pruned, and which pruning skipped and why.

    ``pruned`` is read from the model as it is now. ``skipped`` is what
    ``prune_low_magnitude(..., skip_unsupported=True)`` recorded on the model it returned
    (empty for a model loaded from a file or never pruned); it is also listed in the warning
    given when the layers were skipped.

    Args:
        model: A model, usually one returned by :func:`prunekit.prune_low_magnitude`.

    Returns:
        A :class:`PruningReport`.

    Raises:
        TypeError: If ``model`` is not a ``keras.Model``.

    Example:
        >>> import prunekit
        >>> inputs = keras.Input((4,))
        >>> outputs = keras.layers.Dense(2, name="out")(keras.layers.Dense(4, name="h")(inputs))
        >>> pruned = prunekit.prune_low_magnitude(keras.Model(inputs, outputs))
        >>> pruning_report(pruned)
        PruningReport(pruned=('h', 'out'), skipped=())
    """
    if not isinstance(model, keras.Model):
        raise TypeError("pruning_report expects a keras.Model. "
                        f"Received: model of type {type(model).__name__}")
    pruned = tuple(_wrapped_path(path, layer) for path, layer in walk.iter_layers(model)
                   if isinstance(layer, PruneLowMagnitude)
                   and not registry.is_pass_through(layer.layer))
    return PruningReport(pruned, tuple(getattr(model, _SKIPPED, ())))


def _wrapped_path(path: str, wrapper: PruneLowMagnitude) -> str:
    """The path of the layer a wrapper holds: the wrapper's path, with the layer's name."""
    prefix = path.rpartition("/")[0]
    return f"{prefix}/{wrapper.layer.name}" if prefix else wrapper.layer.name


def raise_or_warn(problems: list[SkippedLayer], skip_unsupported: bool) -> None:
    """Raise for unsupported layers, or warn once listing those that will be skipped.

    Example:
        >>> raise_or_warn([], skip_unsupported=False)
    """
    if not problems:
        return
    listing = "; ".join(f"'{p.path}' ({p.class_name}): {p.reason}" for p in problems)
    if not skip_unsupported:
        first = problems[0]
        more = f" All unsupported: {listing}." if len(problems) > 1 else ""
        raise registry.unsupported_error(first.path, first.class_name, first.reason,
                                         f"{more} Nothing was changed.")
    warnings.warn(f"prune_low_magnitude left {len(problems)} unsupported layer(s) unpruned "
                  f"(listed by prunekit.pruning_report(model)): {listing}", stacklevel=4)
