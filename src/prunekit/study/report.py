"""report.html: one self-contained page (plots as base64 PNG) telling the study's story."""

from __future__ import annotations

import html
import os
from typing import Any

from prunekit.export.io import write_atomic
from prunekit.export.sizes import GZIP_FORMAT, GZIP_LABEL
from prunekit.lab.html import figure_html, page, png_bytes_uri, png_uri
from prunekit.study.results import RunResult
from prunekit.study.table import columns, has_int8, rows

_COLORS = {"baseline": "#333333", "whole": "#d62728", "layer": "#1f77b4", "weights": "#ff7f0e",
           "recommended": "#2ca02c", "structured": "#8c564b", "custom": "#9467bd"}

#: The study's styles, on top of prunekit.lab.html.BASE_CSS.
_CSS = """
main{max-width:1240px} h2{margin-top:36px} h3{font-size:16px;margin:20px 0 6px}
.note{padding:8px 12px;margin:8px 0;font-size:14px}
table{font-size:13px} th,td{padding:4px 6px} td{white-space:nowrap} th{white-space:normal}
ul.findings{font-size:14px} ul.findings li{margin:4px 0}
td:first-child,th:first-child{text-align:left} td.wrap{white-space:normal;text-align:left}
figure{margin:12px 0}
pre{background:#fff;border:1px solid #e3e3e3;padding:8px;font-size:11px;overflow-x:auto}
details{margin:6px 0} summary{cursor:pointer;font-weight:600}
"""


def _label(r: RunResult) -> str:
    return f"({r.letter}) {r.title}"


