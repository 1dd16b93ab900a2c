"""USEB evaluation (SPEC 3.4): pure metrics and thin evaluators, as USEB's own code computes them.

Source: kwang2049/useb ``useb/evaluators/*.py`` (Wang et al. 2021, TSDAE), in the version SGPT adapted
(Muennighoff/sgpt ``biencoder/useb/useb``: ``normalize`` flag, L2-normalised embeddings by default).
Main metrics, all ×100:

* AskUbuntu: MAP of re-ranking each query's 20 BM25 candidates by the dot product of the (normalised)
  title embeddings; MRR, P@1, P@5 too;
* CQADupStack: MAP@100 over the forum's pool, dot product, mean over the forums (nDCG@10 too);
* TwitterPara: AP of the cosine of the two tweets, pairs with 3 votes dropped, mean over Twitter-URL and
  PIT (Spearman of the cosine with the votes, all pairs, too);
* SciDocs: trec_eval MAP of ranking each query's candidates by cosine, mean over cite, cocite, coread,
  coview.

Texts are embedded with the model's plain ``encode`` (no query/document formatting): every USEB
text is a title or a tweet and each task is symmetric, as SGPT's ``useb_dense_retriever.py`` did.
The USEB average is the mean of the main scores of the tasks present.

Notation: ``n`` items, ``q`` queries, ``m`` documents, ``d`` embedding dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sgpt.data.useb import (
    CQADUPSTACK_FORUMS,
    SCIDOCS_PARTS,
    TWITTERPARA_PARTS,
    USEB_TASKS,
    AskUbuntuData,
    ForumData,
    ParaphrasePairs,
    SciDocsPart,
    UsebData,
)
from sgpt.evaluation.metrics import paired_scores, spearman
from sgpt.evaluation.sts import Encoder

__all__ = [
    "MAIN_METRICS",
    "average_precision",
    "cqadupstack_ndcg_at_k",
    "evaluate_askubuntu",
    "evaluate_cqadupstack",
    "evaluate_scidocs",
    "evaluate_twitterpara",
    "evaluate_useb",
    "precision_at_k",
    "ranked_average_precision",
    "reciprocal_rank",
    "top_k_average_precision",
    "trec_order",
]

MAIN_METRICS = {"askubuntu": "map", "cqadupstack": "map@100", "twitterpara": "ap", "scidocs": "map"}
"""Each task's main metric (the key of its score in the results)."""

_PARTS = {"cqadupstack": CQADUPSTACK_FORUMS, "twitterpara": TWITTERPARA_PARTS, "scidocs": SCIDOCS_PARTS}
_QUERY_CHUNK = 512  # CQADupStack queries scored at a time: bounds the [chunk, m] score matrix


# ---------------------------------------------------------------- metrics (pure)
def average_precision(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Average precision of binary labels ranked by scores, as ``sklearn.metrics.average_precision_score``.

    ``AP = sum_t (R_t - R_{t-1}) P_t`` over the distinct scores t in decreasing order, where ``P_t`` and
    ``R_t`` are the precision and recall of predicting positive every item with score >= t (tied items
    enter together), ``R_0 = 0``. Without ties this is the mean over the positives of the precision at
    their rank. Used by USEB for TwitterPara and, over the top 100, CQADupStack.

    Args:
        labels: [n], 1/True = positive, 0/False = negative.
        scores: [n], higher = more likely positive.

    Returns:
        AP in [0, 1].

    Raises:
        ValueError: inputs not 1-D of equal length, a non-finite score, or no positive label.
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"labels and scores must be 1-D of equal length, got shapes {y.shape} and {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite; found NaN or inf")
    if not y.any():
        raise ValueError("average precision needs at least one positive label")
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    tp = np.cumsum(y)  # [n]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each run of tied scores
    precision = tp[last] / (last + 1)
    recall = tp[last] / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def ranked_average_precision(relevant: Sequence[bool], n_relevant: int | None = None) -> float:
    """Average precision of a ranked list: ``AP = (1/R) sum_{k: relevant_k} P@k``, ``P@k`` = hits in the top k / k.

    ``R`` = ``n_relevant`` (trec_eval's ``map``: every judged relevant document, found or not; SciDocs)
    or, when ``None``, the relevant items in the list (USEB's AskUbuntu ``ap_score``). 0 when ``R = 0``.

    Args:
        relevant: [n] relevance of the ranked items, best first.
        n_relevant: the number of relevant documents, or None.
    """
    rel = np.asarray(relevant, dtype=bool)
    hits = np.cumsum(rel)  # [n]
    total = int(hits[-1]) if n_relevant is None and rel.size else (n_relevant or 0)
    if total == 0:
        return 0.0
    precisions = hits[rel] / (np.flatnonzero(rel) + 1)
    return float(precisions.sum() / total)


