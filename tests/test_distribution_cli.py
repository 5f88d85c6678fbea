"""``prunekit sweep --distribution data-parallel`` on 2 simulated JAX devices, end to end.

The sweep runs in a subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=2``) so
that the other tests keep one device; its worker inherits the flag. Errors on the other backends
are checked in tests/test_cli_messages.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "jax", reason="--distribution data-parallel runs on JAX only (keras.distribution); "
    "the other backends refuse it, see tests/test_cli_messages.py")

HERE = os.path.dirname(os.path.abspath(__file__))


def test_sweep_runs_data_parallel_on_two_devices(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 3))
    data = tmp_path / "tiny.csv"
    np.savetxt(data, np.c_[x, x @ [1.0, -2.0, 0.5]], delimiter=",", header="a,b,c,y",
               comments="")
    out = tmp_path / "sweep"
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
               XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=os.pathsep.join([os.path.join(HERE, "..", "src"),
                                           os.environ.get("PYTHONPATH", "")]))
    command = "import sys, prunekit_cli; sys.exit(prunekit_cli.main())"
    done = subprocess.run(
        [sys.executable, "-c", command, "sweep", "--data", str(data), "--target", "y",
         "--epochs", "1", "--batch-size", "16", "--sparsity", "0.5", "--frequency", "1",
         "--workers", "1", "--quiet", "--distribution", "data-parallel", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "prunekit sweep: --distribution data-parallel on 2 devices" in done.stderr
    with open(out / "runs.jsonl", encoding="utf-8") as file:
        records = [json.loads(line) for line in file]
    assert len(records) == 2  # the dense run and the 50% run
    for record in records:
        assert record["devices"] == 2 and np.isfinite(record["error"])
    pruned = next(r for r in records if r["sparsity"] == 0.5)
    # tfmot's keep count over the whole 3x128 kernel (not per device): round(384 * 0.5) = 192.
    assert pruned["layer_sparsity"]["hidden"] == pytest.approx(192 / 384)
    assert (out / "results.csv").is_file() and (out / "report.html").is_file()
