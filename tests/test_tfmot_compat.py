"""tfmot compatibility: serialized schedules, side-effect-free saving, silent no-op pruning,
argument checks, retry after a missing callback, strip/compile state.

Expected values: tfmot-behaviour.md (§1, §2, §5, §7) or worked out by hand in the comments.
"""

from __future__ import annotations

import math
import os
import warnings

import keras
import numpy as np
import pytest
from conftest import to_numpy

import prunekit
from prunekit import (ConstantSparsity, MissingCallbackError, PolynomialDecay, PruningSchedule,
                      UpdatePruningStep, prune_low_magnitude)
from prunekit.schedules import shortfall

L = keras.layers
DATA = os.path.join(os.path.dirname(__file__), "data")


def keep(n, sparsity):
    """tfmot's keep count: float32 product, rounded half to even, at least one."""
    return max(1, int(np.round(np.float32(n) * (np.float32(1) - np.float32(sparsity)))))


class MySchedule(PruningSchedule):
    """A custom schedule written to tfmot's contract: get_config is {'class_name', 'config'}."""

    def __init__(self, sparsity, every=1):
        self.sparsity, self.every = sparsity, every

    def __call__(self, step):
        due = keras.ops.equal(keras.ops.mod(step, self.every), 0)
        return due, keras.ops.convert_to_tensor(self.sparsity, "float32")

    def get_config(self):
        return {"class_name": self.__class__.__name__,
                "config": {"sparsity": self.sparsity, "every": self.every}}


class EveryStep(PruningSchedule):
    """prunekit 0.1.0's contract: a flat get_config (the class the 0.1.0 data file names)."""

    def __init__(self, sparsity):
        self.sparsity = sparsity

    def __call__(self, step):
        return keras.ops.greater_equal(step, 1), keras.ops.convert_to_tensor(self.sparsity,
                                                                              "float32")

    def get_config(self):
        return {"sparsity": self.sparsity}


class TfmotStyle(EveryStep):
    def get_config(self):
        return {"class_name": type(self).__name__, "config": {"sparsity": self.sparsity}}


def two_dense(schedule=None, **kwargs):
    base = keras.Sequential([keras.Input((8,)), L.Dense(6, name="a"), L.Dense(3, name="b")])
    model = prune_low_magnitude(base, schedule or ConstantSparsity(0.5, 0, frequency=1), **kwargs)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def data(n=40):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 8)).astype("float32"), rng.normal(size=(n, 3)).astype("float32")


def kernels(model):
    return [to_numpy(w.layer.kernel).copy() for w in prunekit.iter_wrappers(model)]


def masks(model):
    return [to_numpy(w.masks[0]).copy() for w in prunekit.iter_wrappers(model)]


# ------------------------------------------------------------------- 2. serialized forms
@pytest.mark.parametrize("schedule, expected", [
    (ConstantSparsity(0.5, 10, 200, 7), {"class_name": "ConstantSparsity", "config": {
        "target_sparsity": 0.5, "begin_step": 10, "end_step": 200, "frequency": 7}}),
    (PolynomialDecay(0.2, 0.8, 1000, 2000, power=2, frequency=5), {
        "class_name": "PolynomialDecay", "config": {
            "initial_sparsity": 0.2, "final_sparsity": 0.8, "power": 2, "begin_step": 1000,
            "end_step": 2000, "frequency": 5}}),
])
def test_get_config_is_tfmot_form_and_round_trips(schedule, expected):
    assert schedule.get_config() == expected
    cls = type(schedule)
    restored = keras.saving.deserialize_keras_object(schedule.get_config(),
                                                     custom_objects={cls.__name__: cls})
    assert isinstance(restored, cls) and restored == schedule
    assert cls.from_config(schedule.get_config()) == schedule


