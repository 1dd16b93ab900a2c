"""USEB readers on small files in each official ``data-eval`` layout, their one-line errors, and the real
Twitter-URL file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import need_data
from data_helpers import write

from sgpt.data.rows import DataFormatError
from sgpt.data.useb import (
    read_askubuntu,
    read_cqadupstack,
    read_pit,
    read_scidocs,
    read_twitter_url,
    read_useb,
)

POOL = "1\thow to install\tbody one\n2\tinstall packages \t\n3\tmount a disk\tbody\n4\tapt install\tx\n5\tunused\ty\n"
# query 1: similar 4, candidates 2 3 4 with BM25 scores (3 and 4 tie: file order kept); query 9: no similar
EVAL = "1\t4\t2 3 4\t1.0 5.0 5.0\n9\t\t2 3\t1 2\n"


def askubuntu(root: Path, pool: str = POOL, test: str = EVAL, gz: bool = False) -> Path:
    folder = root / "askubuntu"
    folder.mkdir(parents=True)
    write(folder / ("text_tokenized.txt.gz" if gz else "text_tokenized.txt"), pool)
    write(folder / "test.txt", test)
    write(folder / "dev.txt", "3\t2\t2 4\t0.5 0.1\n")
    return folder


def test_askubuntu_titles_bm25_order_and_queries_without_duplicates(tmp_path):
    data = read_askubuntu(askubuntu(tmp_path, gz=True))
    assert [(q.qid, q.similar, q.candidates) for q in data.queries] == [("1", ("4",), ("3", "4", "2"))]
    assert data.n_without_similar == 1
    assert data.texts == {"1": "how to install", "2": "install packages", "3": "mount a disk", "4": "apt install"}
    dev = read_askubuntu(tmp_path / "askubuntu", "valid")
    assert [(q.qid, q.candidates) for q in dev.queries] == [("3", ("2", "4"))]


@pytest.mark.parametrize(
    ("test", "where", "message"),
    [
        ("1\t4\t2 3\n", "test.txt:1:", "expected 4 tab-separated fields"),
        ("1\t4\t2 3 4\t1 2\n", 'test.txt:1: field "bm25 scores":', "2 scores for 3 candidates"),
        ("1\t4\t2 4\t1 x\n", 'test.txt:1: field "bm25 scores":', "not a number"),
        ("1\t5\t2 3\t1 2\n", 'test.txt:1: field "similar":', "none of the similar ids is among the candidates"),
        ("\n1\t4\t2 4 7\t1 2 3\n", "test.txt:2:", "id '7' is not in text_tokenized.txt"),
    ],
)
def test_askubuntu_bad_rows_name_file_line_and_field(tmp_path, test, where, message):
    folder = askubuntu(tmp_path, test=test)
    with pytest.raises(DataFormatError, match=message) as err:
        read_askubuntu(folder)
    assert str(err.value).startswith(f"{folder}/{where}")


def test_askubuntu_pool_row_without_three_fields(tmp_path):
    folder = askubuntu(tmp_path, pool=POOL.replace("3\tmount a disk\tbody", "3 mount a disk"))
    with pytest.raises(DataFormatError, match=r"text_tokenized.txt:3: expected 3 tab-separated fields"):
        read_askubuntu(folder)


def cqadupstack(root: Path, corpus: dict | None = None, split: dict | None = None) -> Path:
    folder = root / "cqadupstack"
    folder.mkdir(parents=True)
    corpus = corpus or {
        "gis": {"1": "map tiles", "2": " tile server ", "3": "raster", "4": "vector"},
        "tex": {"7": "tables", "8": "tabular"},
    }
    split = split or {"valid": {"gis": {"3": ["4"]}}, "test": {"gis": {"1": ["2", "3"]}, "tex": {"7": ["8"]}}}
    write(folder / "corpus.json", json.dumps(corpus))
    write(folder / "retrieval_split.json.gz", json.dumps(split))
    return folder


def test_cqadupstack_pool_leaves_the_queries_out(tmp_path):
    forums = read_cqadupstack(cqadupstack(tmp_path))
    assert [f.name for f in forums] == ["gis", "tex"]
    gis = forums[0]
    assert gis.queries == {"1": "map tiles"}
    assert gis.docs == {"2": "tile server", "3": "raster", "4": "vector"}  # stripped; 3 is a valid query only
    assert gis.relevant == {"1": ("2", "3")}
    assert [f.name for f in read_cqadupstack(tmp_path / "cqadupstack", "valid")] == ["gis"]


@pytest.mark.parametrize(
    ("corpus", "split", "message"),
    [
        ({"gis": {"1": 5}}, {"test": {"gis": {"1": []}}}, r'corpus.json: field "gis.1": expected a string, got int'),
        ({"gis": {"1": "a"}}, {"test": {"gis": {"9": []}}}, r'field "test.gis.9": query id not in corpus.json'),
        ({"gis": {"1": "a"}}, {"test": {"gis": {"1": "2"}}}, r'field "test.gis.1": expected a list of ids'),
        ({"gis": {"1": "a"}}, {"valid": {}}, r'field "test": expected a JSON object, got nothing'),
    ],
)
def test_cqadupstack_bad_values_name_file_and_key(tmp_path, corpus, split, message):
    with pytest.raises(DataFormatError, match=message):
        read_cqadupstack(cqadupstack(tmp_path, corpus, split))


def test_cqadupstack_invalid_json_names_the_line(tmp_path):
    folder = cqadupstack(tmp_path)
    write(folder / "corpus.json", '{"gis":\n  {"1": "a",}\n}')
    with pytest.raises(DataFormatError, match=r"corpus.json:2: invalid JSON"):
        read_cqadupstack(folder)


TWITTER_URL = (
    "Ref tweet \tA paraphrase\t(5,6)\thttps://t.co/x\n"
    "Ref tweet \tUnsure\t(3,6)\thttps://t.co/x\n"
    "\n"
    "Other ref\tNo\t(2,6)\t\thttps://t.co/y\n"
)


def test_twitter_url_votes_labels_and_blank_lines(tmp_path):
    pairs = read_twitter_url(write(tmp_path / "Twitter_URL_Corpus_test.txt.gz", TWITTER_URL))
    assert pairs.sentences1 == ["Ref tweet", "Ref tweet", "Other ref"]
    assert pairs.sentences2 == ["A paraphrase", "Unsure", "No"]
    assert (pairs.votes, pairs.labels, pairs.name, len(pairs)) == ([5, 3, 2], [1, None, 0], "twitterurl", 3)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a\tb\n", "expected 3 tab-separated fields"),
        ("a\tb\t5\turl\n", r'field "label": expected \(n,6\)'),
        ("a\tb\t(7,6)\turl\n", r'field "label": expected \(n,6\)'),
        ("a\t \t(1,6)\turl\n", 'field "sentence2": empty text'),
    ],
)
def test_twitter_url_bad_rows(tmp_path, line, message):
    path = write(tmp_path / "Twitter_URL_Corpus_test.txt", "x\ty\t(0,6)\tu\n" + line)
    with pytest.raises(DataFormatError, match=f"Twitter_URL_Corpus_test.txt:2:.*{message}"):
        read_twitter_url(path)


def test_pit_expert_labels(tmp_path):
    text = "4\tTopic\tFirst one\tSecond one\t4\tTAGS\tTAGS\n4\tTopic\tThird\tFourth\t3\t\t\n9\tT\tA\tB\t0\t\t\n"
    pairs = read_pit(write(tmp_path / "test.data", text))
    assert (pairs.sentences1, pairs.sentences2) == (["First one", "Third", "A"], ["Second one", "Fourth", "B"])
    assert (pairs.votes, pairs.labels, pairs.name) == ([4, 3, 0], [1, None, 0], "pit")
    with pytest.raises(DataFormatError, match=r'bad.data:1: field "label": expected an integer 0-5'):
        read_pit(write(tmp_path / "bad.data", "4\tTopic\ta\tb\t(1, 4)\n"))


SCIDOCS = {
    "corpus": {"q": {"title": "Query paper"}, "a": {"title": " A "}, "b": {"title": None}, "q2": {"title": ""}},
    "test": {"cite": {"q": {"a": 1, "b": 1, "missing": 0}, "q2": {"a": 1}}, "coview": {"q": {"a": 0}}},
    "valid": {"cite": {"q": {"a": 1}}},
}


def scidocs(root: Path, data: dict = SCIDOCS) -> Path:
    folder = root / "scidocs"
    folder.mkdir(parents=True)
    write(folder / "data.json", json.dumps(data))
    return folder


def test_scidocs_titles_queries_and_qrels(tmp_path):
    parts = read_scidocs(scidocs(tmp_path))
    assert [p.name for p in parts] == ["cite", "coview"]
    cite = parts[0]
    assert cite.queries == {"q": ["a"]}  # q2 has no title; b and "missing" have none either
    assert cite.qrels == {"q": {"a": 1, "b": 1, "missing": 0}, "q2": {"a": 1}}  # judgments all kept
    assert cite.titles == {"q": "Query paper", "a": "A"}
    bad = {**SCIDOCS, "test": {"cite": {"q": {"a": "1"}}}}
    with pytest.raises(DataFormatError, match=r'data.json: field "test.cite.q.a": expected an integer'):
        read_scidocs(scidocs(tmp_path / "bad", bad))


def test_read_useb_finds_the_tasks_present_and_names_the_missing(tmp_path):
    askubuntu(tmp_path)
    (tmp_path / "twitterpara").mkdir()
    write(tmp_path / "twitterpara" / "Twitter_URL_Corpus_test.txt", TWITTER_URL)
    data = read_useb(tmp_path)
    assert data.tasks == ["askubuntu", "twitterpara"]
    assert data.tasks_missing == ["cqadupstack", "scidocs"]
    assert [p.name for p in data.twitterpara or []] == ["twitterurl"]  # no test.data: PIT is missing
    only = read_useb(tmp_path, ["twitterpara"])
    assert (only.tasks, only.tasks_missing, only.askubuntu) == (["twitterpara"], [], None)
    assert read_useb(tmp_path / "twitterpara").tasks == ["twitterpara"]  # a task folder itself


def test_read_useb_errors(tmp_path):
    with pytest.raises(ValueError, match="no USEB task found"):
        read_useb(tmp_path)
    with pytest.raises(ValueError, match="unknown USEB task"):
        read_useb(tmp_path, ["quora"])
    with pytest.raises(FileNotFoundError, match="no such folder"):
        read_useb(tmp_path / "nowhere")
    (tmp_path / "scidocs").mkdir()
    with pytest.raises(DataFormatError, match=r"scidocs: missing data.json \(or data.json.gz\)"):
        read_useb(tmp_path)


def test_real_twitter_url_file():
    pairs = read_twitter_url(need_data("useb", "twitterpara", "Twitter_URL_Corpus_test.txt.gz"))
    assert len(pairs) == 10120
    assert [pairs.votes.count(n) for n in range(7)] == [4665, 1860, 988, 786, 583, 602, 636]  # SOURCES.md
    assert sum(label is not None for label in pairs.labels) == 9334  # n = 3 dropped, as in the paper
    assert sum(label == 1 for label in pairs.labels) == 583 + 602 + 636
    assert len(set(pairs.sentences1)) == 771
