"""``prunekit demo``: prune a small model during training, strip it, report sparsity and size."""

from __future__ import annotations

import argparse

from prunekit.cli import add_backend_argument, print_error


def run_demo(epochs: int = 20, seed: int = 0, verbose: bool = True) -> dict:
    """Train, prune (PolynomialDecay 0 -> 80 %) and strip a 10-64-1 regression MLP.

    Returns:
        A dict with per-layer sparsity and the sizes before and after.

    Example:
        >>> result = run_demo(epochs=2, verbose=False)  # doctest: +SKIP
    """
    import keras
    import numpy as np

    import prunekit
    from prunekit.export.sizes import GZIP_LABEL, gzipped_size

    if verbose:
        print(f"prunekit demo: a 10-64-1 regression MLP trained {epochs} epochs on Friedman #1 "
              "data,\npruned from 0 to 80% during training (PolynomialDecay), then stripped."
              "\nBelow: the fraction of zeros in each kernel, and the model's gzipped .h5 size"
              "\nbefore and after stripping the pruning wrappers.\n")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(4000, 10)).astype("float32")
    y = (10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3]
         + 5 * x[:, 4]).astype("float32")
    base = keras.Sequential([keras.Input((10,)), keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(1)])
    steps = epochs * int(np.ceil(len(x) / 32))
    schedule = prunekit.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=steps // 2, frequency=20)
    pruned = prunekit.prune_low_magnitude(base, pruning_schedule=schedule)
    pruned.compile(optimizer="adam", loss="mse")
    pruned.fit(x, y, epochs=epochs, verbose=0, callbacks=[prunekit.UpdatePruningStep()])
    stripped = prunekit.strip_pruning(pruned)
    sizes = {name: gzipped_size(model) for name, model in (("pruned", pruned),
                                                           ("stripped", stripped))}
    layers = {layer.name: float(np.mean(keras.ops.convert_to_numpy(layer.kernel) == 0))
              for layer in stripped.layers}
    result = {"backend": keras.backend.backend(), "layers": layers, "sizes": sizes,
              "mse": float(np.mean((stripped.predict(x, verbose=0).ravel() - y) ** 2))}
    if verbose:
        print(f"backend: {result['backend']}   training MSE after pruning: {result['mse']:.3f}"
              "  (the target's variance: about 23)")
        for name, sparsity in layers.items():
            print(f"  {name:<12} kernel sparsity {sparsity:6.1%}")
        for name, zipped in sizes.items():
            print(f"  {name:<12} {GZIP_LABEL} (without optimizer) {zipped:>7,} B")
    return result


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``prunekit demo``."""
    parser = subparsers.add_parser("demo", help="Prune a small model and show what changed.")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    add_backend_argument(parser)
    parser.set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    """Run ``prunekit demo``; return the exit code (2: invalid arguments, nothing trained).

    Example:
        >>> demo_command(argparse.Namespace(epochs=0, seed=0))  # doctest: +SKIP
        2
    """
    if args.epochs < 1:
        print_error("demo", f"--epochs must be >= 1. Received: --epochs={args.epochs}")
        return 2
    if args.seed < 0:
        print_error("demo", f"--seed must be >= 0. Received: --seed={args.seed}")
        return 2
    run_demo(args.epochs, args.seed)
    return 0
