"""One training run's full configuration, however it was asked for: ``sgpt train <task>`` flags,
a recipe (``sgpt train --recipe``) or an original SGPT script's command line (``sgpt.legacy``).

All three end in a :class:`Resolved` and in :func:`run_resolved`, so the same settings train the
same way whichever door they came through.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sgpt.model.heads import HeadSpec
from sgpt.model.spec import ModelSpec
from sgpt.train.config import TrainConfig


@dataclass(frozen=True)
class Resolved:
    """Everything a training run is given.

    Attributes:
        task_name: ``nli``, ``retrieval`` or ``msmarco`` (the ``sgpt train`` sub-command).
        model: hub id, folder or ``.gguf`` file of the model to train.
        task: the task's data and scoring (``NLITask``, ``RetrievalTask``, ``MSMarcoTask``).
        train: the training settings.
        spec: the model loading choices (pooling, length, formatting, towers).
        heads: the layers added to the backbone.
        recipe: the recipe's name when it came from one.
        processes: the number of processes the recipe was trained with (``None``: not from a recipe).
    """

    task_name: str
    model: str
    task: Any
    train: TrainConfig
    spec: ModelSpec
    heads: HeadSpec
    recipe: str | None = None
    processes: int | None = None

    def as_dict(self) -> dict:
        """A plain, JSON-ready dict of the whole configuration (what ``--dry-run`` prints and tests compare)."""
        return {
            "task": self.task_name,
            "model": self.model,
            "recipe": self.recipe,
            "processes": self.processes,
            "data": _plain(dataclasses.asdict(self.task)),
            "model_spec": _plain(dataclasses.asdict(self.spec)),
            "heads": _plain(dataclasses.asdict(self.heads)),
            "train": _plain(self.train.to_dict()),
        }


def _plain(values: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def run_resolved(run: Resolved) -> int:
    """Train ``run`` with its task's recipe and print the scores; returns the exit status (0)."""
    if run.task_name == "nli":
        from sgpt.recipes.train_nli import train_nli

        results = train_nli(run.model, run.task, run.train, run.spec, run.heads)
        for key in ("test_before", "test_after"):
            if results[key]:
                print(f"{key}: spearman_cosine = {results[key]['spearman_cosine']:.4f}")
    elif run.task_name == "retrieval":
        from sgpt.recipes.train_retrieval import train_retrieval

        results = train_retrieval(run.model, run.task, run.train, run.spec, run.heads)
        for key in ("before", "after"):
            for name, scores in (results.get(key) or {}).items():
                print(f"{key}: {name} ndcg@10 = {scores['ndcg@10']:.4f}")
    elif run.task_name == "msmarco":
        from sgpt.recipes.train_msmarco import train_msmarco

        results = train_msmarco(run.model, run.task, run.train, run.spec, run.heads)
        for name, scores in (results.get("after") or {}).items():
            print(f"after: {name} mrr@10 = {scores['mrr@10']:.4f} ndcg@10 = {scores['ndcg@10']:.4f}")
    else:
        raise ValueError(f"unknown training task {run.task_name!r}")
    print(f"model saved to {run.train.output}")
    return 0
