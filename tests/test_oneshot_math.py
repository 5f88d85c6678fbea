"""One-shot pruning maths against independent NumPy references on small random layers."""

import keras
import numpy as np
import pytest
from keras import ops

from prunekit.oneshot import WandaCriterion, prune_matrix, reconstruction_error, sparsegpt
from prunekit.oneshot.capture import Gram
from prunekit.oneshot.layers import matrix_view


def _layer(seed, k=16, o=6, t=200, coupling=0.5):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(k, k)) * coupling + np.eye(k)  # correlated inputs, varied scales
    x = (rng.normal(size=(t, k)) * rng.uniform(0.1, 3.0, size=k)) @ mix
    return x.astype(np.float32), rng.normal(size=(k, o))


def _gram(x):
    g = Gram.empty(x.shape[1])
    g.add(x)
    return g


def _wanda_reference(w, x, sparsity=None, n_m=None):
    norm = np.sqrt((x.astype(np.float64) ** 2).sum(axis=0))
    score = np.abs(w) * norm[:, None]
    mask = np.ones_like(w)
    k, o = w.shape
    for j in range(o):  # one comparison group per output
        if n_m is None:
            mask[np.argsort(score[:, j], kind="stable")[:round(k * sparsity)], j] = 0
        else:
            n, m = n_m
            for g in range(0, k, m):
                mask[g + np.argsort(score[g:g + m, j], kind="stable")[:m - n], j] = 0
    return score, mask


@pytest.mark.parametrize("sparsity,n_m", [(0.5, None), (0.75, None), (None, (2, 4)),
                                          (None, (4, 8))])
def test_wanda_scores_and_mask_match_numpy(sparsity, n_m):
    x, w = _layer(0)
    score, mask = _wanda_reference(w, x, sparsity, n_m)
    norm = np.sqrt((x.astype(np.float64) ** 2).sum(axis=0))
    got = WandaCriterion(n_m).scores(ops.convert_to_tensor(w, "float32"), {"input_norm": norm})
    np.testing.assert_allclose(ops.convert_to_numpy(got), score, rtol=1e-5)
    pruned = prune_matrix("wanda", w, _gram(x), sparsity or 0.0, n_m)
    np.testing.assert_array_equal(pruned != 0, mask.astype(bool))
    np.testing.assert_array_equal(pruned[pruned != 0], w[pruned != 0])


