"""Atomic writes: a crash never leaves a half-written file or folder behind.

Files and folders written here get the permissions of an ordinary ``open``/``mkdir`` (``0o666`` /
``0o777`` less the process umask), not the ``0o600`` / ``0o700`` of the temporary files they start
as. :func:`check_output_file` and :func:`check_output_dir` refuse an unusable output path before
any long work starts.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger("sgpt")


def umask() -> int:
    """The process umask (read from ``/proc/self/status`` where possible, so it is never changed)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: read it by setting it, then put it back at once
    os.umask(mask)
    return mask


# a command's inputs, by the flag that names them: {"--model": path, ...} or pairs
Inputs = Mapping[str, str | Path | None] | Iterable[tuple[str, str | Path | None]]


def check_output_file(
    path: str | Path, what: str = "--output", *, overwrite: bool = False, inputs: Inputs = ()
) -> Path:
    """Refuse an output file that could not be written or that the user did not ask to replace,
    before any long work starts.

    Args:
        path: the file to be written later.
        what: how the message names it (e.g. ``"--output"``).
        overwrite: an existing file may be replaced (``--overwrite``); without it, it is refused.
        inputs: ``{flag: path}`` (or pairs) of the command's inputs; writing one of them, or into
            a folder given as one, is refused even with ``overwrite``. Paths that do not exist
            (hub ids) are ignored.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: ``path`` is a folder, an existing file (without ``overwrite``), one of the
            inputs, or its folder is missing, not a folder or not writable.
    """
    path = Path(path)
    if str(path) in ("", "."):
        raise ValueError(f"{what}: empty path; give the name of a file to write")
    if path.is_dir():
        raise ValueError(f"{what} {path}: is a folder; give the name of a file to write")
    check_not_input(path, inputs, what)
    if path.exists() and not overwrite:
        raise ValueError(f"{what} {path}: exists; pass --overwrite to replace it, or choose another {what}")
    check_parent(path, what)
    return path


def check_output_dir(
    path: str | Path,
    what: str = "--output",
    *,
    overwrite: bool = False,
    inputs: Inputs = (),
    replaceable: Callable[[Path], bool] | None = None,
    kind: str = "sgpt output",
) -> Path:
    """Refuse an output folder that could not be written or that holds what the user did not ask
    to lose, before any long work starts.

    Args:
        path: the folder to be written later (created; its parent must exist).
        what: how the message names it.
        overwrite: an existing non-empty folder may be replaced (``--overwrite``) when
            ``replaceable(path)`` says it is one this kind of command writes (``kind``: what
            the message calls it, e.g. ``"sgpt index"``); other folders are never replaced.
        inputs: as in :func:`check_output_file`; the output may neither be an input, nor lie
            inside a folder given as one, nor contain one.
        replaceable: ``folder -> bool``; ``None``: any folder may be replaced with ``overwrite``.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: ``path`` is a file, a non-empty folder (without ``overwrite``, or not
            ``replaceable``), overlaps an input, or its parent folder is missing, not a folder or
            not writable.
    """
    path = Path(path)
    if str(path) in ("", "."):
        raise ValueError(f"{what}: empty path; give the name of a folder to write")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path}: exists and is not a folder (choose another {what})")
    check_not_input(path, inputs, what, folder=True)
    if path.is_dir() and any(path.iterdir()):
        if replaceable is not None and not replaceable(path):
            raise ValueError(
                f"{what} {path}: exists, is not empty and is not an {kind}; refusing to replace it "
                f"(choose another {what})"
            )
        if not overwrite:
            raise ValueError(
                f"{what} {path}: exists and is not empty; pass --overwrite to replace it, or choose another {what}"
            )
    check_parent(path, what)
    return path


def check_not_input(path: str | Path, inputs: Inputs, what: str = "--output", *, folder: bool = False) -> None:
    """Refuse an output that is one of the command's inputs or lies inside a folder given as one
    (and, for an output ``folder``, one that contains an input: replacing it would remove the input).

    Raises:
        ValueError: naming the output, the input flag and its path.
    """
    out = Path(path).absolute().resolve()
    pairs = inputs.items() if isinstance(inputs, Mapping) else inputs
    for flag, given in pairs:
        if given is None or not Path(given).exists():
            continue
        src = Path(given).absolute().resolve()
        if out == src:
            raise ValueError(f"{what} {path}: is the input {flag} {given}; write the output elsewhere")
        if src.is_dir() and out.is_relative_to(src):
            raise ValueError(f"{what} {path}: is inside the input {flag} {given}; write the output elsewhere")
        if folder and src.is_relative_to(out):
            raise ValueError(
                f"{what} {path}: holds the input {flag} {given}, which replacing it would remove; "
                "write the output elsewhere"
            )


def check_parent(path: str | Path, what: str = "--output") -> None:
    """Refuse an output whose parent folder is missing, not a folder, or not writable.

    Raises:
        ValueError: naming ``what``, the path and the parent.
    """
    path = Path(path)
    parent = path.absolute().parent
    if not parent.exists():
        raise ValueError(f"{what} {path}: no such folder {parent} (create it first)")
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or not _can_create_in(parent):
        raise ValueError(f"{what} {path}: the folder {parent} is not writable")


