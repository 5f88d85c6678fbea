"""prunekit.sweep: grid expansion and validation, TOML configs, run keys, the CLI's usage errors.

Nothing here trains a model.
"""

from __future__ import annotations

import argparse
import hashlib
import json

import pytest

from prunekit.sweep.cli import add_commands
from prunekit.sweep.grid import (
    ModelFacts,
    SweepError,
    dense_run,
    expand_grid,
    grid_size,
    parse_axis,
    run_seed,
)
from prunekit.sweep.spec import make_spec, spec_from_dict, spec_from_toml

# The study's model on Friedman: Dense(10 -> 128) and Dense(128 -> 1); 2 epochs of 168 steps.
FACTS = ModelFacts({"hidden": (10, 128), "output": (128, 1)}, total_steps=336)


def _runs(**flags):
    spec = make_spec(**flags)
    return expand_grid(spec.axes, FACTS, spec.where, dense=spec.dense)


def test_product_of_flag_lists():
    runs = _runs(schedule="constant,polynomial", sparsity="0.5,0.7,0.9", block_size="1x1,2x2",
                 pooling="MAX", layers="first", dense=False)
    assert len(runs) == 2 * 3 * 2
    assert {(r.schedule, r.sparsity, r.block_size) for r in runs} == {
        (s, p, b) for s in ("constant", "polynomial") for p in (0.5, 0.7, 0.9)
        for b in ("1x1", "2x2")}
    assert runs[0].schedule == "constant" and runs[-1].schedule == "polynomial"


def test_dense_reference_run_comes_first():
    runs = _runs(sparsity="0.5")
    assert [r.schedule for r in runs] == ["none", "constant"]
    assert runs[0].pruned_layers == ""


def test_irrelevant_parameters_are_run_once():
    # initial_sparsity and power mean nothing to ConstantSparsity; pooling nothing to 1x1.
    runs = _runs(schedule="constant", initial_sparsity="0,0.1", power="2,3", pooling="AVG,MAX",
                 dense=False)
    assert grid_size(make_spec(initial_sparsity="0,0.1", power="2,3", pooling="AVG,MAX").axes) == 8
    assert len(runs) == 1 and runs[0].initial_sparsity is None and runs[0].power is None
    blocks = _runs(block_size="2x2", pooling="AVG,MAX", layers="first", dense=False)
    assert [r.pooling for r in blocks] == ["AVG", "MAX"]


def test_layer_selections():
    runs = _runs(layers="all,first,last,all-but-output,hidden", dense=False)
    # first, all-but-output and hidden select the same layer on this two-layer model.
    assert [(r.layers, r.pruned_layers) for r in runs] == [
        ("all", "hidden,output"), ("first", "hidden"), ("last", "output")]


def test_polynomial_end_step_minus_one_is_last_update_before_the_end():
    (run,) = _runs(schedule="polynomial", begin_step="50", frequency="100", dense=False)
    assert run.end_step == 250  # 50 + floor((336 - 50) / 100) * 100
    (run,) = _runs(schedule="constant", dense=False)
    assert run.end_step == -1


@pytest.mark.parametrize("flags, message", [
    ({"sparsity": "0.5,1.0"}, "--sparsity must be >= 0 and < 1. Received: 1.0"),
    ({"sparsity": "-0.1"}, "--sparsity must be >= 0"),
    ({"schedule": "polynomial", "begin_step": "200", "end_step": "100"},
     "--end-step (100) must be > --begin-step (200)"),
    ({"begin_step": "10", "end_step": "5"}, "--end-step (5) must be >= --begin-step (10)"),
    ({"begin_step": "400"}, "--begin-step 400 is not before the end of training (336"),
    ({"frequency": "0"}, "--frequency must be > 0"),
    ({"pooling": "MIN"}, "--pooling: expected one of AVG, MAX. Received: 'MIN'"),
    ({"schedule": "cubic"}, "--schedule: expected one of constant, polynomial"),
    ({"block_size": "2x0"}, "--block-size must be HEIGHTxWIDTH"),
    ({"block_size": "11x2"}, "--block-size 11x2 is larger than the 'hidden' kernel (10x128)"),
    ({"block_size": "2x2", "layers": "all"}, "larger than the 'output' kernel (128x1)"),
    ({"layers": "middle"}, "--layers: expected one of all, first, last, all-but-output"),
    ({"scope": "global", "block_size": "2x2", "layers": "first"},
     "--scope global ranks single weights"),
    ({"scope": "model"}, "--scope: expected one of layer, global"),
    ({"begin_step": "x"}, "--begin-step: expected an integer. Received: 'x'"),
    ({"power": "0", "schedule": "polynomial"}, "--power must be > 0"),
])
def test_invalid_combinations_are_rejected_naming_the_flag(flags, message):
    with pytest.raises(SweepError) as error:
        _runs(**flags)
    assert message in str(error.value)


