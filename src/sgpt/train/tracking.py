"""Experiment trackers of a training run: W&B and TensorBoard through accelerate's trackers.

Off by default (SPEC 5, row 18). ``cfg.log_with`` names the trackers; only the main process
logs. Everything they write stays under ``<output>/runs``: TensorBoard's event files in
``runs/<project>/``, W&B's run folder in ``runs/wandb/`` (with ``WANDB_MODE=offline`` the whole
run, to upload later with ``wandb sync``). W&B gets the project and entity of the config
(``cfg.project``, ``cfg.wandb_entity``; SGPT hard-coded ``muennighoff``) and, with
``cfg.wandb_watch``, ``wandb.watch(model, log=..., log_freq=100)`` as SGPT's ``--wandbwatchlog``.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from torch import nn

from sgpt.train.config import TrainConfig
from sgpt.train.distributed import is_main_process

logger = logging.getLogger("sgpt.train")

# tracker -> (module it needs, the extra that installs it)
TRACKER_PACKAGES = {"wandb": ("wandb", "wandb"), "tensorboard": ("tensorboard", "tensorboard")}
WATCH_LOG_FREQ = 100  # SGPT's wandb.watch(..., log_freq=100)


def check_trackers(log_with: tuple[str, ...] | list[str]) -> None:
    """Refuse a tracker that is unknown or not installed, before any training starts.

    Raises:
        ValueError: one line per problem, naming the ``pip install`` that fixes it.
    """
    errors = []
    for name in log_with:
        if name not in TRACKER_PACKAGES:
            errors.append(f"unknown tracker {name!r}; choose from {sorted(TRACKER_PACKAGES)}")
            continue
        module, extra = TRACKER_PACKAGES[name]
        if importlib.util.find_spec(module) is None:
            errors.append(f"--log-with {name} needs the {module} package: pip install 'sgpt[{extra}]'")
    if errors:
        raise ValueError("; ".join(errors))


def tracker_config(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg`` as the flat ``{name: bool | int | float | str}`` that every tracker accepts
    (TensorBoard's hparams refuse ``None`` and tuples: they become strings)."""
    out: dict[str, Any] = {}
    for key, value in cfg.to_dict().items():
        out[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return out


class Tracking:
    """The live trackers of one run (main process), or nothing: every method is then a no-op.

    ``log`` takes ``{name: number}`` at an optimizer step; ``finish`` removes the ``wandb.watch``
    hooks from the model (the caller's model is left as it was) and closes the trackers.
    """

    def __init__(self, accelerator: Any | None = None, watched: nn.Module | None = None) -> None:
        self.accelerator = accelerator
        self.watched = watched

    @property
    def active(self) -> bool:
        return self.accelerator is not None

    def log(self, values: dict[str, float], step: int) -> None:
        if self.accelerator is not None:
            self.accelerator.log(values, step=step)

    def finish(self) -> None:
        if self.accelerator is None:
            return
        if self.watched is not None:
            _wandb().unwatch(self.watched)
            self.watched = None
        self.accelerator.end_training()
        self.accelerator = None


def _wandb() -> Any:
    """The ``wandb`` module (imported by name: it is an optional dependency, absent from type checks)."""
    return importlib.import_module("wandb")


def start_tracking(cfg: TrainConfig, model: nn.Module) -> Tracking:
    """Start the trackers of ``cfg.log_with`` on the main process (a no-op :class:`Tracking` on
    the others, or with none asked for).

    Raises:
        ValueError: a tracker that is not installed (see :func:`check_trackers`).
    """
    if not cfg.log_with or not is_main_process():
        return Tracking()
    check_trackers(cfg.log_with)
    from accelerate import Accelerator

    runs = Path(cfg.output) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(log_with=list(cfg.log_with), project_dir=str(runs))
    kwargs: dict[str, dict[str, Any]] = {}
    if "wandb" in cfg.log_with:
        kwargs["wandb"] = {"dir": str(runs), "entity": cfg.wandb_entity, "name": Path(cfg.output).name}
    accelerator.init_trackers(cfg.project, config=tracker_config(cfg), init_kwargs=kwargs)
    watched = None
    if "wandb" in cfg.log_with and cfg.wandb_watch is not None:
        _wandb().watch(model, log=cfg.wandb_watch, log_freq=WATCH_LOG_FREQ)
        watched = model
    logger.info("logging to %s (under %s)", ", ".join(cfg.log_with), runs)
    return Tracking(accelerator, watched)
