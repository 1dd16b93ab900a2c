"""Retrieval evaluation: exact dense search, pytrec_eval metrics, and BEIR-style averages (SPEC 3.3).

The search reproduces SGPT's ``DenseRetrievalExactSearch``: score the corpus in chunks, keep a running
top-(k+1) per query, NaN scores become −1, and a hit whose doc id equals the query id is dropped
(ArguAna, Quora; BEIR's ``ignore_identical_ids``). Metrics are trec_eval's, through ``pytrec_eval``,
as BEIR's ``EvaluateRetrieval.evaluate`` computes them, with one deliberate difference: the mean runs
over **every judged query**, and a judged query without results counts 0 (BEIR averages over the
queries that have results, so such a query would vanish and raise the score).

trec_eval ranks a query's results by score, ties broken by doc id in *descending* string order; the
rank order of the result dict does not matter. nDCG uses the graded relevance as linear gain and
``log2(rank + 1)`` discount; MAP, recall, precision and MRR count relevance ≥ 1 as relevant.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from sgpt.data.readers_retrieval import RetrievalData, document_text

__all__ = [
    "SUBSETS",
    "DocumentEncoder",
    "Retriever",
    "average_over_datasets",
    "evaluate_retrieval",
    "exact_search",
    "remove_self_hits",
    "retrieval_metrics",
    "retrieve",
]

logger = logging.getLogger("sgpt.evaluation")

Results = dict[str, dict[str, float]]
"""query id → {doc id → score}, best first."""

K_VALUES = (1, 3, 5, 10, 100)
MRR_AT = 10

SUBSETS: dict[str, tuple[str, ...]] = {
    "sub_average": ("trec-covid", "nfcorpus", "hotpotqa", "fiqa", "arguana", "webis-touche2020", "quora",
                    "dbpedia-entity", "fever", "climate-fever", "scifact"),
    "subsubaverage": ("nfcorpus", "fiqa", "arguana", "scidocs", "scifact"),
}
"""SGPT's ``--computeavg`` subsets (SPEC 3.3): Sub-Average (the 11 sets OpenAI reported) and the 5-set one."""

CQADUPSTACK_FORUMS = ("android", "english", "gaming", "gis", "mathematica", "physics", "programmers", "stats",
                      "tex", "unix", "webmasters", "wordpress")


class DocumentEncoder(Protocol):
    """A bi-encoder: :class:`sgpt.BiEncoder` or anything with the same two methods."""

    def encode_queries(self, texts: list[str], batch_size: int = ..., **kwargs: Any) -> np.ndarray:
        """Embed queries → float array [len(texts), d]."""
        ...

    def encode_documents(self, texts: list[str], batch_size: int = ..., **kwargs: Any) -> np.ndarray:
        """Embed documents → float array [len(texts), d]."""
        ...


class Retriever(Protocol):
    """A retriever over a fixed corpus (e.g. :class:`sgpt.search.bm25.BM25Retriever`)."""

    def search(self, queries: Mapping[str, str], k: int) -> Results:
        """Top-``k`` doc ids with scores for every query id."""
        ...


