"""One frozen dataclass per training run; defaults live only here (SPEC 1.11, 2.1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal


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
        precision: ``fp32`` or ``bf16`` (autocast; the loss is computed in float32).
        scale: MNRL inverse temperature (20 = temperature 0.05).
        micro_batch_size: texts per forward pass inside a batch, grouped by length to cut padding
            (a speed knob: the gradient is that of the whole batch either way).
        eval_steps: evaluate on the dev set every this many steps (default: 10% of the steps).
        eval_batch_size: batch size for dev/test encoding.
        selection_metric: dev metric that picks the best checkpoint.
        log_every: print/log the running loss every this many steps.
        log_with: accelerate trackers (``wandb``, ``tensorboard``); empty = none.
        project: tracker project name.
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
    precision: Literal["fp32", "bf16"] = "fp32"
    scale: float = 20.0
    micro_batch_size: int | None = 32
    eval_steps: int | None = None
    eval_batch_size: int = 64
    selection_metric: str = "spearman_cosine"
    log_every: int = 1
    log_with: tuple[str, ...] = field(default_factory=tuple)
    project: str = "sgpt"

    def __post_init__(self) -> None:
        errors = []
        for name in ("batch_size", "epochs", "grad_accum", "eval_batch_size", "log_every"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "warmup_steps", "eval_steps", "micro_batch_size"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "warmup_steps" else 1):
                errors.append(f"{name} must be positive, got {value}")
        if not self.lr > 0:
            errors.append(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio <= 1:
            errors.append(f"warmup_ratio must be in [0, 1], got {self.warmup_ratio}")
        if self.precision not in ("fp32", "bf16"):
            errors.append(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if errors:
            raise ValueError("invalid training config: " + "; ".join(errors))

    def to_dict(self) -> dict:
        """Plain dict (for JSON logs and trackers)."""
        return asdict(self)
