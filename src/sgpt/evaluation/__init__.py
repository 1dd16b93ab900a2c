"""Evaluation: pure metric functions (:mod:`.metrics`) and thin evaluators (:mod:`.sts`, :mod:`.beir`)."""

from sgpt.evaluation.beir import average_over_datasets, evaluate_retrieval, retrieval_metrics
from sgpt.evaluation.metrics import paired_scores, pearson, spearman
from sgpt.evaluation.sts import evaluate_sts, evaluate_sts_subsets, sts_scores

__all__ = [
    "average_over_datasets",
    "evaluate_retrieval",
    "evaluate_sts",
    "evaluate_sts_subsets",
    "paired_scores",
    "pearson",
    "retrieval_metrics",
    "spearman",
    "sts_scores",
]