def test_custom_schedule_with_tfmot_contract_saves_and_loads(tmp_path):
    schedule = MySchedule(0.5, every=2)
    restored = keras.saving.deserialize_keras_object(schedule.get_config(),
                                                     custom_objects={"MySchedule": MySchedule})
    assert (restored.sparsity, restored.every) == (0.5, 2)
    model = two_dense(schedule)
    x, y = data(8)
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[UpdatePruningStep()])  # steps 1, 2
    path = os.path.join(tmp_path, "custom.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, custom_objects={"MySchedule": MySchedule})
    for wrapper in prunekit.iter_wrappers(loaded):
        assert isinstance(wrapper.pruning_schedule, MySchedule)
        assert (wrapper.pruning_schedule.sparsity, wrapper.pruning_schedule.every) == (0.5, 2)
        assert int(to_numpy(wrapper.pruning_step)) == 2
    # Step 2 pruned both kernels to 0.5: 48 -> 24 and 18 -> 9 weights kept.
    assert [int(m.sum()) for m in masks(loaded)] == [24, 9]


def test_prunekit_0_1_0_file_loads():
    # Written by prunekit 0.1.0 (tests/data/make_prunekit_0_1_0_schedules.py): 6 -> 5 -> 4 -> 4
    # -> 2 Dense layers, 3 training batches with frequency 1, so every wrapper is at step 3.
    path = os.path.join(DATA, "prunekit-0.1.0-schedules.keras")
    model = keras.saving.load_model(
        path, custom_objects={"EveryStep": EveryStep, "TfmotStyle": TfmotStyle})
    wrappers = list(prunekit.iter_wrappers(model))
    assert wrappers[0].pruning_schedule == ConstantSparsity(0.5, 0, 7, 1)
    assert wrappers[1].pruning_schedule == PolynomialDecay(0.1, 0.6, 0, 10, power=2, frequency=1)
    assert isinstance(wrappers[2].pruning_schedule, EveryStep)
    assert wrappers[2].pruning_schedule.sparsity == 0.25
    assert isinstance(wrappers[3].pruning_schedule, TfmotStyle)  # 0.1.0 could not load this
    assert wrappers[3].pruning_schedule.sparsity == 0.75
    assert [int(to_numpy(w.pruning_step)) for w in wrappers] == [3, 3, 3, 3]
    # PolynomialDecay at step 3: p = 0.3, s = (0.1 - 0.6) * 0.7**2 + 0.6 = 0.355.
    expected = [keep(30, 0.5), keep(20, 0.355), keep(16, 0.25), keep(8, 0.75)]
    assert expected == [15, 13, 12, 2]
    assert [int(m.sum()) for m in masks(model)] == expected
    for kernel, mask in zip(kernels(model), masks(model)):
        assert np.all(kernel[mask == 0] == 0)


# --------------------------------------------------------- 3. observing changes nothing
class _Summarize(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        prunekit.pruning_summary(self.model, print_fn=lambda text: None)  # syncs JAX state


def _train(tmp_path, observe):
    keras.utils.set_random_seed(7)
    model = two_dense(ConstantSparsity(0.5, 0, frequency=3))
    callbacks = [UpdatePruningStep()]
    if observe:  # Listed first: they run before UpdatePruningStep.on_epoch_end.
        callbacks[:0] = [
            keras.callbacks.ModelCheckpoint(os.path.join(tmp_path, "b{batch}.keras"),
                                            save_freq=2),
            keras.callbacks.ModelCheckpoint(os.path.join(tmp_path, "w{batch}.weights.h5"),
                                            save_weights_only=True, save_freq=3),
            _Summarize(),
        ]
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
    return model


def test_mid_epoch_checkpoints_do_not_change_training(tmp_path):
    plain = _train(tmp_path, observe=False)
    observed = _train(tmp_path, observe=True)
    for a, b in zip(kernels(plain) + masks(plain), kernels(observed) + masks(observed)):
        np.testing.assert_array_equal(a, b)
    # Epoch 2, batch 4 is step 14: the last mask update (every 3 steps) was at step 12, and
    # two SGD steps since moved the pruned weights. The file holds them as exact zeros.
    loaded = keras.saving.load_model(os.path.join(tmp_path, "b4.keras"))
    assert [int(to_numpy(w.pruning_step)) for w in prunekit.iter_wrappers(loaded)] == [14, 14]
    for kernel, mask in zip(kernels(loaded), masks(loaded)):
        assert int((mask == 0).sum()) > 0 and np.all(kernel[mask == 0] == 0)


def test_save_and_summary_leave_live_weights_untouched(tmp_path):
    model = two_dense()
    x, y = data(8)
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[UpdatePruningStep()])
    wrapper = model.layers[0]
    live = to_numpy(wrapper.layer.kernel).copy()
    mask = to_numpy(wrapper.masks[0])
    live[mask == 0] = 5.0  # What pruned weights gain between mask updates.
    wrapper.layer.kernel.assign(live)
    model.save(os.path.join(tmp_path, "m.keras"))
    model.save_weights(os.path.join(tmp_path, "m.weights.h5"))
    rows = prunekit.pruning_summary(model, print_fn=lambda text: None)
    np.testing.assert_array_equal(to_numpy(wrapper.layer.kernel), live)
    assert rows[0]["zeros"] == int((mask == 0).sum()) == 24
    assert "save_own_variables" not in wrapper.layer.__dict__  # the one-shot hook is gone
    fresh = two_dense()
    fresh.load_weights(os.path.join(tmp_path, "m.weights.h5"))
    loaded = keras.saving.load_model(os.path.join(tmp_path, "m.keras"))
    for restored in (fresh, loaded):
        np.testing.assert_array_equal(kernels(restored)[0], live * mask)


# ------------------------------------------------------------- 4. silent no-op pruning
def test_warns_when_training_never_reaches_a_mask_update():
    base = keras.Sequential([keras.Input((8,)), L.Dense(6, name="a"), L.Dense(3, name="b")])
    model = prune_low_magnitude(base)  # tfmot's default: ConstantSparsity(0.5, 0), frequency 100
    model.compile("sgd", "mse")
    x, y = data(48)
    with pytest.warns(UserWarning, match="did not reach its target") as record:
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[UpdatePruningStep()])  # 12 steps
    message = str(record[-1].message)
    for part in ("'prune_low_magnitude_a' is at 0.0% sparsity, target 50.0%",
                 "'prune_low_magnitude_b'", "first is at step 100", "ran 12 step(s)",
                 "frequency=100", "To fix"):
        assert part in message
    assert [int(m.sum()) for m in masks(model)] == [48, 18]  # tfmot's semantics are kept


