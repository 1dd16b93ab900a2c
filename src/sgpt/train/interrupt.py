"""Stopping a run cleanly on SIGTERM / SIGINT: finish the step, save a checkpoint, say how to resume.

While :func:`~sgpt.train.trainer.fit` runs, :func:`stop_signals` replaces the SIGTERM and SIGINT
handlers by one that only records the signal (a cluster's pre-emption sends SIGTERM, Ctrl-C sends
SIGINT); the previous handlers are back when the block ends. The trainer asks
:meth:`StopRequest.agreed` after every optimizer step: under several processes the flag is summed
over all of them, so when any process got the signal every process stops after the same step.
The main process then saves a checkpoint and the run raises :class:`TrainingTerminated`
(SIGTERM; a ``SystemExit`` with status 143) or :class:`TrainingInterrupted` (SIGINT; a
``KeyboardInterrupt``, status 130 from the ``sgpt`` command). A second signal while stopping
abandons the run at once (``KeyboardInterrupt``): what is on disk stays intact, since every
checkpoint file is written to a temporary name first.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

import torch

from sgpt.train.distributed import sum_over_processes

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """The first stop signal received during the block of :func:`stop_signals` (``None``: none)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # asked twice: stop now, without the checkpoint
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: abandoning the run")
        self.signum = signum

    def agreed(self, device: torch.device) -> int | None:
        """The signal to stop on if any process received one, else ``None``: the same answer on
        every process (SIGTERM when some process got SIGTERM). Under several processes this is
        one all-reduce of two numbers per call, and every process must call it."""
        term = sum_over_processes(float(self.signum == signal.SIGTERM), device)
        interrupt = sum_over_processes(float(self.signum == signal.SIGINT), device)
        if term > 0:
            return int(signal.SIGTERM)
        return int(signal.SIGINT) if interrupt > 0 else None


@contextlib.contextmanager
def stop_signals(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[StopRequest]:
    """Record SIGTERM / SIGINT instead of dying for the block, then restore the previous handlers.

    Outside the main thread (where Python cannot set handlers) nothing is installed and the
    request never fires.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.getsignal(s) for s in signals}
    for s in signals:
        signal.signal(s, request.handle)
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def command_line(argv: Sequence[str] | None = None) -> list[str] | None:
    """The command that started this process, as a user would type it again; ``None`` when it
    was not the ``sgpt`` command (``fit`` called from a script or a notebook)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return None
    prog = Path(argv[0])
    if prog.name == "sgpt":
        return ["sgpt", *argv[1:]]
    package = Path(__file__).resolve().parents[1]  # .../sgpt
    if prog.name == "__main__.py" and prog.resolve().parent in (package, package / "cli"):
        module = "sgpt" if prog.resolve().parent == package else "sgpt.cli"
        return [sys.executable, "-m", module, *argv[1:]]
    return None


def resume_command(argv: Sequence[str] | None = None) -> str | None:
    """The command line that continues this run: the same one with ``--resume`` (and without
    ``--overwrite``, which a resumed run must not do), shell-quoted; ``None`` outside the CLI."""
    cmd = command_line(argv)
    if cmd is None:
        return None
    cmd = [a for a in cmd if a != "--overwrite"]
    if "--resume" not in cmd:
        cmd.append("--resume")
    return shlex.join(cmd)


class _Stopped:
    """What both stop exceptions carry: the signal, the checkpoint saved and how to resume."""

    signum: int
    checkpoint: Path
    resume: str | None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class TrainingTerminated(_Stopped, SystemExit):
    """SIGTERM stopped the run after a step; a checkpoint was saved. Exit status 143."""

    def __init__(self, message: str, checkpoint: Path, resume: str | None) -> None:
        SystemExit.__init__(self, 128 + signal.SIGTERM)
        self.message, self.signum, self.checkpoint, self.resume = message, int(signal.SIGTERM), checkpoint, resume

    def __str__(self) -> str:
        return self.message


class TrainingInterrupted(_Stopped, KeyboardInterrupt):
    """SIGINT (Ctrl-C) stopped the run after a step; a checkpoint was saved. Exit status 130."""

    def __init__(self, message: str, checkpoint: Path, resume: str | None) -> None:
        KeyboardInterrupt.__init__(self, message)
        self.message, self.signum, self.checkpoint, self.resume = message, int(signal.SIGINT), checkpoint, resume

    def __str__(self) -> str:
        return self.message


def stopped(signum: int, step: int, checkpoint: Path, resume: str | None) -> TrainingTerminated | TrainingInterrupted:
    """The exception that ends a run stopped by ``signum`` after ``step``, with its one-line message."""
    how = f"resume with: {resume}" if resume else "continue it with fit(..., resume=True) on the same output"
    message = f"{signal.Signals(signum).name}: training stopped after step {step}; saved {checkpoint}; {how}"
    cls = TrainingTerminated if signum == signal.SIGTERM else TrainingInterrupted
    return cls(message, checkpoint, resume)