def reciprocal_rank(relevant: Sequence[bool]) -> float:
    """``1 / rank`` of the first relevant item of a ranked list (rank 1 = best); 0 if there is none."""
    hit = np.flatnonzero(np.asarray(relevant, dtype=bool))
    return 1.0 / (hit[0] + 1) if hit.size else 0.0


def precision_at_k(relevant: Sequence[bool], k: int) -> float:
    """Relevant items among the first ``k`` of a ranked list, divided by ``min(k, n)`` (USEB's ``p@k``)."""
    top = list(relevant)[:k]
    return sum(map(bool, top)) / len(top) if top else 0.0


def trec_order(ids: Sequence[str], scores: Sequence[float]) -> list[str]:
    """``ids`` ranked as trec_eval (and ``pytrec_eval``) ranks a run: score descending, ties by id descending."""
    return [i for _, i in sorted(zip(scores, ids, strict=True), reverse=True)]


def top_k_average_precision(scores: np.ndarray, relevant: np.ndarray, k: int = 100) -> float:
    """USEB's CQADupStack MAP@k term of one query: :func:`average_precision` over its ``k`` best-scored
    documents, 0 when none of them is relevant.

    Note the denominator: the relevant documents *in the top k* (``sklearn`` on the top-k list), not all
    relevant ones, as USEB computes it (so it differs from trec_eval's ``map_cut_100``).

    Args:
        scores: [m] scores of all documents.
        relevant: [m] bool, the query's duplicates.
        k: the cut-off.
    """
    top = _top_k(scores, k)
    labels = relevant[top]
    return average_precision(labels, scores[top]) if labels.any() else 0.0


def cqadupstack_ndcg_at_k(scores: np.ndarray, relevant: np.ndarray, n_relevant: int, k: int = 10) -> float:
    """USEB's CQADupStack nDCG@k of one query: ``DCG@k / IDCG@k``, binary gains, ``DCG = sum_i rel_i / log2(i + 1)``
    over ranks i = 1..k; the ideal list has ``n_relevant`` ones (duplicates outside the pool included).

    Args:
        scores: [m] scores of the pool; relevant: [m] bool; n_relevant: the query's duplicates (> 0).
    """
    gains = relevant[_top_k(scores, k)].astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))  # [k]
    ideal = discounts[: min(n_relevant, k)].sum()
    return float((gains * discounts[: gains.size]).sum() / ideal)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first (ties: lower index first)."""
    k = min(k, scores.size)
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    return part[np.lexsort((part, -scores[part]))]


# ---------------------------------------------------------------- evaluators (thin)
def _embed(model: Encoder, texts: Sequence[str], batch_size: int, normalize: bool, show: bool) -> dict[str, np.ndarray]:
    """Every distinct text's embedding, ``text -> [d]`` (each encoded once)."""
    unique = list(dict.fromkeys(texts))
    emb = np.asarray(model.encode(unique, batch_size=batch_size, normalize=normalize, show_progress=show))
    if emb.ndim != 2 or emb.shape[0] != len(unique):
        raise ValueError(f"model.encode returned shape {emb.shape} for {len(unique)} texts; expected [n, d]")
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN/inf; the model output is broken")
    return dict(zip(unique, emb.astype(np.float64), strict=True))


