"""Mask functions against tfmot-behaviour.md §3 (keep counts, ties, blocks, m-by-n)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import numpy_global_threshold, tfmot_keep_count, to_numpy
from keras import ops

from prunekit import block_magnitude_mask, keep_count, m_by_n_mask, magnitude_mask
from prunekit.masks import pool_blocks


def tensor(values):
    return ops.convert_to_tensor(np.asarray(values, dtype="float32"))


# n, s, kept k, zeros, threshold -- the §3.1 table, distinct weights 1..n.
KEEP_TABLE = [
    (10, 0.25, 8, 2, 3), (6, 0.25, 4, 2, 3), (2, 0.25, 2, 0, 1), (10, 0.05, 10, 0, 1),
    (10, 0.15, 8, 2, 3), (10, 0.35, 6, 4, 5), (10, 0.45, 6, 4, 5), (3, 0.5, 2, 1, 2),
    (5, 0.5, 2, 3, 4), (7, 0.5, 4, 3, 4), (100, 0.9999, 1, 99, 100), (10, 0.0, 10, 0, 1),
    (1, 0.9, 1, 0, 1),
]


@pytest.mark.parametrize("n,s,kept,zeros,threshold", KEEP_TABLE)
def test_keep_count_and_threshold_table(n, s, kept, zeros, threshold):
    assert int(to_numpy(keep_count(n, s))) == kept
    weights = np.arange(1, n + 1, dtype="float32")
    np.random.default_rng(n).shuffle(weights)
    mask, t = magnitude_mask(tensor(weights), s)
    mask = to_numpy(mask)
    assert int((mask == 0).sum()) == zeros
    assert float(to_numpy(t)) == threshold
    np.testing.assert_array_equal(mask, (weights >= threshold).astype("float32"))


def test_keep_count_matches_float32_numpy_emulation():
    rng = np.random.default_rng(0)
    for n, s in zip(rng.integers(1, 5000, 300), rng.random(300) * 0.999):
        assert int(to_numpy(keep_count(int(n), float(s)))) == tfmot_keep_count(n, s)


@pytest.mark.parametrize(
    "weights,sparsity,threshold,mask",
    [
        (np.arange(1, 11), 0.200000018, 3, [0, 0] + [1] * 8),
        ([1, 1, 1, 1, 2, 2, 2, 2], 0.5, 2, [0, 0, 0, 0, 1, 1, 1, 1]),
        ([1, 1, 1, 1], 0.5, 1, [1, 1, 1, 1]),
        ([3, -1, 1, 2, -2, 0.5], 0.5, 2, [1, 0, 0, 1, 1, 0]),
        ([0, 0, 0, 0, 5, 6], 0.5, 0, [1, 1, 1, 1, 1, 1]),
        ([[-5, 0.1], [0.2, -0.3]], 0.5, 0.3, [[1, 0], [0, 1]]),
    ],
)
def test_ties_and_signs(weights, sparsity, threshold, mask):
    m, t = magnitude_mask(tensor(weights), sparsity)
    np.testing.assert_array_equal(to_numpy(m), np.asarray(mask, "float32"))
    assert float(to_numpy(t)) == pytest.approx(threshold)


def test_rank4_kernel():
    weights = np.arange(1, 13, dtype="float32").reshape(2, 2, 1, 3)
    m, t = magnitude_mask(tensor(weights), 0.5)
    assert float(to_numpy(t)) == 7
    np.testing.assert_array_equal(to_numpy(m).reshape(-1), [0] * 6 + [1] * 6)
    assert to_numpy(m).shape == (2, 2, 1, 3)


ROWS_01 = [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]


@pytest.mark.parametrize(
    "weights,pooling",
    [
        ([[.1, .1, .2, .2], [.1, .1, .2, .2], [.3, .3, .4, .4], [.3, .3, .4, .4]], "AVG"),
        ([[.1, 0, .2, 0], [0, -.1, 0, -.2], [.3, 0, .4, 0], [0, -.3, 0, -.4]], "MAX"),
    ],
)
def test_block_4x4(weights, pooling):
    m, t = block_magnitude_mask(tensor(weights), 0.5, (2, 2), pooling)
    np.testing.assert_array_equal(to_numpy(m), np.asarray(ROWS_01, "float32"))
    assert float(to_numpy(t)) == pytest.approx(0.3)


def test_block_5x3_edge_blocks_average_real_cells_only():
    weights = np.arange(1, 16, dtype="float32").reshape(5, 3)
    np.testing.assert_allclose(to_numpy(pool_blocks(tensor(weights), (2, 2), "AVG")),
                               [[3, 4.5], [9, 10.5], [13.5, 15]])
    m, t = block_magnitude_mask(tensor(weights), 0.5, (2, 2), "AVG")
    assert float(to_numpy(t)) == 10.5
    np.testing.assert_array_equal(
        to_numpy(m), [[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 1], [1, 1, 1]])


def _numpy_block_mask(w, s, block, pooling):
    """Independent reference: pad at the end, pool real cells, keep the top blocks."""
    bh, bw = block
    rows, cols = w.shape
    nr, nc = -(-rows // bh), -(-cols // bw)
    pooled = np.zeros((nr, nc), "float32")
    for i in range(nr):
        for j in range(nc):
            cells = np.abs(w[i * bh:(i + 1) * bh, j * bw:(j + 1) * bw])
            pooled[i, j] = cells.max() if pooling == "MAX" else cells.mean()
    t = numpy_global_threshold([pooled], s)  # The unstructured rule over the pooled blocks.
    keep = (pooled >= t).astype("float32")
    return np.kron(keep, np.ones((bh, bw), "float32"))[:rows, :cols], t


@pytest.mark.parametrize("shape,block,pooling", [((7, 5), (2, 3), "MAX"), ((10, 128), (2, 3), "AVG"),
                                                 ((9, 1), (2, 1), "AVG"), ((7, 2), (4, 2), "MAX"),
                                                 ((5, 4), (4, 1), "AVG")])
def test_block_mask_matches_numpy_reference(shape, block, pooling):
    w = np.random.default_rng(3).normal(size=shape).astype("float32")
    expected_mask, expected_t = _numpy_block_mask(w, 0.6, block, pooling)
    m, t = block_magnitude_mask(tensor(w), 0.6, block, pooling)
    np.testing.assert_array_equal(to_numpy(m), expected_mask)
    assert float(to_numpy(t)) == pytest.approx(float(expected_t), rel=1e-6)


def test_block_alignment_pads_at_the_end():
    # tfmot's SAME padding pools rows {0..2},{3,4} here and keeps only row 4 (sparsity 0.8).
    # Padding at the end pools rows {0..3},{4}: means [7,8,9,10] and [17..20]; k = 4 keeps row 4.
    w = np.arange(1, 21, dtype="float32").reshape(5, 4)
    m, t = block_magnitude_mask(tensor(w), 0.5, (4, 1), "AVG")
    np.testing.assert_array_equal(to_numpy(m), [[0] * 4] * 4 + [[1] * 4])
    assert float(to_numpy(t)) == 17


def test_block_needs_rank_2():
    with pytest.raises(ValueError, match="2-dimensional"):
        block_magnitude_mask(tensor(np.ones((2, 2, 2, 2))), 0.5, (2, 2))


@pytest.mark.parametrize(
    "weights,m_n,expected",
    [
        ([[.74, .68], [-.89, -.45], [-1.68, 1.24], [.31, -.6]], (2, 4),
         [[0, 1], [1, 0], [1, 1], [0, 0]]),
        ([[[[-.36, -.77], [-.43, -.18], [.12, 1.36], [.77, .96]]]], (2, 4),
         [[[[0, 0], [1, 0], [0, 1], [1, 1]]]]),
        ([[[[-.36, -.77], [-.43, -.18], [.12, 1.36], [.77, .96]]]], (1, 2),
         [[[[0, 1], [1, 0], [0, 1], [1, 0]]]]),
        ([[1.92, -.21], [-.19, .57], [1.1, -.42]], (2, 4), [[1, 0], [0, 1], [1, 1]]),
        ([[1.0]] * 8, (2, 4), [[1], [1], [0], [0], [1], [1], [0], [0]]),
    ],
)
def test_m_by_n_examples(weights, m_n, expected):
    np.testing.assert_array_equal(to_numpy(m_by_n_mask(tensor(weights), *m_n)),
                                  np.asarray(expected, "float32"))


def test_m_by_n_conv_with_7_input_channels():
    w = np.random.default_rng(0).normal(size=(3, 3, 7, 5)).astype("float32")
    mask = to_numpy(m_by_n_mask(tensor(w), 2, 4))
    assert 1 - mask.mean() == pytest.approx(3 / 7)


@pytest.mark.parametrize("shape", [(8,), (2, 4, 3)])
def test_m_by_n_rank(shape):
    with pytest.raises(ValueError, match="not supported"):
        m_by_n_mask(tensor(np.ones(shape)), 2, 4)
