"""prunekit study: flag parsing and validation (no training), data split, metric."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
from sklearn.datasets import make_friedman1

from prunekit.study import config as study_config
from prunekit.study.cli import add_commands, config_from_args
from prunekit.lab.data import load_dataset, score


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunekit")
    add_commands(parser.add_subparsers())
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(["study", *argv])
    return args.func(args)


BAD_FLAGS = [
    (["--begin-step", "1000", "--end-step", "500"],
     "--end-step (500) must be >= --begin-step (1000)"),
    (["--schedule", "polynomial", "--begin-step", "100", "--end-step", "100"], "--end-step (100)"),
    (["--sparsity", "1.0"], "--sparsity"),
    (["--sparsity", "1.5"], "--sparsity"),
    (["--sparsity", "-0.1"], "--sparsity"),
    (["--schedule", "polynomial", "--initial-sparsity", "1"], "--initial-sparsity"),
    (["--initial-sparsity", "0.2"], "--initial-sparsity"),
    (["--block-size", "20x3", "--prune-layers", "hidden"], "--block-size 20x3"),
    (["--block-size", "2x3"], "--prune-layers hidden"),  # output kernel is 128x1
    (["--block-size", "2by3"], "--block-size"),
    (["--block-size", "0x3"], "--block-size"),
    (["--frequency", "0"], "--frequency"),
    (["--frequency", "-5"], "--frequency"),
    (["--begin-step", "-1"], "--begin-step"),
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "-3"], "--epochs"),
    (["--seed", "-1"], "--seed"),
    (["--runs", "a,z"], "--runs"),
    (["--runs", ","], "--runs"),
    (["--runs", "a,b", "--sparsity", "0.8"], "--sparsity"),
    (["--dataset", "digits", "--block-size", "65x1", "--prune-layers", "hidden"], "--block-size"),
]


@pytest.mark.parametrize("argv,fragment", BAD_FLAGS)
def test_bad_flags_are_rejected_before_training(argv, fragment, tmp_path, capsys):
    out = tmp_path / "study"
    assert _run([*argv, "--out", str(out), "--quiet"]) == 2
    assert fragment in capsys.readouterr().err
    assert not out.exists()  # nothing was trained or written


@pytest.mark.parametrize("argv,flag", [
    (["--schedule", "cubic"], "--schedule"),
    (["--pooling", "MIN"], "--pooling"),
    (["--dataset", "mnist"], "--dataset"),
    (["--backend", "numpy"], "--backend"),
    (["--prune-layers", "first"], "--prune-layers"),
    (["--sparsity", "half"], "--sparsity"),
])
def test_unknown_choices_exit_with_usage_error(argv, flag, capsys):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["study", *argv])
    assert info.value.code == 2
    assert flag in capsys.readouterr().err


def test_pruning_flags_define_the_custom_run():
    args = _parser().parse_args(["study", "--sparsity", "0.8", "--schedule", "POLYNOMIAL",
                                 "--block-size", "2x2", "--pooling", "max",
                                 "--prune-layers", "hidden"])
    config = config_from_args(args)
    assert config.runs == ("baseline", "whole", "layer", "weights", "recommended", "structured",
                           "custom")
    assert config.custom.sparsity == 0.8
    assert config.custom.schedule == "polynomial"
    assert config.custom.end_step == 1000  # polynomial default: begin + 1000
    assert config.custom.block_size == (2, 2)
    assert config.custom.pooling == "MAX"
    assert config.epochs == 300


def test_defaults_and_quick():
    config = config_from_args(_parser().parse_args(["study"]))
    assert config.runs == ("baseline", "whole", "layer", "weights", "recommended",
                           "structured")
    assert config.custom == study_config.CustomPruning()
    quick = config_from_args(_parser().parse_args(["study", "--quick"]))
    assert quick.epochs == 3 and quick.quick
    assert config_from_args(_parser().parse_args(["study", "--quick", "--epochs", "7"])).epochs == 7


def test_runs_by_letter_pull_in_the_baseline():
    assert study_config.parse_runs("r") == ("baseline", "recommended")
    assert study_config.parse_runs("c,a") == ("baseline", "layer")
    assert study_config.parse_runs("s") == ("baseline", "structured")
    args = _parser().parse_args(["study", "--runs", "x", "--from-baseline"])
    assert config_from_args(args).runs == ("baseline", "custom")


def test_block_size_parsing():
    from prunekit.lab.choices import parse_block_size

    assert parse_block_size("2x3") == (2, 3)
    assert parse_block_size("4X1") == (4, 1)
    assert parse_block_size("2,3") == (2, 3)
    assert parse_block_size([2, 3]) == (2, 3) and parse_block_size(2) == (2, 2)
    for bad in ("2by3", "0x3", "2x", "1.5x2", [2, 3, 4]):
        with pytest.raises(ValueError, match=r"must be HEIGHTxWIDTH with positive integers"):
            parse_block_size(bad)


def test_make_config_validates_without_the_cli():
    with pytest.raises(study_config.StudyConfigError, match="--frequency"):
        study_config.make_config(custom={"frequency": 0})
    with pytest.raises(study_config.StudyConfigError, match="--pooling"):
        study_config.make_config(custom={"pooling": "MIN"})


def test_friedman_split_matches_the_article():
    data = load_dataset("friedman")
    _, y = make_friedman1(n_samples=10000, n_features=10, random_state=0)
    assert data.x_train.shape == (6700, 10) and data.x_test.shape == (3300, 10)
    # Every test row is one of the generated rows, and the split is a partition.
    assert len(np.unique(np.concatenate([data.x_train, data.x_test]), axis=0)) == 10000
    assert np.isclose(np.sort(data.y_test).sum() + np.sort(data.y_train).sum(), y.sum(), rtol=1e-5)


def test_digits_dataset():
    data = load_dataset("digits")
    assert data.x_train.shape == (1203, 64) and data.x_test.shape == (594, 64)  # ceil(0.33 * 1797)
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert set(np.unique(data.y_test)) == set(range(10))


def test_score_is_mse_and_accuracy():
    data = load_dataset("friedman")
    constant = np.full((3300, 1), data.y_test.mean())
    assert np.isclose(score(data, constant), np.var(data.y_test.astype("float64")))
    digits = load_dataset("digits")
    one_hot = np.eye(10)[digits.y_test]
    assert score(digits, one_hot) == 1.0
    assert score(digits, np.roll(one_hot, 1, axis=1)) == 0.0


def test_run_folder_is_never_reused(tmp_path):
    from prunekit.export.io import make_new_folder

    first = make_new_folder(str(tmp_path / "r"))
    (tmp_path / "r" / "keep.txt").write_text("x")
    second = make_new_folder(str(tmp_path / "r"))
    third = make_new_folder(str(tmp_path / "r"))
    assert (first, second, third) == tuple(str(tmp_path / n) for n in ("r", "r-2", "r-3"))
    assert os.listdir(second) == [] and (tmp_path / "r" / "keep.txt").read_text() == "x"


def test_write_atomic_leaves_no_temp_files(tmp_path):
    from prunekit.export.io import write_atomic

    path = tmp_path / "a.json"
    write_atomic(str(path), "1")
    write_atomic(str(path), "2")
    assert path.read_text() == "2" and os.listdir(tmp_path) == ["a.json"]


def test_backend_other_than_the_running_one_is_a_usage_error(tmp_path, capsys):
    import keras

    other = next(b for b in ("jax", "tensorflow", "torch") if b != keras.backend.backend())
    assert _run(["--backend", other, "--out", str(tmp_path / "s"), "--quiet"]) == 2
    assert f"--backend {other}" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_missing_graphviz_gives_install_hints(monkeypatch, tmp_path):
    import keras

    from prunekit.lab import models

    def no_pydot(*args, **kwargs):
        raise ImportError("You must install pydot (`pip install pydot`) for plot_model to work.")

    monkeypatch.setattr(keras.utils, "plot_model", no_pydot)
    data = load_dataset("friedman")
    hint = models.plot_model(models.build_model(data), str(tmp_path / "m.png"))
    assert "apt-get install graphviz" in hint and "pip install pydot" in hint


def test_live_progress_line(tmp_path):
    import io

    from rich.console import Console

    from prunekit.lab.progress import LiveProgress, PruningRecorder

    buffer = io.StringIO()
    recorder = PruningRecorder()
    recorder.trace.append({"epoch": 1, "step": 168, "sparsity": {"hidden": 0.5}})
    with LiveProgress(Console(file=buffer, width=140)) as progress:
        line = progress.callback("(b) whole", max_epochs=300, recorder=recorder)
        line.on_epoch_end(0, {"loss": 1.25, "val_loss": 1.5})
        line.on_train_end()
    text = buffer.getvalue()
    assert "(b) whole" in text and "1/1" in text  # early end: the bar completes at 1 epoch
    assert "loss 1.25 val 1.5 sparsity 0.50" in text


def test_schedule_curve_is_computed_from_the_schedule():
    import prunekit
    from prunekit.lab.progress import schedule_curve

    steps, values = schedule_curve(prunekit.PolynomialDecay(0.2, 0.8, 1000, 2000), 2500)
    assert steps[0] == 0 and steps[1] == 1000 and steps[-1] == 2500
    # Updates every 100 steps from 1000 to 2000; by hand: 0.8 - 0.6 * (1 - p) ** 3.
    expected = [0.8 - 0.6 * (1 - (s - 1000) / 1000) ** 3 for s in range(1000, 2001, 100)]
    np.testing.assert_allclose(values[1:-1], expected, atol=1e-6)
    assert values[-1] == values[-2]


def test_registered_in_the_prunekit_command(tmp_path, capsys):
    from prunekit import cli

    assert cli.main(["study", "--epochs", "0", "--out", str(tmp_path / "s"), "--quiet"]) == 2
    assert "--epochs must be > 0" in capsys.readouterr().err
