"""Evaluation: pure metric functions (:mod:`.metrics`) and thin evaluators (:mod:`.sts`)."""

from sgpt.evaluation.metrics import paired_scores, pearson, spearman
from sgpt.evaluation.sts import append_csv_row, evaluate_sts, sts_scores, write_sts_results

__all__ = [
    "pearson",
    "spearman",
    "paired_scores",
    "sts_scores",
    "evaluate_sts",
    "write_sts_results",
    "append_csv_row",
]