def _can_create_in(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (``os.access`` misses read-only mounts)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sgpt-write-check-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def check_free_space(folder: str | Path, needed_bytes: int, what: str) -> None:
    """Refuse to start work whose writes would not fit on the disk of ``folder``.

    Args:
        folder: where the work writes (it, or its nearest existing parent, is measured).
        needed_bytes: the expected size of the largest write (e.g. a checkpoint), in bytes.
        what: what the message calls that write.

    Raises:
        ValueError: fewer than ``needed_bytes`` bytes are free there (both sizes named, in MB).
    """
    place = Path(folder).absolute()
    while not place.exists():
        place = place.parent
    free = shutil.disk_usage(place).free
    if free < needed_bytes:
        raise ValueError(
            f"{folder}: {what} needs about {needed_bytes / 1e6:.0f} MB but only {free / 1e6:.0f} MB are free "
            f"on that disk; free some space or choose another --output"
        )


@contextlib.contextmanager
def atomic_dir(path: str | Path, keep: Sequence[str] = (), *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` by renames.

    The old folder (if any) is moved aside first and deleted only after the new one is in
    place, so at every instant either the old or the new complete folder exists under a
    known name. On an exception the temporary folder is removed and ``path`` is untouched.
    Entries of the old folder named in ``keep`` (e.g. training logs) that the new folder does
    not write are moved over into it. Any other entry of the old folder that the new one does
    not write would be lost: without ``overwrite`` that is refused (nothing is changed).

    Raises:
        ValueError: ``path`` is empty or ``"."``, an existing file, or (without ``overwrite``) a
            folder holding entries the new folder does not write (up to five named); raised
            before anything is replaced, with the temporary folder removed.
        OSError: a write failed; a full disk is ``ENOSPC`` also when the writer (safetensors,
            torch) reported it as its own exception type.
    """
    path = Path(path)
    if str(path) in ("", "."):
        raise ValueError("save: empty path; give the name of a folder to write")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a folder; refusing to replace it (choose another folder)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it 0o700
        yield tmp
        _open_up(tmp)
        if not overwrite:
            _refuse_losing(path, tmp, keep)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if disk_full(e):  # a library's own error for ENOSPC (safetensors, torch's zip writer)
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from e
        raise
    _swap_in(path, tmp, keep)


_DISK_FULL = ("no space left on device", "os error 28", "unexpected pos")


def disk_full(e: BaseException) -> bool:
    """Whether ``e`` is a full disk, also when a library reports it as its own error: safetensors'
    ``SafetensorError`` ("... os error 28") or torch.save's ``RuntimeError`` ("unexpected pos ...")."""
    if isinstance(e, OSError):
        return e.errno == errno.ENOSPC
    return isinstance(e, Exception) and any(m in str(e).lower() for m in _DISK_FULL)


def _swap_in(path: Path, tmp: Path, keep: Sequence[str]) -> None:
    """Replace folder ``path`` (if any) by ``tmp``, carrying ``keep`` over; on a failure the old
    folder is put back as it was and ``tmp`` removed."""
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    replacing = path.exists()
    try:
        if replacing:
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            for name in keep:  # carried over from the set-aside copy, so a failure below can restore it whole
                if (old / name).exists() and not (tmp / name).exists():
                    os.replace(old / name, tmp / name)
        os.replace(tmp, path)
    except BaseException:
        if replacing and old.exists():  # put the old folder back as it was
            for name in keep:
                if (tmp / name).exists() and not (old / name).exists():
                    os.replace(tmp / name, old / name)
            if not path.exists():
                os.replace(old, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if replacing:
        shutil.rmtree(old, ignore_errors=True)


def _refuse_losing(path: Path, new: Path, keep: Sequence[str]) -> None:
    """Raise when replacing folder ``path`` by ``new`` would delete entries (other than ``keep``)."""
    lost = sorted(set(os.listdir(path)) - set(os.listdir(new)) - set(keep)) if path.is_dir() else []
    if lost:
        more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
        raise ValueError(
            f"{path}: holds {', '.join(lost[:5])}{more}, which writing this folder would delete; "
            "refusing (choose an empty or new folder)"
        )


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
    """Atomically write ``obj`` as indented, strict JSON: a NaN or infinite number (an undefined
    correlation, a loss that never was) is written as ``null``, and each one is logged with its
    key, so strict parsers read every file sgpt writes."""
    undefined: list[str] = []
    clean = finite_json(obj, undefined)
    for key in undefined:
        logger.warning("%s: %s is undefined (NaN or infinite); written as null", path, key)
    atomic_write_text(path, json.dumps(clean, indent=2, allow_nan=False) + "\n")


def finite_json(obj: Any, undefined: list[str] | None = None, where: str = "") -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (tuples become lists); the key path
    of each replaced value (``a.b[2]``) is appended to ``undefined``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        if undefined is not None:
            undefined.append(where or "the value")
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v, undefined, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v, undefined, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a parse error names the file.

    Raises:
        ValueError: the file is not valid JSON (message names file, line and column).
    """
    try:
        with open(path, encoding="utf-8-sig") as f:  # a byte-order mark is not part of the JSON
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON ({json_error_text(e)})") from e


def json_error_text(err: json.JSONDecodeError) -> str:
    """``err``'s message with its column: ``Expecting value at column 3``,
    ``Unterminated string starting at column 9`` (not ``... starting at at column 9``)."""
    return f"{err.msg} column {err.colno}" if err.msg.endswith(" at") else f"{err.msg} at column {err.colno}"
