"""The tasks the recipes train: what a run reads and how it is scored, with SGPT's per-task defaults.

Kept apart from the recipes (and free of torch) so that the CLI reads these defaults for its
help text without loading the library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_BATCH_SIZE", "MSMARCO_TRAINING", "MSMarcoTask", "NLITask", "RetrievalTask"]


@dataclass(frozen=True)
class NLITask:
    """What an NLI run (SGPT's NLI script, SPEC 2.1) trains on and is scored on.

    Attributes:
        train_data: NLI files/folders (SNLI/MultiNLI jsonl, AllNLI.tsv.gz, SentEval, SICK), generic
            triplet files, or hub dataset names.
        dev_data: STS set whose ``dev`` split picks the best checkpoint.
        test_data: STS set whose ``test`` split scores the saved model (default: ``dev_data``).
        eval_before: also score the untrained model on the test split.
        skip_bad_rows: skip (and count) malformed data rows instead of stopping.
        max_seq_length: truncation length in tokens unless the model spec sets one (SGPT NLI: 75).
    """

    train_data: tuple[str, ...]
    dev_data: str | None = None
    test_data: str | None = None
    eval_before: bool = False
    skip_bad_rows: bool = False
    max_seq_length: int = 75


@dataclass(frozen=True)
class RetrievalTask:
    """What a retrieval run (asymmetric search, SPEC 2.2) trains on and is scored on.

    Attributes:
        train_data: BEIR-layout folders or generic retrieval jsonl files (see :func:`load_retrieval_examples`).
        split: qrels split of BEIR-layout training folders.
        negatives: hard negatives of BEIR-layout folders: a ``sgpt mine-negatives`` file, or ``"bm25"``
            to mine the top 30 BM25 hits now (into ``<output>/negatives/``); ``None``: in-batch only.
        negatives_per_query: hard negatives per example; see :func:`with_negatives`.
        eval_data: BEIR-layout folders scored on ``eval_split`` after training (and before, with
            ``eval_before``); never used to pick a checkpoint.
        eval_split: qrels split of ``eval_data``.
        eval_before: also score the untrained model on ``eval_data``.
        dev_data: BEIR-layout folder whose ``dev_split`` picks the best checkpoint by nDCG@10
            (default: the last model is kept).
        dev_split: qrels split of ``dev_data``.
        eval_precision: ``"bf16"`` to encode evaluation sets under autocast (default fp32).
        skip_bad_rows: skip (and count) malformed data rows instead of stopping.
        max_seq_length: truncation length in tokens unless the model spec sets one (SGPT msmarco: 300).
    """

    train_data: tuple[str, ...]
    split: str = "train"
    negatives: str | None = None
    negatives_per_query: int = 1
    eval_data: tuple[str, ...] = ()
    eval_split: str = "test"
    eval_before: bool = False
    dev_data: str | None = None
    dev_split: str = "dev"
    eval_precision: str | None = None
    skip_bad_rows: bool = False
    max_seq_length: int = 300


DEFAULT_BATCH_SIZE = 32  # queries per step (the NLI recipe uses TrainConfig's 64)


@dataclass(frozen=True)
class MSMarcoTask:
    """What an MS MARCO run (SGPT's ``train_bi-encoder_mnrl.py``, SPEC 2.2) reads, and how it is scored.

    Attributes:
        data: folder with ``collection.tsv``, ``queries.train.tsv``, ``msmarco-hard-negatives.jsonl.gz``
            and ``cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz`` (plus ``queries.dev.small.tsv``
            and ``qrels.dev.tsv`` for ``eval_dev``), or the hub data set name
            ``sentence-transformers/msmarco-hard-negatives`` (downloaded into the Hugging Face cache).
        ce_score_margin: a negative is kept when its cross-encoder score is at most the lowest
            positive's minus this margin.
        num_negs_per_system: hard negatives taken from each retrieval system.
        negs_to_use: the systems, in order; ``None``: every system of the first line.
        use_all_queries: also train queries left without a hard negative (they get a random passage).
        train_dataset_max_size: read at most this many lines of the hard-negatives file.
        eval_dev: after training, score the saved model on the dev split (MRR@10, nDCG@10).
        dev_corpus_max_size: dev corpus = the judged passages + the first K; ``None``: all passages.
        skip_bad_rows: skip (and count) malformed data rows instead of stopping.
        max_seq_length: truncation length in tokens unless the model spec sets one (SGPT msmarco: 300).
    """

    data: str
    ce_score_margin: float = 3.0
    num_negs_per_system: int = 5
    negs_to_use: tuple[str, ...] | None = None
    use_all_queries: bool = False
    train_dataset_max_size: int | None = None
    eval_dev: bool = False
    dev_corpus_max_size: int | None = None
    skip_bad_rows: bool = False
    max_seq_length: int = 300

    def __post_init__(self) -> None:
        errors = []
        if not math.isfinite(self.ce_score_margin):
            errors.append(f"ce_score_margin must be a finite number, got {self.ce_score_margin}")
        for name in ("num_negs_per_system", "train_dataset_max_size", "dev_corpus_max_size", "max_seq_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                errors.append(f"{name} must be >= 1, got {value}")
        if self.negs_to_use is not None and (not self.negs_to_use or not all(s.strip() for s in self.negs_to_use)):
            errors.append(f"negs_to_use must name at least one system and no empty one, got {self.negs_to_use!r}")
        if errors:
            raise ValueError("invalid MS MARCO task: " + "; ".join(errors))


MSMARCO_TRAINING: dict[str, Any] = {"batch_size": 64, "epochs": 10, "warmup_steps": 1000}
"""SGPT's MS MARCO script's training defaults (SPEC 2.2), over ``TrainConfig``'s."""
