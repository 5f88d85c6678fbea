"""The results table, shared by the terminal (rich) and the HTML report."""

from __future__ import annotations

import io
from typing import Any

from prunekit.export.sizes import GZIP_LABEL
from prunekit.study.results import RunResult

#: The article the study reproduces, as it is cited wherever its numbers are shown.
ARTICLE = ('Derrick Mwiti, "Pruning Machine Learning Models in TensorFlow", KDnuggets, '
           "December 2020")
ARTICLE_URL = "https://www.kdnuggets.com/2020/12/pruning-machine-learning-models-tensorflow.html"
#: Test MSE the article printed for its runs (one unseeded tfmot run, Friedman #1 data).
ARTICLE_MSE = {"baseline": 0.0201, "whole": 0.1830, "layer": 0.1388, "weights": 0.0264}
#: What the "article MSE" column holds, with the citation.
ARTICLE_NOTE = f"the test MSE printed in {ARTICLE} ({ARTICLE_URL}), one unseeded tfmot run"


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


def rich_table(results: list[RunResult], dataset: str, width: int | None = None) -> Any:
    """The results for the terminal: one ``rich`` table, or two on a narrow console.

    Where the whole table is wider than the console, it is split in two -- the errors (run, test,
    article and stripped metric, epochs, fit time) and the sparsity and sizes (run letter,
    kernel sparsity, parameters, sizes) -- without vertical rules, so that every column shows
    in full at 80 columns and up.

    Args:
        results: The runs.
        dataset: Dataset name (the article's numbers only apply to ``friedman``).
        width: The console's width (``None``: wide).

    Returns:
        A renderable for ``console.print``.

    Example:
        >>> r = RunResult("baseline", "a", "Baseline", "", test_metric=0.02, gz_size=7000)
        >>> rich_table([r], "friedman").row_count
        1
        >>> len(rich_table([r], "friedman", width=80).renderables)
        2
    """
    from rich import box
    from rich.console import Console, Group
    from rich.table import Table

    metric = results[0].metric if results else "mse"
    headings = columns(metric, dataset, has_int8(results))
    cells = rows(results, dataset)
    sparsity = headings.index("kernel sparsity")
    table = Table(title="Pruning study results", show_lines=False)
    for i, heading in enumerate(headings):
        table.add_column(heading, justify="left" if i in (0, sparsity) else "right",
                         no_wrap=i in (0, sparsity), min_width=7)
    for row in cells:
        table.add_row(*row)
    if width is None or Console(width=10_000, file=io.StringIO()).measure(table).maximum <= width:
        return table
    epochs = headings.index("epochs")
    parts = []
    for title, keep in (("Pruning study results: errors",
                         [0, *range(1, sparsity), epochs, epochs + 1]),
                        ("sparsity and sizes",
                         [0, sparsity, *range(sparsity + 1, epochs), *range(epochs + 2,
                                                                            len(headings))])):
        table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
        for i in keep:
            table.add_column(headings[i], justify="left" if i in (0, sparsity) else "right",
                             overflow="fold")  # wrap at spaces; never cut with an ellipsis
        for row, result in zip(cells, results):
            first = row[0] if title.startswith("Pruning") else result.letter
            table.add_row(first, *(row[i] for i in keep[1:]))
        parts.append(table)
    return Group(*parts)
