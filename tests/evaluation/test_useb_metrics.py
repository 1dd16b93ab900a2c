"""USEB metrics against hand-computed values and their oracles (sklearn's ``average_precision_score``,
``pytrec_eval``), the evaluators on toy data with known vectors, and MiniLM on the real Twitter-URL file."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from conftest import need_data

from sgpt.data.useb import (
    AskUbuntuData,
    AskUbuntuQuery,
    ForumData,
    ParaphrasePairs,
    SciDocsPart,
    UsebData,
    read_twitter_url,
)
from sgpt.evaluation.useb import (
    average_precision,
    cqadupstack_ndcg_at_k,
    evaluate_askubuntu,
    evaluate_cqadupstack,
    evaluate_scidocs,
    evaluate_twitterpara,
    evaluate_useb,
    precision_at_k,
    ranked_average_precision,
    reciprocal_rank,
    top_k_average_precision,
    trec_order,
)


class DictEncoder:
    """An encoder that looks each text's vector up (the texts of a toy task name their vectors)."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[tuple[list[str], bool]] = []

    def encode(self, texts, batch_size=32, normalize=False, *, show_progress=False):
        self.calls.append((list(texts), normalize))
        emb = np.array([self.vectors[t] for t in texts], dtype=np.float32)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True) if normalize else emb


def unit(cos: float) -> list[float]:
    """A 2-d unit vector whose cosine with [1, 0] is ``cos``."""
    return [cos, math.sqrt(1 - cos * cos)]


# ---------------------------------------------------------------- metrics
def test_average_precision_by_hand_with_and_without_ties():
    # ranks: + - + -  ->  (1/1 + 2/3) / 2
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
    # a tie enters together: threshold 0.5 -> P 1/2, R 1/2; threshold 0.1 -> P 2/3, R 1
    assert average_precision([1, 0, 1], [0.5, 0.5, 0.1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert average_precision([True], [0.0]) == 1.0
    with pytest.raises(ValueError, match="at least one positive"):
        average_precision([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="equal length"):
        average_precision([1, 0], [0.1])
    with pytest.raises(ValueError, match="finite"):
        average_precision([1, 0], [0.1, float("nan")])


def test_average_precision_equals_sklearn_on_random_data_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 40))
        labels = rng.integers(0, 2, n)
        labels[rng.integers(0, n)] = 1
        scores = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.normal(size=n)
        assert average_precision(labels, scores) == pytest.approx(metrics.average_precision_score(labels, scores))


def test_ranked_metrics_by_hand():
    ranked = [True, False, True, False]
    assert ranked_average_precision(ranked) == pytest.approx((1 + 2 / 3) / 2)  # AskUbuntu: found ones only
    assert ranked_average_precision(ranked, n_relevant=3) == pytest.approx((1 + 2 / 3) / 3)  # trec_eval map
    assert ranked_average_precision([False, False]) == 0.0
    assert ranked_average_precision([], n_relevant=2) == 0.0
    assert reciprocal_rank([False, False, True]) == pytest.approx(1 / 3)
    assert reciprocal_rank([False]) == 0.0
    assert precision_at_k(ranked, 1) == 1.0
    assert precision_at_k(ranked, 5) == 0.5  # 2 of the 4 there are (USEB divides by the list's length)


def test_trec_order_and_map_equal_pytrec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    assert trec_order(["a", "b", "c"], [0.5, 0.9, 0.5]) == ["b", "c", "a"]  # ties: id descending
    rng = np.random.default_rng(1)
    for _ in range(100):
        ids = [f"d{i}" for i in range(int(rng.integers(1, 12)))]
        scores = rng.integers(0, 3, len(ids)).astype(float).tolist()  # many ties
        qrel = {d: int(rng.integers(0, 2)) for d in ids} | {"unranked": int(rng.integers(0, 2))}
        expected = pytrec_eval.RelevanceEvaluator({"q": qrel}, {"map"}).evaluate(
            {"q": dict(zip(ids, scores, strict=True))}
        )
        ranked = trec_order(ids, scores)
        got = ranked_average_precision([qrel[d] > 0 for d in ranked], sum(v > 0 for v in qrel.values()))
        assert got == pytest.approx(expected["q"]["map"])


def test_cqadupstack_map_at_100_and_ndcg_at_10_by_hand():
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.2])
    relevant = np.array([False, False, True, False, True])
    # top 3: 0.9 (-), 0.8 (+), 0.7 (-): one hit, at rank 2; USEB divides by the hits in the top k
    assert top_k_average_precision(scores, relevant, 3) == pytest.approx(0.5)
    assert top_k_average_precision(scores, relevant, 100) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert top_k_average_precision(scores, relevant, 1) == 0.0  # no hit in the top 1
    # ranks 2 and 4 relevant, 3 duplicates in all (one outside the pool)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    assert cqadupstack_ndcg_at_k(scores, relevant, 3) == pytest.approx(dcg / (1 + 1 / math.log2(3) + 0.5))


