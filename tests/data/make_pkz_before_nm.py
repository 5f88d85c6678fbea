"""Write pkz-before-nm-{float32,int8}.pkz with the .pkz writer that predates the N:M layout.

Run once with the sources of main at 9ce5eb3 (the writer knows bitmask and index-delta patterns
only), then kept: the files show that .pkz files written before the N:M layout still load. The
model is a Dense(16 -> 8) whose kernel is 2:4 along its inputs and a Dense(8 -> 4) left dense;
``pkz-before-nm.npz`` holds its weights and its predictions on ``inputs()``.

    cd tests/data && KERAS_BACKEND=jax PYTHONPATH=/path/to/main-at-9ce5eb3/src \\
        python make_pkz_before_nm.py
"""

from __future__ import annotations

import keras
import numpy as np

from prunekit.export import save_compressed


def inputs() -> np.ndarray:
    """The fixed inputs whose predictions are recorded."""
    return np.random.default_rng(3).normal(size=(5, 16)).astype("float32")


def main() -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, name="two_four"),
                              keras.layers.Dense(4, name="dense")])
    kernel = np.asarray(keras.ops.convert_to_numpy(model.layers[0].kernel))
    groups = np.abs(kernel).T.reshape(-1, 4)  # 4 consecutive inputs of one output
    smallest = np.argsort(groups, axis=1)[:, :2]
    keep = np.ones_like(groups, bool)
    np.put_along_axis(keep, smallest, False, axis=1)
    model.layers[0].kernel.assign(kernel * keep.reshape(8, 16).T)
    for mode in ("float32", "int8"):
        save_compressed(model, f"pkz-before-nm-{mode}.pkz", weights=mode)
    weights = {w.path.replace("/", "."): keras.ops.convert_to_numpy(w) for w in model.weights}
    np.savez("pkz-before-nm.npz", predictions=keras.ops.convert_to_numpy(model(inputs())),
             **weights)


if __name__ == "__main__":
    main()
