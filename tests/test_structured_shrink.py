"""Shrunk models predict what the masked ones do, and work with save/load, .pkz and quantize."""

import os

import keras
import numpy as np
import pytest
from keras import layers

from prunekit.structured import DependencyGraph, L2Importance, prune_groups, select_units, shrink
from prunekit.structured.pruning import apply_removal

# Weights only need to be random: NumPy draws them (fast on every backend).
pytestmark = pytest.mark.usefixtures("numpy_initializers")


def _check_equal(model, sparsity, x, scope="uniform"):
    """Mask ``model`` in place (a clone would double the build time), shrink, compare."""
    params = model.count_params()
    graph = DependencyGraph(model)
    apply_removal(graph, select_units(graph, sparsity, L2Importance(), scope))
    masked = model
    small, report = shrink(masked)
    expected = masked.predict(x, verbose=0)
    got = small.predict(x, verbose=0)
    scale = max(float(np.abs(expected).max()), 1e-12)
    assert float(np.abs(got - expected).max()) <= 1e-5 * scale
    assert small.count_params() < params
    assert report.total("params_after") == small.count_params()
    assert report.total("params_before") == params
    return small, report


def _randomize_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, .1, b.shape),
                               rng.normal(0, .1, m.shape), rng.uniform(.5, 1.5, v.shape)])


def test_resnet50_shrinks_exactly():
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    _randomize_bn(model)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    small, report = _check_equal(model, 0.5, x)
    # Every residual stream shrinks as one group: the stage-1 Add's inputs stay equal width.
    assert small.get_layer("conv2_block1_0_conv").filters == small.get_layer(
        "conv2_block1_3_conv").filters == 128
    assert report.macs_ratio > 2.5


def test_mobilenetv2_shrinks_exactly():
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    _randomize_bn(model)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    small, _ = _check_equal(model, 0.3, x, scope="global")
    assert small.get_layer("block_1_expand").filters < 96


def _transformer(seq=8, dim=16, heads=4, ff=32, vocab=50):
    i = keras.Input((seq,), dtype="int32")
    x = layers.Embedding(vocab, dim)(i)
    for b in range(2):
        a = layers.MultiHeadAttention(heads, dim // heads, name=f"mha{b}")(x, x)
        x = layers.LayerNormalization()(x + a)
        f = layers.Dense(ff, activation="gelu", name=f"ff{b}")(x)
        f = layers.Dropout(0.1)(layers.Dense(dim, name=f"ffo{b}")(f))
        x = layers.LayerNormalization()(layers.Add()([x, f]))
    return keras.Model(i, layers.Dense(3)(layers.GlobalAveragePooling1D()(x)))


def test_transformer_shrinks_heads_and_feed_forward():
    keras.utils.set_random_seed(0)
    model = _transformer()
    x = np.random.default_rng(1).integers(0, 50, size=(3, 8)).astype("int32")
    small, report = _check_equal(model, 0.5, x)
    assert small.get_layer("mha0").num_heads == 2 and small.get_layer("ff1").units == 16
    assert any("normalizes over channels" in r for _, r in report.left_whole)


def _small_cnn():
    keras.utils.set_random_seed(0)
    i = keras.Input((8, 8, 1))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(i)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="c2")(x)
    x = layers.Flatten()(layers.MaxPooling2D()(x))
    return keras.Model(i, layers.Dense(10, activation="softmax")(layers.Dense(16)(x)))


def test_keras_round_trip_without_prunekit(tmp_path):
    masked = prune_groups(_small_cnn(), 0.5)
    path = str(tmp_path / "masked.keras")
    masked.save(path)
    loaded = keras.saving.load_model(path)
    small, _ = shrink(loaded)  # the zeroed units are found again in the loaded file
    small_path = str(tmp_path / "small.keras")
    small.save(small_path)
    again = keras.saving.load_model(small_path)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(again.predict(x, verbose=0), masked.predict(x, verbose=0),
                               atol=1e-5)
    assert again.get_layer("c1").filters == 4
    # The rebuilt layers keep their own initializers (shrink builds them with zeros first).
    assert again.get_layer("c1").get_config()["kernel_initializer"]["class_name"] == \
        "GlorotUniform"
    assert again.get_layer("bn").get_config()["gamma_initializer"][
        "class_name"] == "Ones"


@pytest.mark.parametrize("weights,atol", [("float32", 1e-6), ("int8", 0.05)])
def test_pkz_round_trip(tmp_path, weights, atol):
    from prunekit.export import load_compressed, save_compressed

    small, _ = shrink(_small_cnn(), 0.5)
    path = str(tmp_path / f"small-{weights}.pkz")
    save_compressed(small, path, weights=weights)
    restored = load_compressed(path)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(restored.predict(x, verbose=0), small.predict(x, verbose=0),
                               atol=atol)


def test_keras_int8_quantize():
    small, _ = shrink(_small_cnn(), 0.5)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    before = small.predict(x, verbose=0)
    small.quantize("int8")
    np.testing.assert_allclose(small.predict(x, verbose=0), before, atol=0.05)


def test_litert_export(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("LiteRT export goes through TensorFlow: tested on the tensorflow backend")
    pytest.importorskip("tensorflow")
    small, _ = shrink(_small_cnn(), 0.5)
    path = str(tmp_path / "small.tflite")
    small.export(path, format="litert")
    assert os.path.getsize(path) > 0


def test_shrink_leaves_the_model_unchanged():
    model = _small_cnn()
    before = [w.copy() for w in model.get_weights()]
    shrink(model, 0.5)
    prune_groups(model, 0.5)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(DependencyGraph(model).groups) == 4


@pytest.mark.parametrize("bad,match", [(1.0, "sparsity"), (-0.1, "sparsity"), ("x", "sparsity")])
def test_bad_sparsity(bad, match):
    with pytest.raises(ValueError, match=match):
        shrink(_small_cnn(), bad)


def test_bad_importance_and_scope():
    with pytest.raises(ValueError, match="importance must be one of"):
        shrink(_small_cnn(), 0.5, importance="l3")
    with pytest.raises(ValueError, match="scope must be"):
        shrink(_small_cnn(), 0.5, scope="layer")
