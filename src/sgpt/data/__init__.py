"""Data layer: readers for NLI / STS / triplet / retrieval (BEIR, MS MARCO) files, NLI triplet building,
and batch samplers.

Importing this package needs only the standard library; ``datasets`` is imported lazily by
:func:`load_hub_dataset`.
"""

from sgpt.data.nli import build_triplets, partner_sets
from sgpt.data.readers import (
    LABELS,
    DataFormatError,
    NLIPair,
    STSData,
    detect_nli_layout,
    load_hub_dataset,
    read_nli_pairs,
    read_sts,
    read_sts_subsets,
    read_training_data,
    read_triplets,
)
from sgpt.data.readers_retrieval import (
    HardNegatives,
    RetrievalData,
    RetrievalExample,
    beir_examples,
    document_text,
    load_beir,
    read_collection,
    read_corpus,
    read_hard_negatives,
    read_mined_negatives,
    read_qrels,
    read_queries,
    read_retrieval_examples,
    read_tsv_queries,
)
from sgpt.data.round_robin import RoundRobinExamples
from sgpt.data.sampling import NoDuplicatesBatchSampler, length_sorted_batches

__all__ = [
    "LABELS",
    "DataFormatError",
    "HardNegatives",
    "RetrievalData",
    "RetrievalExample",
    "beir_examples",
    "document_text",
    "load_beir",
    "read_collection",
    "read_corpus",
    "read_hard_negatives",
    "read_mined_negatives",
    "read_qrels",
    "read_queries",
    "read_retrieval_examples",
    "read_tsv_queries",
    "NLIPair",
    "NoDuplicatesBatchSampler",
    "RoundRobinExamples",
    "STSData",
    "build_triplets",
    "detect_nli_layout",
    "length_sorted_batches",
    "load_hub_dataset",
    "partner_sets",
    "read_nli_pairs",
    "read_sts",
    "read_sts_subsets",
    "read_training_data",
    "read_triplets",
]
