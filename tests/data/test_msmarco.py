"""MS MARCO's files in their own layout: the passage store read by offset, the cross-encoder pickle,
the hard-negatives line cap and the dev split.

:func:`write_msmarco` writes a small MS MARCO folder (the recipe and CLI tests use it too); the
expected filter results of its hard negatives are worked out by hand next to the data.
"""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from sgpt.data import read_collection
from sgpt.data.msmarco import (
    CE_SCORES,
    COLLECTION,
    DEV_QRELS,
    DEV_QUERIES,
    HARD_NEGATIVES,
    TRAIN_QUERIES,
    load_ce_scores,
    read_dev_split,
    read_hard_negatives,
)
from sgpt.data.passages import PassageStore, PassageTexts
from sgpt.data.rows import DataFormatError

PASSAGES = [
    "apples grow on trees in orchards",  # 0
    "rockets fly to the moon and back",  # 1
    "violins have four strings",  # 2
    "glaciers are slow rivers of ice",  # 3
    "bees make honey from nectar",  # 4
    "volcanoes erupt hot lava",  # 5
    "chess is played on a board of 64 squares",  # 6
    "penguins live in the cold south",  # 7
    "pears are sweet fruit",  # 8
    "the sun is a star",  # 9
    "rain falls from clouds",  # 10
    "owls hunt at night",  # 11
]
TRAIN = {
    "100": "where do apples grow",
    "101": "what flies to the moon",
    "102": "how many strings does a violin have",
    "103": "what is a glacier",
    "104": "what do bees make",
    "105": "what comes out of a volcano",
    "106": "a query without positives",
    "107": "where do penguins live",
}
# Systems: "bm25" and "dense" (the first line's keys); "late" appears later and is used only by name.
# Thresholds = min CE of the positives - 3.0; a negative is kept when its CE score <= the threshold.
HARD = [
    # 9 - 3 = 6: bm25 8 (7.0 no), 9 (6.0 yes), 10, 11; dense 9 (already), 5, 6 (5.9) -> [9, 10, 11, 5, 6]
    {"qid": 100, "pos": [0], "neg": {"bm25": [8, 9, 10, 11], "dense": [9, 5, 6]}},
    # 5 - 3 = 2: bm25 2 (1.0 yes), 3 (2.5 no); dense 4 -> [2, 4]; "late" 6 only when asked for
    {"qid": 101, "pos": [1], "neg": {"bm25": [2, 3], "dense": [4], "late": [6]}},
    {"qid": 106, "pos": [], "neg": {"bm25": [0]}},  # no positive: skipped
    {"qid": 107, "pos": [7], "neg": {"bm25": [8]}},  # 3 - 3 = 0: 8 (2.5) too close -> no negative
    {"qid": 102, "pos": [2], "neg": {"dense": [3, 11]}},  # no bm25 on this line; 8 - 3 = 5 -> [3, 11]
    # two positives: min(7, 6) - 3 = 3: bm25 0 (2.0 yes), 1 (3.5 no); dense 4 (3.0 yes) -> [0, 4]
    {"qid": 103, "pos": [3, 10], "neg": {"bm25": [0, 1], "dense": [4]}},
    {"qid": 104, "pos": [4], "neg": {"bm25": [5], "dense": [6]}},  # -> [5, 6]
    {"qid": 105, "pos": [5], "neg": {"bm25": [4, 6], "dense": [7]}},  # -> [4, 6, 7]
]
CE = {
    100: {0: 9.0, 8: 7.0, 9: 6.0, 10: 1.0, 11: 2.0, 5: 0.0, 6: 5.9},
    101: {1: 5.0, 2: 1.0, 3: 2.5, 4: -1.0, 6: 0.0},
    106: {0: 1.0},
    107: {7: 3.0, 8: 2.5},
    102: {2: 8.0, 3: 1.0, 11: 4.0},
    103: {3: 7.0, 10: 6.0, 0: 2.0, 1: 3.5, 4: 3.0},
    104: {4: 5.0, 5: 0.0, 6: 1.0},
    105: {5: 6.0, 4: 1.0, 6: 0.5, 7: 0.0},
}
KEPT = {  # qid -> (positives, negatives) with the defaults (margin 3.0, 5 per system, all systems)
    "100": (["0"], ["9", "10", "11", "5", "6"]),
    "101": (["1"], ["2", "4"]),
    "102": (["2"], ["3", "11"]),
    "103": (["3", "10"], ["0", "4"]),
    "104": (["4"], ["5", "6"]),
    "105": (["5"], ["4", "6", "7"]),
}
DEV = {"200": "which star is the sun", "201": "when do owls hunt", "202": "where does rain come from", "203": "x"}
DEV_JUDGED = "200\t0\t9\t1\n201\t0\t11\t1\n202\t0\t10\t1\n999\t0\t1\t1\n"  # 999: no such dev query


