"""The sweep's results table (CSV and JSON, written atomically) and its Pareto front.

One row per run: every pruning parameter, the test error, the achieved sparsity, parameter and
nonzero counts, compressed sizes and training time, plus ``pareto``: whether the run is on the
front of error against size (no other run is at least as good on both and better on one).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from prunekit.export.io import write_atomic, write_json

#: Columns of results.csv, in order.
COLUMNS = (
    "key", "schedule", "sparsity", "initial_sparsity", "begin_step", "end_step", "frequency",
    "power", "block_size", "pooling", "layers", "pruned_layers", "scope", "seed", "metric",
    "test_metric", "error", "achieved_sparsity", "layer_sparsity", "weights", "nonzeros",
    "gz_bytes", "int8_bytes", "train_time_s", "run_time_s", "epochs", "steps", "loss",
    "val_loss", "pareto", "notes",
)
#: Size columns the Pareto front may use.
SIZE_COLUMNS = ("gz_bytes", "int8_bytes", "nonzeros")


def pareto_front(errors: Sequence[float | None], sizes: Sequence[float | None]) -> np.ndarray:
    """Which points are on the Pareto front of (error, size), both to be minimised.

    A point is on the front if no other point has error <= its error and size <= its size with
    at least one of the two strictly lower. Points with a missing or non-finite value are
    neither on the front nor dominate others.

    Args:
        errors: One error per point (lower is better).
        sizes: One size per point (lower is better).

    Returns:
        A boolean array, True for the points on the front.

    Example:
        >>> pareto_front([1.0, 2.0, 0.5, 2.0], [10, 5, 20, 6]).tolist()
        [True, True, True, False]
    """
    e = np.array([np.nan if v is None else v for v in errors], dtype="float64")
    s = np.array([np.nan if v is None else v for v in sizes], dtype="float64")
    valid = np.isfinite(e) & np.isfinite(s)
    # [i, j]: does point j dominate point i?
    no_worse = (e[None, :] <= e[:, None]) & (s[None, :] <= s[:, None])
    better = (e[None, :] < e[:, None]) | (s[None, :] < s[:, None])
    dominated = np.any(no_worse & better & valid[None, :], axis=1)
    return valid & ~dominated


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def table_rows(records: list[dict[str, Any]], size_column: str = "gz_bytes") -> list[dict]:
    """The table: one dict per record with :data:`COLUMNS` (``pareto`` computed here).

    Args:
        records: Run records (``runs.jsonl`` lines).
        size_column: The size the Pareto front weighs against the error.

    Returns:
        Rows in the order of ``records``.

    Example:
        >>> rows = table_rows([{"key": "a", "error": 1.0, "gz_bytes": 9},
        ...                    {"key": "b", "error": 2.0, "gz_bytes": 9}])
        >>> [r["pareto"] for r in rows]
        [True, False]
    """
    front = pareto_front([r.get("error") for r in records],
                         [r.get(size_column) for r in records])
    rows = []
    for record, on_front in zip(records, front):
        row = {c: _finite(record.get(c)) for c in COLUMNS}
        row["pareto"] = bool(on_front)
        rows.append(row)
    return rows


def csv_text(rows: list[dict[str, Any]]) -> str:
    """results.csv: :data:`COLUMNS`; per-layer sparsity as ``name=value;...``, notes joined.

    Example:
        >>> csv_text([{"key": "a", "layer_sparsity": {"hidden": 0.5}}]).splitlines()[1][:3]
        'a,,'
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        flat["layer_sparsity"] = ";".join(f"{k}={v:.4f}"
                                          for k, v in (row.get("layer_sparsity") or {}).items())
        flat["notes"] = " | ".join(row.get("notes") or [])
        writer.writerow(flat)
    return buffer.getvalue()


def write_outputs(folder: str, records: list[dict[str, Any]], meta: dict[str, Any],
                  size_column: str = "gz_bytes", report: bool = True) -> dict[str, str]:
    """Write results.csv, results.json and (``report``) report.html into ``folder``, atomically.

    Args:
        folder: The sweep folder.
        records: Run records, in table order.
        meta: The sweep's ``sweep.json`` content.
        size_column: The size of the Pareto front (one of :data:`SIZE_COLUMNS`).
        report: Also write the HTML report.

    Returns:
        ``{"csv": path, "json": path, "report": path}`` (no ``report`` if not written).

    Example:
        >>> import tempfile
        >>> sorted(write_outputs(tempfile.mkdtemp(), [], {}, report=False))
        ['csv', 'json']
    """
    if size_column not in SIZE_COLUMNS:
        raise ValueError(f"size_column must be one of {SIZE_COLUMNS}. "
                         f"Received: size_column={size_column!r}")
    rows = table_rows(records, size_column)
    files = {"csv": os.path.join(folder, "results.csv"),
             "json": os.path.join(folder, "results.json")}
    document = {"meta": meta, "pareto_size": size_column, "runs": rows}
    write_json(files["json"], document)
    write_atomic(files["csv"], csv_text(rows))
    if report:
        from prunekit.sweep.report import write_report

        files["report"] = write_report(folder, rows, meta, size_column)
    return files
