"""Schedules: values, gating and validation against tfmot-behaviour.md §1-2 and §10.1-3."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy

from prunekit import ConstantSparsity, PolynomialDecay, PruningSchedule
from prunekit.schedules import deserialize_schedule, serialize_schedule

# (step, PD should_prune, PD sparsity, CS should_prune) -- the §2 table, measured on tfmot.
TABLE = [
    (0, False, 0.19999998807907104, True),
    (1, False, 0.19999998807907104, False),
    (99, False, 0.19999998807907104, False),
    (100, False, 0.19999998807907104, True),
    (999, False, 0.19999998807907104, False),
    (1000, True, 0.19999998807907104, True),
    (1001, False, 0.2017982006072998, False),
    (1050, False, 0.2855750322341919, False),
    (1100, True, 0.36260005831718445, True),
    (1500, True, 0.7250000238418579, True),
    (1900, True, 0.7994000315666199, True),
    (2000, True, 0.800000011920929, True),
    (2001, False, 0.800000011920929, False),
    (2100, False, 0.800000011920929, True),
    (3000, False, 0.800000011920929, True),
]


@pytest.mark.parametrize("step,pd_prune,pd_sparsity,cs_prune", TABLE)
def test_reference_table(step, pd_prune, pd_sparsity, cs_prune):
    pd = PolynomialDecay(0.2, 0.8, begin_step=1000, end_step=2000)
    cs = ConstantSparsity(0.5, 0)
    should, sparsity = pd(step)
    assert bool(to_numpy(should)) is pd_prune
    assert float(to_numpy(sparsity)) == pytest.approx(pd_sparsity, abs=1e-6)
    should, sparsity = cs(step)
    assert bool(to_numpy(should)) is cs_prune
    assert float(to_numpy(sparsity)) == 0.5
    assert to_numpy(sparsity).dtype == np.float32


@pytest.mark.parametrize("step,pd_prune,pd_sparsity,cs_prune", TABLE)
def test_update_due_answers_the_reference_table_in_python(step, pd_prune, pd_sparsity, cs_prune):
    # The eager fast path: the same decisions as tfmot's table, as Python bools.
    assert PolynomialDecay(0.2, 0.8, begin_step=1000, end_step=2000).update_due(step) is pd_prune
    assert ConstantSparsity(0.5, 0).update_due(step) is cs_prune


def test_update_due_is_unknown_for_schedules_that_decide_themselves():
    class EveryOther(ConstantSparsity):  # Overrides __call__: its own decision counts.
        def __call__(self, step):
            return keras.ops.equal(keras.ops.mod(step, 2), 0), keras.ops.convert_to_tensor(0.5)

    assert EveryOther(0.5, 0).update_due(3) is None
    assert ConstantSparsity(0.5, 0, 200, 10).update_due(210) is False  # Past end_step.
    assert ConstantSparsity(0.5, 100, 200, 10).update_due(90) is False  # Before begin_step.


def test_polynomial_decay_matches_formula_by_hand():
    pd = PolynomialDecay(0.2, 0.8, 100, 110, power=3, frequency=2)
    for step, expected in [(100, 0.2), (102, 0.4928), (105, 0.725), (110, 0.8)]:
        assert float(to_numpy(pd(step)[1])) == pytest.approx(expected, abs=1e-6)
    assert float(to_numpy(PolynomialDecay(0.0, 0.5, 0, 100)(50)[1])) == pytest.approx(0.4375)


@pytest.mark.parametrize(
    "args,prunes,skips",
    [
        ((0.5, 0), [0, 100, 1000, 2100, 10**8], [1, 99, 1050]),
        ((0.5, 100, 200, 1), [100, 110, 200], [90, 99, 201, 210]),
        ((0.5, 100, 200, 10), [100, 110], [109, 111]),
    ],
)
def test_constant_sparsity_gate(args, prunes, skips):
    schedule = ConstantSparsity(*args)
    assert all(bool(to_numpy(schedule(s)[0])) for s in prunes)
    assert not any(bool(to_numpy(schedule(s)[0])) for s in skips)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: ConstantSparsity(0.5, -1), "begin_step should be >= 0"),
        (lambda: ConstantSparsity(0.5, -5), "begin_step should be >= 0"),
        (lambda: ConstantSparsity(0.5, 0, -5), "end_step can be -1 or >= 0"),
        (lambda: ConstantSparsity(0.5, 10, 5), "begin_step should be <= end_step if end_step != -1"),
        (lambda: ConstantSparsity(0.5, 0, frequency=0), "frequency should be > 0"),
        (lambda: ConstantSparsity(0.5, 0, frequency=-1), "frequency should be > 0"),
        (lambda: ConstantSparsity(-0.001, 0), "target_sparsity must be in range [0,1)"),
        (lambda: ConstantSparsity(1.0, 0), "target_sparsity must be in range [0,1)"),
        (lambda: ConstantSparsity(10.0, 0), "target_sparsity must be in range [0,1)"),
        (lambda: PolynomialDecay(0.1, 0.5, 0, -1), "end_step cannot be -1"),
        (lambda: PolynomialDecay(1.0, 0.5, 0, 10), "initial_sparsity must be in range [0,1)"),
        (lambda: PolynomialDecay(0.1, 1.5, 0, 10), "final_sparsity must be in range [0,1)"),
        # Steps are checked before sparsity, as in tfmot.
        (lambda: ConstantSparsity(2.0, begin_step=-1), "begin_step should be >= 0"),
        # Deliberate difference: tfmot returns NaN here.
        (lambda: PolynomialDecay(0.1, 0.5, 10, 10), "end_step > begin_step"),
    ],
)
def test_validation_errors(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)
    assert "Received" in str(error.value)


def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="begin_step"):
        ConstantSparsity(0.5, 1.5)
    with pytest.raises(TypeError, match="target_sparsity"):
        ConstantSparsity("0.5", 0)


@pytest.mark.parametrize("steps", [(0, 0), (10, 10)])
def test_accepted_values(steps):
    ConstantSparsity(0.0, *steps)
    ConstantSparsity(0.99, *steps)
    PolynomialDecay(0.9, 0.1, 0, 10)  # decreasing schedules are accepted, as in tfmot


@pytest.mark.parametrize(
    "schedule",
    [ConstantSparsity(0.5, 10, 200, 7), PolynomialDecay(0.2, 0.8, 1000, 2000, power=2, frequency=5)],
)
def test_config_round_trip(schedule):
    again = type(schedule).from_config(schedule.get_config())
    assert again.get_config() == schedule.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert restored == schedule
    assert deserialize_schedule(serialize_schedule(schedule)) == schedule
    # get_config() is tfmot's plain {'class_name', 'config'} form; it is read back too.
    tfmot_form = schedule.get_config()
    assert set(tfmot_form) == {"class_name", "config"}
    assert deserialize_schedule(tfmot_form) == schedule


def test_custom_schedule_subclass():
    class Halfway(PruningSchedule):
        def __call__(self, step):
            return keras.ops.equal(step, 5), keras.ops.convert_to_tensor(0.25, "float32")

        def get_config(self):
            return {}

    should, sparsity = Halfway()(5)
    assert bool(to_numpy(should)) and float(to_numpy(sparsity)) == 0.25


def _compiled(fn):
    """The backend's compiler: jax.jit, tf.function, or eager torch."""
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    return fn


def test_schedules_trace_under_compilation():
    pd = PolynomialDecay(0.2, 0.8, begin_step=1000, end_step=2000)
    fn = _compiled(lambda step: pd(step))
    for step, pd_prune, pd_sparsity, _ in TABLE:
        should, sparsity = fn(keras.ops.convert_to_tensor(step, "int32"))
        assert bool(to_numpy(should)) is pd_prune
        assert float(to_numpy(sparsity)) == pytest.approx(pd_sparsity, abs=1e-6)
