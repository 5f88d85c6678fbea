"""``pruning_summary``: a per-weight table of what is pruned, like ``model.summary()``.

Example:
    >>> import keras, prunekit
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    >>> rows = pruning_summary(prunekit.prune_low_magnitude(model), print_fn=lambda text: None)
    >>> rows[0]["path"], rows[0]["weight"], rows[0]["parameters"]
    ('prune_low_magnitude_d', 'kernel', 12)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from prunekit import registry

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


def _walk(layer: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    for child in layer._flatten_layers(include_self=False, recursive=False):
        path = f"{prefix}{child.name}"
        yield path, child
        if not _is_wrapper(child) and registry.is_custom_container(child):
            yield from _walk(child, path + "/")


def _is_wrapper(layer: Any) -> bool:
    from prunekit.wrapper import PruneLowMagnitude

    return isinstance(layer, PruneLowMagnitude)


def _to_numpy(value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def _rows_for(path: str, layer: Any) -> list[dict[str, Any]]:
    if _is_wrapper(layer):
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
    rows = [row for path, layer in _walk(model, "") for row in _rows_for(path, layer)]
    (print_fn or print)(format_summary(model.name, rows))
    return rows
