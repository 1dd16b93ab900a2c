"""Retrieval readers: BEIR corpus/queries/qrels, MS MARCO files, hard negatives, training examples."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import need_data
from data_helpers import write

from sgpt.data import (
    DataFormatError,
    HardNegatives,
    RetrievalExample,
    beir_examples,
    document_text,
    load_beir,
    read_collection,
    read_corpus,
    read_hard_negatives,
    read_mined_negatives,
    read_qrels,
    read_queries,
    read_retrieval_examples,
    read_tsv_queries,
)


def jsonl(*rows: dict | str) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def beir_folder(
    root: Path,
    *,
    corpus: str | None = None,
    queries: str | None = None,
    qrels: str | None = None,
    split: str = "test",
    gz: bool = False,
) -> Path:
    """A small BEIR folder: 4 docs (d3 title-less, d4 empty text), 3 queries, qrels for q1 and q2."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    ext = ".jsonl.gz" if gz else ".jsonl"
    write(
        root / f"corpus{ext}",
        corpus
        if corpus is not None
        else jsonl(
            {"_id": "d1", "title": "Cats", "text": "Cats sleep a lot."},
            {"_id": "d2", "title": "Dogs", "text": " Dogs bark. ", "metadata": {}},
            {"_id": "d3", "text": "Birds fly south."},
            {"_id": "d4", "title": "Empty", "text": "  "},
        ),
    )
    write(
        root / f"queries{ext}",
        queries
        if queries is not None
        else jsonl(
            {"_id": "q1", "text": "why do cats sleep"},
            {"_id": "q2", "text": "barking dogs"},
            {"_id": "q3", "text": "unjudged query"},
        ),
    )
    write(
        root / "qrels" / f"{split}.tsv",
        qrels if qrels is not None else "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t0\nq2\td2\t1\n",
    )
    return root


# ----------------------------------------------------------------------------------- corpus and queries


def test_corpus_reads_titles_strips_text_and_drops_empty_docs(tmp_path, caplog):
    folder = beir_folder(tmp_path / "set", gz=True)
    with caplog.at_level(logging.WARNING, logger="sgpt.data"):
        corpus = read_corpus(folder / "corpus.jsonl.gz")
    assert corpus == {
        "d1": {"title": "Cats", "text": "Cats sleep a lot."},
        "d2": {"title": "Dogs", "text": "Dogs bark."},
        "d3": {"title": "", "text": "Birds fly south."},
    }
    assert "dropped 1 documents with empty text" in caplog.text


def test_document_text_is_title_space_text_or_just_text():
    assert document_text({"title": "Cats", "text": "Cats sleep."}) == "Cats Cats sleep."
    assert document_text({"title": "", "text": " Birds fly. "}) == "Birds fly."
    assert document_text({"title": None, "text": "Robust04"}) == "Robust04"
    assert document_text({"text": "no title key"}) == "no title key"


def test_integer_ids_become_strings_and_null_title_is_empty(tmp_path):
    path = write(tmp_path / "corpus.jsonl", jsonl({"_id": 7, "title": None, "text": "seven"}))
    assert read_corpus(path) == {"7": {"title": "", "text": "seven"}}


@pytest.mark.parametrize(
    "row, field, message",
    [
        ({"title": "t", "text": "x"}, "_id", "missing field"),
        ({"_id": "d9", "title": "t"}, "text", "missing field"),
        ({"_id": " ", "text": "x"}, "_id", "empty text"),
        ({"_id": 1.5, "text": "x"}, "_id", "expected a string or integer id, got float"),
        ({"_id": "d9", "text": 3}, "text", "expected a string, got int"),
        ({"_id": "d9", "title": ["t"], "text": "x"}, "title", "expected a string, got list"),
    ],
)
def test_bad_corpus_row_names_file_line_and_field(tmp_path, row, field, message):
    path = write(tmp_path / "corpus.jsonl", jsonl({"_id": "d1", "text": "ok"}, row))
    with pytest.raises(DataFormatError) as info:
        read_corpus(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 2, field)
    assert message in str(info.value) and str(info.value).startswith(f'{path}:2: field "{field}":')


