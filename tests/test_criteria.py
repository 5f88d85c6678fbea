"""Pruning criteria: built-ins, tfmot's arguments, a criterion added here, 0.1.0 files."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
from conftest import numpy_global_threshold, tfmot_keep_count, to_numpy

import prunekit
from prunekit import (BlockMagnitudeCriterion, ConstantSparsity, MagnitudeCriterion,
                      MByNCriterion, PolynomialDecay, PruneLowMagnitude, PruningCriterion,
                      UpdatePruningStep, prune_low_magnitude)
from prunekit.criteria import resolve_criterion

L = keras.layers
DATA = os.path.join(os.path.dirname(__file__), "data")


# A criterion defined here alone: one class and one registration line.
@keras.saving.register_keras_serializable(package="prunekit_tests")
class RowNormCriterion(PruningCriterion):
    """Score every weight by the L2 norm of its slice along ``axis`` (whole rows go together)."""

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def scores(self, weight, stats=None):
        squares = keras.ops.sum(keras.ops.square(weight), axis=self.axis, keepdims=True)
        return keras.ops.broadcast_to(keras.ops.sqrt(squares), weight.shape)

    def get_config(self):
        return {"axis": self.axis}


def numpy_row_norms(kernel):
    """RowNormCriterion's scores, in NumPy."""
    return np.broadcast_to(np.linalg.norm(kernel, axis=-1, keepdims=True), kernel.shape)


def numpy_m_by_n_mask(kernel, m, n):
    """Dense (in, out) kernel: in each column, keep the n - m largest |w| of every n inputs."""
    mask = np.zeros_like(kernel)
    for col in range(kernel.shape[1]):
        for start in range(0, kernel.shape[0], n):
            group = np.abs(kernel[start:start + n, col])
            kept = np.argsort(-group, kind="stable")[:n - m]  # ties to the lower index
            mask[start + kept, col] = 1.0
    return mask


def fit(model, steps, lr, seed=0):
    model.compile(keras.optimizers.SGD(lr), "mse")
    rng = np.random.default_rng(seed)
    inputs, outputs = model.inputs[0].shape[1], model.outputs[0].shape[1]
    x, y = rng.normal(size=(4 * steps, inputs)), rng.normal(size=(4 * steps, outputs))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[UpdatePruningStep()])


def two_dense(scale_second=1.0):
    model = keras.Sequential([keras.Input((8,)), L.Dense(6, name="a"), L.Dense(4, name="b")])
    rng = np.random.default_rng(5)
    for layer, scale in zip(model.layers, (1.0, scale_second)):
        layer.kernel.assign(rng.normal(size=layer.kernel.shape) * scale)
    return model


# ------------------------------------------------------------------------- built-ins
def test_builtin_masks_and_thresholds_match_tfmot_examples():
    # tfmot-behaviour.md §3.1, §3.2 and §3.3 worked examples.
    mask, t = MagnitudeCriterion().compute_mask(
        keras.ops.convert_to_tensor([3.0, -1.0, 1.0, 2.0, -2.0, 0.5]), 0.5)
    assert to_numpy(mask).tolist() == [1, 0, 0, 1, 1, 0] and float(to_numpy(t)) == 2.0
    w = np.array([[.1, 0, .2, 0], [0, -.1, 0, -.2], [.3, 0, .4, 0], [0, -.3, 0, -.4]], "float32")
    mask, t = BlockMagnitudeCriterion((2, 2), "MAX").compute_mask(keras.ops.convert_to_tensor(w),
                                                                  0.5)
    np.testing.assert_array_equal(to_numpy(mask), [[0] * 4, [0] * 4, [1] * 4, [1] * 4])
    assert float(to_numpy(t)) == pytest.approx(0.3)
    w = np.array([[.74, .68], [-.89, -.45], [-1.68, 1.24], [.31, -.6]], "float32")
    mask, t = MByNCriterion(2, 4).compute_mask(keras.ops.convert_to_tensor(w), 0.9)
    np.testing.assert_array_equal(to_numpy(mask), [[0, 1], [1, 0], [1, 1], [0, 0]])
    # The threshold is the largest pruned magnitude: .74 (column 0), not a sentinel.
    assert float(to_numpy(t)) == pytest.approx(0.74)


def test_builtins_state_granularity_ranking_and_schedule():
    described = [(c.granularity, c.ranks_globally, c.follows_schedule) for c in (
        MagnitudeCriterion(), BlockMagnitudeCriterion((2, 2)), MByNCriterion(2, 4),
        RowNormCriterion())]
    assert described == [("element", True, True), ("block", False, True),
                         ("m_by_n", False, False), ("element", True, True)]


@pytest.mark.parametrize("criterion", [
    MagnitudeCriterion(), BlockMagnitudeCriterion((2, 3), "MAX"), MByNCriterion(1, 4),
    RowNormCriterion(axis=0)])
