"""``--structured``: the same sparsity as whole units removed, the model rebuilt smaller.

A copy of the user's model goes through :func:`prunekit.structured.shrink` (whole units,
channels and heads removed by L2 importance, the layers rebuilt smaller), is fine-tuned like an
unstructured trial (same loss, optimizer, epochs), measured on the held-out rows, and timed
against the original with :func:`prunekit.structured.measure_latency`.
"""

from __future__ import annotations

from typing import Any

from prunekit.auto.data import AutoPruneError, PruneData
from prunekit.auto.metric import Budget, metric_value
from prunekit.auto.model import copy_model, predict


def check_structured(model: Any) -> None:
    """Refuse a model :func:`prunekit.structured.shrink` cannot rebuild (subclassed).

    Example:
        >>> import keras
        >>> check_structured(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]))
    """
    from prunekit import walk

    if not walk.is_graph_model(model):
        raise AutoPruneError("--structured rebuilds the model smaller, which needs a Sequential "
                             f"or Functional model. Received: {type(model).__name__} "
                             "(subclassed)")


def shrink_and_tune(model: Any, data: PruneData, sparsity: float, budget: Budget,
                    baseline: float, compile_args: dict[str, Any], fit_args: dict[str, Any]
                    ) -> tuple[Any, dict[str, Any]]:
    """The shrunk, fine-tuned model and its figures (metric, drop, sizes, latency).

    Args:
        model: The user's model (not changed).
        data: Training and held-out rows.
        sparsity: Fraction of units removed in every group.
        budget: How the drop is measured.
        baseline: The user's model's metric on the held-out rows.
        compile_args: ``loss`` and ``optimizer`` for fine-tuning.
        fit_args: ``epochs``, ``batch_size`` for fine-tuning.

    Returns:
        ``(small, figures)``; ``figures`` is JSON-able.
    """
    from prunekit.structured import measure_latency, shrink

    try:
        small, report = shrink(copy_model(model, data.x_val), sparsity=sparsity, importance="l2")
    except ValueError as error:
        raise AutoPruneError(f"--structured: {error}") from None
    small.compile(**compile_args)
    y = data.y_train.astype("int32" if budget.metric == "accuracy" else "float32")
    small.fit(data.x_train, y, verbose=0, **fit_args)
    value = metric_value(budget.metric, data.y_val, predict(small, data.x_val))
    before, after = measure_latency([model, small], (1, 32), repeats=20)
    return small, {
        "sparsity": sparsity, "importance": "l2", "params_before": int(model.count_params()),
        "params_after": int(small.count_params()), "value": value,
        "drop": budget.drop(baseline, value),
        "latency_ms": {str(b): {"original": round(before[b] * 1e3, 4),
                                "shrunk": round(after[b] * 1e3, 4),
                                "speedup": round(before[b] / after[b], 3)} for b in before},
        "layers": str(report)}