def test_duplicate_doc_id_names_both_lines(tmp_path):
    path = write(
        tmp_path / "corpus.jsonl",
        jsonl({"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}, {"_id": "a", "text": "z"}),
    )
    with pytest.raises(DataFormatError, match=r"corpus.jsonl:3: field \"_id\": duplicate id 'a' \(first on line 1\)"):
        read_corpus(path)


def test_invalid_json_and_skip_bad_rows_counts(tmp_path, caplog):
    path = write(
        tmp_path / "corpus.jsonl",
        jsonl({"_id": "a", "text": "x"}, "{not json", {"_id": "a", "text": "y"}, {"_id": "b", "text": "z"}),
    )
    with pytest.raises(DataFormatError, match="corpus.jsonl:2: invalid JSON"):
        read_corpus(path)
    with caplog.at_level(logging.WARNING, logger="sgpt.data"):
        assert list(read_corpus(path, skip_bad_rows=True)) == ["a", "b"]
    assert "skipped 2 bad rows" in caplog.text


def test_queries_reject_empty_text_and_duplicates(tmp_path):
    ok = write(tmp_path / "queries.jsonl.gz", jsonl({"_id": "q1", "text": " a? ", "metadata": {"x": 1}}))
    assert read_queries(ok) == {"q1": "a?"}
    empty = write(tmp_path / "q2.jsonl", jsonl({"_id": "q1", "text": "a"}, {"_id": "q2", "text": " "}))
    with pytest.raises(DataFormatError, match=r"q2.jsonl:2: field \"text\": empty text"):
        read_queries(empty)
    dup = write(tmp_path / "q3.jsonl", jsonl({"_id": "q1", "text": "a"}, {"_id": "q1", "text": "b"}))
    with pytest.raises(DataFormatError, match=r"q3.jsonl:2: field \"_id\": duplicate id 'q1' \(first on line 1\)"):
        read_queries(dup)


# ------------------------------------------------------------------------------------------------ qrels


def test_qrels_with_and_without_header_and_trec_four_columns(tmp_path):
    expected = {"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}}
    header = write(tmp_path / "h.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t0\nq2\td2\t1\n")
    bare = write(tmp_path / "b.tsv.gz", "q1\td1\t2\nq1\td3\t0\n\nq2\td2\t1\n")
    trec = write(tmp_path / "qrels.dev.tsv", "q1 0 d1 2\nq1 0 d3 0\nq2\t0\td2\t1\n")
    for path in (header, bare, trec):
        assert read_qrels(path) == expected


@pytest.mark.parametrize(
    "content, line, field, message",
    [
        ("q1\td1\t1\nq1\td2\tyes\n", 2, "score", "not an integer: 'yes'"),
        ("q1\td1\t1\nq1\td2\t1.5\n", 2, "score", "not an integer: '1.5'"),
        ("q1\td1\t1\nq1\td2\n", 2, None, "expected 3 columns, got 2"),
        ("q1\td1\t1\nq1\t0\td2\t1\n", 2, None, "expected 3 columns, got 4"),
        ("q1\td1\t1\nq2\td1\t1\nq1\td1\t0\n", 3, "corpus-id", "judges doc 'd1' again (first on line 1)"),
    ],
)
def test_bad_qrels_row_names_file_line_and_field(tmp_path, content, line, field, message):
    path = write(tmp_path / "test.tsv", content)
    with pytest.raises(DataFormatError) as info:
        read_qrels(path)
    assert (info.value.line, info.value.field) == (line, field)
    assert message in str(info.value) and str(info.value).startswith(f"{path}:{line}:")


def test_qrels_header_only_is_an_error(tmp_path):
    with pytest.raises(DataFormatError, match="no judgments"):
        read_qrels(write(tmp_path / "test.tsv", "query-id\tcorpus-id\tscore\n"))


# ------------------------------------------------------------------------------------------------- load_beir


def test_load_beir_keeps_only_judged_queries(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="sgpt.data"):
        data = load_beir(beir_folder(tmp_path / "toy"), "test")
    assert data.name == "toy"
    assert data.queries == {"q1": "why do cats sleep", "q2": "barking dogs"}  # q3 has no judgments
    assert data.qrels == {"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}}
    assert list(data.corpus) == ["d1", "d2", "d3"]


def test_judgment_of_an_empty_doc_is_kept_as_beir_does(tmp_path, caplog):
    folder = beir_folder(tmp_path / "toy", qrels="q1\td1\t1\nq1\td4\t1\n")
    with caplog.at_level(logging.WARNING, logger="sgpt.data"):
        data = load_beir(folder, "test")
    assert data.qrels == {"q1": {"d1": 1, "d4": 1}}  # d4 (empty text) cannot be found: recall@k <= 0.5
    assert "1 judgment names a document dropped for empty text" in caplog.text


def test_unknown_ids_in_qrels_raise_or_are_removed_with_a_count(tmp_path, caplog):
    folder = beir_folder(tmp_path / "toy", qrels="q1\td1\t1\nq1\tnope\t1\nq9\td2\t1\nq2\tgone\t1\n")
    with pytest.raises(DataFormatError) as info:
        load_beir(folder, "test")
    # the line of the first offending judgment (q1 nope, line 2), then every count
    assert str(info.value) == (
        f'{folder / "qrels" / "test.tsv"}:2: field "corpus-id": 1 judgment names a query id '
        "not in the queries file (e.g. 'q9'); 2 judgments name doc ids not in the corpus "
        "(e.g. 'nope', 'gone')"
    )
    assert (info.value.line, info.value.field) == (2, "corpus-id")
    with caplog.at_level(logging.WARNING, logger="sgpt.data"):
        data = load_beir(folder, "test", skip_bad_rows=True)
    assert data.qrels == {"q1": {"d1": 1}}  # q2 lost its only judgment, q9 is unknown
    assert list(data.queries) == ["q1"]
    assert (
        "removed 1 judgment naming a query id not in the queries file (e.g. 'q9'); 2 judgments naming doc ids "
        "not in the corpus (e.g. 'nope', 'gone')"
    ) in caplog.text


def test_unknown_query_id_first_names_its_line_and_field(tmp_path, caplog):
    folder = beir_folder(tmp_path / "toy", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq7\td2\t1\nq7\td1\t0\n")
    with pytest.raises(DataFormatError) as info:
        load_beir(folder, "test")
    assert str(info.value) == (
        f'{folder / "qrels" / "test.tsv"}:3: field "query-id": 2 judgments name query ids '
        "not in the queries file (e.g. 'q7')"
    )
    one = beir_folder(tmp_path / "one", qrels="q1\td1\t1\nq1\tzz\t1\n")
    with caplog.at_level(logging.WARNING, logger="sgpt.data"):
        load_beir(one, "test", skip_bad_rows=True)
    assert "removed 1 judgment naming a doc id not in the corpus (e.g. 'zz')" in caplog.text


def test_missing_files_and_splits_are_named(tmp_path):
    folder = beir_folder(tmp_path / "toy")
    with pytest.raises(FileNotFoundError, match=r"no dev.tsv or dev.tsv.gz for split 'dev' \(splits present: test\)"):
        load_beir(folder, "dev")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="no queries.jsonl or queries.jsonl.gz"):
        load_beir(folder, "test")
    with pytest.raises(FileNotFoundError, match="no such BEIR folder"):
        load_beir(tmp_path / "absent")


def test_a_missing_file_says_no_such_file(tmp_path):
    folder = beir_folder(tmp_path / "toy", split="train")
    with pytest.raises(FileNotFoundError) as info:
        beir_examples(folder, "train", tmp_path / "nosuch.jsonl")
    assert str(info.value) == f"no such file: {tmp_path / 'nosuch.jsonl'}"
    with pytest.raises(FileNotFoundError, match=r"^no such file: .*absent\.jsonl$"):
        read_corpus(tmp_path / "absent.jsonl")


def test_invalid_json_message_names_the_column_once(tmp_path):
    path = write(tmp_path / "corpus.jsonl", jsonl({"_id": "a", "text": "x"}, '{"_id": "b", "text": "broken'))
    with pytest.raises(DataFormatError) as info:
        read_corpus(path)
    assert str(info.value) == f"{path}:2: invalid JSON (Unterminated string starting at column 22)"
    path = write(tmp_path / "q.jsonl", '{"_id": }\n')
    with pytest.raises(DataFormatError) as info:
        read_queries(path)
    assert str(info.value) == f"{path}:1: invalid JSON (Expecting value at column 9)"


# ------------------------------------------------------------------------------------------------- MS MARCO


def test_msmarco_collection_and_queries(tmp_path):
    coll = write(tmp_path / "collection.tsv", "0\tThe first passage.\n1\t  second  \n")
    assert read_collection(coll) == {
        "0": {"title": "", "text": "The first passage."},
        "1": {"title": "", "text": "second"},
    }
    queries = write(tmp_path / "queries.train.tsv", "121352\tdefine extreme\n634306\twhat is a chaff\n")
    assert read_tsv_queries(queries) == {"121352": "define extreme", "634306": "what is a chaff"}
    bad = write(tmp_path / "queries.dev.tsv", "1\tok\n2\ttoo\tmany\n")
    with pytest.raises(DataFormatError, match=r"queries.dev.tsv:2: expected 2 tab-separated fields \(qid, text\)"):
        read_tsv_queries(bad)
    dup = write(tmp_path / "c2.tsv", "5\ta\n5\tb\n")
    with pytest.raises(DataFormatError, match=r"c2.tsv:2: field \"pid\": duplicate id '5'"):
        read_collection(dup)


# Hand-made hard-negative file. CE scores: query 1 positives 10 (5.0) and 11 (4.0) -> threshold
# min(5.0, 4.0) - 3.0 = 1.0. With 2 negatives per system:
#   bm25: 20 (0.5 <= 1.0, added 1), 21 (1.0 <= 1.0, added 2 -> stop; 22 never looked at)
#   ce:   21 already added (not counted), 24 (0.0, added 1), 25 (0.9, added 2)   -> [20, 21, 24, 25]
# query 2 has no positives: skipped. Query 3: threshold 2.0 - 3.0 = -1.0; 31 (1.5) is too close to the
# positive; system "other" is not among the first line's systems, so 32 (-5) is never used -> no negative.
# Query "4": "bm25" absent on its line; ce: 41 (-1.0) <= 3.0 - 3.0 = 0.0 -> [41].
HARD_NEGATIVES = [
    {"qid": 1, "pos": [10, 11], "neg": {"bm25": [20, 21, 22, 23], "ce": [21, 24, 25]}},
    {"qid": 2, "pos": [], "neg": {"bm25": [20]}},
    {"qid": 3, "pos": [30], "neg": {"bm25": [31], "other": [32]}},
    {"qid": "4", "pos": [40], "neg": {"ce": [41]}},
]
CE_SCORES = {
    1: {10: 5.0, 11: 4.0, 20: 0.5, 21: 1.0, 22: 1.1, 23: -2.0, 24: 0.0, 25: 0.9},
    3: {30: 2.0, 31: 1.5, 32: -5.0},
    4: {40: 3.0, 41: -1.0},
}


def test_hard_negative_margin_filter_on_a_hand_made_file(tmp_path):
    path = write(tmp_path / "msmarco-hard-negatives.jsonl.gz", jsonl(*HARD_NEGATIVES))
    got = read_hard_negatives(path, CE_SCORES, num_negs_per_system=2)
    assert got == [HardNegatives("1", ["10", "11"], ["20", "21", "24", "25"]), HardNegatives("4", ["40"], ["41"])]
    # default 5 per system: bm25 also reaches 23 (-2.0); 22 (1.1) stays above the threshold
    assert read_hard_negatives(path, CE_SCORES)[0].negatives == ["20", "21", "23", "24", "25"]
    everything = read_hard_negatives(path, CE_SCORES, num_negs_per_system=2, use_all_queries=True)
    assert [h.query_id for h in everything] == ["1", "3", "4"] and everything[1].negatives == []
    only_other = read_hard_negatives(path, CE_SCORES, negs_to_use=["other"])
    assert only_other == [HardNegatives("3", ["30"], ["32"])]
    assert len(read_hard_negatives(path, CE_SCORES, max_queries=1)) == 1
    # a larger margin lowers the threshold to 4.0 - 4.5 = -0.5: only 23 (-2.0) stays; 24 (0.0) is too close
    assert read_hard_negatives(path, CE_SCORES, ce_score_margin=4.5)[0].negatives == ["23"]


def test_hard_negative_without_ce_score_names_line_and_field(tmp_path):
    path = write(tmp_path / "hn.jsonl", jsonl(*HARD_NEGATIVES))
    scores = {**CE_SCORES, 4: {40: 3.0}}
    with pytest.raises(DataFormatError, match=r"hn.jsonl:4: field \"neg\": no cross-encoder score for query '4'"):
        read_hard_negatives(path, scores)
    bad = write(tmp_path / "hn2.jsonl", jsonl({"qid": 1, "pos": [10]}))
    with pytest.raises(DataFormatError, match=r"hn2.jsonl:1: field \"neg\": missing field"):
        read_hard_negatives(bad, CE_SCORES)


# ---------------------------------------------------------------------------------------- training examples


def test_generic_training_jsonl(tmp_path):
    path = write(
        tmp_path / "train.jsonl",
        jsonl({"query": " q ", "pos": ["p1", "p2"], "neg": ["n1"]}, {"query": "q2", "pos": "single"}),
    )
    assert read_retrieval_examples(path) == [
        RetrievalExample("q", ["p1", "p2"], ["n1"]),
        RetrievalExample("q2", ["single"], []),
    ]


@pytest.mark.parametrize(
    "row, field, message",
    [
        ({"pos": ["p"]}, "query", "missing field"),
        ({"query": "q"}, "pos", "missing field"),
        ({"query": "q", "pos": []}, "pos", "no positives"),
        ({"query": "q", "pos": ["p", " "]}, "pos[1]", "empty text"),
        ({"query": "q", "pos": ["p"], "neg": {"a": 1}}, "neg", "expected a list of strings, got dict"),
    ],
)
def test_bad_training_row_names_file_line_and_field(tmp_path, row, field, message):
    path = write(tmp_path / "train.jsonl", jsonl({"query": "ok", "pos": ["ok"]}, row))
    with pytest.raises(DataFormatError) as info:
        read_retrieval_examples(path)
    assert (info.value.line, info.value.field) == (2, field) and message in str(info.value)


def test_beir_examples_from_mined_negatives(tmp_path, caplog):
    folder = beir_folder(tmp_path / "toy", split="train")
    mined = write(tmp_path / "neg.jsonl", jsonl({"query_id": "q1", "pos": ["d1"], "neg": ["d3", "d2"]}))
    with caplog.at_level(logging.WARNING, logger="sgpt.data"):
        examples = beir_examples(folder, "train", mined, num_negatives=1)
    assert examples == [
        RetrievalExample("why do cats sleep", ["Cats Cats sleep a lot."], ["Birds fly south."], "q1"),
        RetrievalExample("barking dogs", ["Dogs Dogs bark."], [], "q2"),
    ]
    assert "1 of 2 queries have no mined negatives" in caplog.text
    assert read_mined_negatives(mined) == {"q1": ["d3", "d2"]}
    assert beir_examples(folder, "train")[0].negatives == []


def test_mined_negatives_with_unknown_ids_name_the_line(tmp_path):
    folder = beir_folder(tmp_path / "toy", split="train")
    bad_doc = write(tmp_path / "n1.jsonl", jsonl({"query_id": "q1", "neg": ["d2"]}, {"query_id": "q2", "neg": ["x"]}))
    with pytest.raises(DataFormatError, match=r"n1.jsonl:2: field \"neg\": doc ids not in the corpus: 'x'"):
        beir_examples(folder, "train", bad_doc)
    bad_query = write(tmp_path / "n2.jsonl", jsonl({"query_id": "q3", "neg": ["d2"]}))
    with pytest.raises(DataFormatError, match=r"n2.jsonl:1: field \"query_id\": query 'q3' is not judged"):
        beir_examples(folder, "train", bad_query)
    bad_list = write(tmp_path / "n3.jsonl", jsonl({"query_id": "q1", "neg": ["d2", None]}))
    with pytest.raises(DataFormatError, match=r"n3.jsonl:1: field \"neg\[1\]\": expected a string or integer id"):
        read_mined_negatives(bad_list)


# ------------------------------------------------------------------------------------------------ real data


def test_scifact_test_split_sizes():
    data = load_beir(need_data("beir", "scifact"), "test")
    assert (len(data.queries), sum(len(d) for d in data.qrels.values()), len(data.corpus)) == (300, 339, 5183)
    assert {s for d in data.qrels.values() for s in d.values()} == {1}


def test_dl19_subset_qrels_without_header_and_dbpedia_graded():
    dl19 = load_beir(need_data("msmarco", "dl19-subset"), "test")
    assert (len(dl19.queries), sum(len(d) for d in dl19.qrels.values()), len(dl19.corpus)) == (43, 4102, 5000)
    assert {s for d in dl19.qrels.values() for s in d.values()} == {1, 2, 3}
    dbpedia = load_beir(need_data("beir", "dbpedia-entity-subset"), "test")
    assert (len(dbpedia.queries), sum(len(d) for d in dbpedia.qrels.values())) == (40, 3709)
    assert {s for d in dbpedia.qrels.values() for s in d.values()} == {0, 1, 2}