def test_criteria_serialize_to_json_and_back(criterion):
    text = json.dumps(keras.saving.serialize_keras_object(criterion))
    again = keras.saving.deserialize_keras_object(json.loads(text))
    assert type(again) is type(criterion) and again.get_config() == criterion.get_config()
    assert again == criterion and again != MByNCriterion(3, 4)


@pytest.mark.parametrize("kwargs,expected", [
    ({}, MagnitudeCriterion()),
    ({"block_size": (1, 1), "block_pooling_type": "MAX"}, MagnitudeCriterion()),
    ({"block_size": [2, 3], "block_pooling_type": "MAX"}, BlockMagnitudeCriterion((2, 3), "MAX")),
    ({"sparsity_m_by_n": [2, 4]}, MByNCriterion(2, 4)),
])
def test_tfmot_arguments_map_onto_criteria(kwargs, expected):
    assert resolve_criterion(None, **kwargs) == expected
    wrapper = prune_low_magnitude(L.Dense(2), **kwargs)
    assert wrapper.criterion == expected
    block = tuple(kwargs.get("block_size", (1, 1)))
    assert (wrapper.block_size, wrapper.sparsity_m_by_n) == (
        block, tuple(kwargs["sparsity_m_by_n"]) if "sparsity_m_by_n" in kwargs else None)


@pytest.mark.parametrize("kwargs,match", [
    ({"criterion": MagnitudeCriterion(), "block_size": (2, 2)},
     r"not both. Received: criterion=MagnitudeCriterion\(\), block_size=\(2, 2\)"),
    ({"criterion": MByNCriterion(), "sparsity_m_by_n": (2, 4)}, "sparsity_m_by_n=\\(2, 4\\)"),
    ({"criterion": "magnitude"}, "criterion must be a prunekit.criteria.PruningCriterion"),
    ({"block_size": (2, 2), "sparsity_m_by_n": (2, 4)}, "either block_size or sparsity_m_by_n"),
])
def test_bad_criterion_arguments(kwargs, match):
    model = keras.Sequential([keras.Input((4,)), L.Dense(4)])
    with pytest.raises(ValueError, match=match):
        prune_low_magnitude(model, **kwargs)
    with pytest.raises(ValueError, match=match):
        PruneLowMagnitude(L.Dense(2), **kwargs)


def test_serialized_criterion_is_accepted():
    config = keras.saving.serialize_keras_object(BlockMagnitudeCriterion((2, 2), "MAX"))
    wrapper = prune_low_magnitude(L.Dense(2), criterion=config)
    assert wrapper.criterion == BlockMagnitudeCriterion((2, 2), "MAX")


def test_m_by_n_mask_is_computed_once_and_ignores_the_schedule():
    model = keras.Sequential([keras.Input((8,)), L.Dense(3, name="d")])
    initial = to_numpy(model.layers[0].kernel)
    pruned = prune_low_magnitude(model, ConstantSparsity(0.9, 0, frequency=1),
                                 criterion=MByNCriterion(2, 4))
    fit(pruned, 5, lr=0.1)  # Weights move, but the mask stays the step-1 one.
    wrapper = pruned.layers[0]
    expected = numpy_m_by_n_mask(initial, 2, 4)
    np.testing.assert_array_equal(to_numpy(wrapper.masks[0]), expected)
    assert float(to_numpy(wrapper.thresholds[0])) == pytest.approx(
        float(np.abs(initial * (1 - expected)).max()))
    assert not np.allclose(to_numpy(wrapper.layer.kernel) * expected, initial * expected)


