"""prunekit.sweep end to end: a small sweep in 2 spawned workers, interrupted and resumed.

The data is a tiny CSV (60 rows, 3 features): 40 training rows, of which Keras keeps 32 for
training (validation_split 0.2), i.e. 2 batches of 16 per epoch.
"""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from prunekit.sweep import SweepError, make_spec, plan_sweep, run_sweep

BACKEND = keras.backend.backend()
# hidden Dense 3 -> 128 and output Dense 128 -> 1, with biases.
WEIGHTS = 3 * 128 + 128 + 128 * 1 + 1


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = np.abs(x @ [1.0, -2.0, 0.5]) + 0.1
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    np.savetxt(path, np.c_[x, y], delimiter=",", header="a,b,c,y", comments="")
    return str(path)


def _spec(csv_path, **extra):
    return make_spec(data=csv_path, target="y", epochs=2, batch_size=16, frequency="1",
                     sparsity="0.5,0.75", **extra)


def _kernel_zeros(size, sparsity):
    # tfmot's keep count: round-half-even of size * (1 - sparsity), at least 1.
    return size - max(1, int(np.round(size * (1 - sparsity))))


def _lines(folder):
    with open(folder / "runs.jsonl", encoding="utf-8") as file:
        return file.read().splitlines()


def _brute_force_front(rows):
    front = []
    for i, a in enumerate(rows):
        dominated = any(
            b["error"] <= a["error"] and b["gz_bytes"] <= a["gz_bytes"]
            and (b["error"] < a["error"] or b["gz_bytes"] < a["gz_bytes"])
            for j, b in enumerate(rows) if j != i)
        front.append(not dominated)
    return front


def test_sweep_interrupted_then_resumed(csv_path, tmp_path):
    spec = _spec(csv_path)
    _, runs = plan_sweep(spec)
    keys = [r.key() for r in runs]
    assert len(runs) == 1 + 2  # dense + one run per sparsity

    # An interrupted sweep: only 2 of the 3 runs finish.
    first = run_sweep(spec, str(tmp_path), workers=2, max_runs=2)
    assert (first.ran, first.skipped, first.pending, first.failed) == (2, 0, 1, [])
    before = _lines(tmp_path)
    assert len(before) == 2
    with open(tmp_path / "runs.jsonl", "a", encoding="utf-8") as file:
        file.write('{"key": "torn-by-a-cr')  # a crash in the middle of a write

    # Other settings on the same folder are refused before anything trains.
    with pytest.raises(SweepError, match=r"epochs: 2 there, 3 now"):
        run_sweep(make_spec(data=csv_path, target="y", epochs=3), str(tmp_path))

    # Resumed in this process (workers=0) to spare a second worker start-up; the resume logic
    # is the same for every executor.
    second = run_sweep(spec, str(tmp_path), workers=0)
    after = _lines(tmp_path)
    assert (second.ran, second.skipped, second.pending) == (1, 2, 0)
    assert after[:2] == before  # earlier records untouched
    new_keys = {json.loads(line)["key"] for line in after[3:]}
    assert new_keys == set(keys) - {json.loads(line)["key"] for line in before}
    assert len(after) == 2 + 1 + 1  # the torn line stays, ignored

    third = run_sweep(spec, str(tmp_path), workers=2)
    assert (third.ran, third.skipped) == (0, 3) and _lines(tmp_path) == after

    records = {r["key"]: r for r in third.records}
    assert [r["key"] for r in third.records] == keys
    for run in runs:
        r = records[run.key()]
        assert r["backend"] == BACKEND and r["weights"] == WEIGHTS
        assert r["seed"] == int(run.key()[:8], 16) % 2**31
        assert r["steps"] == 2 * 2 and np.isfinite(r["error"]) and r["error"] == r["test_metric"]
        hidden, output = _kernel_zeros(3 * 128, run.sparsity), _kernel_zeros(128, run.sparsity)
        if run.schedule == "none":
            hidden = output = 0
        assert r["layer_sparsity"]["hidden"] == pytest.approx(hidden / (3 * 128))
        assert r["layer_sparsity"]["output"] == pytest.approx(output / 128)
        assert r["achieved_sparsity"] == pytest.approx((hidden + output) / (4 * 128), abs=1e-6)
        # Biases may be exactly zero too (a unit that never fired keeps its initial 0).
        assert WEIGHTS - hidden - output - 129 <= r["nonzeros"] <= WEIGHTS - hidden - output
    dense = records[keys[0]]
    most = next(r for r in third.records if r["sparsity"] == 0.75)
    assert most["gz_bytes"] < dense["gz_bytes"]

    with open(third.files["csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["key"] for r in rows] == keys
    table = [{"error": float(r["error"]), "gz_bytes": int(r["gz_bytes"])} for r in rows]
    assert [r["pareto"] == "True" for r in rows] == _brute_force_front(table)
    with open(third.files["report"], encoding="utf-8") as file:
        assert "<table" in file.read()
