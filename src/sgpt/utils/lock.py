"""An exclusive lock on an output path, so two commands never write one folder or file at once.

The lock is ``<parent>/.<name>.lock`` beside the output (not inside it: the output folder may not
exist yet, and is replaced by renames). It holds the pid, host and command line of the writer, and
is an ``fcntl.flock`` on that file: the kernel drops it when the holder dies, so a lock file left
by a killed process is stale and is taken over (with a note naming the dead holder). The second
writer stops at once with one line naming the holder. The file is removed when the holder is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger("sgpt")


class OutputLocked(ValueError):
    """Another live process holds the lock on the output."""


def lock_path(output: str | Path) -> Path:
    """The lock file of ``output``: ``<parent>/.<name>.lock``."""
    output = Path(output).absolute()
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def output_lock(output: str | Path, what: str = "--output", command: str | None = None) -> Iterator[Path]:
    """Hold the exclusive lock on ``output`` for the ``with`` block.

    Args:
        output: the folder or file the command writes (its parent folder must exist).
        what: how the message names it (the flag).
        command: recorded in the lock for the message a second writer gets (default: this
            process's command line).

    Yields:
        The lock file's path.

    Raises:
        OutputLocked (a ValueError): a live process holds the lock (its pid and command named).
    """
    file = lock_path(output)
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command or " ".join(["sgpt", *sys.argv[1:]]),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    while True:
        fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise OutputLocked(
                f"{what} {output}: is being written by another sgpt process (pid {holder.get('pid', '?')}, "
                f"since {holder.get('since', '?')}: {holder.get('command', '?')}); wait for it to finish "
                f"or choose another {what} (lock: {file})"
            ) from None
        # the file may have been removed (and replaced) by a holder finishing while we waited for it
        try:
            same = os.fstat(fd).st_ino == os.stat(file).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = _read(fd)
    if stale.get("pid"):
        logger.info("%s: taking over the stale lock of pid %s (%s), which is no longer running", file,
                    stale["pid"], stale.get("command", "?"))  # fmt: skip
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    try:
        yield file
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(file)
        os.close(fd)


def _read(fd: int) -> dict:
    """The holder record in the lock file (``{}`` when empty or unreadable)."""
    try:
        data = os.pread(fd, 4096, 0)
        record = json.loads(data.decode() or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
