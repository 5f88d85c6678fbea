"""The block-by-block runner on tiny Keras models: against NumPy re-runs, fine-tuning with the
mask kept, int8 quantization and .keras round trips."""

import keras
import numpy as np
import pytest
from keras import ops

import prunekit
from prunekit.oneshot import KeepZerosCriterion, prune_oneshot


def _block(i, width=8, hidden=16):
    return keras.Sequential([keras.layers.Dense(hidden, activation="relu", name=f"up{i}"),
                             keras.layers.Dense(width, name=f"down{i}")], name=f"block{i}")


def _model(seed=0, blocks=3, width=8):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((width,))
    x = keras.layers.Dense(width, name="embed")(inputs)
    stack = [_block(i, width) for i in range(blocks)]
    for block in stack:
        x = block(x)
    return keras.Model(inputs, x), stack


def _data(seed=0, n=64, width=8):
    return np.random.default_rng(seed).normal(size=(n, width)).astype("float32")


def _kernels(model):
    return {w.path: np.array(ops.convert_to_numpy(w)) for w in model.weights if "kernel" in w.path}


def _np_wanda(w, x, sparsity):
    score = np.abs(w) * np.sqrt((x.astype(np.float64) ** 2).sum(0))[:, None]
    mask = np.ones_like(w)
    for j in range(w.shape[1]):
        mask[np.argsort(score[:, j], kind="stable")[:round(w.shape[0] * sparsity)], j] = 0
    return w * mask


def test_magnitude_block_runner_equals_one_pass():
    model, stack = _model()
    before = _kernels(model)
    report = prune_oneshot(model, [_data(0), _data(1)], "magnitude", 0.5, blocks=stack)
    after = _kernels(model)
    assert len(report.layers) == 6
    for path, w in before.items():
        if path.startswith("embed"):
            np.testing.assert_array_equal(after[path], w)  # outside the blocks: untouched
            continue
        flat = np.sort(np.abs(w).ravel())
        threshold = flat[len(flat) - round(w.size * 0.5)]
        np.testing.assert_array_equal(after[path], np.where(np.abs(w) >= threshold, w, 0))


def test_wanda_blocks_use_pruned_inputs():
    model, stack = _model(1)
    x = _data(2)
    layers = [model.get_layer("embed")] + [layer for b in stack for layer in b.layers]
    kernels = {layer.name: (np.array(ops.convert_to_numpy(layer.kernel), np.float64),
                            np.array(ops.convert_to_numpy(layer.bias), np.float64))
               for layer in layers}
    prune_oneshot(model, [x[:32], x[32:]], "wanda", 0.5, blocks=stack)
    w, b = kernels["embed"]
    h = x.astype(np.float64) @ w + b  # block 0's inputs (embed is not pruned)
    for i in range(3):
        up, up_b = kernels[f"up{i}"]
        up = _np_wanda(up, h, 0.5)
        a = np.maximum(h @ up + up_b, 0)
        down, down_b = kernels[f"down{i}"]
        down = _np_wanda(down, a, 0.5)
        h = a @ down + down_b
        np.testing.assert_array_equal(
            np.asarray(ops.convert_to_numpy(stack[i].layers[0].kernel)) != 0, up != 0)
        np.testing.assert_array_equal(
            np.asarray(ops.convert_to_numpy(stack[i].layers[1].kernel)) != 0, down != 0)
    np.testing.assert_allclose(ops.convert_to_numpy(model(x)), h, rtol=1e-4, atol=1e-4)


def test_sequential_model_is_one_block_and_layer_sparsity():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(name="sequential", layers=[
        keras.Input((8,)), keras.layers.Dense(16, name="a"), keras.layers.Dense(4, name="b")])
    report = prune_oneshot(model, _data(4), "sparsegpt", 0.5, layer_sparsity={"b": 0.75})
    got = [(r.path, r.sparsity) for r in report.layers]
    assert got == [("sequential/a", 0.5), ("sequential/b", 0.75)]
    assert all(r.error < 1 for r in report.layers)


