"""Evaluation: pure metric functions (:mod:`.metrics`) and thin evaluators (:mod:`.sts`, :mod:`.retrieval`)."""

from sgpt.evaluation.metrics import paired_scores, pearson, spearman
from sgpt.evaluation.retrieval import (
    average_over_datasets,
    evaluate_retrieval,
    exact_search,
    remove_self_hits,
    retrieval_metrics,
)
from sgpt.evaluation.sts import append_csv_row, evaluate_sts, sts_scores, write_sts_results

__all__ = [
    "pearson",
    "spearman",
    "paired_scores",
    "sts_scores",
    "evaluate_sts",
    "write_sts_results",
    "append_csv_row",
    "exact_search",
    "retrieval_metrics",
    "evaluate_retrieval",
    "remove_self_hits",
    "average_over_datasets",
]