def test_warns_when_polynomial_decay_ends_after_training():
    model = two_dense(PolynomialDecay(0.0, 0.5, begin_step=0, end_step=100, frequency=1))
    x, y = data(48)
    with pytest.warns(UserWarning, match="did not reach its target") as record:
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[UpdatePruningStep()])
    # Step 12: p = 0.12, s = 0.5 - 0.5 * 0.88**3 = 0.159264; 48 weights keep 40 (16.7 % zeros).
    message = str(record[-1].message)
    assert "the last mask update, at step 12, gave 15.9%" in message
    assert "'prune_low_magnitude_a' is at 16.7% sparsity, target 50.0%" in message
    assert "end_step=100" in message


def test_no_warning_when_the_target_is_reached():
    model = two_dense(ConstantSparsity(0.5, 0, frequency=1))
    x, y = data(8)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[UpdatePruningStep()])
    assert not [w for w in record if "did not reach" in str(w.message)]


@pytest.mark.parametrize("schedule, step, expected", [
    (ConstantSparsity(0.5, 0), 99, "the first is at step 100"),
    (ConstantSparsity(0.5, 0), 100, None),
    (ConstantSparsity(0.5, 0, end_step=50), 1000, "it never prunes"),  # only step 0 qualifies
    (ConstantSparsity(0.5, 5, frequency=10), 4, "the first is at step 5"),
    (PolynomialDecay(0.1, 0.5, 0, 100, frequency=10), 100, None),
    # Step 55: the last update is step 50, s = 0.5 - 0.4 * 0.5**3 = 0.45.
    (PolynomialDecay(0.1, 0.5, 0, 100, frequency=10), 55, "at step 50, gave 45.0%"),
    (PolynomialDecay(0.1, 0.5, 0, 100, frequency=10), 95, None),  # 0.4996: only rounding
    (PolynomialDecay(0.1, 0.5, 0, 250, frequency=100), 10**6, "its last update step, 200"),
])
def test_shortfall_reasons(schedule, step, expected):
    reason = shortfall(schedule, step)
    assert reason is None if expected is None else expected in reason