def test_conv_layers_are_pruned_with_im2col():
    keras.utils.set_random_seed(5)
    model = keras.Sequential(name="sequential", layers=[keras.Input((8, 8, 4)),
                              keras.layers.Conv2D(8, 3, padding="same", name="c"),
                              keras.layers.DepthwiseConv2D(3, name="dw"),
                              keras.layers.Flatten(), keras.layers.Dense(2, name="d")])
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 4)).astype("float32")
    report = prune_oneshot(model, x, "sparsegpt", n_m=(2, 4), block_size=8)
    assert [r.path for r in report.layers] == ["sequential/c", "sequential/d"]
    assert list(report.skipped) == ["sequential/dw"]
    kernel = np.asarray(ops.convert_to_numpy(model.get_layer("c").kernel))
    assert ((kernel.reshape(-1, 8) != 0).reshape(-1, 4, 8).sum(1) == 2).all()


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "obs"}, "method"), ({"sparsity": 1.0}, "Sparsities"),
    ({"n_m": (4, 4)}, "n_m"), ({"layer_sparsity": {"nope": 0.5}}, "layer_sparsity"),
    ({"n_m": (2, 4), "block_size": 6}, "block_size")])
def test_bad_arguments_raise_before_changing_the_model(kwargs, match):
    model, stack = _model(2)
    before = _kernels(model)
    with pytest.raises(ValueError, match=match):
        prune_oneshot(model, _data(), **kwargs)
    for path, w in _kernels(model).items():
        np.testing.assert_array_equal(w, before[path])


def _pruned_model():
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3)])
    prune_oneshot(model, _data(5), "wanda", n_m=(2, 4))
    return model


def test_fine_tuning_keeps_the_zeros():
    model = _pruned_model()
    zeros = {p: w == 0 for p, w in _kernels(model).items()}
    before = _kernels(model)
    tuned = prunekit.prune_low_magnitude(model, criterion=KeepZerosCriterion())
    tuned.compile("adam", "mse")
    x = _data(6)
    tuned.fit(x, np.ones((64, 3), "float32"), epochs=2, batch_size=16, verbose=0,
              callbacks=[prunekit.UpdatePruningStep()])
    stripped = prunekit.strip_pruning(tuned)
    after = _kernels(stripped)
    for (path, z), w in zip(zeros.items(), after.values()):
        np.testing.assert_array_equal(w == 0, z, err_msg=path)
        assert not np.allclose(w, before[path])  # the kept weights did train


def test_int8_quantization_keeps_zeros():
    model = _pruned_model()
    zeros = [w == 0 for w in _kernels(model).values()]
    model.quantize("int8")
    for layer, z in zip(model.layers, zeros):
        q = np.asarray(ops.convert_to_numpy(layer._kernel))  # int8 values, one scale per output
        assert q.dtype == np.int8
        np.testing.assert_array_equal(q[z], 0)


def test_keras_round_trip(tmp_path):
    model = _pruned_model()
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for (p, w), w2 in zip(_kernels(model).items(), _kernels(loaded).values()):
        np.testing.assert_array_equal(w, w2)
    assert all(type(layer) is keras.layers.Dense for layer in loaded.layers)


def test_owl_sparsity_follows_outlier_ratios():
    from prunekit.oneshot import owl_sparsity

    model, stack = _model(4)
    big = stack[1].layers[0]  # give block 1 strong outliers: a few huge weights
    kernel = np.array(ops.convert_to_numpy(big.kernel))
    kernel[0, :4] *= 200.0
    big.kernel.assign(kernel)
    before = _kernels(model)
    table = owl_sparsity(model, _data(7), sparsity=0.6, lam=0.1, blocks=stack)
    for path, w in _kernels(model).items():
        np.testing.assert_array_equal(w, before[path])  # nothing pruned
    per_block = [table[f"block{i}/up{i}"] for i in range(3)]
    assert [table[f"block{i}/down{i}"] for i in range(3)] == per_block
    assert per_block[1] == pytest.approx(min(per_block)) and max(per_block) - min(
        per_block) == pytest.approx(0.2)
    assert np.mean(per_block) == pytest.approx(0.6)
    report = prune_oneshot(model, _data(7), "wanda", 0.6, layer_sparsity=table, blocks=stack)
    assert report.layers[2].path == "block1/up1"  # 8 inputs: round(8 * s) zeros per output
    assert report.layers[2].sparsity == round(8 * per_block[1]) / 8