def _sparsegpt_reference(w, xtx, sparsity, n_m, block, damp):
    """OBS one weight column (input) at a time, every later column updated at once (no lazy
    batches); masks chosen at each block's start (unstructured) or every m inputs (N:M)."""
    w = w.T.copy()  # (outputs, inputs)
    h = xtx.astype(np.float64).copy()
    k = h.shape[0]
    for i in range(k):
        if h[i, i] == 0:
            h[i, i] = 1.0
            w[:, i] = 0.0
    h = h + damp * np.trace(h) / k * np.eye(k)
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    pruned = np.zeros(w.shape, bool)
    for c in range(k):
        if n_m is None and c % block == 0:
            end = min(c + block, k)
            s = (w[:, c:end] ** 2) / (np.diag(u)[c:end] ** 2)
            flat = np.argsort(s.ravel(), kind="stable")[:int(round(s.size * sparsity))]
            for f in flat:
                pruned[f // (end - c), c + f % (end - c)] = True
        if n_m is not None and c % n_m[1] == 0:
            n, m = n_m
            for r in range(w.shape[0]):
                s = w[r, c:c + m] ** 2 / np.diag(u)[c:c + m] ** 2
                for f in np.argsort(s, kind="stable")[:m - n]:
                    pruned[r, c + f] = True
        for r in range(w.shape[0]):
            if pruned[r, c]:
                err = w[r, c] / u[c, c]
                for j in range(c, k):
                    w[r, j] -= err * u[c, j]
                w[r, c] = 0.0
    return w.T


@pytest.mark.parametrize("sparsity,n_m,block", [(0.5, None, 4), (0.6, None, 16), (0.5, None, 5),
                                                (None, (2, 4), 8), (None, (4, 8), 8)])
def test_sparsegpt_equals_direct_numpy(sparsity, n_m, block):
    x, w = _layer(1)
    xtx = x.astype(np.float64).T @ x.astype(np.float64)
    xtx[3, :] = xtx[:, 3] = 0.0  # a dead input
    expected = _sparsegpt_reference(w, xtx, sparsity, n_m, block, 0.01)
    got, mask = sparsegpt(w, xtx, sparsity or 0.0, n_m, block, 0.01)
    np.testing.assert_array_equal(got == 0, expected == 0)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(mask, got != 0)


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("n_m", [(2, 4), (4, 8), (1, 4)])
def test_n_m_patterns_exact(method, n_m):
    x, w = _layer(2, k=32, o=5)
    pruned = prune_matrix(method, w, _gram(x), 0.0, n_m, block_size=8)
    kept = (pruned != 0).reshape(32 // n_m[1], n_m[1], 5).sum(axis=1)
    assert (kept == n_m[0]).all()


@pytest.mark.parametrize("sparsity", [0.5, 0.7])
def test_sparsegpt_error_not_above_magnitude(sparsity):
    # Mildly correlated inputs: with strongly correlated ones (coupling 0.5 here), the default
    # dampening (1 % of the mean diagonal) can leave SparseGPT slightly above magnitude.
    for seed in range(3):
        x, w = _layer(10 + seed, k=24, o=8, coupling=0.2)
        g = _gram(x)
        errors = {m: reconstruction_error(w, prune_matrix(m, w, g, sparsity, None), g.xtx)
                  for m in ("magnitude", "sparsegpt")}
        assert errors["sparsegpt"] <= errors["magnitude"], errors


def test_reconstruction_error_matches_outputs():
    x, w = _layer(3)
    new = prune_matrix("magnitude", w, _gram(x), 0.5, None)
    x64 = x.astype(np.float64)
    direct = np.linalg.norm(x64 @ w - x64 @ new) / np.linalg.norm(x64 @ w)
    assert reconstruction_error(w, new, _gram(x).xtx) == pytest.approx(direct, rel=1e-5)


@pytest.mark.parametrize("make,shape", [
    (lambda: keras.layers.Conv2D(5, (3, 2), strides=(2, 1), padding="same"), (2, 7, 6, 3)),
    (lambda: keras.layers.Conv2D(5, 3, dilation_rate=2), (2, 9, 8, 3)),
    (lambda: keras.layers.Conv1D(4, 3, padding="causal", dilation_rate=2), (2, 9, 3)),
    (lambda: keras.layers.Conv1D(4, 3, strides=2, padding="same"), (2, 9, 3)),
    (lambda: keras.layers.EinsumDense("abcd,cde->abe", (None, 6)), (2, 3, 4, 5)),
    (lambda: keras.layers.EinsumDense("abc,cde->abde", (None, 2, 3)), (2, 3, 4)),
    (lambda: keras.layers.EinsumDense("...b,bc->...c", (6,)), (2, 3, 4)),
    (lambda: keras.layers.Dense(3), (2, 3, 4)),
])
def test_matrix_view_reproduces_the_layer(make, shape):
    layer = make()
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer.build(shape)
    view = matrix_view(layer)
    expected = np.asarray(ops.convert_to_numpy(layer(x)))
    if getattr(layer, "bias", None) is not None:
        expected = expected - np.asarray(ops.convert_to_numpy(layer.bias))
    np.testing.assert_allclose(view.rows(x) @ view.matrix(), expected.reshape(
        -1, view.matrix().shape[1]), rtol=1e-4, atol=1e-4)
    view.assign(view.matrix() * 2.0)
    np.testing.assert_allclose(np.asarray(ops.convert_to_numpy(layer(x))) - (
        0 if getattr(layer, "bias", None) is None else ops.convert_to_numpy(layer.bias)),
        2 * expected, rtol=1e-4, atol=1e-4)
