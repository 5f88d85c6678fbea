"""Prunable layers seen as matrices: ``outputs = rows(inputs) @ W`` with ``W`` of shape (K, O).

One-shot pruning needs, for every prunable layer, its kernel as a matrix ``W`` (K inputs by O
outputs) and its inputs as rows ``X`` (T, K) so that the layer computes ``X @ W`` (bias and
activation aside). :func:`matrix_view` builds that view for

* ``Dense``: the kernel itself, inputs flattened to ``(-1, in)``;
* ``EinsumDense``: the contracted axes (in the input and the kernel, not in the output) become
  K, the kernel's other axes O -- e.g. attention's query kernel ``(hidden, heads, head_dim)``
  is ``(hidden, heads * head_dim)``, its output kernel ``(heads, head_dim, hidden)`` is
  ``(heads * head_dim, hidden)``;
* ``Conv1D``/``Conv2D`` (channels last, ``groups=1``): im2col -- each output position's
  receptive field is one row of ``kernel_size * in_channels`` values, ordered like the kernel.

Anything else (depthwise or grouped convolutions, quantized or LoRA kernels, einsums with an
axis shared by input, kernel and output) is reported as unsupported with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from prunekit import walk


@dataclass(eq=False)
class MatrixView:
    """A prunable layer as ``rows(inputs) @ matrix`` (see the module docstring).

    Attributes:
        layer: The Keras layer.
        key: Identifies how inputs become rows: layers called on the same tensor with equal
            keys share one set of calibration statistics.
        to_matrix: Kernel (NumPy, kernel shape) -> ``(K, O)`` matrix.
        from_matrix: ``(K, O)`` matrix -> kernel shape.
        rows: Layer input (backend tensor) -> ``(T, K)`` float32 NumPy rows.
    """

    layer: Any
    key: tuple[Any, ...]
    to_matrix: Any
    from_matrix: Any
    rows: Any

    @property
    def kernel(self) -> Any:
        return self.layer.kernel

    def matrix(self) -> np.ndarray:
        """The kernel as a float64 ``(K, O)`` matrix."""
        return self.to_matrix(np.asarray(ops.convert_to_numpy(self.kernel.value), np.float64))

    def assign(self, matrix: np.ndarray) -> None:
        """Write a ``(K, O)`` matrix back into the kernel (in the kernel's dtype)."""
        value = self.from_matrix(np.asarray(matrix))
        self.kernel.assign(ops.cast(ops.convert_to_tensor(value.astype(np.float32)),
                                    self.kernel.dtype))


def _dense_view(layer: Any) -> MatrixView:
    k = int(layer.kernel.shape[0])
    return MatrixView(
        layer, ("dense", k), lambda w: w, lambda m: m,
        lambda x: np.asarray(ops.convert_to_numpy(x), np.float32).reshape(-1, k))


def _einsum_view(layer: Any) -> MatrixView:
    equation = layer.equation.replace(" ", "")
    inputs, rest = equation.split(",")
    kernel, output = rest.split("->")
    in_letters = inputs.replace("...", "")
    if any(c in in_letters and c in output for c in kernel):
        raise NotImplementedError(f"einsum '{equation}' has an axis in input, kernel and output")
    contracted = [c for c in kernel if c in in_letters]
    others = [c for c in kernel if c not in contracted]
    if not contracted or any(c not in output for c in others):
        raise NotImplementedError(f"einsum '{equation}' is not a matrix product of the input")
    shape = tuple(int(d) for d in layer.kernel.shape)
    perm = [kernel.index(c) for c in contracted + others]
    k = int(np.prod([shape[kernel.index(c)] for c in contracted]))
    inverse = np.argsort(perm)
    moved_shape = [shape[p] for p in perm]

    def rows(x: Any) -> np.ndarray:
        x = np.asarray(ops.convert_to_numpy(x), np.float32)
        lead = x.ndim - len(in_letters)
        axes = [lead + in_letters.index(c) for c in contracted]
        batch = [a for a in range(x.ndim) if a not in axes]
        return np.transpose(x, batch + axes).reshape(-1, k)

    return MatrixView(
        layer, ("einsum", inputs, tuple(contracted), k),
        lambda w: np.transpose(w, perm).reshape(k, -1),
        lambda m: np.transpose(np.reshape(m, moved_shape), inverse),
        rows)


def _conv_view(layer: Any) -> MatrixView:
    rank = len(layer.kernel.shape) - 2
    if rank not in (1, 2) or layer.groups != 1 or layer.data_format != "channels_last":
        raise NotImplementedError(
            "only Conv1D/Conv2D with groups=1 and channels_last are supported")
    shape = tuple(int(d) for d in layer.kernel.shape)
    k = int(np.prod(shape[:-1]))
    size = shape[:-2] if rank == 2 else (1, shape[0])
    strides = tuple(layer.strides) if rank == 2 else (1, layer.strides[0])
    dilation = tuple(layer.dilation_rate) if rank == 2 else (1, layer.dilation_rate[0])

    def rows(x: Any) -> np.ndarray:
        if rank == 1:
            x = ops.expand_dims(x, 1)
        if layer.padding == "causal":
            pad = dilation[1] * (size[1] - 1)
            x = ops.pad(x, ((0, 0), (0, 0), (pad, 0), (0, 0)))
        padding = "valid" if layer.padding == "causal" else layer.padding
        patches = ops.image.extract_patches(x, size, strides=strides, dilation_rate=dilation,
                                            padding=padding, data_format="channels_last")
        return np.asarray(ops.convert_to_numpy(patches), np.float32).reshape(-1, k)

    return MatrixView(layer, ("conv", layer.name), lambda w: w.reshape(k, -1),
                      lambda m: np.reshape(m, shape), rows)


def matrix_view(layer: Any) -> MatrixView:
    """Return the :class:`MatrixView` of a prunable layer.

    Raises:
        NotImplementedError: With the reason, for a layer this module cannot view as a matrix.

    Example:
        >>> layer = keras.layers.EinsumDense("abc,cde->abde", (None, 2, 3))
        >>> layer.build((None, None, 4))
        >>> view = matrix_view(layer)
        >>> view.matrix().shape, view.rows(np.ones((5, 7, 4))).shape
        ((4, 6), (35, 4))
    """
    if getattr(layer, "quantization_mode", None) or getattr(
            getattr(layer, "dtype_policy", None), "quantization_mode", None):
        raise NotImplementedError("the kernel is quantized")
    if getattr(layer, "lora_enabled", False):
        raise NotImplementedError("the layer has LoRA enabled")
    if isinstance(layer, keras.layers.EinsumDense):
        return _einsum_view(layer)
    if isinstance(layer, keras.layers.Dense):
        return _dense_view(layer)
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D)):
        return _conv_view(layer)
    raise NotImplementedError(f"{type(layer).__name__} layers are not supported")


def is_candidate(layer: Any) -> bool:
    """True for layers with a built ``kernel`` (one-shot pruning prunes or reports them)."""
    return getattr(layer, "built", False) and isinstance(
        getattr(layer, "kernel", None), keras.Variable)


def sublayers(block: Any) -> list[Any]:
    """``block`` and every layer nested in it, each once (:func:`prunekit.walk.all_layers`)."""
    return walk.all_layers(block, include_self=True)
