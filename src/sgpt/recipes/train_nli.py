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
from sgpt.model.folder import load
from sgpt.train.checkpoints import check_output
from sgpt.train.config import TrainConfig
from sgpt.train.distributed import is_main_process
from sgpt.train.params import apply_freezing
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


def sts_evaluator(path: str | Path, split: str, batch_size: int):
    """``model -> scores`` on an STS set (Spearman/Pearson of cosine, dot, Euclidean, Manhattan)."""
    data = read_sts(path, split=split)

    def run(model: BiEncoder) -> dict:
        return evaluate_sts(model, data.sentences1, data.sentences2, data.scores, batch_size=batch_size)

    return run


def train_nli(
    model_name: str,
    train_data: Sequence[str],
    cfg: TrainConfig,
    *,
    pooling: str | None = None,
    max_seq_length: int = 75,
    dev_data: str | None = None,
    test_data: str | None = None,
    eval_before: bool = False,
    freeze: bool = False,
    freezenonbias: bool = False,
    skip_bad_rows: bool = False,
    dtype: str | None = None,
    chat_template: bool | None = None,
) -> dict:
    """Train a bi-encoder on NLI triplets with MNRL and score it on STS (SGPT's NLI script, SPEC 2.1).

    Args:
        model_name: hub id, folder or ``.gguf`` file of the backbone (or a saved bi-encoder).
        train_data: NLI files/folders (SNLI/MultiNLI jsonl, AllNLI.tsv.gz, SentEval, SICK) or
            generic triplet files, or hub dataset names.
        cfg: training settings.
        pooling: pooling mode; default: the saved bi-encoder's, else weightedmean (SGPT's choice).
        max_seq_length: truncation length in tokens (SGPT NLI: 75).
        dev_data: STS set whose ``dev`` split picks the best checkpoint.
        test_data: STS set whose ``test`` split scores the saved model (default: ``dev_data``).
        eval_before: also score the untrained model on the test split.
        freeze, freezenonbias: see ``sgpt.train.params.apply_freezing``.
        skip_bad_rows: skip (and count) malformed data rows instead of stopping.
        dtype: backbone weight dtype.
        chat_template: render texts with the tokenizer's chat template, as sentence-transformers 6
            does for chat models; default: see ``sgpt.load`` (on for a plain chat model's folder).

    Returns:
        ``{"train": fit summary, "test_before": scores | None, "test_after": scores | None}``,
        also written to ``<output>/eval/results.json``.
    """
    check_output(Path(cfg.output), cfg.resume)  # before any work: refuse a folder the run would destroy
    model = load(
        model_name,
        pooling=pooling,
        default_pooling="weightedmean",
        max_seq_length=max_seq_length,
        dtype=dtype,
        chat_template=chat_template,
    )
    apply_freezing(model, freeze=freeze, freezenonbias=freezenonbias)  # model errors before reading the data
    examples = load_examples(train_data, seed=cfg.seed, skip_bad_rows=skip_bad_rows)
    test_path = test_data or dev_data
    test_eval = sts_evaluator(test_path, "test", cfg.eval_batch_size) if test_path else None
    before = test_eval(model) if (test_eval and eval_before and is_main_process()) else None
    if before:
        logger.info("before training: test spearman_cosine = %.4f", before["spearman_cosine"])
    dev_eval = sts_evaluator(dev_data, "dev", cfg.eval_batch_size) if dev_data else None
    summary = fit(model, examples, cfg, evaluator=dev_eval)
    if not is_main_process():  # evaluation and files on the main process only
        return {"train": summary, "n_examples": len(examples), "test_before": before, "test_after": None}
    after = test_eval(load(cfg.output)) if test_eval else None
    results = {"train": summary, "n_examples": len(examples), "test_before": before, "test_after": after}
    write_json(Path(cfg.output) / "eval" / "results.json", results)
    return results
