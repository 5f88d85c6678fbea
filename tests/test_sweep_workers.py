"""Sweep workers stay warm: one process runs many runs, and on JAX they share compiled programs.

A tiny CSV (40 training rows, batch 16) and 4 runs of 1 epoch in one spawned worker.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

from prunekit.sweep import make_spec, run_sweep
from prunekit.sweep.execute import JAX_CACHE


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3))
    y = x @ [1.0, -2.0, 0.5]
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    np.savetxt(path, np.c_[x, y], delimiter=",", header="a,b,c,y", comments="")
    return str(path)


def test_one_worker_runs_every_run_and_fills_the_jax_cache(csv_path, tmp_path):
    spec = make_spec(data=csv_path, target="y", epochs=1, batch_size=16, frequency="1",
                     sparsity="0.5,0.7,0.9")
    outcome = run_sweep(spec, str(tmp_path), workers=1)
    assert (outcome.ran, outcome.failed) == (4, [])
    pids = {r["pid"] for r in outcome.records}
    assert len(pids) == 1 and os.getpid() not in pids  # one worker process, not this one
    cache = tmp_path / JAX_CACHE
    if keras.backend.backend() == "jax":
        assert cache.is_dir() and len(os.listdir(cache)) > 0
    else:
        assert not cache.exists()  # the cache is JAX's; other backends leave no folder
