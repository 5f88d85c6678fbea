"""Results of a study: one record per run, written as results.json and results.csv."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from typing import Any

from prunekit.export.io import json_safe, write_atomic, write_json


@dataclasses.dataclass
class RunResult:
    """What one run produced. Sizes are the article's gzipped size (of the ``.h5`` file), in bytes.

    Attributes:
        run_id: ``baseline``, ``whole``, ``layer``, ``weights``, ``recommended``,
            ``structured`` or ``custom``.
        letter: The run's letter (a, b, c, d, r, s, x).
        title: One-line human title.
        description: What the run does and why.
        pruning: The pruning parameters (schedule, block, pooling, pruned layers), or ``None``.
        metric: ``"mse"`` or ``"accuracy"``.
        test_metric: Metric on the test set of the trained model (pruned wrapper if pruned).
        stripped_metric: Metric of the stripped model (``None`` for the baseline).
        predictions_max_abs_diff: Max ``|pruned - stripped|`` over test predictions.
        epochs: Epochs trained (early stopping may end a run before the maximum).
        steps: Optimizer steps trained.
        wall_time_s: Seconds spent in ``fit``.
        params: Parameter counts of the trained model (``total``/``trainable``/``non_trainable``).
        params_stripped: Parameter counts after ``strip_pruning``.
        sparsity: Fraction of zeros in each kernel of the final (stripped) model, by layer.
        target_sparsity: The schedule's final target for each pruned kernel, by layer.
        target_reached: Whether the last mask update used the schedule's final sparsity.
        gz_size: Zip size of the baseline model, or of the stripped model for a pruned run.
        gz_unstripped: Zip size of the pruned model before stripping (``None`` for baseline).
        int8_size: Bytes of the int8 compressed sparse format of ``prunekit.export`` for the
            baseline / stripped model (``None`` when that package is unavailable).
        history: ``loss`` and ``val_loss`` per epoch.
        trace: Per-epoch records ``{"epoch", "step", "sparsity": {layer: s},
            "target": {layer: s}}`` read from the wrappers during training.
        schedule_curve: ``{"step": [...], layer: [...]}``, the schedules' sparsity vs step.
        latency_ms: Median milliseconds of one inference call at batch 1 of the final model
            (baseline, stripped, or shrunk for the structured run), timed in the study's process
            with ``prunekit.structured.measure_latency``.
        structured: For the structured run: the target fraction of units removed, whether it
            was reached, ``units`` (layer: [before, after]) and the shrink's parameter and MAC
            ratios (before / after); ``None`` for the other runs.
        notes: Remarks worth a reader's attention (e.g. a schedule that never fired).
        files: Paths (relative to the run folder) of the summaries, pictures, models and logs.
    """

    run_id: str
    letter: str
    title: str
    description: str
    pruning: dict[str, Any] | None = None
    metric: str = "mse"
    test_metric: float = float("nan")
    stripped_metric: float | None = None
    predictions_max_abs_diff: float | None = None
    epochs: int = 0
    steps: int = 0
    wall_time_s: float = 0.0
    params: dict[str, int] = dataclasses.field(default_factory=dict)
    params_stripped: dict[str, int] = dataclasses.field(default_factory=dict)
    sparsity: dict[str, float] = dataclasses.field(default_factory=dict)
    target_sparsity: dict[str, float] = dataclasses.field(default_factory=dict)
    target_reached: bool | None = None
    gz_size: int = 0
    gz_unstripped: int | None = None
    int8_size: int | None = None
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    trace: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    schedule_curve: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    latency_ms: float | None = None
    structured: dict[str, Any] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    files: dict[str, str] = dataclasses.field(default_factory=dict)


#: Columns of results.csv, in order (per-layer sparsity is joined as ``name=value;...``).
CSV_COLUMNS = (
    "run_id", "letter", "title", "metric", "test_metric", "stripped_metric",
    "predictions_max_abs_diff", "epochs", "steps", "wall_time_s", "params_total",
    "params_trainable", "params_non_trainable", "sparsity", "target_sparsity", "target_reached",
    "gz_size", "gz_unstripped", "int8_size", "latency_ms",
)


def results_document(results: list[RunResult], meta: dict[str, Any]) -> dict[str, Any]:
    """The content of results.json: ``meta`` (setup) plus one entry per run.

    Example:
        >>> document = results_document([RunResult("baseline", "a", "Baseline", "")], {"seed": 0})
        >>> document["runs"][0]["run_id"]
        'baseline'
    """
    return json_safe({"meta": meta, "runs": [dataclasses.asdict(r) for r in results]})


def csv_text(results: list[RunResult]) -> str:
    """results.csv: one row per run with :data:`CSV_COLUMNS`.

    Example:
        >>> csv_text([RunResult("baseline", "a", "Baseline", "")]).splitlines()[0].split(",")[:3]
        ['run_id', 'letter', 'title']
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        row = {k: getattr(r, k) for k in CSV_COLUMNS if hasattr(r, k)}
        row.update({f"params_{k}": v for k, v in r.params.items()})
        row["sparsity"] = ";".join(f"{k}={v:.4f}" for k, v in r.sparsity.items())
        row["target_sparsity"] = ";".join(f"{k}={v:.4f}" for k, v in r.target_sparsity.items())
        writer.writerow(row)
    return buffer.getvalue()


def write_results(folder: str, results: list[RunResult], meta: dict[str, Any]) -> dict[str, str]:
    """Write results.json and results.csv atomically into ``folder``.

    Returns:
        ``{"json": path, "csv": path}``.

    Example:
        >>> import tempfile
        >>> paths = write_results(tempfile.mkdtemp(), [], {})
        >>> sorted(paths)
        ['csv', 'json']
    """
    paths = {"json": os.path.join(folder, "results.json"),
             "csv": os.path.join(folder, "results.csv")}
    write_json(paths["json"], results_document(results, meta))
    write_atomic(paths["csv"], csv_text(results))
    return paths


def load_results(folder: str) -> dict[str, Any]:
    """Read a run folder's results.json.

    Example:
        >>> load_results("runs/20250101-120000")["runs"][0]["test_metric"]  # doctest: +SKIP
        0.0213
    """
    with open(os.path.join(folder, "results.json"), encoding="utf-8") as file:
        return json.load(file)