def test_block_fits_when_only_hidden_layer_is_pruned():
    runs = _runs(block_size="2x2", layers="first", dense=False)
    assert runs[0].block == (2, 2)


def test_settings_are_validated():
    for settings, message in [({"epochs": 0}, "--epochs must be a positive integer"),
                              ({"dataset": "mnist"}, "--dataset must be one of friedman"),
                              ({"task": "ranking"}, "--task must be one of"),
                              ({"seed": -1}, "--seed must be an integer >= 0"),
                              ({"bogus": 1}, "Unknown setting(s) ['bogus']")]:
        with pytest.raises(SweepError, match=None) as error:
            make_spec(**settings)
        assert message in str(error.value)


def test_run_key_and_seed_follow_the_documented_recipe():
    run = _runs(sparsity="0.8", dense=False)[0]
    content = {k: v for k, v in run.as_dict().items() if k != "layers"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert run.key() == key
    assert run_seed(7, run) == (7 + int(key[:8], 16)) % 2**31
    assert dense_run().key() != run.key()


def test_toml_config_with_flag_overrides(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('dataset = "digits"\nepochs = 3\nworkers = 2\n[grid]\n'
                    'schedule = ["constant", "polynomial"]\nsparsity = [0.5, 0.9]\n'
                    'block_size = ["1x1", [2, 2]]\n')
    spec = spec_from_toml(str(path), {"epochs": 4, "sparsity": "0.6"})
    assert (spec.dataset, spec.epochs) == ("digits", 4)
    assert spec.axes["sparsity"] == (0.6,)
    assert spec.axes["block_size"] == ((1, 1), (2, 2))
    assert spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_toml_errors_name_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[grid]\nsparsity = [0.5, 1.5]\n")
    spec = spec_from_toml(str(path))
    with pytest.raises(SweepError, match=r"bad.toml: grid.sparsity must be >= 0 and < 1"):
        expand_grid(spec.axes, FACTS, spec.where)
    path.write_text("[grid]\nwidth = [1]\n")
    with pytest.raises(SweepError, match="Unknown grid key 'width'"):
        spec_from_toml(str(path))
    path.write_text("epochs = \n")
    with pytest.raises(SweepError, match="not valid TOML"):
        spec_from_toml(str(path))
    with pytest.raises(SweepError, match="--config: no such file"):
        spec_from_toml(str(tmp_path / "missing.toml"))


def test_parse_axis_accepts_scalars_lists_and_strings():
    assert parse_axis("sparsity", 0.5) == (0.5,)
    assert parse_axis("frequency", [100, "50", 100]) == (100, 50)
    assert parse_axis("pooling", "avg,Max") == ("AVG", "MAX")


def _cli(argv):
    parser = argparse.ArgumentParser(prog="prunekit")
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["sweep", *argv])
    return args.func(args)


def test_cli_usage_errors_exit_2_before_training(tmp_path, capsys):
    assert _cli(["--sparsity", "0.5,1.2", "--quick", "--out", str(tmp_path / "s")]) == 2
    assert "--sparsity must be >= 0 and < 1" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    assert _cli(["--workers", "-1"]) == 2
    assert _cli(["--resume", str(tmp_path), "--sparsity", "0.5"]) == 2
    assert "--resume takes every setting" in capsys.readouterr().err
    assert _cli(["--resume", str(tmp_path)]) == 2
    assert "no sweep.json" in capsys.readouterr().err


def test_cli_dry_run_lists_the_runs(capsys):
    assert _cli(["--dry-run", "--quick", "--sparsity", "0.5,0.8", "--layers", "all,first"]) == 0
    out = capsys.readouterr().out
    assert "5 runs" in out and "dense (no pruning)" in out


def test_cli_registers_backend_and_func():
    parser = argparse.ArgumentParser(prog="prunekit")
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["sweep", "--backend", "torch", "--ray", "--workers", "2"])
    assert args.backend == "torch" and args.ray == "local" and callable(args.func)