def plot_curves(results: list[RunResult]) -> str:
    """Training (solid) and validation (dashed) loss per epoch of every run, as a data URI.

    Example:
        >>> history = {"loss": [2.0, 1.0], "val_loss": [2.0, 1.0]}
        >>> r = RunResult("baseline", "a", "Baseline", "", history=history)
        >>> plot_curves([r]).startswith("data:image/png;base64,")
        True
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.2))
    ax = figure.add_subplot()
    for r in results:
        color = _COLORS.get(r.run_id, None)
        for key, style in (("loss", "-"), ("val_loss", "--")):
            values = r.history.get(key) or []
            if values:
                label = _label(r) if key == "loss" else None
                ax.plot(range(1, len(values) + 1), values, style, color=color, lw=1.4, label=label)
    ax.set_yscale("log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (log scale)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", title="solid: train, dashed: validation",
              title_fontsize=8)
    return png_uri(figure)


def plot_sparsity(results: list[RunResult]) -> str | None:
    """Sparsity vs step of each pruned run: the schedule (lines) and the weights (dots).

    Returns:
        A data URI, or ``None`` when no run was pruned.

    Example:
        >>> plot_sparsity([RunResult("baseline", "a", "Baseline", "")]) is None
        True
    """
    from matplotlib.figure import Figure

    pruned = [r for r in results if r.pruning]
    if not pruned:
        return None
    ncols = min(3, len(pruned))
    nrows = (len(pruned) + ncols - 1) // ncols
    figure = Figure(figsize=(4.1 * ncols, 3.2 * nrows))
    for i, r in enumerate(pruned):
        ax = figure.add_subplot(nrows, ncols, i + 1)
        curve = r.schedule_curve or {}
        steps = curve.get("step", [])
        for layer in (k for k in curve if k != "step"):
            ax.step(steps, curve[layer], where="post", lw=1.3, color="#555555", ls="--",
                    label="schedule target")
        layers = sorted({name for t in r.trace for name in t["sparsity"]})
        for j, layer in enumerate(layers):
            xs = [t["step"] for t in r.trace if layer in t["sparsity"]]
            ys = [t["sparsity"][layer] for t in r.trace if layer in t["sparsity"]]
            ax.plot(xs, ys, "o", ms=3.5, color=("#1f77b4", "#ff7f0e", "#2ca02c")[j % 3],
                    alpha=0.85, label=f"zeros in {layer} kernel")
        ax.set_title(_label(r), fontsize=10)
        ax.set_ylim(-0.03, 1.0)
        ax.set_xlabel("training step", fontsize=9)
        ax.set_ylabel("sparsity", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return png_uri(figure)


def plot_bars(results: list[RunResult], article: dict[str, float] | None) -> str:
    """Test error (or accuracy), gzipped size and batch-1 latency of every run, side by side.

    Example:
        >>> r = RunResult("baseline", "a", "Baseline", "", test_metric=0.02, gz_size=7000)
        >>> plot_bars([r], None).startswith("data:image/png")
        True
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 3.8))
    labels = [f"({r.letter})" for r in results]
    xs = list(range(len(results)))
    ax = figure.add_subplot(1, 3, 1)
    values = [r.test_metric for r in results]
    colors = [_COLORS.get(r.run_id, "gray") for r in results]
    metric = results[0].metric if results else "mse"
    ax.bar(xs, values, color=colors, width=0.6, label="this study")
    if article:
        ax.plot([x for x, r in zip(xs, results) if r.run_id in article],
                [article[r.run_id] for r in results if r.run_id in article],
                "k_", ms=22, mew=2, label="article (tfmot, unseeded)")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2,
                  frameon=False)
    for x, v in zip(xs, values):
        ax.annotate(f"{v:.3g}" if metric == "mse" else f"{v:.1%}", (x, v), ha="center",
                    va="bottom", fontsize=8)
    if metric == "mse" and max(values + [0]) > 20 * min([v for v in values if v > 0] + [1]):
        ax.set_yscale("log")
    ax.set_xticks(xs, labels)
    ax.set_title("test MSE (lower is better)" if metric == "mse" else "test accuracy", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax = figure.add_subplot(1, 3, 2)
    width = 0.38
    stripped = [r.gz_size for r in results]
    unstripped = [r.gz_unstripped or 0 for r in results]
    ax.bar([x - width / 2 for x in xs], unstripped, width, color="#bbbbbb",
           label="pruned, not stripped")
    ax.bar([x + width / 2 for x in xs], stripped, width, color=colors,
           label="baseline / stripped")
    for x, v in zip(xs, stripped):
        ax.annotate(f"{v:,}", (x + width / 2, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, labels)
    ax.set_title(f"{GZIP_LABEL} model size (bytes, the article's measure)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
    ax.set_ylim(0, max(unstripped + stripped + [1]) * 1.12)
    ax.grid(True, axis="y", alpha=0.3)
    _latency_bars(figure.add_subplot(1, 3, 3), results, xs, labels, colors)
    figure.tight_layout()
    return png_uri(figure)


def _latency_bars(ax: Any, results: list[RunResult], xs: list[int], labels: list[str],
                  colors: list[str]) -> None:
    latency = [r.latency_ms or 0.0 for r in results]
    ax.bar(xs, latency, color=colors, width=0.6)
    for x, v in zip(xs, latency):
        ax.annotate(f"{v:.3f}" if v else "-", (x, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, labels)
    ax.set_title("batch-1 latency (ms, median; final model)", fontsize=10)
    ax.set_ylim(0, max(latency + [1e-3]) * 1.15)
    ax.grid(True, axis="y", alpha=0.3)


def _table_html(results: list[RunResult], dataset: str) -> str:
    metric = results[0].metric if results else "mse"
    head = "".join(f"<th>{html.escape(c)}</th>"
                   for c in columns(metric, dataset, has_int8(results)))
    body = []
    for cells in rows(results, dataset):
        tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        body.append(f"<tr>{tds}</tr>")
    return (f'<div class="scroll"><table id="results"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def findings(results: list[RunResult]) -> list[str]:
    """Plain-language statements comparing each pruned run with the baseline.

    Example:
        >>> a = RunResult("baseline", "a", "Baseline", "", test_metric=0.02, gz_size=7400)
        >>> b = RunResult("whole", "b", "Whole", "", pruning={"x": 1}, test_metric=0.2,
        ...               gz_size=5300, gz_unstripped=6300, sparsity={"hidden": 0.5},
        ...               predictions_max_abs_diff=0.0)
        >>> findings([a, b])[0].startswith("(b) Whole: test MSE 0.2000 (10.0x the baseline's")
        True
    """
    base = next((r for r in results if r.run_id == "baseline"), None)
    lines = []
    for r in results:
        if not r.pruning:
            continue
        accuracy = r.metric == "accuracy"
        text = f"({r.letter}) {r.title}: test {'accuracy' if accuracy else 'MSE'} "
        text += f"{r.test_metric:.2%}" if accuracy else f"{r.test_metric:.4f}"
        if base is not None and base.test_metric > 0:
            if accuracy:
                text += f" (baseline {base.test_metric:.2%})"
            else:
                text += f" ({r.test_metric / base.test_metric:.1f}x the baseline's "
                text += f"{base.test_metric:.4f})"
        units = (r.structured or {}).get("units")
        if units:
            removed = ", ".join(f"{k} {a}->{b} units" for k, (a, b) in units.items())
            text += f"; shrunk: {removed}; {GZIP_LABEL} {r.gz_unstripped:,} B masked, "
            text += f"{r.gz_size:,} B shrunk"
        else:
            sparsity = ", ".join(f"{k} {v:.0%}" for k, v in r.sparsity.items())
            text += f"; kernels zero: {sparsity}; {GZIP_LABEL} {r.gz_unstripped:,} B before "
            text += f"stripping, {r.gz_size:,} B after"
        if base is not None and base.gz_size:
            text += f" ({1 - r.gz_size / base.gz_size:.0%} smaller than the baseline's "
            text += f"{base.gz_size:,} B)"
        if r.latency_ms and base is not None and base.latency_ms:
            text += f"; batch-1 latency {r.latency_ms:.3f} ms (baseline {base.latency_ms:.3f} ms)"
        if r.predictions_max_abs_diff is not None:
            same = "identical" if r.predictions_max_abs_diff == 0 else (
                f"max difference {r.predictions_max_abs_diff:.2g}")
            final = "shrunk" if units else "stripped"
            text += f"; pruned vs {final} predictions: {same}."
        lines.append(text)
    return lines


def _run_details(r: RunResult, folder: str) -> str:
    parts = [f"<h3>({r.letter}) {html.escape(r.title)}</h3>",
             f"<p>{html.escape(r.description)}</p>"]
    if r.pruning:
        params = ", ".join(f"{k}={v}" for k, v in r.pruning.items())
        parts.append(f"<p><b>Pruning:</b> <code>{html.escape(params)}</code></p>")
    parts += [f'<div class="note">{html.escape(n)}</div>' for n in r.notes]
    summary = r.files.get("summary")
    if summary and os.path.exists(os.path.join(folder, summary)):
        with open(os.path.join(folder, summary), encoding="utf-8") as file:
            text = file.read()
        parts.append(f"<details><summary>model summary</summary><pre>{html.escape(text)}</pre>"
                     "</details>")
    picture = r.files.get("picture")
    if picture and os.path.exists(os.path.join(folder, picture)):
        with open(os.path.join(folder, picture), "rb") as file:
            uri = png_bytes_uri(file.read())
        parts.append(f'<details><summary>model picture</summary><img alt="model {r.letter}" '
                     f'src="{uri}" style="max-width:420px"></details>')
    return "\n".join(parts)


def write_report(folder: str, results: list[RunResult], meta: dict[str, Any],
                 article: dict[str, float] | None = None) -> str:
    """Write ``<folder>/report.html`` (atomically) and return its path.

    Args:
        folder: The run folder (model summaries and pictures are read from it).
        results: The runs.
        meta: Setup of the study (dataset, seed, backend...), as in results.json.
        article: The article's numbers to draw beside ours, or ``None``.

    Returns:
        The report's path.

    Example:
        >>> import tempfile
        >>> r = RunResult("baseline", "a", "Baseline", "", test_metric=0.02, gz_size=7000)
        >>> write_report(tempfile.mkdtemp(), [r], {"dataset": "friedman"}).endswith("report.html")
        True
    """
    dataset = meta.get("dataset", "friedman")
    setup = ", ".join(f"{k}: {meta[k]}" for k in ("dataset", "backend", "seed", "epochs",
                                                  "keras", "started") if k in meta)
    notes = "".join(f'<div class="note">{html.escape(n)}</div>' for n in meta.get("notes", []))
    sections = [
        f"<h1>Pruning study</h1><p class='meta'>{html.escape(setup)}</p>{notes}",
        "<h2>Results</h2>", _table_html(results, dataset),
        "<ul class='findings'>" + "".join(f"<li>{html.escape(t)}</li>"
                                          for t in findings(results)) + "</ul>",
        f"<p class='meta'>{GZIP_LABEL}: the article's measure, <code>model.save("
        f"'model{GZIP_FORMAT}', include_optimizer=False)</code> then a deflated zip; for a "
        "pruned run it is the stripped model. Kernel sparsity: fraction of exact zeros per "
        "Dense kernel after stripping (L1 hidden, L2 output)."
        + (" int8 .pkz: the stripped model in prunekit.export's compressed sparse int8 format."
           if has_int8(results) else "")
        + " Latency: median of one inference call at batch 1 (the backend's compiled forward "
        "pass, prunekit.structured.measure_latency) of the final model: the baseline, the "
        "stripped model, or the shrunk model of the structured run; zeros do not make a dense "
        "kernel faster, removed units do.</p>",
        figure_html(plot_bars(results, article),
                    "Test error, gzipped size and batch-1 latency per run", "bars"),
        "<h2>Training curves</h2>",
        figure_html(plot_curves(results), "Loss per epoch (log scale)", "curves"),
        "<h2>Sparsity during training</h2>",
        figure_html(plot_sparsity(results), "Lines: the schedule's target sparsity; dots: the "
                "fraction of zeros in each pruned kernel, read at the end of each epoch.",
                "sparsity"),
        "<h2>Runs</h2>", *(_run_details(r, folder) for r in results),
        "<h2>TensorBoard</h2>",
        f"<p><code>tensorboard --logdir {html.escape(meta.get('logdir', 'logs'))}</code></p>",
    ]
    path = os.path.join(folder, "report.html")
    write_atomic(path, page("Pruning study", "\n".join(sections), _CSS))
    return path
