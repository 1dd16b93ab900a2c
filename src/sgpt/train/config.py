"""One frozen dataclass per training run; defaults live only here (SPEC 1.11, 2.1)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Literal

from sgpt.utils.precision import PRECISIONS as FLOAT_PRECISIONS

DATA_PARALLEL_MODES = ("shard", "replicate")
PRECISIONS = ("auto", *FLOAT_PRECISIONS)
WANDB_WATCH = (None, "gradients", "parameters", "all")
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_bytes(value: int | str) -> int:
    """``"16GiB"``, ``"500MB"``, ``"1.5gb"`` or a plain number of bytes -> bytes.

    Raises:
        ValueError: not a positive size with one of the units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        if m is None or m.group(2).lower() not in _UNITS:
            raise ValueError(f"max_memory: cannot read {value!r} as a size; use e.g. 16GiB, 500MB or a number of bytes")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise ValueError(f"max_memory must be positive, got {value!r}")
    return n


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one contrastive training run (MultipleNegativesRankingLoss).

    Attributes:
        output: folder that receives the trained model (best dev checkpoint, else the last) and logs.
        batch_size: examples per optimizer micro-step (per process).
        lr: peak learning rate of AdamW.
        epochs: passes over the data when ``max_steps`` is not set.
        max_steps: optimizer steps (overrides ``epochs``).
        warmup_ratio: linear warm-up over this fraction of the steps (SGPT: 0.1), unless ``warmup_steps``.
        warmup_steps: explicit warm-up length in optimizer steps.
        weight_decay: AdamW decay, not applied to biases and norm weights.
        grad_accum: micro-batches per optimizer step (gradients averaged).
        max_grad_norm: gradient clipping (once per optimizer step).
        seed: seeds Python, NumPy and torch, the sampler and the triplet construction.
        precision: ``auto`` (bf16 autocast on a GPU that supports it, else fp32), ``fp32`` or ``bf16``
            (autocast; the loss is computed in float32).
        scale: MNRL inverse temperature (20 = temperature 0.05).
        micro_batch_size: texts per forward pass inside a batch, grouped by length to cut padding
            (a speed knob: the gradient is that of the whole batch either way).
        eval_steps: evaluate on the dev set every this many steps (default: 10% of the steps).
        eval_batch_size: batch size for dev/test encoding.
        selection_metric: dev metric that picks the best checkpoint.
        log_every: print/log the running loss every this many steps.
        log_with: accelerate trackers (``wandb``, ``tensorboard``); empty = none.
        project: tracker project name.
        gradcache: GradCache (SPEC 1.10): embed the batch chunk by chunk without a graph, cache
            d(loss)/d(embedding), then re-embed each chunk with a graph under the same random
            state; memory of one chunk, gradient of the whole batch.
        chunk_size: texts per GradCache chunk, or ``"auto"``: the largest chunk that fits ``max_memory``.
        max_memory: memory the run may use on its device for ``chunk_size="auto"`` (bytes or a size
            such as ``"16GiB"``); default: what is in use when training starts plus what the device has free.
        data_parallel: with several processes, ``shard`` (each optimizer step takes one global batch
            of ``processes * batch_size`` examples, each process its own slice; an epoch has
            ``N / (processes * batch_size)`` steps) or ``replicate`` (each process walks the
            whole data set with its own shuffle, as SGPT's NLI script did; ``N / batch_size`` steps).
        checkpoint_every_epoch: at the end of every epoch, save ``<output>/checkpoints/checkpoint-<step>``:
            a model folder plus ``trainer_state.pt`` (optimizer, schedule, random states, logs),
            written last, so a checkpoint without it is incomplete and ignored.
        resume: continue from the newest complete checkpoint in ``<output>/checkpoints`` (the same
            result as a run that was never interrupted); start fresh when there is none.
        freeze: train only the added heads (the transformer is frozen).
        freezenonbias: BitFit: train only bias tensors (SPEC 1.6).
        unfreezewte: with ``freeze`` / ``freezenonbias``, also train the token embeddings (SPEC 1.6).
        checkpoint_steps: also save a checkpoint every this many optimizer steps (``None``: only
            at epoch ends with ``checkpoint_every_epoch``, and at each dev evaluation).
        wandb_watch: with the ``wandb`` tracker, ``wandb.watch`` the model: ``gradients``,
            ``parameters`` or ``all`` (SGPT's ``--wandbwatchlog``); ``None``: no watch.
        wandb_entity: W&B entity (team or user); ``None``: the logged-in default.
    """

    output: str
    batch_size: int = 64
    lr: float = 2e-5
    epochs: int = 1
    max_steps: int | None = None
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None
    weight_decay: float = 0.01
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    scale: float = 20.0
    micro_batch_size: int | None = 32
    eval_steps: int | None = None
    eval_batch_size: int = 64
    selection_metric: str = "spearman_cosine"
    log_every: int = 1
    log_with: tuple[str, ...] = field(default_factory=tuple)
    project: str = "sgpt"
    gradcache: bool = False
    chunk_size: int | Literal["auto"] = 32
    max_memory: int | str | None = None
    data_parallel: Literal["shard", "replicate"] = "shard"
    checkpoint_every_epoch: bool = False
    resume: bool = False
    overwrite: bool = False
    freeze: bool = False
    freezenonbias: bool = False
    unfreezewte: bool = False
    checkpoint_steps: int | None = None
    wandb_watch: Literal["gradients", "parameters", "all"] | None = None
    wandb_entity: str | None = None

    def __post_init__(self) -> None:
        errors = _errors(self)
        if errors:
            raise ValueError("invalid training config: " + "; ".join(errors))

    def to_dict(self) -> dict:
        """Plain dict (for JSON logs and trackers)."""
        return asdict(self)


def _errors(cfg: TrainConfig) -> list[str]:
    """Every invalid field of ``cfg``, each as ``name must be ..., got value``."""
    errors = []
    for name in ("batch_size", "epochs", "grad_accum", "eval_batch_size", "log_every"):
        if getattr(cfg, name) < 1:
            errors.append(f"{name} must be >= 1, got {getattr(cfg, name)}")
    for name in ("max_steps", "warmup_steps", "eval_steps", "micro_batch_size", "checkpoint_steps"):
        value = getattr(cfg, name)
        if value is not None and value < (0 if name == "warmup_steps" else 1):
            errors.append(f"{name} must be positive, got {value}")
    errors += _number_errors(cfg)
    if not 0 <= cfg.warmup_ratio <= 1:
        errors.append(f"warmup_ratio must be in [0, 1], got {cfg.warmup_ratio}")
    if cfg.precision not in PRECISIONS:
        errors.append(f"precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    if cfg.chunk_size != "auto" and (
        not isinstance(cfg.chunk_size, int) or isinstance(cfg.chunk_size, bool) or cfg.chunk_size < 1
    ):
        errors.append(f"chunk_size must be an integer >= 1 or 'auto', got {cfg.chunk_size!r}")
    if cfg.max_memory is not None:
        try:
            parse_bytes(cfg.max_memory)
        except ValueError as e:
            errors.append(str(e))
    if cfg.wandb_watch not in WANDB_WATCH:
        errors.append(f"wandb_watch must be one of {WANDB_WATCH[1:]} or None, got {cfg.wandb_watch!r}")
    if cfg.data_parallel not in DATA_PARALLEL_MODES:
        errors.append(f"data_parallel must be one of {DATA_PARALLEL_MODES}, got {cfg.data_parallel!r}")
    return errors


def _number_errors(cfg: TrainConfig) -> list[str]:
    """The float settings that are NaN, infinite or out of range (``--lr inf`` would train to NaN)."""
    errors = []
    for name in ("lr", "scale"):
        value = getattr(cfg, name)
        if not (math.isfinite(value) and value > 0):
            errors.append(f"{name} must be a finite number > 0, got {value}")
    for name in ("weight_decay", "max_grad_norm"):
        value = getattr(cfg, name)
        if not (math.isfinite(value) and value >= 0):
            errors.append(f"{name} must be a finite number >= 0, got {value}")
    return errors
