"""What ``auto_prune`` found: the report object, ``results.json``, the report page and its plot.

The page is self-contained (:mod:`prunekit.lab.html`): the budget and whether it held, the
per-layer sparsities with the reason for each, the sensitivity scan as a plot, every trial.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

import numpy as np

#: results.json's layout version.
SCHEMA = 1


@dataclasses.dataclass
class Trial:
    """One fine-tuning trial of the search.

    Attributes:
        number: 1, 2, ... in the order run.
        index: The point of the greedy path tried.
        targets: Each unit's target sparsity.
        sparsities: Each unit's measured sparsity after fine-tuning.
        predicted_drop: Sum of the units' one-shot drops (the scan's prediction).
        removed: Weights removed at the targets.
        value: The metric on the held-out rows after fine-tuning.
        drop: Its drop from the baseline, as budgeted.
        held: Whether the budget held.
        wall_time_s: Seconds the trial took.
    """

    number: int
    index: int
    targets: dict[str, float]
    sparsities: dict[str, float]
    predicted_drop: float
    removed: int
    value: float
    drop: float
    held: bool
    wall_time_s: float


@dataclasses.dataclass
class AutoPruneReport:
    """The result of :func:`prunekit.auto_prune`.

    Attributes:
        mode: ``"budget"`` (``max_drop``) or ``"sparsity"`` (a fixed target).
        budget: The budget in words (``None`` for a fixed sparsity).
        max_drop: The largest drop allowed (``None`` for a fixed sparsity).
        relative: Whether ``max_drop`` is relative to the baseline.
        metric: The metric, and ``metric_reason`` why it was chosen.
        baseline: The metric of the user's model on the held-out rows.
        value: The metric of the returned model on the held-out rows.
        drop: ``value``'s drop from ``baseline``, as budgeted.
        held: Whether the budget held (``None`` for a fixed sparsity).
        sparsities: Each unit's measured sparsity in the returned model.
        reasons: Why each unit got its sparsity.
        params: ``{"total", "prunable", "zeros", "remaining"}``: weight counts of the returned
            model (``remaining``: nonzero weights).
        scan: The sensitivity scan (:meth:`ScanResult.as_dict`).
        trials: Every trial, in order.
        schedule: Fine-tuning epochs, batch size, steps, the schedules' end step and frequency.
        loss: The fine-tuning loss, in words.
        data: Where the rows came from, and how many.
        notes: Things worth a reader's attention (a lowered frequency, no trial holding...).
        test: The metric on rows never used for a decision (``baseline``, ``value``,
            ``drop``, ``rows``), when given.
        wall_time_s: Seconds for the whole job.
        files: Files written, relative to the output folder (``prunekit prune``).
    """

    mode: str
    budget: str | None
    max_drop: float | None
    relative: bool | None
    metric: str
    metric_reason: str
    baseline: float
    value: float
    drop: float
    held: bool | None
    sparsities: dict[str, float]
    reasons: dict[str, str]
    params: dict[str, int]
    scan: dict[str, Any]
    trials: list[Trial]
    schedule: dict[str, int]
    loss: str
    data: dict[str, Any]
    notes: list[str] = dataclasses.field(default_factory=list)
    test: dict[str, float] | None = None
    wall_time_s: float = 0.0
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    structured: dict[str, Any] | None = None
    shrunk_model: Any = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, budget: Any, metric: str, metric_reason: str, baseline: float, value: float,
              scan: Any, trials: list[Trial], chosen: Trial | None, model: Any, data: Any,
              loss: str, schedule: dict[str, int], notes: list[str],
              wall_time_s: float) -> AutoPruneReport:
        """Assemble the report of a finished job (see :func:`prunekit.auto.run.auto_prune`)."""
        from prunekit.auto.metric import Budget
        from prunekit.lab.sizes import weight_counts

        judge = budget or Budget(metric, float("inf"), False)
        total, nonzero = weight_counts(model)
        prunable = sum(layer.params for layer in scan.layers)
        sparsities = chosen.sparsities if chosen else {c.name: 0.0 for c in scan.layers}
        return cls(
            mode="budget" if budget else "sparsity",
            budget=budget.describe() if budget else None,
            max_drop=budget.max_drop if budget else None,
            relative=budget.relative if budget else None,
            metric=metric, metric_reason=metric_reason, baseline=baseline, value=value,
            drop=judge.drop(baseline, value),
            held=budget.holds(baseline, value) if budget else None,
            sparsities=sparsities, reasons=_reasons(scan, chosen, budget),
            params={"total": total, "prunable": prunable, "zeros": total - nonzero,
                    "remaining": nonzero},
            scan=scan.as_dict(), trials=trials, schedule=schedule, loss=loss,
            data={"description": data.description, "train_rows": len(data.x_train),
                  "val_rows": len(data.x_val)},
            notes=notes, wall_time_s=wall_time_s)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-able data (results.json's content, plus ``schema``)."""
        shrunk, self.shrunk_model = self.shrunk_model, None  # a model is not data
        try:
            return {"schema": SCHEMA, **{k: v for k, v in dataclasses.asdict(self).items()
                                         if k != "shrunk_model"}}
        finally:
            self.shrunk_model = shrunk

    def __str__(self) -> str:
        head = (f"budget: {self.budget}" if self.budget else "fixed sparsity target")
        verdict = "" if self.held is None else (" -- holds" if self.held else " -- BROKEN")
        lines = [head,
                 f"{self.metric}: baseline {self.baseline:.5g}, pruned {self.value:.5g} "
                 f"(drop {self.drop:.4g}){verdict}",
                 f"weights: {self.params['remaining']:,} of {self.params['total']:,} nonzero "
                 f"({self.params['zeros'] / max(self.params['total'], 1):.1%} zeros)"]
        lines += [f"  {name}: {s:.1%}  ({self.reasons.get(name, '')})"
                  for name, s in self.sparsities.items()]
        if self.structured:
            s = self.structured
            lines.append(f"structured: {s['params_before']:,} -> {s['params_after']:,} "
                         f"parameters, {self.metric} {s['value']:.5g} (drop {s['drop']:.4g}), "
                         "latency " + ", ".join(f"batch {b}: {v['speedup']:.2f}x faster"
                                                for b, v in s["latency_ms"].items()))
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _reasons(scan: Any, chosen: Trial | None, budget: Any) -> dict[str, str]:
    """Why each unit got its sparsity: its one-shot drop at the target, and at the next rung."""
    reasons = {}
    for curve in scan.layers:
        target = chosen.targets.get(curve.name, 0.0) if chosen else 0.0
        if target <= 0:
            first = curve.drops[0] if curve.drops else float("nan")
            reasons[curve.name] = (f"left dense: its first step ({curve.sparsities[0]:.0%}, "
                                   f"one-shot drop {first:.3g}) cost more per weight than the "
                                   "steps taken") if chosen else "left dense"
            continue
        at = curve.sparsities.index(target) if target in curve.sparsities else None
        text = f"one-shot drop {curve.drops[at]:.3g} at {target:.0%}" if at is not None else ""
        if not budget:
            reasons[curve.name] = f"fixed target; {text}"
            continue
        if at is not None and at + 1 < len(curve.sparsities):
            text += (f"; {curve.drops[at + 1]:.3g} at {curve.sparsities[at + 1]:.0%}, "
                     "which cost more per weight than other layers' next steps")
        elif at is not None:
            text += " (the top of the ladder)"
        reasons[curve.name] = text
    return reasons


