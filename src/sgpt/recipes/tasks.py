"""The tasks the recipes train: what a run reads and how it is scored, with SGPT's per-task defaults.

Kept apart from the recipes (and free of torch) so that the CLI reads these defaults for its
help text without loading the library.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_BATCH_SIZE", "NLITask", "RetrievalTask"]


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
