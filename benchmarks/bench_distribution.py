"""Pruned training step time on 1 device vs keras.distribution.DataParallel on 4 (JAX).

Usage: python benchmarks/bench_distribution.py [--repeats 3] [--json out.json]

The 4 devices are simulated CPU devices (``--xla_force_host_platform_device_count=4``, set
here before JAX starts), sharing this machine's cores: the figure shows what the distribution
costs in partitioning and collectives, not a speed-up. Model: MLP 784-1024-1024-10,
``PolynomialDecay(0.2 -> 0.8, frequency=100)``, batch 128 (32 per device), median epoch time
per step after a warm-up epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=4").strip()
os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def bench(distribution, repeats):
    import keras
    import numpy as np

    import prunekit

    keras.distribution.set_distribution(distribution)
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(1024, activation="relu"),
                                  keras.layers.Dense(1024, activation="relu"),
                                  keras.layers.Dense(10)])
        rng = np.random.default_rng(0)
        x = rng.normal(size=(4096, 784)).astype("float32")
        y = rng.normal(size=(4096, 10)).astype("float32")
        steps = 4096 // 128
        pruned = prunekit.prune_low_magnitude(
            model, prunekit.PolynomialDecay(0.2, 0.8, 0, steps * (repeats + 1), frequency=100))
        pruned.compile(optimizer="adam", loss="mse")
        times = []
        for i in range(repeats + 1):
            start = time.perf_counter()
            pruned.fit(x, y, batch_size=128, epochs=1, verbose=0,
                       callbacks=[prunekit.UpdatePruningStep()])
            if i:  # The first epoch compiles.
                times.append((time.perf_counter() - start) / steps)
        return 1000 * float(np.median(times))
    finally:
        keras.distribution.set_distribution(None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import warnings

    import keras

    warnings.filterwarnings("ignore", message="Pruning did not reach")
    one = bench(None, args.repeats)
    four = bench(keras.distribution.DataParallel(), args.repeats)
    print(f"jax MLP 784-1024-1024-10 pruned, batch 128: 1 device {one:.2f} ms/step, "
          f"DataParallel on 4 simulated devices {four:.2f} ms/step ({four / one:.2f}x)")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as handle:
            json.dump({"one_device_ms_per_step": one, "four_devices_ms_per_step": four}, handle)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
