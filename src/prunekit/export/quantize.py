"""Value formats of the compressed export: float16 casting and symmetric int8 quantization.

int8 is symmetric and per output channel: for a tensor of rank >= 2 the last axis is the
output channel (Dense ``(in, out)``, Conv ``(..., in, out)``), and channel ``c`` gets

    scale[c] = max |w[..., c]| / 127,    q = clip(round(w / scale[c]), -127, 127),

so ``w ~= q * scale[c]`` with ``|w - q * scale[c]| <= scale[c] / 2`` and zeros map to 0 exactly.
Scales are stored as float16, rounded *up* so that ``|w| / scale <= 127`` still holds; where a
scale does not fit float16's normal range the whole tensor's scales are kept float32. Vectors
(rank <= 1: biases, normalization parameters) are not quantized to int8: they are stored as
float16, or float32 where a value does not fit float16.
"""

from __future__ import annotations

import numpy as np

_F16_MAX = float(np.finfo(np.float16).max)
_F16_TINY = float(np.finfo(np.float16).tiny)


def fits_float16(values: np.ndarray) -> bool:
    """Whether every finite value lies within float16's range (NaN/inf are kept as such).

    Example:
        >>> fits_float16(np.array([1.0, -70000.0]))
        False
    """
    finite = values[np.isfinite(values)]
    return finite.size == 0 or float(np.max(np.abs(finite))) <= _F16_MAX


def channel_scales(weights: np.ndarray) -> np.ndarray:
    """Per-output-channel int8 scales ``max|w[..., c]| / 127`` (float32, before storage rounding).

    Args:
        weights: float32 array of rank >= 2; the last axis is the output channel.

    Returns:
        A float32 vector with one scale per output channel (0 for an all-zero channel).

    Example:
        >>> channel_scales(np.array([[1.27, -2.54], [0.0, 1.0]], np.float32))
        array([0.01, 0.02], dtype=float32)
    """
    amax = np.max(np.abs(weights.reshape(-1, weights.shape[-1])), axis=0)
    return (amax / np.float32(127.0)).astype(np.float32)


def storage_scales(scales: np.ndarray) -> np.ndarray:
    """Round scales for storage: float16 rounded up when all fit its normal range, else float32.

    Example:
        >>> storage_scales(np.array([0.01], np.float32)).dtype
        dtype('float16')
    """
    nonzero = scales[scales > 0]
    if nonzero.size and (nonzero.min() < _F16_TINY or nonzero.max() > _F16_MAX / 2):
        return scales.astype(np.float32)
    half = scales.astype(np.float16)
    low = half.astype(np.float32) < scales
    half[low] = np.nextafter(half[low], np.float16(np.inf))
    return half


def quantize_int8(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantize a float32 tensor (rank >= 2) to int8 with per-output-channel scales.

    Args:
        weights: float32 array; the last axis is the output channel.

    Returns:
        ``(q, scales)``: int8 array of ``weights``' shape and the stored scales (float16 or
        float32, one per output channel). ``q * scales`` reconstructs the tensor.

    Example:
        >>> q, s = quantize_int8(np.array([[0.5, 0.0], [-1.0, 0.25]], np.float32))
        >>> q.tolist()  # 0.5 / (1/127 rounded up to float16) = 63.49...
        [[63, 0], [-127, 127]]
    """
    scales = storage_scales(channel_scales(weights))
    wide = scales.astype(np.float32)
    ratio = np.divide(weights, wide, out=np.zeros_like(weights), where=wide > 0)
    q = np.clip(np.round(ratio), -127, 127).astype(np.int8)
    return q, scales


def dequantize_int8(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Reconstruct float32 weights from int8 values and per-output-channel scales.

    Example:
        >>> dequantize_int8(np.array([[2, -4]], np.int8), np.array([0.5, 0.25], np.float16))
        array([[ 1., -1.]], dtype=float32)
    """
    return q.astype(np.float32) * scales.astype(np.float32)


def to_storage(values: np.ndarray, mode: str) -> tuple[str, np.ndarray, np.ndarray | None]:
    """The stored representation of one float32 tensor in a weight mode.

    Args:
        values: float32 array.
        mode: ``"float32"``, ``"float16"`` or ``"int8"``.

    Returns:
        ``(fmt, stored, scales)`` with ``fmt`` one of ``"f32"``, ``"f16"``, ``"i8"``; ``scales``
        is None except for ``"i8"``.

    Example:
        >>> to_storage(np.ones(3, np.float32), "int8")[0]
        'f16'
    """
    if mode == "int8" and values.ndim >= 2 and values.size:
        q, scales = quantize_int8(values)
        return "i8", q, scales
    if mode in ("int8", "float16") and fits_float16(values):
        return "f16", values.astype(np.float16), None
    return "f32", values, None


def from_storage(fmt: str, stored: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
    """Invert :func:`to_storage` (up to the rounding of the mode) into float32.

    Example:
        >>> from_storage("f16", np.array([0.5], np.float16), None)
        array([0.5], dtype=float32)
    """
    if fmt == "i8":
        return dequantize_int8(stored, scales)
    return np.ascontiguousarray(stored, np.float32)
