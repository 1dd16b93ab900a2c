"""Tests for sgpt.data.training_files (triplets, Hub, dispatcher) and sgpt.data.rows (errors, gzip, UTF-8)."""

from __future__ import annotations

import gzip
import logging
import pickle
import sys
import types

import pytest
from conftest import need_data
from data_helpers import write

from sgpt.data import DataFormatError, NLIPair, read_training_data, read_triplets
from sgpt.data.rows import iter_lines
from sgpt.data.training_files import hub_rows_to_examples, load_hub_dataset

# ------------------------------------------------------------------------------------------- DataFormatError


def test_error_message_and_attributes():
    err = DataFormatError("d/nli.tsv", 418, "label", "unknown label 'entailed' (expected one of a, b)")
    assert str(err) == "d/nli.tsv:418: field \"label\": unknown label 'entailed' (expected one of a, b)"
    assert (err.path, err.line, err.field) == ("d/nli.tsv", 418, "label")
    assert isinstance(err, ValueError)
    assert str(DataFormatError("f.txt", None, None, "file is empty")) == "f.txt: file is empty"
    assert str(DataFormatError("f.txt", 3, None, "bad")) == "f.txt:3: bad"


def test_error_pickles():
    err = pickle.loads(pickle.dumps(DataFormatError("f", 2, "x", "msg")))
    assert (err.path, err.line, err.field, str(err)) == ("f", 2, "x", 'f:2: field "x": msg')


# ------------------------------------------------------------------------------------------- line reading


def test_iter_lines_gzip_crlf_bom(tmp_path):
    plain = write(tmp_path / "a.txt", "\ufeffone\r\ntwo\r\n\nthree")
    packed = write(tmp_path / "a.txt.gz", "\ufeffone\r\ntwo\r\n\nthree")
    expected = [(1, "one"), (2, "two"), (3, ""), (4, "three")]
    assert list(iter_lines(plain)) == expected
    assert list(iter_lines(packed)) == expected


def test_gzip_detected_by_magic_bytes(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes(gzip.compress(b"a\tb\n"))
    assert read_triplets(path) == [("a", "b")]


def test_unreadable_gzip(tmp_path):
    path = tmp_path / "t.tsv.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(DataFormatError, match="unreadable gzip") as info:
        read_triplets(path)
    assert info.value.line == 1


def test_truncated_gzip_names_line(tmp_path):
    data = gzip.compress("".join(f"anchor {i}\tpositive {i}\n" for i in range(5000)).encode())
    path = tmp_path / "t.tsv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="unreadable gzip") as info:
        read_triplets(path)
    assert info.value.line is not None and info.value.line > 1


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_file(tmp_path, content):
    with pytest.raises(DataFormatError, match="file is empty") as info:
        read_triplets(write(tmp_path / "t.tsv", content))
    assert info.value.line is None


def test_non_utf8_reports_line_and_column(tmp_path):
    path = write(tmp_path / "t.tsv", b"a\tb\nc\tcaf\xe9\n")
    with pytest.raises(DataFormatError) as info:
        read_triplets(path)
    assert (info.value.line, info.value.field) == (2, "column 2")
    assert "not valid UTF-8 (byte 0xe9 at column 4)" in str(info.value)


# ------------------------------------------------------------------------------------------- read_triplets


def test_jsonl_triplets_both_key_sets(tmp_path):
    path = write(
        tmp_path / "t.jsonl",
        '{"anchor": " a ", "positive": "p", "negative": "n", "id": 1}\n\n{"query": "q", "pos": "qp", "neg": "qn"}\n',
    )
    assert read_triplets(path) == [("a", "p", "n"), ("q", "qp", "qn")]


def test_jsonl_pairs(tmp_path):
    path = write(tmp_path / "t.jsonl.gz", '{"anchor": "a", "positive": "p"}\n{"anchor": "b", "positive": "q"}\n')
    assert read_triplets(path) == [("a", "p"), ("b", "q")]


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ('{"anchor": "a"}', "positive", "missing field"),
        ('{"query": "q", "pos": ["x", "y"]}', "pos", "expected a string, got list"),
        ('{"anchor": "a", "positive": "   "}', "positive", "empty text"),
        ('{"anchor": "a", "positive": "p"', None, "invalid JSON"),
        ('["a", "p"]', None, "expected a JSON object"),
    ],
)
def test_jsonl_triplet_errors(tmp_path, line, field, message):
    path = write(tmp_path / "t.jsonl", '{"anchor": "ok", "positive": "fine"}\n' + line + "\n")
    with pytest.raises(DataFormatError, match=message) as info:
        read_triplets(path)
    assert (info.value.line, info.value.field) == (2, field)


def test_arity_must_not_change(tmp_path):
    path = write(
        tmp_path / "t.jsonl", '{"anchor": "a", "positive": "p", "negative": "n"}\n{"anchor": "b", "positive": "q"}\n'
    )
    with pytest.raises(DataFormatError, match="row has 2 texts but earlier rows have 3") as info:
        read_triplets(path)
    assert info.value.line == 2


