"""Writing files safely: atomically, never over a user's file unless asked, into new folders.

Every file prunekit writes (``.pkz`` files, results tables, reports, run records) goes through
:func:`write_atomic`: a temporary file beside the target, flushed and fsynced, then renamed into
place, so a reader never sees half a file and a crash leaves the old one; what Keras writes
itself (a ``.keras`` file, a KerasHub preset folder) goes through :func:`save_atomic`. Output
paths are checked before any work (:func:`check_output_path`, :func:`check_folder_path`), and run
folders are always new (:func:`make_new_folder`).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any


def write_atomic(path: str | os.PathLike, data: bytes | str, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file, ``fsync`` and a rename.

    Args:
        path: The file to write; its folder must exist.
        data: Bytes, or text (written as UTF-8, line endings as given).
        overwrite: Replace an existing file. If False and ``path`` exists, raise and leave it.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.

    Example:
        >>> p = tempfile.mkdtemp() + "/x.txt"
        >>> write_atomic(p, "hello"); open(p).read()
        'hello'
        >>> write_atomic(p, "again", overwrite=False)
        Traceback (most recent call last):
        ...
        FileExistsError: ... already exists; pass overwrite=True (CLI: --force) to replace it.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def save_atomic(path: str | os.PathLike, save: Callable[[Path], None]) -> None:
    """Run ``save(tmp)`` for a temporary path beside ``path``, then move it to ``path``.

    For files and folders written by someone else's function (``model.save``,
    ``save_to_preset``): a reader never sees a half-written result, and an existing ``path`` is
    never replaced. ``tmp`` has ``path``'s name (Keras checks the ``.keras`` suffix) inside a
    new hidden folder, removed afterwards whatever happens.

    Args:
        path: The file or folder to create; its folder must exist.
        save: Writes the result to the path it is given.

    Raises:
        FileExistsError: ``path`` exists (checked again just before the move).

    Example:
        >>> p = Path(tempfile.mkdtemp()) / "notes.txt"
        >>> save_atomic(p, lambda tmp: tmp.write_text("hi")); p.read_text()
        'hi'
        >>> save_atomic(p, lambda tmp: tmp.write_text("again"))
        Traceback (most recent call last):
        ...
        FileExistsError: ... already exists; expected a new path.
    """
    path = Path(path)
    if path.exists():
        raise _new_path_error(path)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        tmp = folder / path.name
        save(tmp)
        if tmp.is_dir():
            if path.exists():  # rename() would replace an empty folder: check again
                raise _new_path_error(path)
            os.rename(tmp, path)
        else:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            try:
                _link_no_clobber(str(tmp), path)
            except FileExistsError:
                raise _new_path_error(path) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable too, where the platform allows opening a directory."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _exists_error(path: Path) -> FileExistsError:
    return FileExistsError(
        f"{path} already exists; pass overwrite=True (CLI: --force) to replace it."
    )


def _new_path_error(path: Path) -> FileExistsError:
    return FileExistsError(f"{path} already exists; expected a new path.")


def _link_no_clobber(tmp: str, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless ``path`` exists (atomically where hard links work)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError:  # no hard links on this file system: check, then rename
        if path.exists():
            raise _exists_error(path) from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def write_json(path: str | os.PathLike, document: Any) -> None:
    """Write ``document`` as indented JSON, atomically; NaN and infinities become ``null``.

    Example:
        >>> p = tempfile.mkdtemp() + "/r.json"
        >>> write_json(p, {"mse": float("nan")}); open(p).read()
        '{\\n  "mse": null\\n}\\n'
    """
    write_atomic(path, json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n")


def json_safe(value: Any) -> Any:
    """Make NaN/inf JSON-safe (``null``) recursively.

    Example:
        >>> json_safe({"a": [1.0, float("nan")]})
        {'a': [1.0, None]}
    """
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Validate an output file path before any work: its folder exists and it may be written.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        IsADirectoryError: ``path`` is a folder.
        FileNotFoundError: the parent directory does not exist.

    Example:
        >>> check_output_path("model.pkz", overwrite=True).name
        'model.pkz'
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise _exists_error(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; expected a file path.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Output directory {path.parent} does not exist.")
    return path


def check_folder_path(path: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse a folder path that cannot be created: it, or a folder above it, is a file.

    Args:
        path: The folder wanted (it need not exist).
        flag: The command-line flag that gave it, for the message.

    Raises:
        ValueError: Naming the file in the way.

    Example:
        >>> check_folder_path(tempfile.mkdtemp() + "/new/run")  # fine: nothing in the way
    """
    current = os.path.abspath(path)
    while True:
        if os.path.exists(current) and not os.path.isdir(current):
            raise ValueError(f"{flag} {path}: {current} is a file; expected a folder there "
                             f"(or a path to a new one). Received: {flag}={str(path)!r}")
        parent = os.path.dirname(current)
        if parent == current:
            return
        current = parent


def make_new_folder(path: str | os.PathLike | None = None, root: str = "runs") -> str:
    """Create a new, empty folder; never reuse an existing one.

    Args:
        path: The folder wanted; if it exists, ``-2``, ``-3``... is appended until a new name
            is found. ``None``: ``<root>/<YYYYmmdd-HHMMSS>``.
        root: Parent folder for the timestamped default.

    Returns:
        The path of the folder created.

    Example:
        >>> base = tempfile.mkdtemp()
        >>> first = make_new_folder(base + "/study")
        >>> make_new_folder(base + "/study").endswith("study-2")
        True
    """
    if path is None:
        path = os.path.join(root, datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    path = os.path.normpath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    candidate, suffix = path, 1
    while True:
        try:
            os.mkdir(candidate)  # atomic: fails if another process made it first
            return candidate
        except FileExistsError:
            suffix += 1
            candidate = f"{path}-{suffix}"
