"""A sweep's folder: its specification, the run records, and the checks that make resuming safe.

Layout::

    sweep.json      the specification, the settings that fix results, the grid's run keys
    runs.jsonl      one JSON line per finished run, appended (flush + fsync) as each finishes
    failures.jsonl  runs that raised (retried on the next resume)
    results.csv  results.json  report.html   written at the end (atomically)
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

from prunekit.export.io import check_folder_path, json_safe, write_json
from prunekit.sweep.grid import RunParams, SweepError
from prunekit.sweep.spec import SweepSpec, file_sha256, spec_from_dict


def fingerprint(spec: SweepSpec, backend: str) -> dict[str, Any]:
    """The settings that fix a run's result; a folder's records are reused only if they match.

    Example:
        >>> from prunekit.sweep.spec import make_spec
        >>> fingerprint(make_spec(epochs=2), "jax")["epochs"]
        2
    """
    data = ({"data_sha256": file_sha256(spec.data), "target": spec.target, "task": spec.task}
            if spec.data else {"dataset": spec.dataset})
    return {**data, "epochs": spec.epochs, "batch_size": spec.batch_size,
            "validation_split": spec.validation_split, "learning_rate": spec.learning_rate,
            "seed": spec.seed, "backend": backend}


def check_folder(folder: str, expected: dict[str, Any]) -> None:
    """Refuse a folder that holds a sweep with other result-changing settings, or other files.

    Raises:
        SweepError: Naming each setting that differs, or the non-sweep folder.

    Example:
        >>> import tempfile
        >>> check_folder(tempfile.mkdtemp(), {"epochs": 2})  # empty: fine
    """
    try:
        check_folder_path(folder)
    except ValueError as error:
        raise SweepError(str(error)) from None
    path = os.path.join(folder, "sweep.json")
    if not os.path.exists(path):
        if os.path.isdir(folder) and os.listdir(folder):
            raise SweepError(f"--out {folder} exists, is not empty and holds no sweep.json: "
                             "expected a new folder or an earlier sweep's folder.")
        return
    with open(path, encoding="utf-8") as file:
        found = json.load(file).get("fingerprint", {})
    diffs = [f"{k}: {found.get(k)!r} there, {v!r} now" for k, v in expected.items()
             if found.get(k) != v]
    if diffs:
        raise SweepError(f"--out {folder} holds a sweep with other settings ({'; '.join(diffs)}); "
                         "its runs cannot be reused. Use another --out, or the same settings.")


def read_records(folder: str) -> dict[str, dict[str, Any]]:
    """The records of ``runs.jsonl`` by run key (a torn last line from a crash is ignored).

    Example:
        >>> import tempfile
        >>> read_records(tempfile.mkdtemp())
        {}
    """
    records: dict[str, dict[str, Any]] = {}
    path = os.path.join(folder, "runs.jsonl")
    if not os.path.exists(path):
        return records
    with open(path, encoding="utf-8") as file:
        for line in file:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "key" in record:
                records[record["key"]] = record
    return records


def append_record(path: str, record: dict[str, Any]) -> None:
    """Append one JSON line and force it to disk (``flush`` + ``fsync``).

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/runs.jsonl"
        >>> append_record(path, {"key": "a"}); open(path).read()
        '{"key": "a"}\\n'
    """
    line = json.dumps(json_safe(record), allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as file:
        file.write(line)
        file.flush()
        os.fsync(file.fileno())


def end_torn_line(path: str) -> None:
    """End a file whose last line was cut by a crash, so the next record starts on its own line.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/runs.jsonl"
        >>> _ = open(path, "w").write('{"key": "a"}\\n{"ke')
        >>> end_torn_line(path); open(path).read()
        '{"key": "a"}\\n{"ke\\n'
    """
    if os.path.exists(path) and os.path.getsize(path):
        with open(path, "rb+") as file:
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                file.write(b"\n")


def write_meta(folder: str, spec: SweepSpec, runs: list[RunParams], data: Any,
                backend: str) -> dict[str, Any]:
    """Write ``sweep.json`` (atomically) and return its content.

    Args:
        folder: The sweep folder.
        spec: The sweep's specification.
        runs: The grid's runs (their keys are recorded).
        data: The dataset (its description and sizes are recorded).
        backend: The Keras backend.

    Returns:
        ``{"spec", "fingerprint", "data", "task", "metric", "n_train", "n_test", "runs",
        "updated"}``.

    Example:
        >>> write_meta("sweeps/first", spec, runs, data, "jax")["metric"]  # doctest: +SKIP
        'mse'
    """
    meta = {"spec": spec.to_dict(), "fingerprint": fingerprint(spec, backend),
            "data": data.description, "task": data.task, "metric": data.metric,
            "n_train": len(data.x_train), "n_test": len(data.x_test),
            "runs": [p.key() for p in runs],
            "updated": datetime.datetime.now().isoformat(timespec="seconds")}
    write_json(os.path.join(folder, "sweep.json"), meta)
    return meta


def load_spec(folder: str) -> SweepSpec:
    """The specification saved in a sweep folder (for ``--resume FOLDER``).

    Raises:
        SweepError: If ``folder`` has no ``sweep.json``.

    Example:
        >>> load_spec("sweeps/first").epochs  # doctest: +SKIP
        10
    """
    path = os.path.join(folder, "sweep.json")
    if not os.path.isfile(path):
        raise SweepError(f"--resume {folder}: no sweep.json there; expected a sweep folder.")
    with open(path, encoding="utf-8") as file:
        return spec_from_dict(json.load(file)["spec"])
