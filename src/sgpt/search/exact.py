"""Exact (brute-force) dense search, and retrieval of a whole test set by a bi-encoder or any retriever.

The search reproduces SGPT's ``DenseRetrievalExactSearch`` (SPEC 3.3): score the corpus in chunks,
keep a running top-(k+1) per query, NaN scores become −1, and a hit whose doc id equals the query
id is dropped (ArguAna, Quora; BEIR's ``ignore_identical_ids``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from sgpt.data.beir import RetrievalData
from sgpt.data.documents import document_text

__all__ = ["DocumentEncoder", "Results", "Retriever", "exact_search", "remove_self_hits", "retrieve"]

logger = logging.getLogger("sgpt.search")

Results = dict[str, dict[str, float]]
"""query id → {doc id → score}, best first."""


class DocumentEncoder(Protocol):
    """A bi-encoder: :class:`sgpt.BiEncoder` or anything with the same two methods."""

    def encode_queries(self, texts: list[str], batch_size: int = ..., **kwargs: Any) -> np.ndarray | torch.Tensor:
        """Embed queries → float array or tensor [len(texts), d]."""
        ...

    def encode_documents(self, texts: list[str], batch_size: int = ..., **kwargs: Any) -> np.ndarray | torch.Tensor:
        """Embed documents → float array or tensor [len(texts), d]."""
        ...


class Retriever(Protocol):
    """A retriever over a fixed corpus (e.g. :class:`sgpt.search.bm25.BM25Retriever`)."""

    def search(self, queries: Mapping[str, str], k: int) -> Results:
        """Top-``k`` doc ids with scores for every query id."""
        ...


def exact_search(  # noqa: PLR0913 - BEIR's DenseRetrievalExactSearch knobs, all keyword-defaulted
    query_emb: np.ndarray | torch.Tensor,
    doc_emb: np.ndarray | torch.Tensor,
    doc_ids: Sequence[str],
    query_ids: Sequence[str],
    k: int,
    score: str = "cos",
    chunk_size: int = 50_000,
    remove_self_hits: bool = True,
    query_chunk_size: int = 1024,
) -> Results:
    """Exact top-``k`` search of every query over all documents.

    Scores ``[query block, doc chunk]`` matrices, keeps a running top-(k+1) per query (so dropping a
    self-hit still leaves ``k``), replaces NaN scores by −1 (as SGPT's search does), then drops the
    hit whose doc id equals the query id. The result is the same for any ``chunk_size``: ties are
    broken by corpus position (earlier document first), including across chunk boundaries.

    Args:
        query_emb: ``[q, d]`` query embeddings (float; numpy or torch, any device).
        doc_emb: ``[n, d]`` document embeddings.
        doc_ids: ``n`` distinct document ids, in ``doc_emb`` row order.
        query_ids: ``q`` distinct query ids, in ``query_emb`` row order.
        k: Results per query (fewer when the corpus is smaller).
        score: ``"cos"`` (cosine; a zero vector scores 0) or ``"dot"``.
        chunk_size: Documents scored per matrix product (memory: ``query_chunk_size * chunk_size`` floats).
        remove_self_hits: Drop the hit whose doc id equals the query id (SPEC 3.3).
        query_chunk_size: Queries scored per matrix product.

    Returns:
        query id → {doc id → score (Python float)}, in rank order (score descending).

    Raises:
        ValueError: Shapes or id counts that do not match, repeated ids, ``k < 1``, a chunk size < 1,
            or an unknown ``score``.
    """
    q_emb = _as_tensor(query_emb, "query_emb")
    d_emb = _as_tensor(doc_emb, "doc_emb").to(q_emb.device)
    if q_emb.shape[1] != d_emb.shape[1]:
        raise ValueError(
            f"query_emb is [{q_emb.shape[0]}, {q_emb.shape[1]}] but doc_emb is "
            f"[{d_emb.shape[0]}, {d_emb.shape[1]}]: the dimensions differ"
        )
    _check_ids(doc_ids, d_emb.shape[0], "doc_ids", "doc_emb")
    _check_ids(query_ids, q_emb.shape[0], "query_ids", "query_emb")
    if k < 1 or chunk_size < 1 or query_chunk_size < 1:
        raise ValueError(f"k, chunk_size and query_chunk_size must be >= 1, got {k}, {chunk_size}, {query_chunk_size}")
    if score not in ("cos", "dot"):
        raise ValueError(f"score must be 'cos' or 'dot', got {score!r}")
    if score == "cos":
        q_emb, d_emb = F.normalize(q_emb, dim=-1), F.normalize(d_emb, dim=-1)
    n = d_emb.shape[0]
    keep = min(k + 1, n)
    results: Results = {}
    for q0 in range(0, q_emb.shape[0], query_chunk_size):
        block = q_emb[q0 : q0 + query_chunk_size]
        top_s = torch.empty(block.shape[0], 0, dtype=torch.float32, device=block.device)
        top_i = torch.empty(block.shape[0], 0, dtype=torch.long, device=block.device)
        for d0 in range(0, n, chunk_size):
            scores = torch.nan_to_num(block @ d_emb[d0 : d0 + chunk_size].T, nan=-1.0)  # [b, chunk]
            s, i = _top_by_position(scores, min(keep, scores.shape[1]))
            top_s, top_i = _merge(top_s, top_i, s, i + d0, keep)
        for row, (s_row, i_row) in enumerate(zip(top_s.tolist(), top_i.tolist(), strict=False)):
            qid = query_ids[q0 + row]
            hits = {
                doc_ids[j]: v
                for j, v in zip(i_row, s_row, strict=False)
                if not (remove_self_hits and doc_ids[j] == qid)
            }
            results[qid] = dict(list(hits.items())[:k])
    return results


def _as_tensor(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D [rows, dim], got shape {tuple(t.shape)}")
    return t.float()


def _check_ids(ids: Sequence[str], rows: int, name: str, emb_name: str) -> None:
    if len(ids) != rows:
        raise ValueError(f"{name} has {len(ids)} ids but {emb_name} has {rows} rows")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        for dup in ids:  # the first id seen a second time
            if dup in seen:
                break
            seen.add(dup)
        raise ValueError(f"{name}: id {dup!r} appears more than once")


def _top_by_position(scores: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``m`` best columns of every row, ties at the cut taken from the lowest column index.

    ``torch.topk`` picks among equal scores arbitrarily; here the chosen set is deterministic and the
    result is sorted by score descending, then column ascending. Returns ``([b, m] scores, [b, m] columns)``.
    """
    cut = torch.topk(scores, m, dim=1).values[:, -1:]  # [b, 1], the m-th best score
    above = scores > cut
    tied = scores == cut
    need = m - above.sum(dim=1, keepdim=True)
    chosen = above | (tied & (tied.cumsum(dim=1) <= need))  # exactly m per row
    cols = chosen.nonzero()[:, 1].view(scores.shape[0], m)  # ascending column order within each row
    return _sort_desc(torch.gather(scores, 1, cols), cols)


def _sort_desc(s: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort rows by score descending; equal scores keep their current (position-ascending) order."""
    s_sorted, order = torch.sort(s, dim=1, descending=True, stable=True)
    return s_sorted, torch.gather(i, 1, order)


def _merge(
    s1: torch.Tensor, i1: torch.Tensor, s2: torch.Tensor, i2: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best ``m`` of two candidate lists (ties: lower corpus position first)."""
    s, i = torch.cat([s1, s2], dim=1), torch.cat([i1, i2], dim=1)
    i, by_pos = torch.sort(i, dim=1)
    s, i = _sort_desc(torch.gather(s, 1, by_pos), i)
    return s[:, :m], i[:, :m]


def remove_self_hits(results: Mapping[str, Mapping[str, float]]) -> Results:
    """Copy of ``results`` without hits whose doc id equals the query id (BEIR ``ignore_identical_ids``)."""
    return {qid: {d: s for d, s in hits.items() if d != qid} for qid, hits in results.items()}


def retrieve(
    model: DocumentEncoder | Retriever,
    data: RetrievalData,
    k: int,
    *,
    batch_size: int = 32,
    score: str = "cos",
    show_progress: bool = False,
    precision: str | None = None,
) -> Results:
    """Top-``k`` documents of ``data.corpus`` for every query of ``data.queries``; self-hits removed.

    A bi-encoder (``encode_queries``/``encode_documents``: the model's own query/document formatting,
    length-sorted batches) embeds the queries and every document's :func:`document_text`, then
    :func:`exact_search` ranks the corpus. Any other object with ``search(queries, k)`` (e.g.
    :class:`~sgpt.search.bm25.BM25Retriever` built over ``data.corpus``) is asked for its results.

    Args:
        model: A bi-encoder or a retriever (see above).
        data: Queries and corpus.
        k: Hits per query.
        batch_size: Texts per forward pass (bi-encoder only).
        score: ``"cos"`` or ``"dot"`` (bi-encoder only).
        show_progress: Progress bars while encoding.
        precision: Passed to the encoder (``"bfloat16"`` runs under autocast); None leaves it out.

    Returns:
        query id → {doc id → score}, best first.

    Raises:
        ValueError: ``data`` has no queries or no documents, or ``model`` has neither interface.
    """
    if not data.queries or not data.corpus:
        raise ValueError(
            f"{data.name or 'data'}: {len(data.queries)} queries and {len(data.corpus)} documents; "
            "need at least one of each"
        )
    qids = list(data.queries)
    if hasattr(model, "encode_queries") and hasattr(model, "encode_documents"):
        extra: dict[str, Any] = {"show_progress": show_progress}
        if precision is not None:
            extra["precision"] = precision
        doc_ids = list(data.corpus)
        q_emb = model.encode_queries([data.queries[q] for q in qids], batch_size=batch_size, **extra)
        d_emb = model.encode_documents([document_text(data.corpus[d]) for d in doc_ids], batch_size=batch_size, **extra)
        return exact_search(q_emb, d_emb, doc_ids, qids, k, score=score)
    if hasattr(model, "search"):
        return remove_self_hits(model.search(data.queries, k))
    raise ValueError(f"{type(model).__name__} has neither encode_queries/encode_documents nor search")
