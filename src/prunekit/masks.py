"""Which weights to keep: magnitude, block and m-by-n masks as pure ``keras.ops`` functions.

Every mask function takes a weight tensor (or, for :func:`mask_from_scores`, scores) and returns
a 0/1 mask of the same shape (and, for top-k masks, the threshold that produced it). They run on
any backend, eagerly or traced. The criteria of :mod:`prunekit.criteria` call them.

Semantics follow tfmot (keep count, rounding, ties); block masks pad at the *end* of each
dimension so blocks always start at index 0 (tfmot's 'SAME' padding misaligns blocks when a
dimension needs two or more cells of padding, and crashes when a pooled dimension is 1).
"""

from __future__ import annotations

import math
from typing import Any

from keras import ops

POOLING_TYPES = ("AVG", "MAX")


def keep_count(size: Any, sparsity: Any) -> Any:
    """Number of elements (or blocks) to keep: ``max(1, round_half_even(size * (1 - s)))``.

    The product is computed in float32, as tfmot does, so halves round to even.

    Args:
        size: Number of elements (int or scalar tensor).
        sparsity: Target fraction of zeros (float or scalar float tensor).

    Returns:
        A scalar int32 tensor.

    Raises:
        ValueError: If ``sparsity`` is a Python number outside [0, 1) (tensors are not checked:
            they may be traced).

    Example:
        >>> int(keep_count(6, 0.25)), int(keep_count(5, 0.5)), int(keep_count(100, 0.9999))
        (4, 2, 1)
    """
    if isinstance(sparsity, (int, float)) and not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in range [0,1). Received: sparsity={sparsity}")
    density = ops.subtract(ops.cast(1.0, "float32"), ops.cast(sparsity, "float32"))
    kept = ops.round(ops.multiply(ops.cast(size, "float32"), density))
    return ops.cast(ops.maximum(kept, 1.0), "int32")


def threshold_for_keep_count(scores: Any, k: Any) -> Any:
    """Return the ``k``-th largest value of non-negative ``scores`` (any shape, flattened).

    For float32 scores this is an exact selection without sorting: non-negative float32
    values order like their bit patterns read as int32, so a 31-step bisection over bit
    patterns finds the largest ``t`` with ``count(scores >= t) >= k``, which is exactly the
    k-th largest value. Each step is one compare-and-count pass, which is far cheaper than a
    sort on CPU backends (XLA's CPU sort takes about a second for a million values). Other
    dtypes fall back to sorting.

    Example:
        >>> float(threshold_for_keep_count(ops.convert_to_tensor([3.0, 1.0, 2.0]), 2))
        2.0
    """
    flat = ops.reshape(scores, (-1,))
    k = ops.cast(k, "int32")
    if flat.dtype != "float32":
        return ops.take(ops.sort(flat), flat.shape[0] - k)
    bits = ops.view(flat, "int32")

    def halve(_: Any, bounds: tuple[Any, Any]) -> tuple[Any, Any]:
        low, high = bounds  # count(bits >= low) >= k > count(bits >= high)
        middle = low + (high - low) // 2
        enough = ops.greater_equal(ops.sum(ops.cast(bits >= middle, "int32")), k)
        return ops.where(enough, middle, low), ops.where(enough, high, middle)

    start = (ops.convert_to_tensor(0, "int32"), ops.max(bits) + 1)
    low, _ = ops.fori_loop(0, 31, halve, start)
    return ops.view(ops.reshape(low, (1,)), "float32")[0]


def mask_from_scores(scores: Any, sparsity: Any) -> tuple[Any, Any]:
    """Keep the ``keep_count(size, sparsity)`` highest non-negative ``scores``.

    Every element whose score is at least the threshold (the k-th largest score) is kept, so
    ties may keep more than ``k`` elements (tfmot's rule, applied to any score).

    Args:
        scores: Non-negative scores of any shape.
        sparsity: Target fraction of zeros in [0, 1).

    Returns:
        ``(mask, threshold)``: a boolean mask with ``scores``' shape and the scalar threshold in
        ``scores``' dtype.

    Example:
        >>> mask, t = mask_from_scores(ops.convert_to_tensor([0.1, 0.9, 0.4, 0.7]), 0.5)
        >>> ops.convert_to_numpy(mask).tolist(), round(float(t), 6)
        ([False, True, False, True], 0.7)
    """
    size = math.prod(scores.shape)
    threshold = threshold_for_keep_count(scores, keep_count(size, sparsity))
    return ops.greater_equal(scores, threshold), threshold