def test_csv_with_header_and_quoting(tmp_path):
    path = write(tmp_path / "t.csv", 'id,Positive,anchor,negative\n1,"p, with comma",a,"multi\nline"\n')
    assert read_triplets(path) == [("a", "p, with comma", "multi\nline")]


def test_csv_positional(tmp_path):
    assert read_triplets(write(tmp_path / "t.csv", "a,p\nb,q\n")) == [("a", "p"), ("b", "q")]


def test_tsv_positional_keeps_quotes(tmp_path):
    path = write(tmp_path / "t.tsv", 'a "quoted\tp\tn\n')
    assert read_triplets(path) == [('a "quoted', "p", "n")]


def test_table_errors(tmp_path):
    with pytest.raises(DataFormatError, match="expected 3 fields, got 2") as info:
        read_triplets(write(tmp_path / "a.tsv", "a\tp\tn\nb\tq\n"))
    assert info.value.line == 2
    with pytest.raises(DataFormatError, match="positional files need 2 or 3 columns"):
        read_triplets(write(tmp_path / "b.tsv", "a\tb\tc\td\n"))
    with pytest.raises(DataFormatError, match="no data rows"):
        read_triplets(write(tmp_path / "c.csv", "anchor,positive\n"))


def test_skip_bad_rows_logs_count(tmp_path, caplog):
    path = write(tmp_path / "t.tsv", "a\tp\n\tq\nb\tq\nc\n" + "d\t\n")
    with pytest.raises(DataFormatError):
        read_triplets(path)
    with caplog.at_level(logging.WARNING, logger="sgpt.data"):
        rows = read_triplets(path, skip_bad_rows=True)
    assert rows == [("a", "p"), ("b", "q")]
    assert f"skipped 3 bad rows in {path}" in caplog.text


# ------------------------------------------------------------------------------------------- Hub datasets


def test_hub_without_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    with pytest.raises(ImportError, match="pip install datasets"):
        load_hub_dataset("snli")
    with pytest.raises(ImportError, match="pip install datasets"):
        read_training_data("some-org/some-dataset")


class _FakeDataset(list):
    def __init__(self, rows, features=None):
        super().__init__(rows)
        self.column_names = list(rows[0])
        self.features = features or {}


def test_hub_nli_with_fake_datasets(monkeypatch):
    rows = [
        {"premise": "p1", "hypothesis": "h1", "label": 0},
        {"premise": "p2", "hypothesis": "h2", "label": -1},
        {"premise": "p3", "hypothesis": "h3", "label": 2},
    ]
    names = types.SimpleNamespace(names=["entailment", "neutral", "contradiction"])
    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return _FakeDataset(rows, {"label": names})

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    expected = [NLIPair("p1", "h1", "entailment"), NLIPair("p3", "h3", "contradiction")]
    assert load_hub_dataset("snli", split="validation") == expected
    assert read_training_data("org/all-nli:pair-class") == (expected, [])
    assert calls == [("snli", None, "validation"), ("org/all-nli", "pair-class", "train")]


def test_hub_triplets_and_unknown_columns():
    rows = [{"anchor": "a", "positive": "p", "negative": "n"}]
    assert hub_rows_to_examples(list(rows[0]), rows, "hub:x") == [("a", "p", "n")]
    with pytest.raises(DataFormatError, match="unknown columns") as info:
        hub_rows_to_examples(["text", "score"], [], "hub:x[train]")
    assert info.value.path == "hub:x[train]"
    with pytest.raises(DataFormatError, match="empty text") as info:
        hub_rows_to_examples(["anchor", "positive"], [{"anchor": "a", "positive": ""}], "hub:x")
    assert (info.value.line, info.value.field) == (1, "positive")


# ------------------------------------------------------------------------------------------- read_training_data


def test_training_data_dispatch(tmp_path):
    nli = write(tmp_path / "snli.jsonl", '{"sentence1": "a", "sentence2": "b", "gold_label": "neutral"}\n')
    assert read_training_data(str(nli)) == ([NLIPair("a", "b", "neutral")], [])
    triplets = write(tmp_path / "t.jsonl", '{"anchor": "a", "positive": "b"}\n')
    assert read_training_data(triplets) == ([], [("a", "b")])
    with pytest.raises(FileNotFoundError):
        read_training_data(str(tmp_path / "missing.jsonl"))
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(DataFormatError, match="no NLI layout"):
        read_training_data(tmp_path / "empty_folder")


def test_folder_of_triplet_jsonl_is_not_nli(tmp_path):
    write(tmp_path / "train.jsonl", '{"anchor": "a", "positive": "b"}\n')
    with pytest.raises(DataFormatError, match="no NLI layout"):
        read_training_data(str(tmp_path))
    write(tmp_path / "snli_1.0_train.jsonl", '{"sentence1": "a", "sentence2": "b", "gold_label": "neutral"}\n')
    assert read_training_data(str(tmp_path)) == ([NLIPair("a", "b", "neutral")], [])


def test_training_data_real_senteval():
    folder = need_data("snli-senteval")
    pairs, triplets = read_training_data(str(folder), split="dev")
    assert (len(pairs), triplets) == (9842, [])
