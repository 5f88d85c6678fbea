"""report.html: one self-contained page (plots as base64 PNG, a sortable table) for a sweep."""

from __future__ import annotations

import dataclasses
import html
import os
from typing import Any

from prunekit.export.io import write_atomic
from prunekit.export.sizes import GZIP_LABEL
from prunekit.lab.html import figure_html, page, png_uri
from prunekit.sweep.grid import RunParams, describe

_SCHEDULE_COLORS = {"constant": "#1f77b4", "polynomial": "#ff7f0e", "none": "#333333"}
_MARKERS = "osD^v<>Pp*hX"

#: The sweep's styles, on top of prunekit.lab.html.BASE_CSS.
_CSS = """
main{max-width:1280px} h2{margin-top:32px}
.meta{line-height:1.5} .note{padding:6px 12px;font-size:13px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:14px}
figure{margin:0}
table{font-size:12.5px} th,td{padding:3px 6px;white-space:nowrap}
th{cursor:pointer;user-select:none;position:sticky;top:0}
th:hover{background:#e4e8f0} th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.text{text-align:left} tr.front td{background:#eaf6ea} tr.front td.star{color:#1a7f1a}
"""

# Clicking a header sorts the rows by that column (numbers numerically, empty cells last);
# clicking again reverses the order.
_SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var asc = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      var nx = Number(x), ny = Number(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _figure(size: tuple[float, float] = (6.2, 4.0)) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    ax = figure.add_subplot()
    ax.grid(True, alpha=0.3)
    return figure, ax


def _params(row: dict[str, Any]) -> RunParams:
    return RunParams(**{f.name: row[f.name] for f in dataclasses.fields(RunParams)})


def _error_name(meta: dict[str, Any]) -> str:
    return "test MSE" if meta.get("metric", "mse") == "mse" else "test error (1 - accuracy)"


def _dense(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in rows if r["schedule"] == "none"), None)