def test_map_over_queries_of_the_cqadupstack_evaluator_by_hand():
    vectors = {"q1": [1, 0], "q2": [0, 1], "a": unit(0.9), "b": unit(0.5), "c": unit(0.1)}
    forum = ForumData("gis", {"q1": "q1", "q2": "q2"}, {"a": "a", "b": "b", "c": "c"}, {"q1": ("b",), "q2": ()})
    result = evaluate_cqadupstack(DictEncoder(vectors), [forum])
    # q1 ranks a, b, c: its duplicate b at rank 2 -> AP 1/2; q2 has no duplicate -> AP 0, no nDCG
    assert result["parts"]["gis"]["map@100"] == pytest.approx(100 * (0.5 + 0) / 2)
    assert result["parts"]["gis"]["ndcg@10"] == pytest.approx(100 / math.log2(3))
    assert result["map@100"] == result["parts"]["gis"]["map@100"]
    assert (result["parts"]["gis"]["n_queries"], result["parts"]["gis"]["n_docs"]) == (2, 3)


# ---------------------------------------------------------------- evaluators
def askubuntu_toy() -> AskUbuntuData:
    texts = {"1": "q1", "2": "q2", "a": "a", "b": "b", "c": "c"}
    queries = [AskUbuntuQuery("1", ("a",), ("b", "c", "a")), AskUbuntuQuery("2", ("a", "c"), ("a", "b", "c"))]
    return AskUbuntuData(texts=texts, queries=queries, n_without_similar=0)


def test_askubuntu_map_mrr_precision_by_hand():
    vectors = {"q1": [1, 0], "q2": [0, 1], "a": [1, 0], "b": [0, 1], "c": [0.6, 0.8]}
    result = evaluate_askubuntu(DictEncoder(vectors), askubuntu_toy())
    # query 1 ranks a, c, b (+ - -); query 2 ranks b, c, a (- + +)
    assert result["map"] == pytest.approx(100 * (1 + (1 / 2 + 2 / 3) / 2) / 2)
    assert result["mrr"] == pytest.approx(100 * (1 + 1 / 2) / 2)
    assert result["p@1"] == pytest.approx(50.0)
    assert result["p@5"] == pytest.approx(100 * (1 / 3 + 2 / 3) / 2)
    assert result["n_queries"] == 2


def test_askubuntu_ties_keep_bm25_order_and_no_normalize_ranks_by_dot():
    same = {"q1": [1, 0], "q2": [1, 0], "a": [1, 0], "b": [1, 0], "c": [1, 0]}
    tied = evaluate_askubuntu(DictEncoder(same), askubuntu_toy())
    # all scores equal: the BM25 order stays; query 1 finds a at rank 3, query 2 a at 1 and c at 3
    assert tied["map"] == pytest.approx(100 * (1 / 3 + (1 + 2 / 3) / 2) / 2)
    big = {"q1": [1, 0], "a": [0.9, 0.1], "b": [2, 2]}  # a: cosine 0.99, dot 0.9; b: cosine 0.71, dot 2
    data = AskUbuntuData({k: k for k in big}, [AskUbuntuQuery("q1", ("a",), ("b", "a"))], 0)
    assert evaluate_askubuntu(DictEncoder(big), data)["map"] == pytest.approx(100.0)  # cosine: a first
    assert evaluate_askubuntu(DictEncoder(big), data, normalize=False)["map"] == pytest.approx(50.0)  # dot: b


