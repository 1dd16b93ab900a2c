"""BM25 baseline (bm25s + English stemming) and hard-negative mining."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from sgpt.data import RetrievalData
from sgpt.evaluation.beir import evaluate_retrieval
from sgpt.search.bm25 import BM25Retriever
from sgpt.search.mining import mine_negatives, write_negatives
from sgpt.utils.io import atomic_dir, umask, write_json

CORPUS = {
    "cats": {"title": "Cats", "text": "Cats sleep most of the day and purr when they are happy."},
    "dogs": {"title": "Dogs", "text": "Dogs bark at strangers and love long walks."},
    "rain": {"title": "", "text": "Heavy rain flooded the streets of the old town."},
    "code": {"title": "Python", "text": "Python programs are run by an interpreter."},
}


def test_the_obvious_document_ranks_first_with_stemming():
    bm25 = BM25Retriever(CORPUS)
    got = bm25.search({"q1": "why is my dog barking", "q2": "sleeping cat", "q3": "running a program"}, k=4)
    assert next(iter(got["q1"])) == "dogs"  # dog ~ Dogs, barking ~ bark
    assert next(iter(got["q2"])) == "cats"  # sleeping ~ sleep, cat ~ Cats (title and text)
    assert list(got["q3"]) == ["code"]  # only one document shares a term (run, program)
    assert all(isinstance(s, float) and s > 0 for hits in got.values() for s in hits.values())
    scores = list(got["q1"].values())
    assert scores == sorted(scores, reverse=True)


def test_stop_word_or_unknown_queries_get_no_hits_and_k_is_respected():
    bm25 = BM25Retriever({d: doc for d, doc in CORPUS.items()})
    got = bm25.search({"stop": "the of and", "unknown": "zebra", "cats": "the day"}, k=1)
    assert got == {"stop": {}, "unknown": {}, "cats": {}}  # "cats" would only match itself: a self-hit
    assert list(bm25.search({"q": "the day"}, k=1)) == ["q"]
    assert list(bm25.search({"q": "the day"}, k=1)["q"]) == ["cats"]
    assert list(bm25.search({"cats": "the day"}, k=1, remove_self_hits=False)["cats"]) == ["cats"]
    with pytest.raises(ValueError, match="k must be >= 1"):
        bm25.search({"q": "x"}, k=0)
    with pytest.raises(ValueError, match="corpus is empty"):
        BM25Retriever({})


def test_plain_string_corpus_and_scores_through_the_metric_code():
    bm25 = BM25Retriever({"a": "apples and pears", "b": "pears only", "c": "nothing here"})
    data = RetrievalData(
        {
            "a": {"title": "", "text": "apples and pears"},
            "b": {"title": "", "text": "pears only"},
            "c": {"title": "", "text": "nothing here"},
        },
        {"q": "apple"},
        {"q": {"a": 1}},
        "fruit",
    )
    assert list(bm25.search({"q": "apple"}, k=3)["q"]) == ["a"]
    assert evaluate_retrieval(bm25, data)["ndcg@10"] == 1.0


def test_mining_skips_positives_and_self_hits_and_keeps_rank_order(tmp_path):
    corpus = {
        "d1": {"title": "", "text": "red apple pie"},
        "d2": {"title": "", "text": "green apple"},
        "d3": {"title": "", "text": "apple apple juice"},
        "d4": {"title": "", "text": "apple tree"},
        "q1": {"title": "", "text": "apple"},
    }
    data = RetrievalData(corpus, {"q1": "apple", "q2": "juice"}, {"q1": {"d3": 1, "d2": 0}, "q2": {"d3": 2}})
    bm25 = BM25Retriever(corpus)
    ranked = list(bm25.search({"q1": "apple"}, k=10)["q1"])
    rows = mine_negatives(data, bm25, k=10)
    assert rows[0]["query_id"] == "q1" and rows[0]["pos"] == ["d3"]
    # positives (d3) and the self-hit (doc "q1") are skipped; d2, judged 0, may be a negative
    assert rows[0]["neg"] == [d for d in ranked if d != "d3"] and "q1" not in rows[0]["neg"]
    assert set(rows[0]["neg"]) == {"d1", "d2", "d4"}
    assert rows[1] == {"query_id": "q2", "pos": ["d3"], "neg": []}  # only d3 contains "juice"
    assert mine_negatives(data, bm25, k=10, num_negatives=1)[0]["neg"] == rows[0]["neg"][:1]
    out = write_negatives(tmp_path / "neg.jsonl", rows)
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows


def test_mining_with_a_bi_encoder_uses_exact_search():
    vectors = {"apple": [1, 0], "red apple pie": [0.9, 0.1], "green apple": [0.8, 0.2], "apple tree": [0, 1]}

    class Table:
        def encode_queries(self, texts, batch_size=32, **kw):
            return np.array([vectors[t] for t in texts], dtype=np.float32)

        encode_documents = encode_queries

    corpus = {
        d: {"title": "", "text": t} for d, t in [("d1", "red apple pie"), ("d2", "green apple"), ("d4", "apple tree")]
    }
    data = RetrievalData(corpus, {"q1": "apple"}, {"q1": {"d1": 1}})
    assert mine_negatives(data, Table(), k=3)[0]["neg"] == ["d2", "d4"]


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_written_files_get_ordinary_permissions(tmp_path, umask_027):
    out = write_negatives(tmp_path / "neg.jsonl", [{"query_id": "q", "pos": [], "neg": []}])
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # 0o666 less the umask, not mkstemp's 0o600
    write_json(tmp_path / "r.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o640
    with atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "x").write_text("x")
        (tmp / "weights").write_text("w")
        os.chmod(tmp / "weights", 0o600)  # as transformers' save_pretrained leaves model.safetensors
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o750  # not mkdtemp's 0o700
    assert stat.S_IMODE((tmp_path / "folder" / "weights").stat().st_mode) == 0o640
    assert umask() == 0o027 and os.umask(0o027) == 0o027  # reading it did not change it


def test_bm25s_debug_lines_stay_hidden_after_its_import():
    """bm25s sets its logger to DEBUG when imported; the level set before (here WARNING) is kept."""
    code = (
        "import logging; logging.getLogger('bm25s').setLevel(logging.WARNING)\n"
        "from sgpt.search.bm25 import BM25Retriever\n"
        "BM25Retriever({'a': 'cats sleep', 'b': 'dogs bark'}).search({'q': 'cats'}, 1)\n"
        "print(logging.getLogger('bm25s').level)"
    )
    # the timeout only turns a hang into a failure: the run takes ~9 s on 2 shared cores, so it is set far
    # above anything a busy machine needs (a tight limit would make the test depend on the machine's load)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    assert done.stdout.strip() == str(logging.WARNING)
    assert "Building index" not in done.stderr and "BM25S" not in done.stderr  # no log line, no progress bar
