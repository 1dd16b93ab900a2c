"""Retrieval evaluation: trec_eval metrics against hand arithmetic, averages, and the
sentence-transformers evaluator as an oracle on the same embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sgpt.data import RetrievalData
from sgpt.evaluation.beir import average_over_datasets, evaluate_retrieval, retrieval_metrics
from sgpt.search.exact import retrieve

LOG2_3 = math.log2(3)


# --------------------------------------------------------------------------------------------------- metrics


def test_ndcg_map_recall_precision_mrr_by_hand_with_ties_and_graded_relevance():
    qrels = {"q1": {"a": 2, "b": 1, "c": 0}, "q2": {"d": 1}}
    # trec_eval ranks by score, ties by doc id descending: c (0.9), b (0.5), a (0.5), x (0.1).
    results = {"q1": {"a": 0.5, "c": 0.9, "b": 0.5, "x": 0.1}, "q2": {}, "unjudged": {"a": 1.0}}
    m = retrieval_metrics(qrels, results, k_values=(1, 3))
    # q1 gains by rank: c=0, b=1, a=2. DCG@3 = 0/log2(2) + 1/log2(3) + 2/log2(4) = 1/log2(3) + 1.
    # Ideal order a, b, c: IDCG@3 = 2/1 + 1/log2(3) + 0. q2 has no results: 0 on every metric.
    ndcg3_q1 = (1 / LOG2_3 + 1) / (2 + 1 / LOG2_3)  # = 0.619904...
    assert m["ndcg@3"] == pytest.approx(ndcg3_q1 / 2, abs=1e-12)
    assert m["ndcg@1"] == 0.0  # c (judged 0) is first
    # relevant (>= 1) are a and b, found at ranks 3 and 2: AP@3 = (1/2 + 2/3) / 2 relevant = 7/12
    assert m["map@3"] == pytest.approx(7 / 12 / 2, abs=1e-12)
    assert m["recall@3"] == pytest.approx((2 / 2 + 0) / 2)
    assert m["precision@3"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["precision@1"] == 0.0 and m["recall@1"] == 0.0
    assert m["mrr@10"] == pytest.approx((1 / 2 + 0) / 2)  # first relevant of q1 at rank 2
    assert m["n_queries"] == 2
    assert list(m) == [
        "ndcg@1",
        "ndcg@3",
        "map@1",
        "map@3",
        "recall@1",
        "recall@3",
        "precision@1",
        "precision@3",
        "mrr@10",
        "n_queries",
    ]


def test_a_judged_query_without_results_counts_zero_not_missing(caplog):
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    both = retrieval_metrics(qrels, {"q1": {"a": 1.0}, "q2": {"b": 1.0}})
    one = retrieval_metrics(qrels, {"q1": {"a": 1.0}})
    assert both["ndcg@10"] == 1.0
    assert one["ndcg@10"] == 0.5 and one["mrr@10"] == 0.5 and one["recall@100"] == 0.5
    assert "1 of 2 judged queries have no results" in caplog.text


def test_mrr_is_cut_at_ten():
    hits = {f"d{i:02d}": 1.0 - i / 100 for i in range(20)}  # d00 best ... d19 worst
    assert retrieval_metrics({"q": {"d09": 1}}, {"q": hits})["mrr@10"] == pytest.approx(1 / 10)
    assert retrieval_metrics({"q": {"d10": 1}}, {"q": hits})["mrr@10"] == 0.0  # rank 11


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="qrels is empty"):
        retrieval_metrics({}, {"q": {"a": 1.0}})
    with pytest.raises(ValueError, match="not a finite score"):
        retrieval_metrics({"q": {"a": 1}}, {"q": {"a": float("nan")}})
    with pytest.raises(ValueError, match="positive ints"):
        retrieval_metrics({"q": {"a": 1}}, {"q": {"a": 1.0}}, k_values=(0,))


# --------------------------------------------------------------------------------------------- evaluation


class _TableEncoder:
    """A bi-encoder whose vectors come from a table; records what it was asked to embed."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.calls: list[tuple[str, list[str], dict]] = []

    def encode_queries(self, texts, batch_size=32, **kwargs):
        self.calls.append(("query", list(texts), kwargs))
        return np.array([self.table[t] for t in texts], dtype=np.float32)

    def encode_documents(self, texts, batch_size=32, **kwargs):
        self.calls.append(("document", list(texts), kwargs))
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def _toy_data() -> RetrievalData:
    corpus = {"d1": {"title": "Cats", "text": "sleep"}, "d2": {"title": "", "text": "dogs bark"}}
    return RetrievalData(corpus, {"q1": "cat?", "q2": "dog?"}, {"q1": {"d1": 1}, "q2": {"d2": 1, "d1": 1}}, "toy")