# ------------------------------------------------------------------------- a new criterion
def test_custom_criterion_prunes_trains_saves_and_reloads(tmp_path):
    model = two_dense()
    initial = [to_numpy(layer.kernel) for layer in model.layers]
    # Masks are computed at step 1 only (end_step=1), from the initial weights; then 5 steps
    # of real training with the masks fixed.
    schedule = ConstantSparsity(0.5, 1, end_step=1, frequency=1)
    pruned = prune_low_magnitude(model, schedule, criterion=RowNormCriterion())
    fit(pruned, 6, lr=0.05)
    for wrapper, kernel in zip(prunekit.iter_wrappers(pruned), initial):
        expected = numpy_global_threshold([numpy_row_norms(kernel)], 0.5)
        mask = (numpy_row_norms(kernel) >= expected).astype("float32")
        np.testing.assert_array_equal(to_numpy(wrapper.masks[0]), mask)
        assert float(to_numpy(wrapper.thresholds[0])) == pytest.approx(float(expected))
        assert set(to_numpy(wrapper.masks[0]).mean(axis=1)) == {0.0, 1.0}  # whole rows
        np.testing.assert_array_equal(to_numpy(wrapper.layer.kernel) == 0, mask == 0)
    path = os.path.join(tmp_path, "rows.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(1).normal(size=(3, 8)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), pruned.predict(x, verbose=0))
    for before, after in zip(prunekit.iter_wrappers(pruned), prunekit.iter_wrappers(loaded)):
        assert type(after.criterion) is RowNormCriterion and after.criterion.axis == -1
        np.testing.assert_array_equal(to_numpy(after.masks[0]), to_numpy(before.masks[0]))


def test_custom_criterion_ranks_globally():
    model = two_dense(scale_second=0.1)  # The second layer's rows are much weaker.
    kernels = [to_numpy(layer.kernel) for layer in model.layers]
    pruned = prune_low_magnitude(model, ConstantSparsity(0.6, 0, frequency=1),
                                 criterion=RowNormCriterion(), pruning_scope="global")
    fit(pruned, 1, lr=0.0)  # lr 0: the mask comes from the unchanged weights.
    scores = [numpy_row_norms(k) for k in kernels]
    threshold = numpy_global_threshold(scores, 0.6)
    wrappers = list(prunekit.iter_wrappers(pruned))
    for wrapper, score in zip(wrappers, scores):
        np.testing.assert_array_equal(to_numpy(wrapper.masks[0]),
                                      (score >= threshold).astype("float32"))
        assert float(to_numpy(wrapper.thresholds[0])) == pytest.approx(float(threshold))
    assert to_numpy(wrappers[1].masks[0]).mean() < to_numpy(wrappers[0].masks[0]).mean()


def test_global_wrappers_need_one_criterion():
    a = prune_low_magnitude(L.Dense(2, name="a"), pruning_scope="global")
    b = prune_low_magnitude(L.Dense(2, name="b"), pruning_scope="global",
                            criterion=RowNormCriterion())
    with pytest.raises(ValueError, match="different criteria.*RowNormCriterion"):
        prunekit.global_pruning.link_global_wrappers([a, b])


# ------------------------------------------------------------------------- prunekit 0.1.0 files
def test_files_saved_by_prunekit_0_1_0_still_load():
    with open(os.path.join(DATA, "prunekit-0.1.0.json")) as f:
        recorded = json.load(f)
    model = keras.saving.load_model(os.path.join(DATA, "prunekit-0.1.0.keras"))
    wrappers = {w.name: w for w in prunekit.iter_wrappers(model)}
    assert sorted(wrappers) == sorted(recorded["wrappers"])
    for name, expected in recorded["wrappers"].items():
        wrapper = wrappers[name]
        assert int(to_numpy(wrapper.pruning_step)) == expected["step"] == 6
        np.testing.assert_array_equal(to_numpy(wrapper.masks[0]), expected["mask"])
        assert float(to_numpy(wrapper.thresholds[0])) == pytest.approx(expected["threshold"])
        np.testing.assert_array_equal(to_numpy(wrapper.layer.kernel), expected["kernel"])
    assert [wrappers[n].criterion for n in ("prune_low_magnitude_poly",
                                            "prune_low_magnitude_block",
                                            "prune_low_magnitude_m_by_n")] == [
        MagnitudeCriterion(), BlockMagnitudeCriterion((2, 2), "MAX"), MByNCriterion(2, 4)]
    assert wrappers["prune_low_magnitude_poly"].pruning_schedule == PolynomialDecay(
        0.2, 0.7, begin_step=0, end_step=4, frequency=1)
    predictions = model.predict(np.array(recorded["inputs"], "float32"), verbose=0)
    np.testing.assert_allclose(predictions, recorded["predictions"], rtol=1e-5, atol=1e-6)
    # Independent checks of what the recorded masks are: 19 = keep(64, 0.7) weights, 2x2 tiles
    # with half of them kept, 2 of every 4 inputs.
    poly = np.array(recorded["wrappers"]["prune_low_magnitude_poly"]["mask"])
    assert poly.sum() == tfmot_keep_count(64, 0.7)
    block = np.array(recorded["wrappers"]["prune_low_magnitude_block"]["mask"])
    np.testing.assert_array_equal(block, np.kron(block[::2, ::2], np.ones((2, 2))))
    assert block[::2, ::2].sum() == tfmot_keep_count(16, 0.5)
    m_by_n = np.array(recorded["wrappers"]["prune_low_magnitude_m_by_n"]["mask"])
    assert (m_by_n.reshape(2, 4, 4).sum(axis=1) == 2).all()


# ------------------------------------------------------------------------- eager update steps
def test_update_due_follows_the_schedule_or_step_1():
    schedule = ConstantSparsity(0.5, 0, frequency=10)
    assert [MagnitudeCriterion().update_due(schedule, s) for s in (10, 20, 21)] == [
        True, True, False]
    assert [MByNCriterion(2, 4).update_due(schedule, s) for s in (1, 2, 10)] == [
        True, False, False]  # m-by-n: once, at step 1, whatever the schedule.

    class EveryStep(MagnitudeCriterion):  # Decides itself: the eager path must ask it.
        def schedule_decision(self, schedule, step):
            return keras.ops.convert_to_tensor(True), keras.ops.convert_to_tensor(0.5)

    assert EveryStep().update_due(schedule, 21) is None
