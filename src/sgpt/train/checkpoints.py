"""Checkpoints of a training run: write, find, verify they belong to the run, restore, prune.

The trainer saves one at the end of every epoch, at every dev evaluation, every
``checkpoint_steps`` steps and when a stop signal arrives; it keeps the newest
:data:`KEEP_CHECKPOINTS` intact ones and deletes the older ones it wrote (:func:`prune_checkpoints`).

A checkpoint is ``<output>/checkpoints/checkpoint-<step>``: a model folder plus ``trainer_state.pt``
(optimizer, schedule, random states, logs, the run's identity), then ``checksums.json`` (size and
sha256 of every file), written last: a checkpoint without ``trainer_state.pt`` is incomplete and
ignored, and one whose files no longer match their checksums (a truncated ``model.safetensors``)
is damaged: ``--resume`` names the file and falls back to the newest intact checkpoint.
Checkpoints written before checksums existed are used unverified.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import random
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from sgpt.model.biencoder import BiEncoder
from sgpt.train.config import TrainConfig
from sgpt.train.distributed import is_main_process, world_size
from sgpt.train.runlog import RunLog
from sgpt.utils.checksums import damaged_files, has_checksums, write_checksums
from sgpt.utils.diff import differences
from sgpt.utils.io import Inputs, check_not_input, check_parent, disk_full, read_json
from sgpt.utils.lock import output_lock

logger = logging.getLogger("sgpt.train")

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.pt"
# What a run writes into its output folder next to the saved model; saving a new best model keeps them.
RUN_FILES = (
    "train_log.csv",
    "eval_log.csv",
    "training_curve.png",
    "train_summary.json",
    "runs",
    "eval",
    CHECKPOINTS,
    "negatives",
)
MODEL_CARD = "README.md"  # written at the end of a recipe (sgpt.recipes.model_card)
# What saving the model into a run's output carries over (a user's README.md elsewhere is no run output)
KEPT_ON_SAVE = (*RUN_FILES, MODEL_CARD)
KEEP_CHECKPOINTS = 2  # intact checkpoints kept on disk; older ones of the run are deleted

# Settings that shape the training trajectory: a resumed run must have the same.
RESUME_KEYS = (
    "batch_size",
    "lr",
    "epochs",
    "max_steps",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "grad_accum",
    "max_grad_norm",
    "seed",
    "precision",
    "scale",
    "gradcache",
    "data_parallel",
    "selection_metric",
    "freeze",
    "freezenonbias",
    "unfreezewte",
)


def is_run_output(out: Path) -> bool:
    """Whether ``out`` holds what a training run writes (a log, a summary or checkpoints)."""
    return any((out / name).exists() for name in RUN_FILES)


def check_output(out: Path, resume: bool, overwrite: bool = False) -> None:
    """Refuse an output folder a run would destroy or mix up with another run.

    An empty or new folder is always fine. ``resume`` continues the run whose output it is.
    ``overwrite`` replaces a saved model or an earlier run's output (the old contents are set
    aside when training starts and deleted once the new model is saved); anything else is never
    replaced.

    Raises:
        ValueError: ``out`` is a file; a non-empty folder that is neither an sgpt model nor a
            training output; a model or run output without ``overwrite`` (or ``resume`` for a
            run); ``resume`` on a folder that no run wrote.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder (choose another --output)")
    if not out.is_dir() or not any(out.iterdir()):
        return
    run = is_run_output(out)
    if not run and not (out / "modules.json").exists():
        raise ValueError(
            f"{out}: exists, is not empty and is not an sgpt model or training output; "
            "refusing to replace it (choose another --output)"
        )
    if resume and run:
        return
    if resume:
        raise ValueError(f"{out}: --resume: holds a model but no training run to continue; choose another --output")
    if overwrite:
        return
    if latest_checkpoint(out) is not None:
        raise ValueError(
            f"{out}: holds the checkpoints of an earlier run; pass --resume to continue it, --overwrite to "
            "replace it, or choose another --output"
        )
    what = "the output of an earlier run" if run else "a saved model"
    raise ValueError(f"{out}: holds {what}; pass --overwrite to replace it, or choose another --output")


_CLAIMED: set[Path] = set()