def test_twitterpara_ap_drops_three_votes_and_spearman_keeps_all_pairs():
    cos = [0.9, 0.5, 0.8, 0.1]
    vectors = {"ref": [1, 0]} | {f"t{i}": unit(c) for i, c in enumerate(cos)}
    votes = [5, 3, 0, 4]
    labels = [1, None, 0, 1]
    part = ParaphrasePairs("twitterurl", ["ref"] * 4, [f"t{i}" for i in range(4)], votes, labels)
    encoder = DictEncoder(vectors)
    result = evaluate_twitterpara(encoder, [part])
    # kept pairs by cosine: 0.9 (+), 0.8 (-), 0.1 (+)
    assert result["parts"]["twitterurl"]["ap"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    # ranks of cosine [4, 2, 3, 1] and of votes [4, 2, 1, 3]: rho = 1 - 6 * 8 / (4 * 15)
    assert result["parts"]["twitterurl"]["spearman"] == pytest.approx(20.0)
    assert (result["parts"]["twitterurl"]["n_pairs"], result["parts"]["twitterurl"]["n_dropped"]) == (3, 1)
    assert encoder.calls == [(["ref", "t0", "t1", "t2", "t3"], True)]  # each text once, normalised
    pit = ParaphrasePairs("pit", ["ref", "ref"], ["t0", "t3"], [5, 0], [1, 0])
    both = evaluate_twitterpara(DictEncoder(vectors), [part, pit])
    assert both["ap"] == pytest.approx((100 * (1 + 2 / 3) / 2 + 100.0) / 2)


def test_scidocs_map_counts_judged_documents_without_a_title():
    vectors = {"query": [1, 0], "x": unit(0.9), "y": unit(0.5), "z": unit(0.5), "lonely": [0, 1]}
    part = SciDocsPart(
        "cite",
        titles={"q": "query", "x": "x", "y": "y", "z": "z", "q2": "lonely"},
        queries={"q": ["x", "y", "z"], "q2": []},
        # "untitled" is relevant but has no title: never ranked, still counted in MAP's denominator
        qrels={"q": {"x": 0, "y": 1, "z": 0, "untitled": 1}, "q2": {"untitled": 1}},
    )
    result = evaluate_scidocs(DictEncoder(vectors), [part])
    # q ranks x (0.9), then the tie y/z by id descending: z, y -> y at rank 3, 2 relevant in all
    # q2 has nothing to rank: 0, as pytrec_eval scores an empty run
    assert result["parts"]["cite"]["map"] == pytest.approx(100 * ((1 / 3) / 2 + 0) / 2)
    assert result["parts"]["cite"]["n_queries"] == 2


def test_evaluate_useb_averages_the_tasks_present_and_says_what_is_missing():
    vectors = {"q1": [1, 0], "q2": [0, 1], "a": [1, 0], "b": [0, 1], "c": [0.6, 0.8], "ref": [1, 0]}
    vectors |= {f"t{i}": unit(c) for i, c in enumerate([0.9, 0.5, 0.8, 0.1])}
    twitter = ParaphrasePairs("twitterurl", ["ref"] * 4, ["t0", "t1", "t2", "t3"], [5, 3, 0, 4], [1, None, 0, 1])
    data = UsebData(root=".", askubuntu=askubuntu_toy(), twitterpara=[twitter], tasks_missing=["cqadupstack"])
    result = evaluate_useb(DictEncoder(vectors), data)
    assert result["average_over"] == ["askubuntu", "twitterpara"]
    assert result["tasks_missing"] == ["cqadupstack"]
    assert result["scores"] == {"askubuntu": result["tasks"]["askubuntu"]["map"], "twitterpara": pytest.approx(250 / 3)}
    assert result["average"] == pytest.approx(sum(result["scores"].values()) / 2)
    assert result["tasks"]["twitterpara"]["parts_missing"] == ["pit"]
    assert result["tasks"]["twitterpara"]["metric"] == "ap"
    assert any("pit not found" in n for n in result["notes"])
    assert any("2 of the 4 USEB tasks" in n and "cqadupstack, scidocs" in n for n in result["notes"])


def test_evaluators_refuse_broken_embeddings():
    class Broken(DictEncoder):
        def encode(self, texts, batch_size=32, normalize=False, *, show_progress=False):
            return np.full((len(texts), 2), np.nan, dtype=np.float32)

    with pytest.raises(ValueError, match="NaN"):
        evaluate_askubuntu(Broken({}), askubuntu_toy())


# ---------------------------------------------------------------- real data
def _twitter_url_head(n: int) -> ParaphrasePairs:
    full = read_twitter_url(need_data("useb", "twitterpara", "Twitter_URL_Corpus_test.txt.gz"))
    return ParaphrasePairs("twitterurl", full.sentences1[:n], full.sentences2[:n], full.votes[:n], full.labels[:n])


def test_minilm_on_the_first_300_real_twitter_url_pairs(minilm_path):
    """The first 300 pairs (30 reference tweets, 330 distinct tweets in all): ~10 s on one CPU thread."""
    import sgpt

    part = _twitter_url_head(300)
    result = evaluate_twitterpara(sgpt.load(minilm_path), [part], batch_size=64)["parts"]["twitterurl"]
    assert 50 < result["ap"] < 100 and 40 < result["spearman"] < 100  # far above chance
    assert (result["n_pairs"], result["n_dropped"]) == (278, 22)
    assert result["ap"] == pytest.approx(68.5068, abs=1e-3)
    assert result["spearman"] == pytest.approx(68.0672, abs=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SGPT_USEB_FULL"), reason="~3 min on one CPU thread; set SGPT_USEB_FULL=1")
def test_minilm_on_the_whole_real_twitter_url_file(minilm_path):
    """The figure of the README: 9 000 distinct tweets, ~3 minutes on one CPU thread (opt-in)."""
    import sgpt

    part = read_twitter_url(need_data("useb", "twitterpara", "Twitter_URL_Corpus_test.txt.gz"))
    result = evaluate_twitterpara(sgpt.load(minilm_path), [part], batch_size=64)["parts"]["twitterurl"]
    assert (result["n_pairs"], result["n_dropped"]) == (9334, 786)
    assert result["ap"] == pytest.approx(77.1168, abs=1e-3)
    assert result["spearman"] == pytest.approx(72.6103, abs=1e-3)