def _log_if_wide(ax: Any, values: list[float]) -> None:
    positive = [v for v in values if v is not None and v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_yscale("log")


def plot_error(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """Test error against achieved sparsity, one colour per schedule, marker per layer choice.

    Lines join runs that differ only in their target sparsity; the dense run is a dashed line.

    Example:
        >>> rows = [{"schedule": "constant", "sparsity": 0.5, "achieved_sparsity": 0.5,
        ...          "error": 1.0, "layers": "all"}]
        >>> plot_error(rows, {}).startswith("data:image/png")
        True
    """
    figure, ax = _figure()
    layers = sorted({r["layers"] for r in rows if r["schedule"] != "none"})
    for schedule in ("constant", "polynomial"):
        mine = [r for r in rows if r["schedule"] == schedule and r["error"] is not None]
        if not mine:
            continue
        color = _SCHEDULE_COLORS[schedule]
        for i, layer in enumerate(layers):
            pts = [r for r in mine if r["layers"] == layer]
            if pts:
                ax.scatter([r["achieved_sparsity"] for r in pts], [r["error"] for r in pts],
                           color=color, marker=_MARKERS[i % len(_MARKERS)], alpha=0.75, s=36,
                           label=f"{schedule}, layers {layer}")
        for series in _series(mine):
            ax.plot([r["achieved_sparsity"] for r in series], [r["error"] for r in series],
                    "-", color=color, lw=1.1, alpha=0.5)
    dense = _dense(rows)
    if dense and dense["error"] is not None:
        ax.axhline(dense["error"], ls="--", color="#333333", lw=1.2, label="dense (no pruning)")
    _log_if_wide(ax, [r["error"] for r in rows])
    ax.set_xlabel("achieved sparsity (zeros in the pruned kernels)")
    ax.set_ylabel(_error_name(meta))
    ax.legend(fontsize=8)
    return png_uri(figure)


def _series(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Groups of runs equal in every parameter but ``sparsity``, each sorted by sparsity."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    fixed = [f.name for f in dataclasses.fields(RunParams) if f.name != "sparsity"]
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in fixed), []).append(row)
    return [sorted(g, key=lambda r: r["sparsity"]) for g in groups.values() if len(g) > 1]


def plot_size(rows: list[dict[str, Any]]) -> str:
    """Compressed sizes of the stripped model against achieved sparsity.

    Example:
        >>> rows = [{"schedule": "none", "achieved_sparsity": 0.0, "gz_bytes": 10,
        ...          "int8_bytes": None}]
        >>> plot_size(rows).startswith("data:image/png")
        True
    """
    figure, ax = _figure()
    for column, marker, name in (("gz_bytes", "o", f"{GZIP_LABEL} (article)"),
                                 ("int8_bytes", "s", "int8 .pkz (prunekit.export)")):
        for schedule, color in _SCHEDULE_COLORS.items():
            pts = [r for r in rows if r["schedule"] == schedule and r.get(column)]
            if pts:
                ax.scatter([r["achieved_sparsity"] for r in pts], [r[column] for r in pts],
                           marker=marker, color=color, alpha=0.75, s=32,
                           label=f"{name}, {schedule if schedule != 'none' else 'dense'}")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("achieved sparsity (zeros in the pruned kernels)")
    ax.set_ylabel("bytes")
    ax.legend(fontsize=7, loc="best")
    return png_uri(figure)


def plot_pareto(rows: list[dict[str, Any]], meta: dict[str, Any], size_column: str) -> str:
    """Error against size for every run; the Pareto front highlighted and annotated.

    Example:
        >>> rows = [{"schedule": "none", "error": 1.0, "gz_bytes": 10, "pareto": True}]
        >>> plot_pareto(rows, {}, "gz_bytes").startswith("data:image/png")
        True
    """
    figure, ax = _figure((6.2, 4.0))
    pts = [r for r in rows if r["error"] is not None and r.get(size_column) is not None]
    others = [r for r in pts if not r["pareto"]]
    front = sorted((r for r in pts if r["pareto"]), key=lambda r: r[size_column])
    ax.scatter([r[size_column] for r in others], [r["error"] for r in others], color="#9a9a9a",
               s=26, alpha=0.7, label="dominated")
    if front:
        ax.step([r[size_column] for r in front], [r["error"] for r in front], where="post",
                color="#d62728", lw=1.5)
        ax.scatter([r[size_column] for r in front], [r["error"] for r in front], color="#d62728",
                   s=44, zorder=3, label="Pareto front")
        for i, r in enumerate(front[:12]):  # alternate above/below: neighbours often crowd
            ax.annotate(describe(r), (r[size_column], r["error"]), fontsize=7,
                        xytext=(4, 5 if i % 2 == 0 else -11), textcoords="offset points")
    _log_if_wide(ax, [r["error"] for r in pts])
    ax.set_xlabel({"gz_bytes": f"{GZIP_LABEL} size (bytes)", "int8_bytes": "int8 .pkz size "
                   "(bytes)", "nonzeros": "nonzero weights"}[size_column])
    ax.set_ylabel(_error_name(meta))
    ax.legend(fontsize=8)
    return png_uri(figure)


def plot_schedules(rows: list[dict[str, Any]], limit: int = 12) -> str | None:
    """Sparsity against step, from the schedule functions, for each distinct schedule.

    Returns:
        A data URI, or ``None`` if no run was pruned.

    Example:
        >>> plot_schedules([{"schedule": "none"}]) is None
        True
    """
    from prunekit.lab.progress import schedule_curve
    from prunekit.sweep.run import make_schedule

    curves: dict[str, Any] = {}
    for row in rows:
        if row["schedule"] == "none":
            continue
        schedule = make_schedule(_params(row))
        curves.setdefault(repr(schedule), (schedule, row.get("steps") or 0))
    if not curves:
        return None
    figure, ax = _figure((6.2, 4.0))
    last = max(steps for _, steps in curves.values())
    for i, (schedule, _) in enumerate(list(curves.values())[:limit]):
        xs, ys = schedule_curve(schedule, last)
        name = type(schedule).__name__.replace("Sparsity", "").replace("Decay", "")
        config = schedule.get_config()["config"]
        text = (f"{name} {config.get('target_sparsity', config.get('final_sparsity')):.0%} "
                f"steps {config['begin_step']}..{config['end_step']} every {config['frequency']}")
        ax.step(xs, ys, where="post", lw=1.4, label=text, color=f"C{i % 10}")
    ax.set_ylim(-0.03, 1.0)
    ax.set_xlabel("training step")
    ax.set_ylabel("target sparsity (at mask updates)")
    extra = f" (first {limit} of {len(curves)})" if len(curves) > limit else ""
    ax.legend(fontsize=7, title=f"schedules{extra}", title_fontsize=8)
    return png_uri(figure)


def _fmt(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "\u2605" if value else ""
    if column in ("sparsity", "initial_sparsity", "achieved_sparsity"):
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and column in ("gz_bytes", "int8_bytes", "nonzeros", "weights"):
        return f"{value:,}"
    return str(value)


#: (column, header) of the HTML table.
_TABLE = (("pareto", "front"), ("schedule", "schedule"), ("sparsity", "target"),
          ("initial_sparsity", "initial"), ("begin_step", "begin"), ("end_step", "end"),
          ("frequency", "freq"), ("power", "power"), ("block_size", "block"),
          ("pooling", "pool"), ("layers", "layers"), ("scope", "scope"),
          ("test_metric", "metric"), ("error", "error"), ("achieved_sparsity", "sparsity"),
          ("nonzeros", "nonzeros"), ("weights", "weights"), ("gz_bytes", f"{GZIP_LABEL} (B)"),
          ("int8_bytes", "int8 .pkz (B)"), ("train_time_s", "train s"), ("key", "key"))
_TEXT = ("schedule", "block_size", "pooling", "layers", "scope", "key")


def table_html(rows: list[dict[str, Any]]) -> str:
    """The sortable results table (Pareto rows highlighted).

    Example:
        >>> "<table" in table_html([])
        True
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in _TABLE)
    body = []
    for row in rows:
        cells = []
        for column, _ in _TABLE:
            value = row.get(column)
            raw = "1" if value is True else "0" if value is False else "" if value is None \
                else str(value)
            css = "text" if column in _TEXT else "star" if column == "pareto" else ""
            cells.append(f'<td class="{css}" data-v="{html.escape(raw)}">'
                         f"{html.escape(_fmt(column, value))}</td>")
        body.append(f'<tr class="{"front" if row.get("pareto") else ""}">{"".join(cells)}</tr>')
    return (f'<div class="scroll"><table class="sortable" id="results"><thead><tr>{head}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></div>')


def _header(rows: list[dict[str, Any]], meta: dict[str, Any], size_column: str) -> str:
    spec = meta.get("spec", {})
    fp = meta.get("fingerprint", {})
    front = [r for r in rows if r["pareto"]]
    setup = (f"backend {html.escape(str(fp.get('backend', '?')))}, {spec.get('epochs')} epochs "
             f"per run, batch {spec.get('batch_size')}, base seed {spec.get('seed')}, "
             f"{len(rows)} runs; Pareto front on {_error_name(meta)} vs "
             f"<code>{size_column}</code>: {len(front)} runs")
    axes = spec.get("axes") or {}
    grid = " \u00d7 ".join(f"{k} {', '.join(map(str, v))}" for k, v in axes.items())
    lines = [f"data: {html.escape(str(meta.get('data', '')))}", setup,
             f"grid: {html.escape(grid or 'defaults')}"
             + (" (+ dense reference run)" if spec.get("dense") else "")]
    notes = [f"{describe(r)}: {n}" for r in rows for n in (r.get("notes") or [])]
    blocks = "".join(f'<div class="note">{html.escape(n)}</div>' for n in notes[:20])
    return f'<p class="meta">{"<br>".join(lines)}</p>{blocks}'


def report_html(rows: list[dict[str, Any]], meta: dict[str, Any], size_column: str) -> str:
    """The whole page as a string.

    Example:
        >>> "<html" in report_html([], {}, "gz_bytes")
        True
    """
    figures = []
    if rows:
        figures = [(plot_error(rows, meta), "Test error vs achieved sparsity, per schedule."),
                   (plot_size(rows), "Compressed size of the stripped model vs sparsity."),
                   (plot_pareto(rows, meta, size_column),
                    "Pareto front: no other run is both smaller and at least as accurate."),
                   (plot_schedules(rows), "Sparsity vs step, from the schedule functions.")]
    figs = "".join(figure_html(uri, caption) for uri, caption in figures)
    body = (f"<h1>Pruning sweep</h1>{_header(rows, meta, size_column)}<h2>Trade-offs</h2>"
            f'<div class="grid">{figs}</div><h2>Runs</h2><p class="meta">Click a column header '
            f"to sort; rows on the Pareto front are green (\u2605).</p>{table_html(rows)}")
    return page("Pruning sweep", body, _CSS, _SORT_JS)


def write_report(folder: str, rows: list[dict[str, Any]], meta: dict[str, Any],
                 size_column: str = "gz_bytes") -> str:
    """Write ``report.html`` into ``folder`` (atomically) and return its path.

    Args:
        folder: The sweep folder.
        rows: Table rows (:func:`prunekit.sweep.results.table_rows`).
        meta: The sweep's ``sweep.json`` content.
        size_column: The size column of the Pareto front.

    Returns:
        The report's path.

    Example:
        >>> import tempfile
        >>> write_report(tempfile.mkdtemp(), [], {}).endswith("report.html")
        True
    """
    path = os.path.join(folder, "report.html")
    write_atomic(path, report_html(rows, meta, size_column))
    return path
