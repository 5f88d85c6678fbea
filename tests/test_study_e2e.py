"""prunekit study end to end, in quick mode (3 epochs per run), on the current backend.

Expected values are computed here independently: from the article's data generated afresh,
from the schedule formulas by hand, and from the models reloaded off disk.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil

import keras
import numpy as np
import pytest
from sklearn.datasets import make_friedman1
from sklearn.model_selection import train_test_split

import prunekit
from prunekit.study.cli import add_commands

QUICK_EPOCHS = 3
# 6700 train rows, validation_split 0.2 -> floor(5360) rows, batch 32 -> 168 steps per epoch.
STEPS_PER_EPOCH = math.ceil(math.floor(6700 * 0.8) / 32)
LAST_STEP = QUICK_EPOCHS * STEPS_PER_EPOCH
# The custom run of this test: PolynomialDecay 0 -> 0.7, steps 0 -> 200, 2x2 MAX blocks.
CUSTOM = ["--sparsity", "0.7", "--schedule", "polynomial", "--begin-step", "0", "--end-step",
          "200", "--block-size", "2x2", "--pooling", "MAX", "--prune-layers", "hidden",
          "--from-baseline"]


def _study(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="prunekit")
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["study", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "run"
    assert _study(["--quick", "--runs", "a,b,c,d,r,s,x", *CUSTOM, "--out", str(out),
                   "--quiet"]) == 0
    with open(out / "results.json", encoding="utf-8") as file:
        document = json.load(file)
    return out, document, {r["run_id"]: r for r in document["runs"]}


@pytest.fixture(scope="module")
def friedman_test():
    x, y = make_friedman1(n_samples=10000, n_features=10, random_state=0)
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.33, random_state=42)
    return x_test.astype("float32"), y_test


def _load(path):
    return keras.models.load_model(str(path), compile=False)


def _predict(model, x):
    # A direct call: model.predict would compile one function per model on JAX.
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def _kernels(model):
    return {layer.name: np.asarray(keras.ops.convert_to_numpy(layer.kernel))
            for layer in model.layers if hasattr(layer, "kernel")}


def test_all_runs_ran_the_requested_epochs(study):
    _, document, runs = study
    assert list(runs) == ["baseline", "whole", "layer", "weights", "recommended", "structured",
                          "custom"]
    for run in runs.values():
        assert run["epochs"] == QUICK_EPOCHS
        assert run["steps"] == LAST_STEP
        assert len(run["history"]["loss"]) == len(run["history"]["val_loss"]) == QUICK_EPOCHS
    assert document["meta"]["backend"] == keras.backend.backend()
    assert document["meta"]["n_test"] == 3300


def test_baseline_error_is_sane_and_matches_the_saved_model(study, friedman_test):
    out, _, runs = study
    x_test, y_test = friedman_test
    predictions = _predict(_load(out / "models" / "baseline.h5"), x_test)
    mse = float(np.mean((y_test - predictions.reshape(3300)) ** 2))
    assert np.isclose(runs["baseline"]["test_metric"], mse, rtol=1e-4)
    assert 0 < mse < np.var(y_test)  # better than predicting the mean


def test_pruned_and_stripped_predictions_are_equal(study, friedman_test):
    out, _, runs = study
    x_test, y_test = friedman_test
    for run_id in ("whole", "layer", "weights", "recommended", "custom"):
        run = runs[run_id]
        assert run["predictions_max_abs_diff"] <= 1e-5
        pruned = _load(out / "models" / f"{run_id}.h5")
        assert any(isinstance(layer, prunekit.PruneLowMagnitude) for layer in pruned.layers)
        stripped = _load(out / "models" / f"{run_id}-stripped.h5")
        a, b = _predict(pruned, x_test), _predict(stripped, x_test)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        mse = float(np.mean((y_test - b.reshape(3300)) ** 2))
        assert np.isclose(run["stripped_metric"], mse, rtol=1e-4)


def test_stripping_shrinks_the_zip(study):
    out, _, runs = study
    for run_id in ("whole", "layer", "weights", "recommended", "custom"):
        run = runs[run_id]
        assert run["gz_size"] < run["gz_unstripped"]
        assert os.path.getsize(out / "models" / f"{run_id}-stripped.zip") == run["gz_size"]
    assert runs["recommended"]["gz_size"] < runs["baseline"]["gz_size"]  # 80% zeros


def _poly(initial, final, begin, end, step, power=3):
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return (initial - final) * (1 - p) ** power + final


def _last_update(begin, end, frequency):
    """Last step <= LAST_STEP at which the schedule fires (None: never)."""
    stop = LAST_STEP if end == -1 else min(end, LAST_STEP)
    return None if stop < begin else begin + (stop - begin) // frequency * frequency


def test_sparsity_targets_are_met(study):
    out, _, runs = study
    # (b) and (d): ConstantSparsity(0.5, 0) on both kernels; fires at steps 100, 200...
    for run_id in ("whole", "weights"):
        kernels = _kernels(_load(out / "models" / f"{run_id}-stripped.h5"))
        assert np.sum(kernels["hidden"] == 0) == 10 * 128 // 2
        assert np.sum(kernels["output"] == 0) == 128 // 2
        assert runs[run_id]["sparsity"] == {"hidden": 0.5, "output": 0.5}
    # (c): PolynomialDecay begins at step 1000 > LAST_STEP: never fired, kernel still dense.
    assert _last_update(1000, 2000, 100) is None
    kernels = _kernels(_load(out / "models" / "layer-stripped.h5"))
    assert np.sum(kernels["hidden"] == 0) == 0
    assert runs["layer"]["target_reached"] is False and runs["layer"]["notes"]
    # (r): PolynomialDecay 0 -> 0.8 ending at a multiple of 100 within 2 of the 3 epochs.
    end = 2 * STEPS_PER_EPOCH // 100 * 100
    target = _poly(0.0, 0.8, 0, end, _last_update(0, end, 100))
    kernels = _kernels(_load(out / "models" / "recommended-stripped.h5"))
    assert np.isclose(np.mean(kernels["hidden"] == 0), target, atol=1 / 1280)
    assert np.sum(kernels["output"] == 0) == 0  # the output layer stays dense
    assert runs["recommended"]["target_reached"] is True


def test_structured_run_removes_half_of_the_hidden_units(study, friedman_test):
    out, _, runs = study
    run = runs["structured"]
    x_test, y_test = friedman_test
    masked, small = (_load(out / "models" / f"structured{s}.h5") for s in ("", "-shrunk"))
    kernels, small_kernels = _kernels(masked), _kernels(small)
    # PolynomialDecay 0 -> 0.5 ends at step 300 (two of the three epochs): 64 of 128 units
    # removed, each a zero kernel column, bias entry and output row.
    gone = np.all(kernels["hidden"] == 0, axis=0) & (kernels["output"][:, 0] == 0)
    assert gone.sum() == 64 and run["structured"]["target"] == 0.5 and run["target_reached"]
    np.testing.assert_array_equal(small_kernels["hidden"], kernels["hidden"][:, ~gone])
    np.testing.assert_array_equal(small_kernels["output"], kernels["output"][~gone])
    assert run["structured"]["units"] == {"hidden": [128, 64]}
    assert run["params_stripped"]["total"] == 10 * 64 + 64 + 64 + 1
    a, b = _predict(masked, x_test), _predict(small, x_test)
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    mse = float(np.mean((y_test - b.reshape(3300)) ** 2))
    assert np.isclose(run["stripped_metric"], mse, rtol=1e-4)
    assert run["gz_size"] < run["gz_unstripped"] < runs["baseline"]["gz_size"] + 1000


def test_latency_of_every_run(study):
    out, _, runs = study
    for run in runs.values():
        assert 0 < run["latency_ms"] < 1000, run["run_id"]
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert "latency_ms" in header
    page = (out / "report.html").read_text()
    assert "latency b=1 (ms)" in page and "batch-1 latency" in page


def test_custom_run_uses_the_flags(study):
    out, document, runs = study
    custom = runs["custom"]
    assert "PolynomialDecay" in custom["pruning"]["schedule"]
    assert custom["pruning"]["block_size"] == "2x2"
    assert document["meta"]["custom"]["sparsity"] == 0.7
    kernel = _kernels(_load(out / "models" / "custom-stripped.h5"))["hidden"]
    # Fired at steps 100 and 200 (= end_step): sparsity 0.7; 2x2 blocks are all-zero or not.
    assert np.isclose(np.mean(kernel == 0), _poly(0.0, 0.7, 0, 200, 200), atol=4 / 1280)
    blocks = (kernel == 0).reshape(5, 2, 64, 2).transpose(0, 2, 1, 3).reshape(5, 64, 4)
    assert np.all(blocks.all(axis=-1) | ~blocks.any(axis=-1))


def test_pruning_trace_and_schedule_curve(study):
    _, _, runs = study
    trace = runs["whole"]["trace"]
    assert [t["step"] for t in trace] == [STEPS_PER_EPOCH * (e + 1) for e in range(3)]
    assert all(t["sparsity"] == {"hidden": 0.5, "output": 0.5} for t in trace)
    curve = runs["whole"]["schedule_curve"]
    assert curve == {"step": [0, 100, LAST_STEP], "target": [0.0, 0.5, 0.5]}


def test_parameter_counts_match_the_article(study):
    _, _, runs = study
    # Article: baseline 1,537; whole model 2,949 (1,412 non-trainable); first Dense 2,819.
    assert runs["baseline"]["params"] == {"total": 1537, "trainable": 1537, "non_trainable": 0}
    assert runs["whole"]["params"] == {"total": 2949, "trainable": 1537, "non_trainable": 1412}
    assert runs["layer"]["params"]["total"] == 2819
    assert runs["whole"]["params_stripped"]["total"] == 1537


def test_run_folder_contents(study):
    out, _, runs = study
    for name in ("results.json", "results.csv", "report.html", "models/baseline.weights.h5"):
        assert (out / name).is_file(), name
    for run in runs.values():
        text = (out / run["files"]["summary"]).read_text()
        assert f"total params: {run['params']['total']:,}" in text
        assert "trainable:" in text and "non-trainable:" in text
        assert any((out / "logs" / run["run_id"]).rglob("events.out.tfevents*"))
    if shutil.which("dot"):
        assert all((out / run["files"]["picture"]).is_file() for run in runs.values())
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(runs) and rows[0].startswith("run_id,")
    assert not [n for n in os.listdir(out) if n.startswith(".tmp")]


def test_report_renders_in_chromium(study, tmp_path, chromium):
    out, _, runs = study
    page = (out / "report.html").read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    found = chromium.probe(out / "report.html")
    assert found["plots"] == 3 and found["plots_loaded"] == 3 and found["rows"] == len(runs)
    shot = chromium.screenshot(out / "report.html", tmp_path / "shot.png")
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[0] == 1600 and pixels.std() > 0.05  # not a blank page


def test_digits_study_is_reproducible_and_never_overwritten(tmp_path):
    out = tmp_path / "digits"
    # floor(1203 * 0.8) = 962 rows -> 31 steps per epoch; 4 epochs pass step 100, where run
    # (b)'s ConstantSparsity(0.5, 0) first fires.
    argv = ["--dataset", "digits", "--runs", "b", "--epochs", "4", "--out", str(out), "--quiet"]
    assert _study(argv) == 0
    first = (out / "results.json").read_text()
    assert _study(argv) == 0  # same --out: a new folder, the first one untouched
    assert (out / "results.json").read_text() == first
    runs = json.loads(first)["runs"]
    again = json.loads((tmp_path / "digits-2" / "results.json").read_text())["runs"]
    assert again[0]["history"] == runs[0]["history"]  # same seed, same training
    assert runs[0]["metric"] == "accuracy" and runs[0]["steps"] == 4 * 31
    assert runs[0]["test_metric"] > 0.5  # chance is 0.1
    assert runs[0]["stripped_metric"] == runs[0]["test_metric"]
    assert runs[0]["sparsity"] == {"hidden": 0.5, "output": 0.5}