def test_evaluate_retrieval_embeds_title_and_text_and_scores_through_metrics():
    enc = _TableEncoder({"cat?": [1, 0], "dog?": [1, 0.1], "Cats sleep": [1, 0], "dogs bark": [0, 1]})
    m = evaluate_retrieval(enc, _toy_data(), batch_size=8, precision="bfloat16")
    assert [c[:2] for c in enc.calls] == [("query", ["cat?", "dog?"]), ("document", ["Cats sleep", "dogs bark"])]
    assert enc.calls[0][2] == {"show_progress": False, "precision": "bfloat16"}
    # q1: d1 first -> 1. q2: d1 (relevant) then d2 (relevant): both found, ideal -> 1.
    assert m["ndcg@10"] == 1.0 and m["n_queries"] == 2 and m["n_docs"] == 2
    # q2's run alone: d1 then d2; precision@1 = 1 for both queries
    assert m["precision@1"] == 1.0 and m["recall@1"] == pytest.approx((1 + 0.5) / 2)


def test_any_retriever_is_scored_through_the_same_code():
    class Fixed:
        def search(self, queries, k):
            return {"q1": {"q1": 9.0, "d2": 2.0, "d1": 1.0}, "q2": {"d2": 1.0}}

    data = _toy_data()
    results = retrieve(Fixed(), data, 10)
    assert results["q1"] == {"d2": 2.0, "d1": 1.0}  # the self-hit is gone
    # q1: relevant d1 at rank 2 -> 1/log2(3); q2: d2 at rank 1, d1 missing -> 1 / (1 + 1/log2(3))
    expected = (1 / LOG2_3 + 1 / (1 + 1 / LOG2_3)) / 2
    assert evaluate_retrieval(Fixed(), data)["ndcg@10"] == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="neither encode_queries/encode_documents nor search"):
        evaluate_retrieval(object(), data)


def test_average_over_datasets_plain_sub_and_subsub():
    names = [
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
        "scidocs",
        "msmarco",
    ]
    results = {n: {"ndcg@10": i / 10, "n_queries": 5} for i, n in enumerate(names)}
    avg = average_over_datasets(results)
    assert avg["average"]["ndcg@10"] == pytest.approx(sum(range(12)) / 10 / 12)  # msmarco (12) left out
    assert avg["sub_average"]["ndcg@10"] == pytest.approx(sum(range(11)) / 10 / 11)
    # nfcorpus 1, fiqa 3, arguana 4, scidocs 11, scifact 10
    assert avg["subsubaverage"]["ndcg@10"] == pytest.approx((1 + 3 + 4 + 11 + 10) / 10 / 5)
    assert "n_queries" not in avg["average"]
    two = average_over_datasets({"scifact": {"ndcg@10": 0.6}, "dl19-subset": {"ndcg@10": 0.8}})
    assert two == {"average": {"ndcg@10": pytest.approx(0.7), "datasets": ["scifact", "dl19-subset"]}}


def test_cqadupstack_forums_merge_into_one_dataset_when_all_twelve_are_there():
    from sgpt.evaluation.beir import CQADUPSTACK_FORUMS

    forums = {f"cqadupstack/{f}": {"ndcg@10": 0.1 * (i % 2)} for i, f in enumerate(CQADUPSTACK_FORUMS)}
    avg = average_over_datasets({**forums, "scifact": {"ndcg@10": 0.65}})
    assert avg["average"]["datasets"] == ["scifact", "cqadupstack"]
    assert avg["average"]["ndcg@10"] == pytest.approx((0.65 + 0.05) / 2)


# ---------------------------------------------------------------------------------------- oracle: ST 6.2


def test_ndcg_equals_sentence_transformers_information_retrieval_evaluator(minilm_path, minilm_st):
    """Same model, same texts: our pipeline and ST's InformationRetrievalEvaluator agree."""
    from conftest import training_sentences
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    import sgpt

    sentences = list(dict.fromkeys(training_sentences()))[:120]
    corpus = {f"doc{i}": {"title": "", "text": s} for i, s in enumerate(sentences)}
    # a query is the first words of a sentence; relevant: that sentence and, for some, the next one
    queries = {f"q{i}": " ".join(sentences[i].split()[:4]) for i in range(0, 120, 4)}
    qrels = {f"q{i}": {f"doc{i}": 1, **({f"doc{i + 1}": 1} if i % 8 == 0 else {})} for i in range(0, 120, 4)}
    data = RetrievalData(corpus, queries, qrels, "toy")
    ours = evaluate_retrieval(sgpt.load(minilm_path), data, batch_size=32, k=100)
    evaluator = InformationRetrievalEvaluator(
        queries,
        {d: c["text"] for d, c in corpus.items()},
        {q: set(r) for q, r in qrels.items()},
        ndcg_at_k=[10],
        mrr_at_k=[10],
        precision_recall_at_k=[1, 10],
        map_at_k=[100],
        write_csv=False,
    )
    theirs = evaluator(minilm_st)
    assert 0.2 < ours["ndcg@10"] < 0.99  # not a degenerate case
    assert ours["ndcg@10"] == pytest.approx(theirs["cosine_ndcg@10"], abs=1e-4)
    assert ours["mrr@10"] == pytest.approx(theirs["cosine_mrr@10"], abs=1e-4)
    assert ours["recall@10"] == pytest.approx(theirs["cosine_recall@10"], abs=1e-4)
    assert ours["precision@1"] == pytest.approx(theirs["cosine_precision@1"], abs=1e-4)
