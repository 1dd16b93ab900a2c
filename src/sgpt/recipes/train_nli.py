"""The NLI recipe (symmetric search, SPEC 2.1): NLI pairs -> AllNLI-style triplets -> MNRL -> STS-B.

Reads top to bottom: data, model, freezing, before-score, training, after-score.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sgpt.data import build_triplets, read_sts, read_training_data
from sgpt.evaluation.sts import evaluate_sts
from sgpt.model.biencoder import BiEncoder
from sgpt.model.heads import HeadSpec
from sgpt.model.loader import load
from sgpt.model.spec import ModelSpec
from sgpt.recipes.common import claims_output, model_to_train
from sgpt.recipes.model_card import write_model_card
from sgpt.recipes.tasks import NLITask
from sgpt.train.config import TrainConfig
from sgpt.train.distributed import is_main_process
from sgpt.train.trainer import fit
from sgpt.utils.io import write_json

logger = logging.getLogger("sgpt.train")


def load_examples(paths: Sequence[str], *, seed: int, skip_bad_rows: bool = False) -> list[tuple[str, ...]]:
    """Training examples from every path: labelled NLI pairs become triplets (SPEC 2.1, seeded);
    generic (anchor, positive[, negative]) files are used as they are.

    Raises:
        ValueError: no examples, or files mixing 2- and 3-text examples.
    """
    pairs, examples = [], []
    for path in paths:
        p, t = read_training_data(path, skip_bad_rows=skip_bad_rows)
        pairs.extend(p)
        examples.extend(t)
    if pairs:
        triplets = build_triplets(pairs, seed=seed)
        logger.info("%d NLI pairs -> %d triplets", len(pairs), len(triplets))
        examples.extend(triplets)
    if not examples:
        raise ValueError(f"no training examples in {', '.join(map(str, paths))}")
    arities = {len(e) for e in examples}
    if len(arities) > 1:
        raise ValueError(f"training files mix examples of {sorted(arities)} texts; use one layout")
    return examples


def sts_evaluator(path: str | Path, split: str, batch_size: int, *, show_progress: bool = False):
    """``model -> scores`` on an STS set (Spearman/Pearson of cosine, dot, Euclidean, Manhattan); data read once."""
    data = read_sts(path, split=split)

    def run(model: BiEncoder) -> dict:
        return evaluate_sts(
            model, data.sentences1, data.sentences2, data.scores, batch_size=batch_size, show_progress=show_progress
        )

    return run


@claims_output
def train_nli(
    model_name: str, task: NLITask, cfg: TrainConfig, spec: ModelSpec | None = None, heads: HeadSpec | None = None
) -> dict:
    """Train a bi-encoder on NLI triplets with MNRL and score it on STS (SGPT's NLI script, SPEC 2.1).

    Args:
        model_name: hub id, folder or ``.gguf`` file of the backbone (or a saved bi-encoder).
        task: the data and scoring of the run.
        cfg: training settings (``freeze`` / ``freezenonbias``: see ``sgpt.train.params.apply_freezing``).
        spec: loading choices; pooling defaults to the saved bi-encoder's, else weightedmean (SGPT's
            choice), and ``max_seq_length`` to ``task.max_seq_length``.
        heads: dense layers / learned pooling to add (SPEC 1.7); ``None``: none.

    Returns:
        ``{"train": fit summary, "n_examples", "test_before": scores | None, "test_after": scores | None}``,
        also written to ``<output>/eval/results.json``.

    Raises:
        ValueError: an output folder the run would destroy, bad data (file, line and field named), or
            a model that cannot train with these settings.
    """
    model = model_to_train(model_name, spec, cfg, task.max_seq_length, heads)
    examples = load_examples(task.train_data, seed=cfg.seed, skip_bad_rows=task.skip_bad_rows)
    main = is_main_process()
    test_path = task.test_data or task.dev_data
    test_eval = sts_evaluator(test_path, "test", cfg.eval_batch_size, show_progress=main) if test_path else None
    before = test_eval(model) if (test_eval and task.eval_before and main) else None
    if before:
        logger.info("before training: test spearman_cosine = %.4f", before["spearman_cosine"])
    dev_eval = sts_evaluator(task.dev_data, "dev", cfg.eval_batch_size, show_progress=main) if task.dev_data else None
    summary = fit(model, examples, cfg, evaluator=dev_eval)
    if not main:  # evaluation and files on the main process only
        return {"train": summary, "n_examples": len(examples), "test_before": before, "test_after": None}
    after = test_eval(load(cfg.output)) if test_eval else None
    results = {"train": summary, "n_examples": len(examples), "test_before": before, "test_after": after}
    write_json(Path(cfg.output) / "eval" / "results.json", results)
    write_model_card(
        cfg.output, model, base_model=model_name, keep_existing=cfg.resume,
        data={"train": task.train_data, "dev": task.dev_data, "test": test_path},
        counts={"training examples": len(examples)},
        scores={"dev, best step": summary["dev"], "test, before training": before, "test, after training": after},
    )  # fmt: skip
    return results
