"""Epoch checkpoints of a training run: write, find, verify they belong to the run, and restore.

A checkpoint is ``<output>/checkpoints/checkpoint-<step>``: a model folder plus ``trainer_state.pt``
(optimizer, schedule, random states, logs, the run's identity), written last, so a checkpoint
without it is incomplete and ignored.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from sgpt.model.biencoder import BiEncoder
from sgpt.train.config import TrainConfig
from sgpt.train.distributed import world_size
from sgpt.train.runlog import RunLog
from sgpt.utils.diff import differences

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
)


def check_output(out: Path, resume: bool) -> None:
    """Refuse an output folder a run would destroy or mix up with another run.

    Raises:
        ValueError: ``out`` is a file; a non-empty folder that no sgpt run wrote (saving the model
            would replace it); or a folder with an earlier run's checkpoints while ``resume`` is off.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder (choose another --output)")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not any((out / name).exists() for name in ("modules.json", *RUN_FILES)):
        raise ValueError(
            f"{out}: exists, is not empty and is not an sgpt model or training output; "
            "refusing to replace it (choose another --output)"
        )
    if not resume and latest_checkpoint(out) is not None:
        raise ValueError(
            f"{out}: holds the checkpoints of an earlier run; pass --resume to continue it, or choose another --output"
        )


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
    ``trainer_state.pt`` (atomically, last: it marks the checkpoint complete)."""
    folder = out / CHECKPOINTS / f"checkpoint-{step}"
    model.save(folder)
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
    tmp = folder / f".{TRAINER_STATE}.tmp"
    torch.save(state, tmp)
    tmp.replace(folder / TRAINER_STATE)
    return folder


def latest_checkpoint(out: Path) -> Path | None:
    """The complete checkpoint (one with ``trainer_state.pt``) of the highest step, or ``None``."""
    done = [
        p
        for p in (out / CHECKPOINTS).glob("checkpoint-*")
        if (p / TRAINER_STATE).exists() and p.name.split("-")[-1].isdigit()
    ]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def restore_checkpoint(folder: Path, model: BiEncoder, optimizer, scheduler, log: RunLog, best: dict, run: dict) -> int:
    """Load a checkpoint written by :func:`save_checkpoint` into the live objects; returns its step.

    Raises:
        ValueError: the checkpoint belongs to another run (settings, data size, model signature or
            process count differ: each difference named) or its model does not fit ``model``.
    """
    from sgpt.model.loader import load

    state = torch.load(folder / TRAINER_STATE, map_location=model.device, weights_only=False)
    differ = differences(state.get("run", {}), run)
    if differ:
        raise ValueError(
            f"{folder}: --resume needs the settings of the run that wrote this checkpoint; differs: {'; '.join(differ)}"
        )
    saved = load(folder, device=model.device)
    missing, unexpected = model.load_state_dict(saved.state_dict(), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{folder}: checkpoint does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
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
