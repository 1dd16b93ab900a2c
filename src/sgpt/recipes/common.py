"""What every recipe does first: refuse an output folder the run would destroy, then load and freeze the model."""

from __future__ import annotations

from pathlib import Path

from sgpt.model.biencoder import BiEncoder
from sgpt.model.loader import load
from sgpt.model.spec import ModelSpec
from sgpt.train.checkpoints import check_output
from sgpt.train.config import TrainConfig
from sgpt.train.params import apply_freezing


def model_to_train(model_name: str, spec: ModelSpec | None, cfg: TrainConfig, max_seq_length: int) -> BiEncoder:
    """The model a run trains, after checking ``cfg.output`` (before any other work).

    Pooling defaults to the saved bi-encoder's, else weightedmean (SGPT's choice); the length to
    ``max_seq_length`` (the task's) unless ``spec`` sets one. Freezing (``cfg.freeze`` /
    ``cfg.freezenonbias``) is applied here, so model errors come before any data is read.

    Raises:
        ValueError: an output folder the run would destroy, or a model these settings cannot train.
    """
    check_output(Path(cfg.output), cfg.resume)
    spec = (spec or ModelSpec()).with_defaults(max_seq_length=max_seq_length)
    model = load(model_name, spec, default_pooling="weightedmean")
    apply_freezing(model, freeze=cfg.freeze, freezenonbias=cfg.freezenonbias)
    return model