def exact_search(
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
        raise ValueError(f"query_emb is [{q_emb.shape[0]}, {q_emb.shape[1]}] but doc_emb is "
                         f"[{d_emb.shape[0]}, {d_emb.shape[1]}]: the dimensions differ")
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
        block = q_emb[q0:q0 + query_chunk_size]
        top_s = torch.empty(block.shape[0], 0, dtype=torch.float32, device=block.device)
        top_i = torch.empty(block.shape[0], 0, dtype=torch.long, device=block.device)
        for d0 in range(0, n, chunk_size):
            scores = torch.nan_to_num(block @ d_emb[d0:d0 + chunk_size].T, nan=-1.0)  # [b, chunk]
            s, i = _top_by_position(scores, min(keep, scores.shape[1]))
            top_s, top_i = _merge(top_s, top_i, s, i + d0, keep)
        for row, (s_row, i_row) in enumerate(zip(top_s.tolist(), top_i.tolist())):
            qid = query_ids[q0 + row]
            hits = {doc_ids[j]: v for j, v in zip(i_row, s_row) if not (remove_self_hits and doc_ids[j] == qid)}
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
        dup = next(i for i in ids if i in seen or seen.add(i))
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


def _merge(s1: torch.Tensor, i1: torch.Tensor, s2: torch.Tensor, i2: torch.Tensor,
           m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best ``m`` of two candidate lists (ties: lower corpus position first)."""
    s, i = torch.cat([s1, s2], dim=1), torch.cat([i1, i2], dim=1)
    i, by_pos = torch.sort(i, dim=1)
    s, i = _sort_desc(torch.gather(s, 1, by_pos), i)
    return s[:, :m], i[:, :m]


def remove_self_hits(results: Mapping[str, Mapping[str, float]]) -> Results:
    """Copy of ``results`` without hits whose doc id equals the query id (BEIR ``ignore_identical_ids``)."""
    return {qid: {d: s for d, s in hits.items() if d != qid} for qid, hits in results.items()}


def retrieval_metrics(
    qrels: Mapping[str, Mapping[str, int]],
    results: Mapping[str, Mapping[str, float]],
    k_values: Sequence[int] = K_VALUES,
) -> dict[str, float]:
    """nDCG, MAP, recall and precision at each k, and MRR@10, with trec_eval (``pytrec_eval``).

    Each metric is the mean over **all queries in** ``qrels``: a judged query missing from ``results``
    (or with no hits) scores 0 on every metric. Queries in ``results`` without judgments are ignored.
    A judged query whose judgments are all 0 scores 0 (nothing relevant can be found), as in BEIR.
    ``mrr@10`` is trec_eval's ``recip_rank`` over each query's 10 best hits (trec_eval order).

    Args:
        qrels: query id → {doc id → graded relevance (int)}.
        results: query id → {doc id → score}; more than max(k_values) hits per query is fine.
        k_values: Cut-offs (positive ints).

    Returns:
        ``{"ndcg@k", "map@k", "recall@k", "precision@k"}`` for every k, ``"mrr@10"`` (floats in [0, 1]),
        and ``"n_queries"`` (the number of judged queries), in that key order.

    Raises:
        ValueError: ``qrels`` is empty, a k is not a positive int, or a score is not a finite number.
    """
    import pytrec_eval  # heavy-ish C extension, only needed here

    if not qrels:
        raise ValueError("qrels is empty: nothing to evaluate")
    ks = [int(k) for k in k_values]
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"k_values must be positive ints, got {list(k_values)}")
    run = _checked_run(results)
    cuts = ",".join(str(k) for k in ks)
    measures = {f"ndcg_cut.{cuts}", f"map_cut.{cuts}", f"recall.{cuts}", f"P.{cuts}"}
    qrels_int = {q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items()}
    per_query = pytrec_eval.RelevanceEvaluator(qrels_int, measures).evaluate(run)
    top10 = {q: dict(_trec_order(hits)[:MRR_AT]) for q, hits in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels_int, {"recip_rank"}).evaluate(top10)
    names = [(f"ndcg@{k}", f"ndcg_cut_{k}") for k in ks] + [(f"map@{k}", f"map_cut_{k}") for k in ks]
    names += [(f"recall@{k}", f"recall_{k}") for k in ks] + [(f"precision@{k}", f"P_{k}") for k in ks]
    n = len(qrels)
    out: dict[str, float] = {}
    for key, trec in names:
        out[key] = math.fsum(per_query[q][trec] for q in qrels if q in per_query) / n
    out[f"mrr@{MRR_AT}"] = math.fsum(rr[q]["recip_rank"] for q in qrels if q in rr) / n
    out["n_queries"] = n
    missing = sum(1 for q in qrels if not run.get(q))
    if missing:
        logger.warning("%d of %d judged queries have no results (they count 0)", missing, n)
    return out


def _checked_run(results: Mapping[str, Mapping[str, float]]) -> Results:
    run: Results = {}
    for qid, hits in results.items():
        row = {}
        for doc_id, value in hits.items():
            v = float(value)
            if not math.isfinite(v):
                raise ValueError(f"results[{qid!r}][{doc_id!r}] = {value!r} is not a finite score")
            row[str(doc_id)] = v
        run[str(qid)] = row
    return run


def _trec_order(hits: Mapping[str, float]) -> list[tuple[str, float]]:
    """trec_eval's ranking: score descending, ties by doc id descending."""
    return sorted(hits.items(), key=lambda item: (item[1], item[0]), reverse=True)


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
        raise ValueError(f"{data.name or 'data'}: {len(data.queries)} queries and {len(data.corpus)} documents; "
                         "need at least one of each")
    qids = list(data.queries)
    if hasattr(model, "encode_queries") and hasattr(model, "encode_documents"):
        extra: dict[str, Any] = {"show_progress": show_progress}
        if precision is not None:
            extra["precision"] = precision
        doc_ids = list(data.corpus)
        q_emb = model.encode_queries([data.queries[q] for q in qids], batch_size=batch_size, **extra)
        d_emb = model.encode_documents([document_text(data.corpus[d]) for d in doc_ids],
                                       batch_size=batch_size, **extra)
        return exact_search(q_emb, d_emb, doc_ids, qids, k, score=score)
    if hasattr(model, "search"):
        return remove_self_hits(model.search(data.queries, k))
    raise ValueError(f"{type(model).__name__} has neither encode_queries/encode_documents nor search")


def evaluate_retrieval(
    model: DocumentEncoder | Retriever,
    data: RetrievalData,
    *,
    batch_size: int = 32,
    k: int = 1000,
    score: str = "cos",
    show_progress: bool = False,
    precision: str | None = None,
    k_values: Sequence[int] = K_VALUES,
) -> dict[str, Any]:
    """Retrieve (:func:`retrieve`) for every judged query of ``data`` and score the run with
    :func:`retrieval_metrics`.

    Args:
        model: A bi-encoder or a retriever (see :func:`retrieve`).
        data: The test set (e.g. from :func:`sgpt.data.load_beir`).
        batch_size: Texts per forward pass (bi-encoder only).
        k: Hits kept per query (SPEC: 1000).
        score: ``"cos"`` or ``"dot"`` (bi-encoder only).
        show_progress: Progress bars while encoding.
        precision: Passed to the encoder; None leaves it out.
        k_values: Metric cut-offs.

    Returns:
        The metrics of :func:`retrieval_metrics` plus ``"n_docs"``.

    Raises:
        ValueError: As for :func:`retrieve` and :func:`retrieval_metrics`.
    """
    results = retrieve(model, data, k, batch_size=batch_size, score=score, show_progress=show_progress,
                       precision=precision)
    metrics: dict[str, Any] = retrieval_metrics(data.qrels, results, k_values)
    metrics["n_docs"] = len(data.corpus)
    return metrics


def average_over_datasets(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """BEIR averages of per-dataset metrics as SGPT's ``--computeavg`` computes them (SPEC 3.3).

    Data set names are matched lower-case. CQADupStack forums named ``cqadupstack/<forum>`` (or
    ``cqadupstack-<forum>``) are first averaged into one ``cqadupstack`` entry when all 12 are present
    (otherwise each forum counts as its own data set, with a logged warning). Then:

    * ``average``: plain mean over all data sets except ``msmarco`` (SGPT's Average leaves MS MARCO
      out), or over all of them when MS MARCO is the only one;
    * ``sub_average`` / ``subsubaverage``: the means over :data:`SUBSETS`, only when every member is
      present.

    Only metric keys (containing ``@``) present in every averaged data set are averaged.

    Args:
        results: data set name → metrics dict (e.g. from :func:`evaluate_retrieval`).

    Returns:
        ``{"average": {metric: mean, ..., "datasets": [names]}, "sub_average": ..., "subsubaverage": ...}``
        (the last two only when complete).

    Raises:
        ValueError: ``results`` is empty.
    """
    if not results:
        raise ValueError("no data set results to average")
    table = {name.lower(): dict(m) for name, m in results.items()}
    forums = {n: n.split("/", 1)[-1] if "/" in n else n.split("-", 1)[-1]
              for n in table if n.startswith(("cqadupstack/", "cqadupstack-"))}
    if forums:
        if set(forums.values()) >= set(CQADUPSTACK_FORUMS):
            table["cqadupstack"] = _mean_metrics([table.pop(n) for n in forums])
        else:
            logger.warning("only %d of 12 CQADupStack forums present: each counts as a data set", len(forums))
    names = [n for n in table if n != "msmarco"] or list(table)
    out = {"average": {**_mean_metrics([table[n] for n in names]), "datasets": names}}
    for key, members in SUBSETS.items():
        if all(m in table for m in members):
            out[key] = {**_mean_metrics([table[m] for m in members]), "datasets": list(members)}
    return out


def _mean_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    keys = [k for k in rows[0] if "@" in k and all(k in r for r in rows)]
    return {k: math.fsum(float(r[k]) for r in rows) / len(rows) for k in keys}
