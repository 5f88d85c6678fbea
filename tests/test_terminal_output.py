"""What the commands print fits 80 and 100 columns; the study report's figures say what they show.

The results table and the progress lines are rendered on consoles of 80, 100 and 160 columns:
no line may be wider than the console, and every cell of the table must be there in full
(rich drops or truncates columns that do not fit).
"""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from prunekit.lab.progress import LiveProgress, RunsProgress
from prunekit.study.report import bars_figure
from prunekit.study.results import RunResult
from prunekit.study.table import ARTICLE, ARTICLE_URL, rich_table, rows

WIDTHS = [80, 100, 160]


def _console(width: int) -> Console:
    return Console(width=width, file=io.StringIO(), force_terminal=True, color_system=None)


def _results(metric: str = "mse") -> list[RunResult]:
    runs = [("baseline", "a", "Baseline"), ("whole", "b", "Whole model, from scratch"),
            ("layer", "c", "First Dense only"), ("weights", "d", "Baseline weights"),
            ("recommended", "r", "Recommended"), ("custom", "x", "Custom")]
    results = []
    for i, (run_id, letter, title) in enumerate(runs):
        value = 0.0201 * (i + 1) ** 3 if metric == "mse" else 0.97 - 0.004 * i
        result = RunResult(run_id, letter, title, "", metric=metric, test_metric=value,
                           stripped_metric=value, gz_size=7123 - 500 * i,
                           gz_unstripped=None if i == 0 else 9123 - 400 * i,
                           int8_size=1549 + i, params={"total": 1537, "trainable": 1537},
                           epochs=300, wall_time_s=123.4)
        result.sparsity = {"hidden": 0.78, "output": 0.5}
        result.target_sparsity = {"hidden": 0.8, "output": 0.8}
        results.append(result)
    return results


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("dataset,metric", [("friedman", "mse"), ("digits", "accuracy")])
def test_results_table_fits_and_keeps_every_cell(width, dataset, metric):
    results = _results(metric)
    console = _console(width)
    console.print(rich_table(results, dataset, width=width))
    text = console.file.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width, text
    flat = re.sub(r"\s+", " ", text)
    for cells in rows(results, dataset):
        for cell in cells:
            for word in cell.split():  # a cell may wrap inside its column, never lose words
                assert word in flat, (width, cell, text)
    assert "…" not in text


@pytest.mark.parametrize("width", WIDTHS)
def test_progress_lines_fit_on_one_line(width):
    console = _console(width)
    live = LiveProgress(console)
    task = live.progress.add_task("(r) recommended: from the trained baseline", total=300,
                                  info="loss 0.02345 val 0.02567 sparsity 0.80/0.00")
    live.progress.update(task, completed=123)
    runs = RunsProgress("sweep", 21, 3, True, console)
    runs.advance("polynomial 95% 2x2 all-but-output global: mse 0.1234")
    for progress in (live.progress, runs.progress):
        console.print(progress.make_tasks_table(progress.tasks))
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 2, lines  # one line each: nothing wrapped
    assert all(len(line) <= width for line in lines), lines
    assert "123/300" in lines[0] and "4/21" in lines[1]
    assert "ETA" in lines[0] and "ETA" in lines[1]
    if width >= 160:  # room for everything
        assert "sparsity 0.80/0.00" in lines[0] and "mse 0.1234" in lines[1]


def test_error_panel_is_linear_and_accuracy_is_zoomed():
    results = _results("mse")  # test MSE from 0.02 to 4.3: 200x
    figure = bars_figure(results, {"baseline": 0.0201, "whole": 0.1830})
    error, sizes, latency = figure.axes
    assert "latency" in latency.get_title()
    assert error.get_yscale() == "linear" and error.get_ylim()[0] == 0
    accuracy = bars_figure(_results("accuracy"), None).axes[0]
    low, high = accuracy.get_ylim()
    assert 0.9 < low < 0.95 and high <= 1.0  # the runs' 0.95-0.97 fill the panel
    assert "zoomed" in accuracy.get_title()
    heights = [[round(bar.get_height()) for bar in container] for container in sizes.containers]
    assert heights == [[0, 8723, 8323, 7923, 7523, 7123],  # pruned, not stripped
                       [r.gz_size for r in results],      # stripped (the article's measure)
                       [r.int8_size for r in results]]    # prunekit's int8 .pkz
    legend = [text.get_text() for text in error.get_legend().get_texts()]
    assert any(text.startswith("the article (Mwiti 2020") for text in legend), legend


def test_article_is_named_and_cited():
    assert ARTICLE.startswith("Derrick Mwiti, \"Pruning Machine Learning Models in TensorFlow\"")
    assert ARTICLE_URL.startswith("https://www.kdnuggets.com/2020/12/")


def test_model_pictures_of_partly_pruned_runs_have_no_stray_node():
    """Runs (c) and (r) wrap the hidden layer only: their graph holds only their own layers."""
    keras = pytest.importorskip("keras")
    pytest.importorskip("pydot", reason="model pictures need pydot (the study extra)")
    import prunekit
    from prunekit.lab.data import load_dataset
    from prunekit.lab.models import build_model
    from prunekit.study.plans import _prune_hidden_only

    model = _prune_hidden_only(build_model(load_dataset("friedman")),
                               pruning_schedule=prunekit.ConstantSparsity(0.5, 0))
    try:
        dot = keras.utils.model_to_dot(model, show_shapes=True, expand_nested=True)
    except ImportError as error:  # Graphviz's `dot` program is missing
        pytest.skip(f"model pictures need Graphviz: {error}")
    text = dot.to_string()
    nodes = set(re.findall(r"^(\d+) \[label=", text, re.M))
    edges = re.findall(r"^(\d+) -> (\d+)", text, re.M)
    assert len(nodes) == 2 and edges, text
    assert all(a in nodes and b in nodes for a, b in edges), text  # no node made up by an id
