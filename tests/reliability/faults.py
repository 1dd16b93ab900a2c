"""Helpers for the reliability tests: what a command may change, and faults injected into writers.

* ``tree_digest(path)``: ``{relative path: sha256}`` of every file under ``path`` (a file gives
  ``{"": sha256}``; a missing path gives ``{}``), plus ``"<dir>/"`` entries for folders, so a test
  asserts that nothing outside a command's own new output changed:
  ``before = tree_digest(tmp_path); ...; assert tree_digest(tmp_path) == before``.
* ``fail_at(monkeypatch, n, name="os.replace")``: the ``n``-th call (1-based) of ``os.replace`` (or
  ``os.rename``, ``shutil.copyfile``...) made after it is installed raises ``OSError(ENOSPC)``; the
  other calls go through. It returns a counter whose ``.calls`` says how many calls were seen, so a
  test can first count the calls of a clean run and then fail each of them in turn.
* ``respecting_permissions(cmd)``: a command line that obeys read-only folders even as root.
* ``small_disk(folder, "2m")``: a size-limited tmpfs on ``folder`` (a real "No space left").
* ``sgpt_cmd(*args)``: the ``sgpt`` command line for a subprocess (a real second process, SIGKILL).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def tree_digest(path: str | Path) -> dict[str, str]:
    """``{relative path: sha256 hex}`` of the files under ``path`` (folders as ``"name/": "dir"``)."""
    path = Path(path)
    if not path.exists():
        return {}
    if path.is_file():
        return {"": hashlib.sha256(path.read_bytes()).hexdigest()}
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(path):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), path) + "/"] = "dir"
        for name in files:
            file = Path(root) / name
            out[os.path.relpath(file, path)] = (
                "link:" + os.readlink(file) if file.is_symlink() else hashlib.sha256(file.read_bytes()).hexdigest()
            )
    return out


class FailAt:
    """Counts calls of a patched function and makes the ``n``-th one raise ``OSError(ENOSPC)``."""

    def __init__(self, original, n: int | None) -> None:
        self.original, self.n, self.calls = original, n, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.n is not None and self.calls == self.n:
            raise OSError(errno.ENOSPC, "No space left on device (injected)", str(args[0]) if args else None)
        return self.original(*args, **kwargs)


def fail_at(monkeypatch: pytest.MonkeyPatch, n: int | None, name: str = "os.replace") -> FailAt:
    """Patch ``name`` (``module.function``) so that its ``n``-th call fails (``None``: only count)."""
    module_name, attr = name.rsplit(".", 1)
    module = importlib.import_module(module_name)
    counter = FailAt(getattr(module, attr), n)
    monkeypatch.setattr(module, attr, counter)
    return counter


def respecting_permissions(cmd: list[str]) -> list[str]:
    """``cmd`` made to run where permission bits apply: as is for a non-root user; for root,
    under ``capsh`` with ``CAP_DAC_OVERRIDE`` dropped (root then obeys a folder's ``0o555``).
    Skips the test when neither is possible."""
    if os.geteuid() != 0:
        return cmd
    capsh = shutil.which("capsh")
    if capsh is None or subprocess.run([capsh, "--drop=cap_dac_override", "--", "-c", "true"]).returncode:
        pytest.skip("runs as root without capsh: permission bits would not apply")
    return [capsh, "--drop=cap_dac_override", "--", "-c", shlex.join(cmd)]


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (a real full disk); skips where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a size-limited tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def sgpt_cmd(*args: str) -> list[str]:
    """``python -m sgpt.cli ARGS`` with this interpreter."""
    return [sys.executable, "-m", "sgpt.cli", *args]