def test_repruning_with_other_settings_raises_and_changes_nothing():
    base = keras.Sequential([keras.Input((4,)), L.Dense(3)])
    pruned = prune_low_magnitude(base, ConstantSparsity(0.5, 0))
    with pytest.raises(ValueError, match="already pruned with other settings.*target_sparsity=0.9"):
        prune_low_magnitude(pruned, ConstantSparsity(0.9, 0))
    with pytest.raises(ValueError, match="already pruned"):
        prune_low_magnitude(pruned.layers[0], ConstantSparsity(0.9, 0))
    with pytest.raises(ValueError, match="block_size"):
        prune_low_magnitude([pruned.layers[0]], ConstantSparsity(0.5, 0), block_size=(1, 2))
    assert pruned.layers[0].pruning_schedule == ConstantSparsity(0.5, 0)
    # The same settings keep the wrapper, as tfmot does.
    again = prune_low_magnitude(pruned, ConstantSparsity(0.5, 0))
    assert again.layers[0] is pruned.layers[0]


def test_layer_called_twice_advances_one_step_per_batch():
    wrapper = prune_low_magnitude(L.Dense(4), ConstantSparsity(0.5, 0, frequency=2))
    inputs = keras.Input((4,))
    model = keras.Model(inputs, wrapper(L.ReLU()(wrapper(inputs))))
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    model.fit(x, x, batch_size=1, verbose=0, callbacks=[UpdatePruningStep()])
    assert int(to_numpy(wrapper.pruning_step)) == 3  # tfmot: 6
    assert int(to_numpy(wrapper.masks[0]).sum()) == keep(16, 0.5)  # pruned at step 2
    model(x, training=True)  # a custom training loop: one forward pass, one step
    assert int(to_numpy(wrapper.pruning_step)) == 4


def test_list_with_a_layer_twice_gets_one_wrapper():
    dense = L.Dense(2)
    first, second, other = prune_low_magnitude([dense, dense, L.Dense(3)])
    assert first is second and first.layer is dense and other is not first


# --------------------------------------------------------------------- 5. argument checks
@pytest.mark.parametrize("power", [-1, 0, 0.0, math.nan, math.inf, -math.inf])
def test_polynomial_decay_rejects_bad_power(power):
    with pytest.raises(ValueError, match="power must be a finite number > 0"):
        PolynomialDecay(0.1, 0.5, 0, 10, power=power)


@pytest.mark.parametrize("power, expected", [(0.5, 0.5 - 0.4 * 0.5 ** 0.5), (1, 0.3), (3, 0.45)])
def test_polynomial_decay_accepts_positive_power(power, expected):
    # At step 5 of 0..10: p = 0.5, s = (0.1 - 0.5) * 0.5**power + 0.5.
    sparsity = float(to_numpy(PolynomialDecay(0.1, 0.5, 0, 10, power=power)(5)[1]))
    assert sparsity == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("make, name", [
    (lambda: ConstantSparsity(0.5, 2**31), "begin_step"),
    (lambda: ConstantSparsity(0.5, 0, 2**31), "end_step"),
    (lambda: ConstantSparsity(0.5, 0, frequency=2**31), "frequency"),
    (lambda: PolynomialDecay(0.1, 0.5, 0, 2**40), "end_step"),
])
def test_steps_beyond_int32_rejected(make, name):
    with pytest.raises(ValueError, match=f"{name} must be <= 2147483647.*int32.*{name}="):
        make()


def test_int32_max_accepted():
    schedule = ConstantSparsity(0.5, 0, 2**31 - 1, frequency=2**31 - 1)
    assert bool(to_numpy(schedule(0)[0]))


