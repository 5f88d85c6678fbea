"""The results table, shared by the terminal (rich) and the HTML report."""

from __future__ import annotations

from typing import Any

from prunekit.export.sizes import GZIP_LABEL
from prunekit.study.results import RunResult

#: Test MSE the article printed for its runs (one unseeded tfmot run, Friedman #1 data).
ARTICLE_MSE = {"baseline": 0.0201, "whole": 0.1830, "layer": 0.1388, "weights": 0.0264}


def _fmt_metric(value: float | None, metric: str) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.2%}" if metric == "accuracy" else f"{value:.4f}"


def _fmt_sparsity(result: RunResult) -> str:
    units = (result.structured or {}).get("units")
    if units:  # Whole units removed: the kernels are smaller, not sparse.
        return " / ".join(f"{name} {before}->{after} units"
                          for name, (before, after) in units.items())
    parts = []
    for i, (layer, value) in enumerate(result.sparsity.items()):
        target = result.target_sparsity.get(layer)
        text = f"L{i + 1} {value:.2f}"
        if target is not None and abs(target - value) > 0.005:
            text += f" (target {target:.2f})"
        parts.append(text)
    return " / ".join(parts)


def columns(metric: str, dataset: str, extra_size: bool = False) -> list[str]:
    """Column headings of the results table.

    Example:
        >>> columns("mse", "friedman")[:3]
        ['run', 'test MSE', 'article MSE']
    """
    name = "test MSE" if metric == "mse" else "test accuracy"
    cols = ["run", name]
    if dataset == "friedman":
        cols.append("article MSE")
    cols += ["stripped " + ("MSE" if metric == "mse" else "accuracy"), "kernel sparsity",
             "params total / trainable", "epochs", "fit time", "latency b=1 (ms)",
             f"{GZIP_LABEL} (B)",
             f"{GZIP_LABEL} unstripped (B)"]
    if extra_size:
        cols.append("int8 .pkz (B)")
    return cols


def has_int8(results: list[RunResult]) -> bool:
    """Whether any run has an int8 compressed size (the optional last column)."""
    return any(r.int8_size is not None for r in results)


def rows(results: list[RunResult], dataset: str) -> list[list[str]]:
    """One list of cells per run, matching :func:`columns`.

    Args:
        results: The runs.
        dataset: Dataset name (the article's numbers only apply to ``friedman``).

    Returns:
        The table's cells as strings.

    Example:
        >>> r = RunResult("baseline", "a", "Baseline", "", test_metric=0.02, gz_size=7000)
        >>> rows([r], "friedman")[0][:3]
        ['a  Baseline', '0.0200', '0.0201']
    """
    table = []
    for r in results:
        cells = [f"{r.letter}  {r.title}", _fmt_metric(r.test_metric, r.metric)]
        if dataset == "friedman":
            article = ARTICLE_MSE.get(r.run_id)
            cells.append("-" if article is None else f"{article:.4f}")
        params = r.params or {}
        cells += [
            _fmt_metric(r.stripped_metric, r.metric),
            _fmt_sparsity(r),
            f"{params.get('total', 0):,} / {params.get('trainable', 0):,}",
            str(r.epochs),
            f"{r.wall_time_s:.1f} s",
            "-" if r.latency_ms is None else f"{r.latency_ms:.3f}",
            f"{r.gz_size:,}",
            "-" if r.gz_unstripped is None else f"{r.gz_unstripped:,}",
        ]
        if has_int8(results):
            cells.append("-" if r.int8_size is None else f"{r.int8_size:,}")
        table.append(cells)
    return table


def rich_table(results: list[RunResult], dataset: str) -> Any:
    """The results as a ``rich.table.Table`` for the terminal.

    Example:
        >>> r = RunResult("baseline", "a", "Baseline", "", test_metric=0.02, gz_size=7000)
        >>> rich_table([r], "friedman").row_count
        1
    """
    from rich.table import Table

    metric = results[0].metric if results else "mse"
    table = Table(title="Pruning study results", show_lines=False)
    for i, heading in enumerate(columns(metric, dataset, has_int8(results))):
        table.add_column(heading, justify="left" if i in (0, 4) else "right",
                         no_wrap=i in (0, 4), min_width=7)
    for cells in rows(results, dataset):
        table.add_row(*cells)
    return table