def magnitude_mask(weight: Any, sparsity: Any) -> tuple[Any, Any]:
    """Unstructured magnitude mask: keep the ``keep_count`` largest ``|w|``.

    Every element whose magnitude is at least the threshold (the k-th largest ``|w|``) is kept,
    so ties may keep more than ``k`` elements, and a mostly-zero tensor keeps everything.

    Args:
        weight: Weight tensor of any rank.
        sparsity: Target fraction of zeros in [0, 1).

    Returns:
        ``(mask, threshold)``: mask with ``weight``'s shape and dtype, scalar threshold in
        ``weight``'s dtype.

    Example:
        >>> mask, t = magnitude_mask(ops.convert_to_tensor([3.0, -1.0, 1.0, 2.0, -2.0, 0.5]), 0.5)
        >>> ops.convert_to_numpy(mask).tolist(), float(t)
        ([1.0, 0.0, 0.0, 1.0, 1.0, 0.0], 2.0)
    """
    mask, threshold = mask_from_scores(ops.abs(weight), sparsity)
    return ops.cast(mask, weight.dtype), ops.cast(threshold, weight.dtype)


def _pad_to_blocks(matrix: Any, block_size: tuple[int, int], value: float) -> Any:
    """Pad a rank-2 tensor at the end of each dimension to whole blocks."""
    rows, cols = matrix.shape
    bh, bw = block_size
    pad_rows, pad_cols = -rows % bh, -cols % bw
    if pad_rows == 0 and pad_cols == 0:
        return matrix
    return ops.pad(matrix, ((0, pad_rows), (0, pad_cols)), constant_values=value)


