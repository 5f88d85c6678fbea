"""One-shot pruning of a small byte-level GPT-2 trained on Python's own sources (JAX).

Usage: python benchmarks/bench_oneshot.py [JSON] [--train-seconds 180] [--size small]

1. Trains (once; cached in benchmarks/.cache/oneshot/, git-ignored) a GPT-2-architecture language
   model with a byte-level vocabulary (256 tokens) on the standard library's ``.py`` files, by
   wall-clock budget. Held-out text: a disjoint set of files.
2. Prunes a fresh copy with magnitude, Wanda and SparseGPT at 50 % and 2:4 from 64 calibration
   windows of the training text; reports held-out perplexity, pruning time, peak RSS growth and
   SparseGPT's per-layer reconstruction error against magnitude's.

``--size small`` instead times Wanda and SparseGPT on a GPT-2-small-size model (124 M
parameters, random weights): pruning time and peak RSS against the model's float32 size.
Needs keras-hub (``pip install 'prunekit[hub]'``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
CACHE = os.path.join(HERE, ".cache", "oneshot")
SEQ = 128

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from prunekit.oneshot import prune_oneshot  # noqa: E402


def corpus() -> tuple[np.ndarray, np.ndarray]:
    """Byte arrays: training text (every file but each 10th) and held-out text (each 10th)."""
    root = os.path.dirname(os.__file__)
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                   if f.endswith(".py") and "site-packages" not in d and "test" not in d)
    train, held = [], []
    for i, path in enumerate(files):
        with open(path, "rb") as fh:
            (held if i % 10 == 0 else train).append(fh.read())
    return (np.frombuffer(b"".join(train), np.uint8).astype(np.int32),
            np.frombuffer(b"".join(held), np.uint8).astype(np.int32))


def windows(data: np.ndarray, count: int, seed: int) -> np.ndarray:
    starts = np.random.default_rng(seed).integers(0, len(data) - SEQ - 1, count)
    return np.stack([data[s:s + SEQ + 1] for s in starts])


def build(vocab=256, layers=4, hidden=256, heads=4, ffn=1024, max_len=SEQ) -> keras.Model:
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocab, num_layers=layers, num_heads=heads, hidden_dim=hidden,
        intermediate_dim=ffn, max_sequence_length=max_len, dropout=0.0)
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def inputs(ids: np.ndarray) -> dict[str, np.ndarray]:
    return {"token_ids": ids, "padding_mask": np.ones_like(ids)}


def train(train_ids: np.ndarray, seconds: float) -> str:
    path = os.path.join(CACHE, f"gpt2-bytes-{int(seconds)}s.keras")
    if os.path.exists(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    keras.utils.set_random_seed(0)
    lm = build()
    lm.compile(keras.optimizers.AdamW(2e-3), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), jit_compile=True)
    start, step = time.time(), 0
    while time.time() - start < seconds:
        batch = windows(train_ids, 32, step)
        lm.train_on_batch(inputs(batch[:, :-1]), batch[:, 1:])
        step += 1
    print(f"trained {lm.count_params()} parameters for {step} steps "
          f"({step * 32 * SEQ} tokens, {time.time() - start:.0f} s)", flush=True)
    lm.save(path + ".tmp.keras")
    os.replace(path + ".tmp.keras", path)
    return path


def perplexity(lm: keras.Model, held: np.ndarray) -> float:
    nll, count = 0.0, 0
    for i in range(0, len(held), 32):
        batch = held[i:i + 32]
        logits = np.asarray(keras.ops.convert_to_numpy(lm(inputs(batch[:, :-1]))), np.float64)
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll -= np.take_along_axis(logp, batch[:, 1:, None], -1).sum()
        count += batch[:, 1:].size
    return math.exp(nll / count)


class PeakRSS:
    """Peak resident memory growth (MB) of this process while the block runs (sampled)."""

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> float:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def run_small_lm(args: argparse.Namespace) -> dict:
    train_ids, held_ids = corpus()
    path = train(train_ids, args.train_seconds)
    calibration = windows(train_ids, 64, 1)[:, :-1]
    batches = [inputs(calibration[i:i + 16]) for i in range(0, 64, 16)]
    held = windows(held_ids, 256, 2)
    rows, reports = [], {}
    for method, target in [("dense", None), ("magnitude", 0.5), ("wanda", 0.5),
                           ("sparsegpt", 0.5), ("magnitude", (2, 4)), ("wanda", (2, 4)),
                           ("sparsegpt", (2, 4))]:
        lm = keras.saving.load_model(path)
        row = {"method": method, "target": "dense" if target is None else
               (f"{target[0]}:{target[1]}" if isinstance(target, tuple) else f"{target:.0%}")}
        if target is not None:
            n_m = target if isinstance(target, tuple) else None
            with PeakRSS() as mem:
                report = prune_oneshot(lm, batches, method, 0.5 if n_m is None else 0.0, n_m)
            reports[(method, row["target"])] = report
            row.update(seconds=round(report.seconds, 2), peak_rss_growth_mb=round(
                mem.peak - mem.base, 1), mean_error=round(float(np.mean(
                    [r.error for r in report.layers])), 4))
        row["perplexity"] = round(perplexity(lm, held), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    dense = rows[0]["perplexity"]
    for row in rows[1:]:
        row["increase"] = round(row["perplexity"] - dense, 4)
    comparison = {}
    for target in ("50%", "2:4"):
        mag, sgpt = reports[("magnitude", target)], reports[("sparsegpt", target)]
        pairs = [(m.error, s.error) for m, s in zip(mag.layers, sgpt.layers)]
        comparison[target] = {"layers": len(pairs),
                              "sparsegpt_below_magnitude": sum(s < m for m, s in pairs),
                              "per_layer": [(round(m, 4), round(s, 4)) for m, s in pairs]}
    return {"model_parameters": keras.saving.load_model(path).count_params(), "rows": rows,
            "error_magnitude_vs_sparsegpt": comparison}


def run_gpt2_small(args: argparse.Namespace) -> dict:
    keras.utils.set_random_seed(0)
    results = {}
    for method in ("wanda", "sparsegpt"):
        lm = build(vocab=50257, layers=12, hidden=768, heads=12, ffn=3072, max_len=1024)
        params = lm.count_params()
        ids = np.random.default_rng(0).integers(0, 50257, (args.samples, SEQ)).astype("int32")
        batches = [inputs(ids[i:i + 8]) for i in range(0, len(ids), 8)]
        with PeakRSS() as mem:
            report = prune_oneshot(lm, batches, method, 0.5, progress=lambda i, n, name: print(
                f"  {method} block {i + 1}/{n}", flush=True))
        results[method] = {"seconds": round(report.seconds, 1), "parameters": params,
                           "float32_mb": round(params * 4 / 2**20, 1),
                           "peak_rss_mb": round(mem.peak, 1),
                           "peak_rss_growth_mb": round(mem.peak - mem.base, 1)}
        print(json.dumps({method: results[method]}), flush=True)
        del lm
    return {"calibration": f"{args.samples} x {SEQ} random tokens", "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="?", default=None, help="also write the results here")
    parser.add_argument("--train-seconds", type=float, default=180.0)
    parser.add_argument("--size", choices=["tiny", "small"], default="tiny")
    parser.add_argument("--samples", type=int, default=32,
                        help="calibration windows (--size small)")
    args = parser.parse_args(argv)
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    start = time.time()
    result = run_small_lm(args) if args.size == "tiny" else run_gpt2_small(args)
    result.update(load_average_at_start=load, backend=keras.backend.backend(),
                  cores=os.cpu_count(), wall_seconds=round(time.time() - start, 1))
    print(json.dumps(result, indent=1))
    if args.json:
        if os.path.exists(args.json):
            raise SystemExit(f"Refusing to overwrite {args.json}")
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
