"""Retrieval evaluation on BEIR-layout sets: pytrec_eval metrics of a run and BEIR-style averages (SPEC 3.3).

The run comes from :func:`sgpt.search.exact.retrieve` (exact dense search, self-hits removed, or any
retriever such as BM25). Metrics are trec_eval's, through ``pytrec_eval``,
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
from typing import Any

from sgpt.data.beir import RetrievalData
from sgpt.data.useb import CQADUPSTACK_FORUMS  # one list of the 12 forums (BEIR and USEB score the same ones)
from sgpt.search.exact import DocumentEncoder, Results, Retriever, retrieve

__all__ = ["SUBSETS", "average_over_datasets", "evaluate_retrieval", "retrieval_metrics"]

logger = logging.getLogger("sgpt.evaluation")

K_VALUES = (1, 3, 5, 10, 100)
MRR_AT = 10

SUBSETS: dict[str, tuple[str, ...]] = {
    "sub_average": (
        "trec-covid",
        "nfcorpus",
        "hotpotqa",
        "fiqa",
        "arguana",
        "webis-touche2020",
        "quora",
        "dbpedia-entity",
        "fever",
        "climate-fever",
        "scifact",
    ),
    "subsubaverage": ("nfcorpus", "fiqa", "arguana", "scidocs", "scifact"),
}
"""SGPT's ``--computeavg`` subsets (SPEC 3.3): Sub-Average (the 11 sets OpenAI reported) and the 5-set one."""


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
    results = retrieve(
        model, data, k, batch_size=batch_size, score=score, show_progress=show_progress, precision=precision
    )
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
    forums = {
        n: n.split("/", 1)[-1] if "/" in n else n.split("-", 1)[-1]
        for n in table
        if n.startswith(("cqadupstack/", "cqadupstack-"))
    }
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