def evaluate_askubuntu(
    model: Encoder, data: AskUbuntuData, *, batch_size: int = 32, normalize: bool = True, show_progress: bool = False
) -> dict:
    """Re-rank each query's candidates by the dot product of the (normalised) title embeddings; ties keep
    BM25 order. Returns ``map``, ``mrr``, ``p@1``, ``p@5`` (means over the queries, ×100) and ``n_queries``."""
    vec = _embed(model, list(data.texts.values()), batch_size, normalize, show_progress)
    per: dict[str, list[float]] = {"map": [], "mrr": [], "p@1": [], "p@5": []}
    for q in data.queries:
        query = vec[data.texts[q.qid]]
        scores = [float(vec[data.texts[c]] @ query) for c in q.candidates]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable: ties keep BM25 order
        gold = set(q.similar)
        rel = [q.candidates[i] in gold for i in order]
        per["map"].append(ranked_average_precision(rel))
        per["mrr"].append(reciprocal_rank(rel))
        per["p@1"].append(precision_at_k(rel, 1))
        per["p@5"].append(precision_at_k(rel, 5))
    return {**{k: 100 * float(np.mean(v)) for k, v in per.items()}, "n_queries": len(data.queries)}


def evaluate_cqadupstack(
    model: Encoder,
    forums: Sequence[ForumData],
    *,
    batch_size: int = 32,
    normalize: bool = True,
    show_progress: bool = False,
) -> dict:
    """Per forum, rank the pool by the dot product of the (normalised) embeddings: mean MAP@100
    (:func:`top_k_average_precision`) and nDCG@10 over its queries; then the means over the forums (×100)."""
    parts = {}
    for forum in forums:
        qids, dids = list(forum.queries), list(forum.docs)
        vec = _embed(model, [*forum.queries.values(), *forum.docs.values()], batch_size, normalize, show_progress)
        queries = np.stack([vec[forum.queries[i]] for i in qids])  # [q, d]
        docs = np.stack([vec[forum.docs[i]] for i in dids])  # [m, d]
        position = {d: j for j, d in enumerate(dids)}
        aps, ndcgs = [], []
        for start in range(0, len(qids), _QUERY_CHUNK):
            block = queries[start : start + _QUERY_CHUNK] @ docs.T  # [chunk, m]
            for row, qid in zip(block, qids[start : start + _QUERY_CHUNK], strict=True):
                relevant = np.zeros(len(dids), dtype=bool)
                relevant[[position[d] for d in forum.relevant[qid] if d in position]] = True
                aps.append(top_k_average_precision(row, relevant, 100))
                if forum.relevant[qid]:
                    ndcgs.append(cqadupstack_ndcg_at_k(row, relevant, len(forum.relevant[qid]), 10))
        parts[forum.name] = {
            "map@100": 100 * float(np.mean(aps)),
            "ndcg@10": 100 * float(np.mean(ndcgs)) if ndcgs else math.nan,
            "n_queries": len(qids),
            "n_docs": len(dids),
        }
    return {**_mean_over(parts, ("map@100", "ndcg@10")), "parts": parts}


def evaluate_twitterpara(
    model: Encoder,
    parts: Sequence[ParaphrasePairs],
    *,
    batch_size: int = 32,
    normalize: bool = True,
    show_progress: bool = False,
) -> dict:
    """Per part, the cosine of each pair: AP over the pairs with a label (3-vote pairs dropped) and
    Spearman with the votes over all pairs; then the means over the parts (×100)."""
    out = {}
    for part in parts:
        vec = _embed(model, [*part.sentences1, *part.sentences2], batch_size, normalize, show_progress)
        cos = paired_scores(np.stack([vec[s] for s in part.sentences1]), np.stack([vec[s] for s in part.sentences2]))[
            "cosine"
        ]  # [n]
        kept = [i for i, label in enumerate(part.labels) if label is not None]
        labels = [int(part.labels[i] or 0) for i in kept]
        out[part.name] = {
            "ap": 100 * average_precision(labels, cos[kept]),
            "spearman": 100 * spearman(cos, np.asarray(part.votes, dtype=np.float64)),
            "n_pairs": len(kept),
            "n_dropped": len(part) - len(kept),
        }
    return {**_mean_over(out, ("ap", "spearman")), "parts": out}


