"""Writes tests/data/prunekit-0.1.0-schedules.keras (run once with prunekit 0.1.0, commit cd765b5).

A Sequential model of four pruned Dense layers, one per kind of schedule a 0.1.0 file can hold:
the two built-in schedules, a custom schedule with a flat ``get_config`` (0.1.0's contract) and
a custom schedule with tfmot's ``{'class_name', 'config'}`` form (which 0.1.0 saved but could
not load). Trained for 3 batches, so every wrapper is at pruning_step 3 with its masks set.

    KERAS_BACKEND=jax PYTHONPATH=src python tests/data/make_prunekit_0_1_0_schedules.py
"""

import keras
import numpy as np

import prunekit
from prunekit import ConstantSparsity, PolynomialDecay, PruneLowMagnitude, PruningSchedule


class EveryStep(PruningSchedule):
    def __init__(self, sparsity):
        self.sparsity = sparsity

    def __call__(self, step):
        return keras.ops.greater_equal(step, 1), keras.ops.convert_to_tensor(self.sparsity, "float32")

    def get_config(self):
        return {"sparsity": self.sparsity}


class TfmotStyle(EveryStep):
    def get_config(self):
        return {"class_name": type(self).__name__, "config": {"sparsity": self.sparsity}}


def main():
    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((6,)),
        PruneLowMagnitude(L.Dense(5, name="a"), ConstantSparsity(0.5, 0, 7, 1)),
        PruneLowMagnitude(L.Dense(4, name="b"), PolynomialDecay(0.1, 0.6, 0, 10, power=2, frequency=1)),
        PruneLowMagnitude(L.Dense(4, name="c"), EveryStep(0.25)),
        PruneLowMagnitude(L.Dense(2, name="d"), TfmotStyle(0.75)),
    ])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(12, 6)), rng.normal(size=(12, 2)), batch_size=4, epochs=1,
              verbose=0, callbacks=[prunekit.UpdatePruningStep()])
    model.save("tests/data/prunekit-0.1.0-schedules.keras")


if __name__ == "__main__":
    main()
