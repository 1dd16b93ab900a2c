"""What every recipe does first: hold its output folder (:func:`claims_output`), then load and freeze the model."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sgpt.model.biencoder import BiEncoder
from sgpt.model.heads import HeadSpec, add_heads
from sgpt.model.loader import load
from sgpt.model.spec import ModelSpec
from sgpt.train.checkpoints import claimed_output
from sgpt.train.config import TrainConfig
from sgpt.train.params import apply_freezing


def model_to_train(
    model_name: str, spec: ModelSpec | None, cfg: TrainConfig, max_seq_length: int, heads: HeadSpec | None = None
) -> BiEncoder:
    """The model a run trains (its recipe holds ``cfg.output`` already: see :func:`claims_output`).

    Pooling defaults to the saved bi-encoder's, else weightedmean (SGPT's choice); the length to
    ``max_seq_length`` (the task's) unless ``spec`` sets one. Freezing (``cfg.freeze`` /
    ``cfg.freezenonbias`` / ``cfg.unfreezewte``) is applied here, so model errors come before any
    data is read; the ``heads`` (SPEC 1.7) are added after it and always train.

    Raises:
        ValueError: a model these settings cannot train.
    """
    spec = (spec or ModelSpec()).with_defaults(max_seq_length=max_seq_length)
    model = load(model_name, spec, default_pooling="weightedmean")
    apply_freezing(model, freeze=cfg.freeze, freezenonbias=cfg.freezenonbias, unfreeze_wte=cfg.unfreezewte)
    if heads is not None and heads.any:
        add_heads(model, heads, bias=not cfg.freezenonbias)
    return model


Recipe = TypeVar("Recipe", bound=Callable[..., dict])


def task_inputs(model_name: str, task: Any) -> list[tuple[str, Any]]:
    """``(flag, path)`` of every input of a run: ``--model`` and each ``*_data`` / ``data`` / ``negatives``
    field of the task (a run never writes into them)."""
    inputs: list[tuple[str, Any]] = [("--model", model_name)]
    for f in dataclasses.fields(task):
        if f.name.endswith("_data") or f.name in ("data", "negatives"):
            values = getattr(task, f.name)
            for value in values if isinstance(values, (tuple, list)) else [values]:
                inputs.append((f"--{f.name.replace('_', '-')}", value))
    return inputs


def claims_output(recipe: Recipe) -> Recipe:
    """Run ``recipe(model_name, task, cfg, spec)`` holding ``cfg.output``
    (:func:`sgpt.train.checkpoints.claimed_output`: checked against the run's inputs, locked, and
    with ``--overwrite`` the old contents set aside until the run succeeds)."""

    @functools.wraps(recipe)
    def run(model_name: str, task: Any, cfg: TrainConfig, *args: Any, **kwargs: Any) -> dict:
        with claimed_output(Path(cfg.output), cfg.resume, cfg.overwrite, task_inputs(model_name, task)):
            return recipe(model_name, task, cfg, *args, **kwargs)

    return run  # type: ignore[return-value]