def write_msmarco(folder: Path, *, ce_scores: dict | None = None) -> Path:
    """A small MS MARCO folder, file names and formats as MS MARCO and sentence-transformers ship them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COLLECTION).write_text("".join(f"{i}\t{t}\n" for i, t in enumerate(PASSAGES)), encoding="utf-8")
    (folder / TRAIN_QUERIES).write_text("".join(f"{q}\t{t}\n" for q, t in TRAIN.items()), encoding="utf-8")
    (folder / HARD_NEGATIVES).write_bytes(gzip.compress("".join(json.dumps(h) + "\n" for h in HARD).encode()))
    (folder / CE_SCORES).write_bytes(gzip.compress(pickle.dumps(CE if ce_scores is None else ce_scores)))
    (folder / DEV_QUERIES).write_text("".join(f"{q}\t{t}\n" for q, t in DEV.items()), encoding="utf-8")
    (folder / DEV_QRELS).write_text(DEV_JUDGED, encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------------------ passage store


def test_the_store_reads_what_read_collection_reads(tmp_path):
    text = "0\tThe first passage.\n1\t  second  \r\n\n2\t\n3\tcafé ünïcode\n"  # 2: empty text, dropped
    path = tmp_path / "collection.tsv"
    path.write_bytes(text.encode("utf-8"))
    store = PassageStore(path)
    expected = {pid: doc["text"] for pid, doc in read_collection(path).items()}
    assert dict(store) == expected and list(store) == ["0", "1", "3"]
    assert store["3"] == "café ünïcode" and "2" not in store and "007" not in store and 3 not in store
    assert store.index_bytes == 3 * 20  # offset (8) + length (4) + pid (8): 2 is missing, so pid != row
    contiguous = tmp_path / "contiguous.tsv"
    contiguous.write_text("\ufeff0\ta\n 1 \tb\n")  # a BOM and spaces around a pid change nothing
    assert PassageStore(contiguous).index_bytes == 2 * 12  # pids 0..n-1 (MS MARCO): no pid array
    with pytest.raises(KeyError):
        store["9"]
    again = pickle.loads(pickle.dumps(store))  # another process opens the file itself
    assert dict(again) == expected


def test_other_pids_are_looked_up(tmp_path):
    ints = tmp_path / "ints.tsv"
    ints.write_text("30\tc\n10\ta\n20\tb\n")
    store = PassageStore(ints)
    assert list(store) == ["30", "10", "20"] and store["10"] == "a" and "15" not in store and "40" not in store
    assert store.index_bytes == 3 * 28  # offset, length, pid and the rows in pid order
    names = tmp_path / "names.tsv"
    names.write_text("doc-b\tb\n7\tseven\ndoc-a\ta\n")
    store = PassageStore(names)
    assert dict(store) == {"doc-b": "b", "7": "seven", "doc-a": "a"} and "007" not in store
    huge = tmp_path / "huge.tsv"
    huge.write_text("1\tone\n99999999999999999999\tbig\n")  # beyond int64: the pids stay strings
    assert dict(PassageStore(huge)) == {"1": "one", "99999999999999999999": "big"}


def test_bad_collections_name_the_line(tmp_path):
    for pids in (["5", "6", "5"], ["x", "y", "x"]):
        path = tmp_path / "dup.tsv"
        path.write_text("".join(f"{p}\ttext {i}\n" for i, p in enumerate(pids)))
        with pytest.raises(DataFormatError, match=r"dup.tsv:3: field \"pid\": duplicate id .* \(first on line 1\)"):
            PassageStore(path)
    bad = tmp_path / "bad.tsv"
    bad.write_text("0\tok\n1\ttoo\tmany\n2\tfine\n")
    with pytest.raises(DataFormatError, match=r"bad.tsv:2: expected 2 tab-separated fields \(pid, text\), got 3"):
        PassageStore(bad)
    assert list(PassageStore(bad, skip_bad_rows=True)) == ["0", "2"]
    with pytest.raises(DataFormatError, match="gunzip it first"):
        PassageStore(tmp_path / "collection.tsv.gz")
    with pytest.raises(FileNotFoundError, match="no such file"):
        PassageStore(tmp_path / "none.tsv")
    latin = tmp_path / "latin.tsv"
    latin.write_bytes(b"0\tcaf\xe9\n")
    with pytest.raises(DataFormatError, match=r"field \"text\": passage '0': invalid UTF-8"):
        PassageStore(latin)["0"]


def test_examples_of_passage_ids_become_texts(tmp_path):
    store = PassageStore(write_msmarco(tmp_path / "m") / COLLECTION)

    class TwoEpochs(list):
        epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

    rows = TwoEpochs([("q one", "0", "9"), ("q two", "3", "11")])
    texts = PassageTexts(rows, store)
    assert len(texts) == 2 and list(texts) == [
        ("q one", PASSAGES[0], PASSAGES[9]),
        ("q two", PASSAGES[3], PASSAGES[11]),
    ]
    texts.set_epoch(3)
    assert rows.epoch == 3


# ------------------------------------------------------------------------------- cross-encoder scores


def test_ce_scores_are_read_without_running_code(tmp_path):
    path = tmp_path / CE_SCORES
    path.write_bytes(gzip.compress(pickle.dumps(CE)))
    assert load_ce_scores(path) == CE
    as_numpy = {1: {2: np.float32(0.5), 3: np.float64(-1.0)}}  # scores kept as NumPy scalars pickle as globals
    path.write_bytes(gzip.compress(pickle.dumps(as_numpy)))
    assert load_ce_scores(path) == {1: {2: 0.5, 3: -1.0}}

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path.write_bytes(gzip.compress(pickle.dumps({1: {2: Evil()}})))
    with pytest.raises(DataFormatError, match=r"refusing to load builtins.print"):
        load_ce_scores(path)
    path.write_bytes(gzip.compress(pickle.dumps([1, 2])))
    with pytest.raises(DataFormatError, match=r"expected a dict qid -> \{pid: score\}"):
        load_ce_scores(path)


def test_the_line_cap_counts_lines_read_not_queries_kept(tmp_path):
    folder = write_msmarco(tmp_path / "m")
    read = {n: [h.query_id for h in read_hard_negatives(folder / HARD_NEGATIVES, CE, max_lines=n)] for n in (1, 4, 5)}
    assert read == {1: ["100"], 4: ["100", "101"], 5: ["100", "101", "102"]}  # lines 3 and 4 keep no query
    with pytest.raises(ValueError, match="max_lines must be >= 1, got 0"):
        read_hard_negatives(folder / HARD_NEGATIVES, CE, max_lines=0)


# ---------------------------------------------------------------------------------------------- dev split


def test_dev_split_judged_queries_and_a_capped_corpus(tmp_path):
    folder = write_msmarco(tmp_path / "m")
    store = PassageStore(folder / COLLECTION)
    dev = read_dev_split(folder / DEV_QUERIES, folder / DEV_QRELS, store, corpus_max_size=2)
    assert dev.queries == {q: DEV[q] for q in ("200", "201", "202")}  # 203 has no judgment, 999 no text
    assert dev.qrels == {"200": {"9": 1}, "201": {"11": 1}, "202": {"10": 1}}
    assert list(dev.corpus) == ["0", "1", "9", "10", "11"]  # the first 2, then the judged ones
    assert dev.corpus["9"] == {"title": "", "text": PASSAGES[9]}
    whole = read_dev_split(folder / DEV_QUERIES, folder / DEV_QRELS, store)
    assert list(whole.corpus) == [str(i) for i in range(len(PASSAGES))]
    assert list(read_dev_split(folder / DEV_QUERIES, folder / DEV_QRELS, store, corpus_max_size=50).corpus) == list(
        whole.corpus
    )
