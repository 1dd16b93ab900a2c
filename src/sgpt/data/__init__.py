"""Data layer: readers for NLI / STS / triplet / retrieval (BEIR, MS MARCO) files, NLI triplet building,
and batch samplers. One module per family of files:

* :mod:`~sgpt.data.rows`: lines, JSON rows, ids, the error type and the bad-row policy, for every reader;
* :mod:`~sgpt.data.nli_pairs`, :mod:`~sgpt.data.triplets`, :mod:`~sgpt.data.training_files`: NLI training data;
* :mod:`~sgpt.data.sts_sets`: STS benchmarks;
* :mod:`~sgpt.data.documents`: the text a document is embedded as;
* :mod:`~sgpt.data.beir`, :mod:`~sgpt.data.msmarco`, :mod:`~sgpt.data.retrieval_examples`: retrieval data;
* :mod:`~sgpt.data.sampling`, :mod:`~sgpt.data.round_robin`: batches and per-epoch examples.

Importing this package needs only the standard library; ``datasets`` is imported lazily by
:func:`load_hub_dataset`.
"""

from sgpt.data.beir import RetrievalData, load_beir, read_corpus, read_qrels, read_queries
from sgpt.data.documents import document_text
from sgpt.data.msmarco import HardNegatives, read_collection, read_hard_negatives, read_tsv_queries
from sgpt.data.nli_pairs import LABELS, NLIPair, detect_nli_layout, read_nli_pairs
from sgpt.data.retrieval_examples import RetrievalExample, beir_examples, read_mined_negatives, read_retrieval_examples
from sgpt.data.round_robin import RoundRobinExamples
from sgpt.data.rows import DataFormatError
from sgpt.data.sampling import NoDuplicatesBatchSampler, length_sorted_batches
from sgpt.data.sts_sets import STSData, read_sts, read_sts_subsets
from sgpt.data.training_files import load_hub_dataset, read_training_data, read_triplets
from sgpt.data.triplets import build_triplets, partner_sets

__all__ = [
    "LABELS",
    "DataFormatError",
    "HardNegatives",
    "NLIPair",
    "NoDuplicatesBatchSampler",
    "RetrievalData",
    "RetrievalExample",
    "RoundRobinExamples",
    "STSData",
    "beir_examples",
    "build_triplets",
    "detect_nli_layout",
    "document_text",
    "length_sorted_batches",
    "load_beir",
    "load_hub_dataset",
    "partner_sets",
    "read_collection",
    "read_corpus",
    "read_hard_negatives",
    "read_mined_negatives",
    "read_nli_pairs",
    "read_qrels",
    "read_queries",
    "read_retrieval_examples",
    "read_sts",
    "read_sts_subsets",
    "read_training_data",
    "read_triplets",
    "read_tsv_queries",
]
