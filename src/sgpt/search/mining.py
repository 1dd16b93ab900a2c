"""Hard-negative mining for asymmetric training: retrieve for each training query, skip its positives.

The output file (one JSON object a line: ``{"query_id", "pos": [doc ids], "neg": [doc ids in rank
order]}``) is read back by :func:`sgpt.data.beir_examples`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sgpt.data.beir import RetrievalData
from sgpt.search.exact import DocumentEncoder, Retriever, retrieve
from sgpt.utils.io import atomic_write_text

__all__ = ["mine_negatives", "write_negatives"]


def mine_negatives(
    data: RetrievalData,
    model: DocumentEncoder | Retriever,
    *,
    k: int = 30,
    num_negatives: int | None = None,
    batch_size: int = 32,
    score: str = "cos",
    show_progress: bool = False,
    precision: str | None = None,
) -> list[dict[str, Any]]:
    """Mine hard negatives: the top-``k`` hits of every query that are not judged relevant.

    Known positives are all documents judged > 0 for the query; documents judged 0 may become
    negatives. The document whose id equals the query id is never a negative (see
    :func:`sgpt.search.exact.retrieve`). A query with fewer than ``k`` non-positive hits gets
    what there is, possibly none.

    Args:
        data: The training split (e.g. ``load_beir(folder, "train")``): its queries, qrels, corpus.
        model: A bi-encoder (exact dense search) or a retriever such as
            :class:`~sgpt.search.bm25.BM25Retriever` built over ``data.corpus``.
        k: Hits retrieved per query (positives among them are skipped, so fewer negatives remain).
        num_negatives: Keep at most this many negatives per query (None: all of them).
        batch_size: Encoding batch size (bi-encoder only).
        score: ``"cos"`` or ``"dot"`` (bi-encoder only).
        show_progress: Progress bars while encoding.
        precision: Passed to the encoder (bi-encoder only).

    Returns:
        One ``{"query_id": str, "pos": [ids], "neg": [ids best first]}`` per query, in ``data.queries`` order.

    Raises:
        ValueError: ``k < 1``, ``num_negatives < 0``, or as for ``retrieve``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if num_negatives is not None and num_negatives < 0:
        raise ValueError(f"num_negatives must be >= 0, got {num_negatives}")
    results = retrieve(
        model, data, k, batch_size=batch_size, score=score, show_progress=show_progress, precision=precision
    )
    rows = []
    for qid in data.queries:
        positives = [d for d, rel in data.qrels.get(qid, {}).items() if rel > 0]
        known = set(positives)
        negatives = [d for d in results.get(qid, {}) if d not in known][:num_negatives]
        rows.append({"query_id": qid, "pos": positives, "neg": negatives})
    return rows


def write_negatives(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write mined negatives as jsonl atomically (temporary file, then rename); returns ``path``."""
    path = Path(path)
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path
