"""prunekit.sweep on Ray: the same sweep as Ray tasks on a local instance started here."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

from prunekit.sweep import make_spec, run_sweep

ray = pytest.importorskip(
    "ray", reason="Ray is not installed; the Ray path needs the 'ray' extra (pip install ray)")

BACKEND = keras.backend.backend()


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_sweep_runs_as_ray_tasks(tmp_path, ray_instance):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 3))
    path = tmp_path / "tiny.npz"
    np.savez(path, x=x, y=np.abs(x).sum(axis=1))
    spec = make_spec(data=str(path), epochs=2, batch_size=16, frequency="1",
                     schedule="polynomial", sparsity="0.6", layers="first")
    outcome = run_sweep(spec, str(tmp_path / "sweep"), ray="auto")
    assert (outcome.ran, outcome.failed, outcome.pending) == (2, [], 0)
    assert ray.is_initialized()  # an instance the caller started is left running
    dense, pruned = outcome.records
    assert {dense["schedule"], pruned["schedule"]} == {"none", "polynomial"}
    for record in outcome.records:
        assert record["pid"] != os.getpid()  # ran in a Ray worker, with this backend
        assert record["backend"] == BACKEND and record["steps"] == 4
    # PolynomialDecay 0 -> 60% ends on a mask update (end_step -1 = step 4): the hidden kernel
    # keeps round(384 * 0.4) = 154 weights; the output layer is not pruned.
    assert pruned["end_step"] == 4
    assert pruned["layer_sparsity"] == {"hidden": pytest.approx((384 - 154) / 384),
                                        "output": 0.0}
    assert os.path.exists(outcome.files["report"])
