"""Exact dense search: running top-k against a full sort, NaN scores, self-hit removal, input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgpt.search.exact import exact_search, remove_self_hits


def _reference_search(q: np.ndarray, d: np.ndarray, k: int) -> list[list[int]]:
    """Full sort by dot score descending, ties by corpus position."""
    scores = q @ d.T
    return [sorted(range(d.shape[0]), key=lambda j: (-row[j], j))[:k] for row in scores]


def test_running_top_k_across_chunks_equals_a_full_sort_with_ties():
    rng = np.random.default_rng(0)
    q = rng.integers(-2, 3, size=(7, 4)).astype(np.float32)  # small integers: many exactly tied scores
    d = rng.integers(-2, 3, size=(53, 4)).astype(np.float32)
    doc_ids = [f"d{j}" for j in range(53)]
    qids = [f"q{i}" for i in range(7)]
    expected = _reference_search(q, d, 10)
    for chunk in (1, 3, 10, 52, 1000):
        for q_chunk in (1, 4, 1024):
            got = exact_search(q, d, doc_ids, qids, 10, score="dot", chunk_size=chunk, query_chunk_size=q_chunk)
            assert [[int(x[1:]) for x in got[qid]] for qid in qids] == expected, (chunk, q_chunk)
    hits = exact_search(q, d, doc_ids, qids, 10, score="dot")["q0"]
    assert list(hits.values()) == [float(q[0] @ d[int(x[1:])]) for x in hits]


def test_cosine_scores_nan_and_small_corpus():
    q = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    d = torch.tensor([[2.0, 0.0], [1.0, 1.0], [float("nan"), 1.0]])
    got = exact_search(q, d, ["a", "b", "c"], ["q1", "q2"], k=10, score="cos")
    assert list(got["q1"]) == ["a", "b", "c"]  # k > n: every document
    assert got["q1"]["a"] == pytest.approx(1.0) and got["q1"]["b"] == pytest.approx(math.sqrt(0.5))
    assert got["q1"]["c"] == -1.0  # NaN -> -1
    assert got["q2"] == {"a": 0.0, "b": 0.0, "c": -1.0}  # zero query vector: cosine 0, never NaN


def test_self_hits_are_removed_and_k_hits_remain():
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    d = np.array([[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.0, 1.0]], dtype=np.float32)
    ids = ["same", "b", "c", "d"]
    assert list(exact_search(q, d, ids, ["same"], k=2)["same"]) == ["b", "c"]
    assert list(exact_search(q, d, ids, ["same"], k=2, remove_self_hits=False)["same"]) == ["same", "b"]
    assert remove_self_hits({"x": {"x": 1.0, "y": 0.5}}) == {"x": {"y": 0.5}}


def test_exact_search_rejects_bad_input():
    q, d = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="dimensions differ"):
        exact_search(q, np.ones((4, 2), np.float32), list("abcd"), ["q1", "q2"], 1)
    with pytest.raises(ValueError, match="doc_ids has 3 ids but doc_emb has 4 rows"):
        exact_search(q, d, list("abc"), ["q1", "q2"], 1)
    with pytest.raises(ValueError, match="query_ids: id 'q1' appears more than once"):
        exact_search(q, d, list("abcd"), ["q1", "q1"], 1)
    with pytest.raises(ValueError, match="score must be 'cos' or 'dot'"):
        exact_search(q, d, list("abcd"), ["q1", "q2"], 1, score="l2")
    with pytest.raises(ValueError, match="must be >= 1"):
        exact_search(q, d, list("abcd"), ["q1", "q2"], 0)