@contextlib.contextmanager
def claimed_output(out: Path, resume: bool, overwrite: bool, inputs: Inputs = ()) -> Iterator[None]:
    """Hold a run's output folder for the ``with`` block (main process; a no-op inside a block
    that already holds it, e.g. :func:`~sgpt.train.trainer.fit` inside a recipe).

    Checks it (:func:`check_output`, not one of ``inputs``, parent writable), takes its lock
    (:func:`sgpt.utils.lock.output_lock`: a second writer stops at once) and, with ``overwrite``,
    sets its old contents aside as ``.<name>.replaced-<pid>``, deleted when the block ends well
    and kept (the message says where) when it fails.

    Raises:
        ValueError: as :func:`check_output` and :func:`sgpt.utils.io.check_output_dir`; the lock is held.
    """
    key = out.absolute()
    if key in _CLAIMED or not is_main_process():
        yield
        return
    check_not_input(out, inputs, folder=True)  # first: --overwrite would not help
    check_output(out, resume, overwrite)
    check_parent(out)
    with output_lock(out):
        aside = None
        if overwrite and not resume and out.is_dir() and any(out.iterdir()):
            aside = out.parent / f".{out.name}.replaced-{os.getpid()}"
            os.replace(out, aside)
            logger.info(
                "--overwrite: the old contents of %s are set aside in %s until the new model is saved", out, aside
            )
        _CLAIMED.add(key)
        try:
            yield
        except BaseException:
            if aside is not None and latest_checkpoint(out) is None:  # nothing new worth keeping: put it back
                shutil.rmtree(out, ignore_errors=True)
                os.replace(aside, out)
                logger.error("the run failed; %s is back as it was", out)
            elif aside is not None:
                logger.error("the run failed; the previous contents of %s are kept in %s", out, aside)
            raise
        finally:
            _CLAIMED.discard(key)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def finished_summary(out: Path, identity: dict) -> dict | None:
    """The ``train_summary.json`` of a finished run in ``out`` with the same settings, or ``None``.

    Raises:
        ValueError: the finished run had other settings (each difference named).
    """
    file = out / "train_summary.json"
    if not file.is_file():
        return None
    summary = read_json(file)
    summary = summary if isinstance(summary, dict) else {}
    if isinstance(summary.get("run"), dict):  # the identity of the run, written since checksums exist
        differ = differences(_with_defaults(summary["run"]), identity)
    else:
        config = summary.get("config", {})
        differ = differences({"config": {k: config.get(k) for k in RESUME_KEYS}}, {"config": identity["config"]})
    if differ:
        raise ValueError(f"{out}: --resume: the run there finished with other settings; differs: {'; '.join(differ)}")
    return summary


def checkpoint_size(model: BiEncoder, moments: bool = True) -> int:
    """Expected bytes of one checkpoint of ``model``: its weights (as stored) plus, with
    ``moments``, AdamW's two fp32 moments per trainable parameter."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return weights + (sum(8 * p.numel() for p in model.parameters() if p.requires_grad) if moments else 0)


class CheckpointWriteError(OSError):
    """A checkpoint or the model could not be written (full disk, lost permissions); the message
    says what was kept."""


def _with_defaults(identity: dict) -> dict:
    """A saved run identity with every setting of :data:`RESUME_KEYS` it lacks (a checkpoint
    written before the setting existed) filled in with that setting's default."""
    config = identity.get("config")
    if not isinstance(config, dict):
        return identity
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    missing = {k: defaults[k] for k in RESUME_KEYS if k not in config and k in defaults}
    return {**identity, "config": {**missing, **config}} if missing else identity


def run_identity(cfg: TrainConfig, model: BiEncoder, n_examples: int) -> dict:
    """What a checkpoint must share with the run that resumes from it."""
    settings = cfg.to_dict()
    return {
        "config": {k: settings[k] for k in RESUME_KEYS},
        "n_examples": n_examples,
        "processes": world_size(),
        "model": model.signature(),
    }


def save_checkpoint(
    out: Path, step: int, model: BiEncoder, optimizer, scheduler, log: RunLog, best: dict, run: dict
) -> Path:
    """Write ``out/checkpoints/checkpoint-<step>``: the model folder (atomically), then
    ``trainer_state.pt`` (atomically), then ``checksums.json`` (last: it marks the checkpoint
    complete and verifiable).

    Raises:
        CheckpointWriteError: a write failed; the partial checkpoint is removed and the message
            names the newest intact one (or says there is none).
    """
    folder = out / CHECKPOINTS / f"checkpoint-{step}"
    state = {
        "step": step,
        "run": run,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "train_log": log.train,
        "eval_log": log.eval,
        "best": {k: v for k, v in best.items()},
    }
    existed = folder.exists()
    try:
        model.save(folder, overwrite=True)
        tmp = folder / f".{TRAINER_STATE}.tmp"
        try:
            _torch_save(state, tmp)
            os.replace(tmp, folder / TRAINER_STATE)
        finally:
            tmp.unlink(missing_ok=True)
        write_checksums(folder, _files_under(folder))
    except BaseException as e:  # also a second Ctrl-C: no half checkpoint is left behind
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        if not isinstance(e, OSError):
            raise
        kept = latest_checkpoint(out)
        raise CheckpointWriteError(
            f"could not write the checkpoint of step {step} to {folder} ({_reason(e)}); "
            + (f"the newest intact checkpoint is {kept} (continue with --resume)" if kept else "no checkpoint was kept")
        ) from e
    return folder


