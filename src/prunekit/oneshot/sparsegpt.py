"""SparseGPT: prune a layer and reconstruct its remaining weights from the input Hessian.

Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
One-Shot" (arXiv 2301.00774), Algorithm 1, in NumPy float64 on the host (it runs once per layer).
With the layer as ``Y = X W`` (``W``: K inputs by O outputs, see :mod:`prunekit.oneshot.layers`)
and ``H = 2 X^T X / T`` over the T calibration rows:

1. Inputs that never fire (``H_ii = 0``) get ``H_ii = 1`` and their weights are zeroed.
2. Dampening: ``H += damp * mean(diag H) * I``.
3. ``U`` = the upper Cholesky factor of ``H^-1`` (``H^-1 = U^T U``); its rows give, for input
   ``i``, the update of the later inputs' weights once ``i`` is fixed (OBS, in sequence).
4. Inputs are processed in blocks of ``block_size``. At a block's start, unstructured masks
   zero the ``round(B * O * sparsity)`` weights of the block with the smallest
   ``w^2 / U_ii^2``; N:M masks choose, every ``m`` inputs, the ``m - n`` smallest of the next
   ``m`` inputs per output, on the weights as updated so far.
5. Within a block, input by input: the pruned weights of input ``i`` are set to zero, the error
   ``e = (w_i - q_i) / U_ii`` is spread over the block's later inputs (``W_j -= e U_ij``);
   after the block, all later inputs get the block's errors at once (the lazy batch update
   ``W[after] -= E @ U[block, after]``).

The count per block is rounded (the reference code prunes one more at the threshold); ties go
to the lower flat index.
"""

from __future__ import annotations

import numpy as np


def _inverse_cholesky(hessian: np.ndarray) -> np.ndarray:
    lower = np.linalg.cholesky(hessian)
    lower_inv = np.linalg.solve(lower, np.eye(len(hessian)))
    return np.linalg.cholesky(lower_inv.T @ lower_inv).T  # upper U with H^-1 = U^T U


def sparsegpt(
    weight: np.ndarray,
    hessian: np.ndarray,
    sparsity: float = 0.5,
    n_m: tuple[int, int] | None = None,
    block_size: int = 128,
    damp: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """Prune ``weight`` (K, O) with SparseGPT; return ``(new_weight, mask)``, both (K, O).

    Args:
        weight: The layer's weight matrix, K inputs by O outputs.
        hessian: ``X^T X`` (any positive scale) of the layer's K inputs, (K, K).
        sparsity: Fraction of zeros (unstructured); ignored with ``n_m``.
        n_m: ``(n, m)``: keep ``n`` of every ``m`` consecutive inputs of each output.
        block_size: Inputs per block (a multiple of ``m`` with ``n_m``).
        damp: Dampening, a fraction of the mean of the Hessian's diagonal.

    Returns:
        The reconstructed weight (float64, exact zeros where pruned) and the 0/1 mask.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x, w = rng.normal(size=(64, 8)), rng.normal(size=(8, 3))
        >>> new, mask = sparsegpt(w, x.T @ x, n_m=(2, 4))
        >>> mask.reshape(2, 4, 3).sum(axis=1).astype(int).tolist()
        [[2, 2, 2], [2, 2, 2]]
    """
    w = np.array(weight, np.float64).T.copy()  # (O, K): one row per output, as in the paper
    h = np.array(hessian, np.float64).copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += damp * np.mean(np.diag(h)) * np.eye(len(h))
    u = _inverse_cholesky(h)
    pruned = np.zeros(w.shape, bool)
    cols = w.shape[1]
    for start in range(0, cols, block_size):
        end = min(start + block_size, cols)
        block, u_block = w[:, start:end].copy(), u[start:end, start:end]
        diag = np.diag(u_block)
        errors = np.zeros_like(block)
        if n_m is None:
            _mark_smallest(block**2 / diag**2, sparsity, pruned[:, start:end])
        for i in range(end - start):
            if n_m is not None and (start + i) % n_m[1] == 0:
                _mark_n_m(block[:, i:i + n_m[1]]**2 / diag[i:i + n_m[1]]**2, n_m,
                          pruned[:, start + i:start + i + n_m[1]])
            column = block[:, i]
            kept = np.where(pruned[:, start + i], 0.0, column)
            errors[:, i] = (column - kept) / diag[i]
            block[:, i:] -= np.outer(errors[:, i], u_block[i, i:])
            block[:, i] = kept
        w[:, start:end] = block
        w[:, end:] -= errors @ u[start:end, end:]
    w[pruned] = 0.0
    return w.T, (~pruned).T.astype(np.float64)


def _mark_smallest(scores: np.ndarray, sparsity: float, out: np.ndarray) -> None:
    count = int(round(scores.size * float(sparsity)))
    order = np.argsort(scores, axis=None, kind="stable")[:count]
    out[np.unravel_index(order, scores.shape)] = True


def _mark_n_m(scores: np.ndarray, n_m: tuple[int, int], out: np.ndarray) -> None:
    zeros = scores.shape[1] - n_m[0]  # a trailing partial group keeps up to n
    if zeros <= 0:
        return
    order = np.argsort(scores, axis=1, kind="stable")[:, :zeros]
    np.put_along_axis(out, order, True, axis=1)


def reconstruction_error(old: np.ndarray, new: np.ndarray, xtx: np.ndarray) -> float:
    """Relative output error ``||X W - X W'||_F / ||X W||_F`` from ``X^T X`` (no X needed).

    Example:
        >>> x = np.array([[1.0, 0.0], [0.0, 2.0]]); w = np.array([[1.0], [1.0]])
        >>> round(reconstruction_error(w, np.array([[1.0], [0.0]]), x.T @ x), 4)  # |2| / |(1,2)|
        0.8944
    """
    diff = old - new
    num = float(np.sum((xtx @ diff) * diff))
    den = float(np.sum((xtx @ old) * old))
    return float(np.sqrt(max(num, 0.0) / den)) if den > 0 else 0.0