def scan_figure(scan: dict[str, Any], max_drop: float | None, relative: bool = False) -> Any:
    """The scan as a matplotlib Figure: each unit's drop against its sparsity.

    Example:
        >>> fig = scan_figure({"metric": "mse", "layers": [{"name": "d", "params": 4,
        ...     "sparsities": [0.5, 0.9], "drops": [0.0, 0.2]}]}, 0.05)
        >>> fig.axes[0].get_xlabel()
        'sparsity of that layer alone (others dense)'
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    for layer in scan["layers"]:
        axes.plot([0.0, *layer["sparsities"]], [0.0, *layer["drops"]], marker="o",
                  label=f"{layer['name']} ({layer['params']:,} weights)")
    if max_drop is not None and np.isfinite(max_drop):
        axes.axhline(max_drop, color="red", linestyle="--", label="budget")
    axes.set_xlabel("sparsity of that layer alone (others dense)")
    kind = "relative drop" if relative else "drop"
    axes.set_ylabel(f"{kind} in {scan['metric']} (one-shot, no fine-tuning)")
    axes.set_yscale("symlog", linthresh=max(max_drop or 0.01, 1e-4))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def report_html(report: AutoPruneReport) -> str:
    """The self-contained report page.

    Example:
        >>> "<html" in report_html(example_report())
        True
    """
    from prunekit.lab.html import figure_html, page, png_uri

    verdict = ("" if report.held is None else
               "<b>the budget holds</b>" if report.held else "<b>the budget is broken</b>")
    params = report.params
    goal = html.escape(report.budget or "fixed sparsity")
    header = (f"<h1>prunekit prune</h1><p class='meta'>{goal}"
              f"</p><p>{html.escape(report.metric)} on {report.data['val_rows']} held-out rows: "
              f"baseline {report.baseline:.5g}, pruned {report.value:.5g}, drop "
              f"{report.drop:.4g} {verdict}. Nonzero weights: {params['remaining']:,} of "
              f"{params['total']:,} ({params['zeros'] / max(params['total'], 1):.1%} zeros). "
              f"Metric: {html.escape(report.metric_reason)}.</p>")
    layers = _table(["layer", "weights", "sparsity", "why"],
                    [[n, next((c["params"] for c in report.scan["layers"] if c["name"] == n), ""),
                      f"{s:.1%}", report.reasons.get(n, "")]
                     for n, s in report.sparsities.items()])
    trials = _table(["trial", "path point", "weights removed", "predicted one-shot drop",
                     report.metric, "drop", "held", "seconds"],
                    [[t.number, t.index if t.index >= 0 else "below the ladder",
                      f"{t.removed:,}", f"{t.predicted_drop:.4g}",
                      f"{t.value:.5g}", f"{t.drop:.4g}", "yes" if t.held else "no",
                      f"{t.wall_time_s:.1f}"] for t in report.trials])
    figure = figure_html(png_uri(scan_figure(report.scan, report.max_drop, bool(report.relative))),
                         "Sensitivity scan: the drop with one layer pruned one-shot", "scan")
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in report.notes)
    if report.structured:
        s = report.structured
        notes += (f"<h2>Structured (units removed)</h2><p>{s['params_before']:,} -> "
                  f"{s['params_after']:,} parameters; {html.escape(report.metric)} "
                  f"{s['value']:.5g} (drop {s['drop']:.4g}) after fine-tuning.</p>"
                  + _table(["batch", "original ms", "shrunk ms", "speed-up"],
                           [[b, v["original"], v["shrunk"], v["speedup"]]
                            for b, v in s["latency_ms"].items()])
                  + f"<pre>{html.escape(s['layers'])}</pre>")
    method = ("<p>Per-layer sparsities follow the greedy path on the scan (fewest predicted "
              "drop per weight removed); each trial prunes a fresh copy gradually "
              f"(PolynomialDecay over {report.schedule['end_step']} of "
              f"{report.schedule['steps']} steps, every {report.schedule['frequency']}) while "
              f"fine-tuning with {html.escape(report.loss)}, then measures the held-out rows; "
              "the search moves along the path after a trial that holds and backs off after "
              "one that breaks the budget.</p>")
    body = (header + notes + "<h2>Per-layer sparsity</h2>" + layers + "<h2>Sensitivity scan</h2>"
            + figure + "<h2>Trials</h2>" + trials + method
            + f"<p class='meta'>Data: {html.escape(report.data['description'])}. "
              f"{report.wall_time_s:.1f} s.</p>")
    return page("prunekit prune report", body, css="td:last-child{text-align:left}")


def example_report() -> AutoPruneReport:
    """A small report for examples and tests of the page."""
    scan = {"metric": "mse", "baseline": 1.0, "ladder": [0.5],
            "layers": [{"name": "d", "params": 4, "sparsities": [0.5], "values": [1.1],
                        "drops": [0.1]}], "skipped": []}
    return AutoPruneReport("budget", "mse at most 20% worse", 0.2, True, "mse", "given", 1.0,
                           1.05, 0.05, True, {"d": 0.5}, {"d": "one-shot drop 0.1 at 50%"},
                           {"total": 6, "prunable": 4, "zeros": 2, "remaining": 4}, scan,
                           [Trial(1, 1, {"d": 0.5}, {"d": 0.5}, 0.1, 2, 1.05, 0.05, True, 0.1)],
                           {"epochs": 1, "batch_size": 32, "end_step": 7, "frequency": 1,
                            "steps": 10}, "MSE", {"description": "x", "train_rows": 8,
                                                  "val_rows": 2})