def pool_blocks(matrix: Any, block_size: tuple[int, int], pooling: str = "AVG") -> Any:
    """Pool ``|matrix|`` over non-overlapping blocks that start at index 0.

    Edge blocks that extend past the matrix use only their real cells: AVG averages over the
    real cells, MAX takes their maximum.

    Args:
        matrix: Rank-2 tensor.
        block_size: ``(block_height, block_width)``.
        pooling: ``"AVG"`` or ``"MAX"``.

    Returns:
        A ``(ceil(rows / bh), ceil(cols / bw))`` tensor.

    Example:
        >>> x = ops.reshape(ops.arange(1.0, 16.0), (5, 3))
        >>> ops.convert_to_numpy(pool_blocks(x, (2, 2), "AVG")).tolist()
        [[3.0, 4.5], [9.0, 10.5], [13.5, 15.0]]
    """
    rows, cols = matrix.shape
    bh, bw = block_size
    n_rows, n_cols = -(-rows // bh), -(-cols // bw)
    padded = _pad_to_blocks(ops.abs(matrix), block_size, 0.0)
    blocks = ops.reshape(padded, (n_rows, bh, n_cols, bw))
    if pooling == "MAX":
        return ops.max(blocks, axis=(1, 3))
    ones = _pad_to_blocks(ops.ones((rows, cols), dtype=matrix.dtype), block_size, 0.0)
    counts = ops.sum(ops.reshape(ones, (n_rows, bh, n_cols, bw)), axis=(1, 3))
    return ops.sum(blocks, axis=(1, 3)) / counts


def block_magnitude_mask(
    weight: Any, sparsity: Any, block_size: tuple[int, int], pooling: str = "AVG"
) -> tuple[Any, Any]:
    """Block-sparse magnitude mask for a rank-2 weight.

    ``|w|`` is pooled over ``block_size`` blocks (AVG or MAX), the unstructured rule of
    :func:`magnitude_mask` picks which *blocks* to keep, and each kept block becomes a tile of
    ones. The threshold is in pooled units.

    Args:
        weight: Rank-2 weight tensor.
        sparsity: Target fraction of zero blocks in [0, 1).
        block_size: ``(block_height, block_width)``.
        pooling: ``"AVG"`` or ``"MAX"``.

    Returns:
        ``(mask, threshold)`` as in :func:`magnitude_mask`.

    Raises:
        ValueError: If ``weight`` is not rank 2.

    Example:
        >>> w = ops.convert_to_tensor([[.1, .1, .2, .2], [.1, .1, .2, .2],
        ...                            [.3, .3, .4, .4], [.3, .3, .4, .4]])
        >>> mask, t = block_magnitude_mask(w, 0.5, (2, 2), "AVG")
        >>> ops.convert_to_numpy(mask)[:, 0].tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    if len(weight.shape) != 2:
        raise ValueError(
            "Block sparsity can only be used for layers which have 2-dimensional weights. "
            f"Received: a weight of shape {tuple(weight.shape)}"
        )
    rows, cols = weight.shape
    pooled = pool_blocks(weight, block_size, pooling)
    pooled_mask, threshold = magnitude_mask(pooled, sparsity)
    bh, bw = block_size
    mask = ops.repeat(ops.repeat(pooled_mask, bh, axis=0), bw, axis=1)[:rows, :cols]
    return mask, threshold


def _m_by_n_rows(weight: Any) -> tuple[Any, Any]:
    """Rearrange a weight so that groups run along the last axis of a matrix.

    Returns the matrix and a function mapping a mask of that matrix back to ``weight``'s layout.
    """
    shape = tuple(weight.shape)
    if len(shape) == 2:  # Dense (in, out): groups along `in`.
        return ops.transpose(weight), lambda m: ops.transpose(m)
    if len(shape) == 4:  # Conv2D (kh, kw, cin, cout): groups along `cin`.
        kh, kw, cin, cout = shape
        rows = ops.reshape(ops.transpose(weight, (3, 0, 1, 2)), (cout * kh * kw, cin))

        def back(mask: Any) -> Any:
            return ops.transpose(ops.reshape(mask, (cout, kh, kw, cin)), (1, 2, 3, 0))

        return rows, back
    raise ValueError(
        f"weight tensor with shape: {shape} is not supported: m-by-n sparsity needs a rank-2 "
        "(Dense) or rank-4 (Conv2D) weight."
    )


def m_by_n_mask(weight: Any, m: int, n: int) -> Any:
    """Structured m-by-n mask: in every group of ``n`` consecutive weights, zero ``m``.

    Groups run along the input dimension (TFLite's last dimension): ``in`` for a Dense
    kernel ``(in, out)``, ``cin`` for a Conv2D kernel ``(kh, kw, cin, cout)``. Each group keeps
    its ``n - m`` largest ``|w|``; ties go to the lower index. A trailing partial group of
    ``r`` entries keeps ``min(r, n - m)``.

    Args:
        weight: Rank-2 or rank-4 weight tensor.
        m: Number of zeros per group (``1 <= m < n``).
        n: Group size.

    Returns:
        The mask, with ``weight``'s shape and dtype.

    Raises:
        ValueError: Unless ``m`` and ``n`` are integers with ``1 <= m < n`` (tfmot also
            rejects ``m >= n``; ``m == n`` would zero everything).

    Example:
        >>> w = ops.convert_to_tensor([[.74, .68], [-.89, -.45], [-1.68, 1.24], [.31, -.6]])
        >>> ops.convert_to_numpy(m_by_n_mask(w, 2, 4)).astype(int).tolist()
        [[0, 1], [1, 0], [1, 1], [0, 0]]
    """
    if not (all(isinstance(v, int) and not isinstance(v, bool) for v in (m, n)) and 1 <= m < n):
        raise ValueError(f"m_by_n_mask needs integers 1 <= m < n (m zeros in every group of n). "
                         f"Received: m={m!r}, n={n!r}")
    rows, back = _m_by_n_rows(weight)
    n_rows, length = rows.shape
    pad = -length % n
    padded = ops.pad(ops.abs(rows), ((0, 0), (0, pad)), constant_values=-1.0)
    groups = ops.reshape(padded, (n_rows, (length + pad) // n, n))
    # Rank of each entry in its group: larger magnitudes first, ties to the lower index.
    a = ops.expand_dims(groups, -1)  # value of entry i
    b = ops.expand_dims(groups, -2)  # value of entry j
    index = ops.arange(n)
    earlier = ops.less(ops.expand_dims(index, 0), ops.expand_dims(index, 1))  # [i, j]: j < i
    beats = ops.logical_or(ops.greater(b, a), ops.logical_and(ops.equal(b, a), earlier))
    rank = ops.sum(ops.cast(beats, "int32"), axis=-1)
    keep = ops.less(rank, n - m)
    mask = ops.reshape(ops.cast(keep, weight.dtype), (n_rows, length + pad))[:, :length]
    return back(mask)