def _torch_save(obj: object, path: Path) -> None:
    """``torch.save``, with a failed write (full disk: torch's zip writer raises ``RuntimeError``
    "unexpected pos ...") turned into the ``OSError`` it is.

    Raises:
        OSError: the file could not be written completely (``ENOSPC`` when the disk is full).
    """
    try:
        torch.save(obj, path)
    except RuntimeError as e:
        if disk_full(e):
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from e
        raise


def prune_checkpoints(out: Path, intact: Sequence[Path], keep: int = KEEP_CHECKPOINTS) -> list[Path]:
    """Delete the complete checkpoints of ``out`` older than the newest ``keep`` of ``intact``
    (checkpoints known to be whole: written by this run, or verified when it resumed); returns
    what was deleted.

    Only folders of the checkpoint layout (``checkpoint-<step>`` holding ``trainer_state.pt``)
    are touched, never another file in ``checkpoints/``; newer ones (a damaged one the run fell
    back from) are left for the run to rewrite when it gets there.
    """
    kept = sorted({int(p.name.split("-")[-1]) for p in intact}, reverse=True)[:keep]
    if len(kept) < keep:
        return []
    oldest_kept = kept[-1]
    deleted = []
    for folder in complete_checkpoints(out):
        if int(folder.name.split("-")[-1]) < oldest_kept:
            shutil.rmtree(folder, ignore_errors=True)
            deleted.append(folder)
    if deleted:
        logger.info("deleted %d older checkpoint(s) (the newest %d are kept)", len(deleted), keep)
    return deleted


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _files_under(folder: Path) -> list[str]:
    """Paths of every file under ``folder``, relative to it (``/``-separated)."""
    return [
        os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
        for root, _, files in os.walk(folder)
        for name in files
    ]


def complete_checkpoints(out: Path) -> list[Path]:
    """The complete checkpoints (those with ``trainer_state.pt``) in ``out``, newest step first."""
    done = [
        p
        for p in (out / CHECKPOINTS).glob("checkpoint-*")
        if (p / TRAINER_STATE).exists() and p.name.split("-")[-1].isdigit()
    ]
    return sorted(done, key=lambda p: int(p.name.split("-")[-1]), reverse=True)


def latest_checkpoint(out: Path) -> Path | None:
    """The complete checkpoint of the highest step, or ``None``."""
    return next(iter(complete_checkpoints(out)), None)


class DamagedCheckpoint(ValueError):
    """A checkpoint's files do not match its checksums, or cannot be read."""


def check_intact(folder: Path) -> None:
    """Verify a checkpoint against its ``checksums.json`` (a checkpoint written before checksums
    existed passes unverified).

    Raises:
        DamagedCheckpoint: naming each missing or changed file and how it differs.
    """
    if not has_checksums(folder):
        logger.info("%s has no checksums (written by an older sgpt); using it unverified", folder)
        return
    try:
        damaged = damaged_files(folder)
    except ValueError as e:
        raise DamagedCheckpoint(str(e)) from e
    if damaged:
        raise DamagedCheckpoint("; ".join(f"{folder / name}: {why}" for name, why in sorted(damaged.items())))


def restore_checkpoint(folder: Path, model: BiEncoder, optimizer, scheduler, log: RunLog, best: dict, run: dict) -> int:
    """Load a checkpoint written by :func:`save_checkpoint` into the live objects; returns its step.

    Nothing live is changed until the whole checkpoint has been read and checked.

    Raises:
        DamagedCheckpoint: a file fails its checksum or cannot be read (the file named).
        ValueError: the checkpoint belongs to another run (settings, data size, model signature or
            process count differ: each difference named) or its model does not fit ``model``.
    """
    from sgpt.model.loader import load

    check_intact(folder)
    try:
        state = torch.load(folder / TRAINER_STATE, map_location=model.device, weights_only=False)
    except Exception as e:  # a truncated pickle raises anything from EOFError to RuntimeError
        raise DamagedCheckpoint(f"{folder / TRAINER_STATE}: cannot be read ({type(e).__name__}: {e})") from e
    differ = differences(_with_defaults(state.get("run", {})), run)
    if differ:
        raise ValueError(
            f"{folder}: --resume needs the settings of the run that wrote this checkpoint; differs: {'; '.join(differ)}"
        )
    try:
        saved = load(folder, device=model.device)
    except Exception as e:
        raise DamagedCheckpoint(f"{folder}: the model cannot be read ({type(e).__name__}: {e})") from e
    mine, theirs = set(model.state_dict()), set(saved.state_dict())
    if mine != theirs:
        missing, unexpected = sorted(mine - theirs), sorted(theirs - mine)
        raise ValueError(
            f"{folder}: checkpoint does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.load_state_dict(saved.state_dict())
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    log.train[:], log.eval[:] = state["train_log"], state["eval_log"]
    best.update(state["best"])
    return int(state["step"])


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) random states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
