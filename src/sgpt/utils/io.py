"""Atomic writes: a crash never leaves a half-written file or folder behind.

Files and folders written here get the permissions of an ordinary ``open``/``mkdir`` (``0o666`` /
``0o777`` less the process umask), not the ``0o600`` / ``0o700`` of the temporary files they start
as. :func:`check_output_file` and :func:`check_output_dir` refuse an unusable output path before
any long work starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any


def umask() -> int:
    """The process umask (read from ``/proc/self/status`` where possible, so it is never changed)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: read it by setting it, then put it back at once
    os.umask(mask)
    return mask


def check_output_file(path: str | Path, what: str = "output") -> Path:
    """Refuse an output file that could not be written, before any long work starts.

    Args:
        path: the file to be written later (it may exist: it will be replaced).
        what: how the message names it (e.g. ``"--output"``).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: ``path`` is a folder, or its folder is missing, not a folder or not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path}: is a folder; give the name of a file to write")
    _check_parent(path, what)
    return path


def check_output_dir(path: str | Path, what: str = "output") -> Path:
    """Refuse an output folder that could not be written, before any long work starts.

    Raises:
        ValueError: ``path`` exists and is not a folder, or its parent folder is missing, not a
            folder or not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path}: exists and is not a folder")
    _check_parent(path, what)
    return path


def _check_parent(path: Path, what: str) -> None:
    parent = path.absolute().parent
    if not parent.exists():
        raise ValueError(f"{what} {path}: no such folder {parent} (create it first)")
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: the folder {parent} is not writable")


@contextlib.contextmanager
def atomic_dir(path: str | Path, keep: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` by renames.

    The old folder (if any) is moved aside first and deleted only after the new one is in
    place, so at every instant either the old or the new complete folder exists under a
    known name. On an exception the temporary folder is removed and ``path`` is untouched.
    Entries of the old folder named in ``keep`` (e.g. training logs) that the new folder does
    not write are moved over into it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it 0o700
        yield tmp
        _open_up(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        for name in keep:  # carried over from the set-aside copy, so a failure below can restore it whole
            if (old / name).exists() and not (tmp / name).exists():
                os.replace(old / name, tmp / name)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            for name in keep:
                if (tmp / name).exists() and not (old / name).exists():
                    os.replace(tmp / name, old / name)
            os.replace(old, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _open_up(folder: Path) -> None:
    """Give private files under ``folder`` ordinary permissions (``0o666`` / ``0o777`` less the
    umask): writers that go through temporary files (safetensors in transformers' ``save_pretrained``)
    leave them ``0o600``."""
    mask = umask()
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(Path(root) / name, 0o777 & ~mask)
        for name in files:
            file = Path(root) / name
            if not file.is_symlink():
                os.chmod(file, (0o777 if os.access(file, os.X_OK) else 0o666) & ~mask)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Yield a file open on a temporary file next to ``path``; on success it replaces ``path``.

    The new file gets ordinary permissions (``0o666`` less the umask). On an exception the
    temporary file is removed and ``path`` is untouched.

    Args:
        path: the file to write (its folder is created if missing).
        mode: ``"w"`` (text, UTF-8) or ``"wb"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it 0o600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    with atomic_file(path) as f:
        f.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a parse error names the file.

    Raises:
        ValueError: the file is not valid JSON (message names file, line and column).
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON ({json_error_text(e)})") from e


def json_error_text(err: json.JSONDecodeError) -> str:
    """``err``'s message with its column: ``Expecting value at column 3``,
    ``Unterminated string starting at column 9`` (not ``... starting at at column 9``)."""
    return f"{err.msg} column {err.colno}" if err.msg.endswith(" at") else f"{err.msg} at column {err.colno}"
