"""Write prunekit-0.1.0.keras and prunekit-0.1.0.json with prunekit 0.1.0 (run once, then kept).

The files are the backward-compatibility oracle for files saved by prunekit 0.1.0: a Sequential
model with three pruned Dense layers (a PolynomialDecay schedule; block_size (2, 2) MAX;
sparsity_m_by_n (2, 4)), trained 6 steps with UpdatePruningStep. The JSON records what 0.1.0
held after saving: each wrapper's mask, threshold and step, the stored kernels, and the model's
predictions on INPUTS.

    cd tests/data && KERAS_BACKEND=jax PYTHONPATH=../../src python make_v010_file.py
"""

from __future__ import annotations

import json

import keras
import numpy as np

import prunekit

L = keras.layers


def inputs() -> np.ndarray:
    """The fixed inputs whose predictions are recorded."""
    return np.random.default_rng(7).normal(size=(5, 8)).astype("float32")


def main() -> None:
    assert prunekit.__version__ == "0.1.0", prunekit.__version__
    keras.utils.set_random_seed(0)
    schedule = prunekit.PolynomialDecay(0.2, 0.7, begin_step=0, end_step=4, frequency=1)
    model = keras.Sequential([
        keras.Input((8,)),
        prunekit.prune_low_magnitude(L.Dense(8, name="poly"), schedule),
        prunekit.prune_low_magnitude(L.Dense(8, name="block"),
                                     prunekit.ConstantSparsity(0.5, 0, frequency=2),
                                     block_size=(2, 2), block_pooling_type="MAX"),
        prunekit.prune_low_magnitude(L.Dense(4, name="m_by_n"), sparsity_m_by_n=(2, 4)),
    ])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 8)), rng.normal(size=(24, 4))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[prunekit.UpdatePruningStep()])
    model.save("prunekit-0.1.0.keras")
    record = {
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "inputs": inputs().tolist(),
        "predictions": np.asarray(model.predict(inputs(), verbose=0)).tolist(),
        "wrappers": {
            w.name: {
                "step": int(keras.ops.convert_to_numpy(w.pruning_step)),
                "mask": keras.ops.convert_to_numpy(w.masks[0]).tolist(),
                "threshold": float(keras.ops.convert_to_numpy(w.thresholds[0])),
                "kernel": keras.ops.convert_to_numpy(w.layer.kernel).tolist(),
            }
            for w in model.layers
        },
    }
    with open("prunekit-0.1.0.json", "w") as f:
        json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
