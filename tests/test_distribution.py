"""Distributed pruning: keras.distribution on JAX (DataParallel, ModelParallel, 4 simulated
devices) and tf.distribute.MirroredStrategy on TensorFlow (2 logical CPU devices).

The runs happen in a subprocess (tests/distributed_run.py), so the other tests keep one
device; each distributed run is compared with the same run on one device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import BACKEND, tfmot_keep_count

pytestmark = pytest.mark.skipif(
    BACKEND == "torch", reason="Keras 3.15 has no distributed training on the PyTorch backend "
    "(keras.distribution is implemented for JAX and TensorFlow only); see docs/distribution.md")
jax_only = pytest.mark.skipif(
    BACKEND != "jax", reason="sharded layouts are checked with keras.distribution on JAX; "
    "TensorFlow is checked with MirroredStrategy, which replicates every variable")
DEVICES = {"jax": 4, "tensorflow": 2}
# The distributed runs to compare with one device, per backend.
DISTRIBUTED = {"jax": ["data", "model"], "tensorflow": ["mirrored"]}.get(BACKEND, [])

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3",
               XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.pathsep.join([os.path.join(HERE, "..", "src"),
                                           os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, os.path.join(HERE, "distributed_run.py"), str(folder)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(payload["devices"]) == DEVICES[BACKEND]
    return {tag: {key: value if key.endswith("_specs") else
                  [np.array(v) for v in value] if key.endswith(("masks", "kernels"))
                  else np.array(value) for key, value in run.items()}
            for tag, run in payload["results"].items()}


@pytest.mark.parametrize("tag", [f"{name}-{scope}" for name in DISTRIBUTED
                                 for scope in ("layer", "global")
                                 if (name, scope) != ("data", "global")])  # Not run: see RUNS.
def test_masks_identical_to_one_device_with_learning_rate_0(runs, tag):
    scope = tag.split("-")[1]
    single, distributed = runs[f"single-{scope}-0.0"], runs[f"{tag}-0.0"]
    for a, b in zip(single["masks"], distributed["masks"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(single["thresholds"], distributed["thresholds"])
    np.testing.assert_array_equal(distributed["steps"], [8, 8])  # 4 batches x 2 epochs


def test_keep_counts_over_the_whole_tensor_and_across_shards(runs):
    # PolynomialDecay(0.2 -> 0.7, power 1) reaches 0.7 at step 8: 8x16 and 16x4 kernels.
    for name in DISTRIBUTED:
        for tag in (f"{name}-layer-0.0", f"{name}-layer-0.05"):
            assert [int(m.sum()) for m in runs[tag]["masks"]] == [
                tfmot_keep_count(128, 0.7), tfmot_keep_count(64, 0.7)] == [38, 19]
    # Global: one threshold over both (sharded) kernels, 192 weights in all.
    global_run = runs[f"{DISTRIBUTED[-1]}-global-0.0"]
    assert sum(int(m.sum()) for m in global_run["masks"]) == tfmot_keep_count(192, 0.7)
    assert global_run["thresholds"][0] == global_run["thresholds"][1]
    magnitudes = np.concatenate([np.abs(k).ravel() for k in global_run["kernels"]])
    assert np.sort(magnitudes)[::-1][57] == pytest.approx(global_run["thresholds"][0])


@jax_only
def test_masks_are_laid_out_like_their_weights(runs):
    model = runs["model-layer-0.0"]
    assert model["mask_specs"] == model["kernel_specs"]
    assert model["kernel_specs"] == ["P(None, 'model')", "P('model', None)"]  # The LayoutMap.
    data = runs["data-layer-0.0"]
    assert data["mask_specs"] == data["kernel_specs"]
    assert all("model" not in spec for spec in data["mask_specs"])  # Replicated.


@pytest.mark.parametrize("name", DISTRIBUTED)
def test_training_matches_one_device(runs, name):
    single, distributed = runs["single-layer-0.05"], runs[f"{name}-layer-0.05"]
    np.testing.assert_allclose(distributed["loss"], single["loss"], rtol=1e-4)
    assert single["loss"][1] < single["loss"][0]  # It trained.
    np.testing.assert_allclose(distributed["predictions"], single["predictions"],
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("run_of", ["layer-0.05", "global-0.0"])
def test_save_load_and_strip_under_distribution(runs, run_of):
    for name in DISTRIBUTED:
        if f"{name}-{run_of}" in runs:
            _check_saved_and_stripped(runs[f"{name}-{run_of}"])


def _check_saved_and_stripped(run):
    for mask, loaded in zip(run["masks"], run["loaded_masks"]):
        np.testing.assert_array_equal(loaded, mask)
    for kernel, mask, stripped in zip(run["kernels"], run["masks"], run["stripped_kernels"]):
        np.testing.assert_array_equal(stripped, kernel * mask)
        assert int((stripped != 0).sum()) == int(mask.sum())
