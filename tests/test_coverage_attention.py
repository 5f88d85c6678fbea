"""MultiHeadAttention and GroupQueryAttention: the four projection kernels, several inputs."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from conftest import tfmot_keep_count, to_numpy

import prunekit
from prunekit import ConstantSparsity, UpdatePruningStep, prune_low_magnitude

L = keras.layers


def projections(layer):
    """The query/key/value/output kernels, found without prunekit."""
    return [layer._query_dense.kernel, layer._key_dense.kernel, layer._value_dense.kernel,
            layer._output_dense.kernel]


def attention_model(wrapper, **call_kwargs):
    query, value = keras.Input((5, 8)), keras.Input((3, 6))
    out = wrapper(query, value, **call_kwargs)
    return keras.Model([query, value], L.GlobalAveragePooling1D()(out))


def data(rng, n=8):
    return [rng.normal(size=(n, 5, 8)).astype("float32"),
            rng.normal(size=(n, 3, 6)).astype("float32")]


def test_wrapper_builds_from_query_and_value_and_prunes_four_kernels(tmp_path):
    mha = L.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")
    wrapper = prune_low_magnitude(mha, ConstantSparsity(0.5, 0, frequency=1))
    model = attention_model(wrapper)  # the unbuilt layer is built with both input shapes
    assert [tuple(m.shape) for m in wrapper.masks] == [(8, 2, 4), (6, 2, 4), (6, 2, 4),
                                                       (2, 4, 8)]
    assert [id(w) for w in wrapper.prunable_weights] == [id(w) for w in projections(mha)]
    assert prunekit.summary.weight_labels(wrapper) == [
        "query/kernel", "key/kernel", "value/kernel", "attention_output/kernel"]
    rng = np.random.default_rng(0)
    x = data(rng)
    model.compile("sgd", "mse")
    model.fit(x, rng.normal(size=(8, 8)), batch_size=4, verbose=0,
              callbacks=[UpdatePruningStep()])
    for weight in wrapper.prunable_weights:
        values = to_numpy(weight)
        assert int((values != 0).sum()) == tfmot_keep_count(values.size, 0.5)
    path = os.path.join(tmp_path, "mha.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    restored = next(w for w in prunekit.iter_wrappers(loaded) if w.masks)
    for a, b in zip(restored.masks, wrapper.masks):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_keyword_arguments_are_forwarded():
    rng = np.random.default_rng(1)
    mha = L.MultiHeadAttention(num_heads=2, key_dim=4)
    query, value = keras.Input((5, 8)), keras.Input((5, 8))
    wrapped = prune_low_magnitude(mha)
    out, scores = wrapped(query, value=value, key=value, use_causal_mask=True,
                          return_attention_scores=True)
    model = keras.Model([query, value], [out, scores])
    q, v = rng.normal(size=(2, 5, 8)), rng.normal(size=(2, 5, 8))
    reference = keras.Model([query, value], mha(query, value=value, key=value,
                                                use_causal_mask=True,
                                                return_attention_scores=True))
    for got, want in zip(model.predict([q, v], verbose=0), reference.predict([q, v], verbose=0)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    causal = model.predict([q, v], verbose=0)[1]
    assert np.all(causal[..., np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] == 0)


def test_attention_mask_argument():
    mha = L.MultiHeadAttention(num_heads=1, key_dim=2)
    query, mask = keras.Input((3, 4)), keras.Input((3, 3), dtype="bool")
    wrapped = prune_low_magnitude(mha)
    model = keras.Model([query, mask], wrapped(query, query, attention_mask=mask))
    rng = np.random.default_rng(2)
    q = rng.normal(size=(2, 3, 4))
    full = np.ones((2, 3, 3), bool)
    eye = np.broadcast_to(np.eye(3, dtype=bool), (2, 3, 3))
    assert not np.allclose(model.predict([q, full], verbose=0), model.predict([q, eye],
                                                                               verbose=0))


def test_group_query_attention():
    gqa = L.GroupQueryAttention(head_dim=4, num_query_heads=2, num_key_value_heads=1, name="g")
    wrapper = prune_low_magnitude(gqa)
    attention_model(wrapper)
    assert [tuple(m.shape) for m in wrapper.masks] == [(8, 2, 4), (6, 1, 4), (6, 1, 4),
                                                       (2, 4, 8)]
    assert [id(w) for w in wrapper.prunable_weights] == [id(w) for w in projections(gqa)]


def test_whole_model_with_attention_block_and_block_sparsity_refused():
    query = keras.Input((5, 8))
    x = L.MultiHeadAttention(2, 4, name="mha")(query, query)
    model = keras.Model(query, L.Dense(2)(L.LayerNormalization()(x)))
    pruned = prune_low_magnitude(model)
    assert sum(len(w.masks) for w in prunekit.iter_wrappers(pruned)) == 5
    with pytest.raises(ValueError, match="2-dimensional"):
        prune_low_magnitude(model, block_size=(2, 2))