def test_bad_policy_and_unknown_kwargs_raise_before_anything_changes():
    base = keras.Sequential([keras.Input((4,)), L.Dense(3)])
    with pytest.raises(ValueError, match="pruning_policy must be None or a prunekit.Pruning"
                                         "Policy.*Received: pruning_policy='bad'"):
        prune_low_magnitude(base, pruning_policy="bad")
    with pytest.raises(TypeError, match="single layer only.*Received: frist_step=1"):
        prune_low_magnitude(base, frist_step=1)
    with pytest.raises(TypeError, match="single layer only"):
        prune_low_magnitude([L.Dense(2)], name="x")
    assert [type(layer).__name__ for layer in base.layers] == ["Dense"]
    assert prune_low_magnitude(L.Dense(2), name="mine").name == "mine"  # a layer: to the wrapper


@pytest.mark.parametrize("m, n", [(4, 4), (5, 4), (0, 4), (2.0, 4)])
def test_m_by_n_mask_rejects_m_not_below_n(m, n):
    with pytest.raises(ValueError, match="1 <= m < n"):
        prunekit.m_by_n_mask(np.ones((4, 4), "float32"), m, n)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5])
def test_mask_functions_reject_sparsity_outside_range(sparsity):
    with pytest.raises(ValueError, match=r"sparsity must be in range \[0,1\)"):
        prunekit.magnitude_mask(np.ones((4, 4), "float32"), sparsity)
    with pytest.raises(ValueError, match=r"sparsity must be in range \[0,1\)"):
        prunekit.keep_count(10, sparsity)


# ----------------------------------------------------- 6. retry after a missing callback
def test_fit_again_with_the_callback_after_missing_callback_error():
    model = prune_low_magnitude(keras.Sequential([keras.Input((8,)), L.Dense(3)]),
                                ConstantSparsity(0.5, 0, frequency=1))
    model.compile("adam", "mse", metrics=["mae"])  # optimizer and metric state built lazily
    x, y = data(8)
    with pytest.raises(MissingCallbackError):
        model.fit(x, y, batch_size=4, verbose=0)
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[UpdatePruningStep()])
    wrapper = model.layers[0]
    assert int(to_numpy(wrapper.pruning_step)) == 2
    assert int(to_numpy(wrapper.masks[0]).sum()) == keep(24, 0.5)


# ------------------------------------------------------------ 7. strip and compile state
def _functional():
    i1, i2 = keras.Input((10,)), keras.Input((10,))  # auto-named inputs
    return keras.Model([i1, i2], L.Add()([L.Dense(10)(i1), L.Dense(10)(i2)]))


def _nested():
    inner_in = keras.Input((6,))
    inner = keras.Model(inner_in, L.Dense(4)(inner_in))
    outer_in = keras.Input((6,))
    return keras.Model(outer_in, L.Dense(2)(inner(outer_in)))


@pytest.mark.parametrize("make", [
    _functional, _nested,
    lambda: keras.Sequential([keras.Input((10,)), L.Dense(10), L.Dense(10)]),
])
def test_strip_pruning_gives_the_original_config(make):
    model = make()
    pruned = prune_low_magnitude(model)
    assert ([layer.name for layer in pruned.layers if isinstance(layer, L.InputLayer)]
            == [layer.name for layer in model.layers if isinstance(layer, L.InputLayer)])
    assert prunekit.strip_pruning(pruned).get_config() == model.get_config()


def test_pruning_a_compiled_model_returns_it_uncompiled():
    model = _functional()
    model.compile("adam", "mse")
    optimizer = model.optimizer
    pruned = prune_low_magnitude(model)
    assert not pruned.compiled and getattr(pruned, "optimizer", None) is None  # as tfmot
    assert model.compiled and model.optimizer is optimizer  # the original keeps its own
    stripped = prunekit.strip_pruning(pruned)
    assert not stripped.compiled
    x = np.ones((4, 10), "float32")
    pruned.compile("sgd", "mse")
    pruned.fit([x, x], x, verbose=0, callbacks=[UpdatePruningStep()])