def evaluate_scidocs(
    model: Encoder,
    parts: Sequence[SciDocsPart],
    *,
    batch_size: int = 32,
    normalize: bool = True,
    show_progress: bool = False,
) -> dict:
    """Per part, rank each query's candidates by cosine (:func:`trec_order`); trec_eval MAP
    (:func:`ranked_average_precision` over all judged relevant documents) averaged over the queries
    with a title; then the mean over the parts (×100)."""
    out = {}
    for part in parts:
        vec = _embed(model, list(part.titles.values()), batch_size, normalize, show_progress)
        aps = []
        for qid, dids in part.queries.items():
            query = vec[part.titles[qid]]
            if not dids:  # no candidate has a title: USEB passes pytrec_eval an empty run, which scores 0
                aps.append(0.0)
                continue
            docs = np.stack([vec[part.titles[d]] for d in dids])  # [c, d]
            cos = paired_scores(np.broadcast_to(query, docs.shape), docs)["cosine"]  # [c]
            ranked = trec_order(dids, cos.tolist())
            judged = part.qrels[qid]
            rel = [judged[d] > 0 for d in ranked]
            aps.append(ranked_average_precision(rel, sum(v > 0 for v in judged.values())))
        out[part.name] = {"map": 100 * float(np.mean(aps)) if aps else math.nan, "n_queries": len(aps)}
    return {**_mean_over(out, ("map",)), "parts": out}


def _mean_over(parts: dict[str, dict], keys: Sequence[str]) -> dict[str, float]:
    return {k: float(np.mean([p[k] for p in parts.values()])) for k in keys}


def evaluate_useb(
    model: Encoder, data: UsebData, *, batch_size: int = 32, normalize: bool = True, show_progress: bool = False
) -> dict:
    """Every USEB task present in ``data``, and their average.

    Returns:
        ``scores`` (task -> main score, ×100, :data:`MAIN_METRICS`), ``average`` (their mean),
        ``average_over`` (the tasks present), ``tasks_missing``, ``tasks`` (task -> all its metrics;
        multi-part tasks with ``parts`` and ``parts_missing``) and ``notes`` (what the figures leave out).
    """
    kwargs: dict[str, Any] = {"batch_size": batch_size, "normalize": normalize, "show_progress": show_progress}
    raw: dict[str, dict] = {}
    if data.askubuntu is not None:
        raw["askubuntu"] = evaluate_askubuntu(model, data.askubuntu, **kwargs)
    if data.cqadupstack is not None:
        raw["cqadupstack"] = evaluate_cqadupstack(model, data.cqadupstack, **kwargs)
    if data.twitterpara is not None:
        raw["twitterpara"] = evaluate_twitterpara(model, data.twitterpara, **kwargs)
    if data.scidocs is not None:
        raw["scidocs"] = evaluate_scidocs(model, data.scidocs, **kwargs)
    tasks, notes = {}, []
    for task, metrics in raw.items():
        result = {"metric": MAIN_METRICS[task], "score": metrics[MAIN_METRICS[task]], **metrics}
        if task in _PARTS:
            missing = [p for p in _PARTS[task] if p not in result["parts"]]
            result["parts_missing"] = missing
            if missing:
                notes.append(f"{task}: mean over {', '.join(result['parts'])} only ({', '.join(missing)} not found)")
        tasks[task] = result
    present = list(tasks)
    if len(present) < len(USEB_TASKS):
        left = [t for t in USEB_TASKS if t not in present]
        notes.append(
            f"average over {len(present)} of the {len(USEB_TASKS)} USEB tasks (without {', '.join(left)}): "
            "not comparable with the published USEB average"
        )
    scores = {t: r["score"] for t, r in tasks.items()}
    return {
        "scores": scores,
        "average": float(np.mean(list(scores.values()))),
        "average_over": present,
        "tasks_missing": list(data.tasks_missing),
        "tasks": tasks,
        "notes": notes,
    }
