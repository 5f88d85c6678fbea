"""Train pruned models on one device and distributed; print the results as JSON.

Run by tests/test_distribution.py in a subprocess, so the other tests keep one device: on JAX
with 4 simulated CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``) under
keras.distribution, on TensorFlow with 2 logical CPU devices under
``tf.distribute.MirroredStrategy``. Usage: KERAS_BACKEND=jax|tensorflow python distributed_run.py
FOLDER
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings

if os.environ.get("KERAS_BACKEND") == "tensorflow":  # Before TensorFlow sets up its devices.
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np

import prunekit

warnings.filterwarnings("ignore", message="Pruning did not reach")


def make(scope):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, name="d1"),
                              keras.layers.Dense(4, name="d2")])
    schedule = prunekit.PolynomialDecay(0.2, 0.7, 0, 8, power=1, frequency=2)
    return prunekit.prune_low_magnitude(model, schedule, pruning_scope=scope)


def distributions():
    if keras.backend.backend() == "tensorflow":
        return {"single": None, "mirrored": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
    mesh = keras.distribution.DeviceMesh((2, 2), ["batch", "model"])
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*d1/kernel"] = (None, "model")
    layout_map[".*d2/kernel"] = ("model", None)
    return {"single": None, "data": keras.distribution.DataParallel(),
            "model": keras.distribution.ModelParallel(layout_map=layout_map,
                                                      batch_dim_name="batch")}


def spec(variable):
    """The variable's partition spec, e.g. "P(None, 'model')"; "" on one device or on TF."""
    return str(getattr(getattr(variable.value, "sharding", None), "spec", ""))


# (pruning_scope, learning rate) per distribution: lr 0 compares masks exactly, 0.05 trains.
RUNS = {"single": [("layer", 0.0), ("global", 0.0), ("layer", 0.05)],
        "data": [("layer", 0.0), ("layer", 0.05)],
        "model": [("layer", 0.0), ("global", 0.0), ("layer", 0.05)],
        "mirrored": [("layer", 0.0), ("global", 0.0), ("layer", 0.05)]}


def scope(distribution):
    """The context to build and train in: a tf.distribute strategy's scope, or a Keras
    distribution set globally (None: one device)."""
    if distribution is None:
        return contextlib.nullcontext()
    if keras.backend.backend() == "tensorflow":
        return distribution.scope()
    return _keras_distribution(distribution)


@contextlib.contextmanager
def _keras_distribution(distribution):
    keras.distribution.set_distribution(distribution)
    try:
        yield
    finally:
        keras.distribution.set_distribution(None)


def to_list(value):
    return np.asarray(keras.ops.convert_to_numpy(value)).tolist()


def run(distribution, pruning_scope, lr, folder, tag):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.normal(size=(64, 4)).astype("float32")
    with scope(distribution):
        model = make(pruning_scope)
        model.compile(keras.optimizers.SGD(lr), "mse")
    # tf.distribute: build and compile in the strategy's scope, train outside it (as Keras
    # documents); keras.distribution stays set for everything.
    with contextlib.nullcontext() if keras.backend.backend() == "tensorflow" else scope(
            distribution):
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0,
                            callbacks=[prunekit.UpdatePruningStep()])
        wrappers = list(prunekit.iter_wrappers(model))
        path = os.path.join(folder, f"{tag}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        stripped = prunekit.strip_pruning(model)
        prunekit.pruning_summary(model, print_fn=lambda text: None)
        return {
            "loss": history.history["loss"],
            "steps": [int(to_list(w.pruning_step)) for w in wrappers],
            "masks": [to_list(w.masks[0]) for w in wrappers],
            "thresholds": [float(to_list(w.thresholds[0])) for w in wrappers],
            "kernels": [to_list(w.layer.kernel) for w in wrappers],
            "mask_specs": [spec(w.masks[0]) for w in wrappers],
            "kernel_specs": [spec(w.layer.kernel) for w in wrappers],
            "loaded_masks": [to_list(w.masks[0]) for w in prunekit.iter_wrappers(loaded)],
            "stripped_kernels": [to_list(layer.kernel) for layer in stripped.layers],
            "predictions": to_list(model.predict(x, verbose=0)),
        }


def main(folder):
    results = {}
    for name, distribution in distributions().items():
        for pruning_scope, lr in RUNS[name]:
            tag = f"{name}-{pruning_scope}-{lr}"
            results[tag] = run(distribution, pruning_scope, lr, folder, tag)
    devices = ([d.name for d in tf.config.list_logical_devices("CPU")]
               if keras.backend.backend() == "tensorflow" else keras.distribution.list_devices())
    print(json.dumps({"devices": devices, "results": results}))


if __name__ == "__main__":
    main(sys.argv[1])
