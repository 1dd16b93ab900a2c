"""What both original scripts share: warnings about their surprises, their data files, the run.

A script maps its command line onto ``(task, flags)`` in the dest vocabulary of ``sgpt train
<task>`` (the same one the released recipes' ``flags:`` use) and hands it to :func:`run`, which
resolves it with :func:`sgpt.cli.recipe.resolve` and trains it with ``run_resolved``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tarfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sgpt.cli import error_text

logger = logging.getLogger("sgpt.legacy")

OFFLINE_VARIABLES = ("SGPT_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
DOWNLOAD_TIMEOUT_S = 10.0
WAIT_FOR_MAIN_S = 6 * 3600.0  # other processes wait this long for the main process's downloads

_warned: set[str] = set()


class LegacyError(ValueError):
    """A command line the script cannot run; printed as one line (``<script>: error: ...``), exit 2."""


def is_main_process() -> bool:
    """Rank 0, or no launcher at all (``accelerate launch`` / ``torchrun`` set ``RANK``)."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) in ("0", "-1")


def warn(script: str, text: str) -> None:
    """Print ``<script>: warning: text`` once per process (on the main process only)."""
    if text in _warned:
        return
    _warned.add(text)
    if is_main_process():
        print(f"{script}: warning: {text}", file=sys.stderr)


def timestamp() -> str:
    """The originals' folder-name timestamp, ``%Y-%m-%d_%H-%M-%S``: now, or under a launcher
    (``WORLD_SIZE`` > 1) the launcher's start time, so that every process names the same folder
    (the originals' processes each took their own clock, and could disagree by a second)."""
    started = _launcher_start() if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    return (started or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")


def _launcher_start() -> datetime | None:
    """Start time of the parent process (the launcher of this node's processes), from ``/proc``."""
    try:
        stat = Path(f"/proc/{os.getppid()}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime (clock ticks after boot)
        boot = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
        return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


@dataclass(frozen=True)
class DataFile:
    """A file an original script reads from the working directory, and where it came from.

    Attributes:
        path: where the script reads it (relative to the working directory).
        url: where the original downloaded it from.
        archive: the ``.tar.gz`` that ``url`` points to (the file is extracted from it into
            ``path``'s folder); ``None`` when ``url`` is the file itself.
    """

    path: str
    url: str
    archive: str | None = None


def offline() -> bool:
    """Whether downloads are switched off (``SGPT_OFFLINE``, ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` = 1)."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in OFFLINE_VARIABLES)


def ensure_files(script: str, files: Sequence[DataFile]) -> None:
    """Make sure every file exists, downloading the missing ones where a network is there (as
    the originals did, on the main process; the others wait for it).

    Raises:
        LegacyError: a file is missing and cannot be downloaded (one line: which file, from where).
    """
    missing = [f for f in files if not Path(f.path).exists()]
    if not missing:
        return
    if not is_main_process():
        _wait_for(script, missing)
        return
    for f in missing:
        if Path(f.path).exists():  # extracted with an earlier file's archive
            continue
        if offline():
            raise LegacyError(
                f"{f.path} is missing (downloads are off: {'/'.join(OFFLINE_VARIABLES)}); get it from {f.url}"
            )
        try:
            _download(f)
        except OSError as e:
            raise LegacyError(f"{f.path} is missing and {f.url} cannot be downloaded ({_reason(e)})") from None
        if not Path(f.path).exists():
            raise LegacyError(f"{f.path} is missing and {f.archive or f.url} does not hold it")


def _reason(e: OSError) -> str:
    reason = getattr(e, "reason", None) or e.strerror or e
    return str(reason).splitlines()[0]


def _download(f: DataFile) -> None:
    """Download ``f`` (via a temporary file, renamed when complete); extract it from its archive."""
    target = Path(f.archive or f.path)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        logger.info("downloading %s -> %s", f.url, target)
        with urllib.request.urlopen(f.url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
        tmp.replace(target)
    if f.archive is not None:
        _extract(target, Path(f.path).parent)


def _extract(archive: Path, folder: Path) -> None:
    """Extract a ``.tar.gz`` into a temporary folder, then rename its entries into ``folder`` (a
    process waiting for a file never sees it half written)."""
    tmp = folder / f".{archive.name}.extract"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(archive, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: refuse links and paths out of the folder
            tar.extractall(path=tmp, filter="data")
        else:
            tar.extractall(path=tmp)
    for entry in tmp.iterdir():
        os.replace(entry, folder / entry.name)
    tmp.rmdir()


def _wait_for(script: str, missing: Sequence[DataFile]) -> None:
    deadline = time.monotonic() + WAIT_FOR_MAIN_S
    while not all(Path(f.path).exists() for f in missing):
        if time.monotonic() > deadline:
            raise LegacyError(f"{missing[0].path} is missing (the main process did not provide it)")
        time.sleep(5.0)


def run(script: str, task: str, flags: dict[str, Any], *, files: Sequence[DataFile], dry_run: bool = False) -> int:
    """Resolve ``(task, flags)`` with the shared resolver (every invalid setting is reported
    before any download or model load), make sure the data ``files`` are there, and train.
    ``dry_run``: print the resolved configuration instead. Returns the exit status.

    Raises:
        LegacyError: a data file is missing and cannot be downloaded.
        ValueError: an invalid configuration (from the resolver).
    """
    from sgpt.cli.recipe import resolve, run_resolved

    resolved = resolve(task, flags)
    if dry_run:
        print(json.dumps(resolved.as_dict(), indent=2, default=str))
        return 0
    ensure_files(script, files)
    Path(resolved.train.output).parent.mkdir(parents=True, exist_ok=True)  # as the originals' save did
    return int(run_resolved(resolved) or 0)


def main_guard(script: str, body: Any, argv: Sequence[str] | None) -> int:
    """Run ``body(argv)``; a user error (bad flags, missing file, invalid setting) prints one
    line ``<script>: error: ...`` and returns 2 (``SGPT_LEGACY_TRACEBACK=1`` shows the traceback)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    for noisy in ("transformers", "accelerate", "urllib3", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(body(argv) or 0)
    except KeyboardInterrupt:
        print(f"{script}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        if os.environ.get("SGPT_LEGACY_TRACEBACK"):
            raise
        print(f"{script}: error: {error_text(e)}", file=sys.stderr)
        return 2
