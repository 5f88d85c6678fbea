"""Calibration files for ``prunekit oneshot``: plain text (language models) or ``.npz`` arrays.

Files are checked before any model is loaded or anything is computed; every problem is a
``ValueError`` with a one-line message.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np


def check_calibration(path: str) -> str:
    """Return ``"npz"`` or ``"text"`` for a usable calibration file; raise ``ValueError`` if not.

    Example:
        >>> check_calibration("missing.txt")
        Traceback (most recent call last):
        ...
        ValueError: Calibration file not found. Received: calibration='missing.txt'
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"Calibration file not found. Received: calibration={path!r}")
    if file.suffix == ".npz":
        load_npz(path)
        return "npz"
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError("A text calibration file must be UTF-8 text (or use a .npz file). "
                         f"Received: calibration={path!r}") from None
    if not text.strip():
        raise ValueError(f"The calibration text file is empty. Received: calibration={path!r}")
    return "text"


def load_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` calibration file (numeric, one shared first dimension >= 1)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"Cannot read the .npz calibration file ({type(exc).__name__}): "
                         f"expected arrays saved with numpy.savez. Received: calibration={path!r}"
                         ) from None
    lengths = {a.shape[0] if a.ndim else 0 for a in arrays.values()}
    if not arrays or lengths == {0} or len(lengths) != 1 or not all(
            np.issubdtype(a.dtype, np.number) for a in arrays.values()):
        raise ValueError("A .npz calibration file needs numeric arrays with one shared, non-zero "
                         f"number of samples. Received: calibration={path!r} with "
                         f"{ {k: (a.shape, str(a.dtype)) for k, a in arrays.items()} }")
    return arrays


def npz_batches(arrays: dict[str, np.ndarray], samples: int, batch_size: int) -> list[Any]:
    """Split the first ``samples`` rows into batches (a bare array when the file holds one)."""
    def cut(a: np.ndarray, i: int) -> np.ndarray:
        a = a[i:min(i + batch_size, samples)]
        return a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a

    samples = min(samples, len(next(iter(arrays.values()))))
    single = next(iter(arrays)) if len(arrays) == 1 else None
    return [cut(arrays[single], i) if single else {k: cut(a, i) for k, a in arrays.items()}
            for i in range(0, samples, batch_size)]


def text_batches(text: str, tokenizer: Any, samples: int, seq_len: int,
                 batch_size: int) -> list[dict[str, np.ndarray]]:
    """Tokenize ``text`` and cut it into ``samples`` consecutive windows of ``seq_len`` tokens.

    Raises:
        ValueError: If the text has fewer than ``seq_len`` tokens.
    """
    ids = np.asarray(tokenizer(text)).reshape(-1).astype(np.int32)
    count = min(samples, len(ids) // seq_len)
    if count < 1:
        raise ValueError(f"The calibration text has {len(ids)} tokens, fewer than one window of "
                         f"--seq-len. Received: seq_len={seq_len}")
    windows = ids[:count * seq_len].reshape(count, seq_len)
    return [{"token_ids": w, "padding_mask": np.ones_like(w)}
            for w in np.array_split(windows, range(batch_size, count, batch_size))]
