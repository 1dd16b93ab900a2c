"""Tests for sgpt.data.nli_pairs: every NLI layout on tiny files, errors, and the real SNLI/SICK copies."""

from __future__ import annotations

import collections
import logging
from pathlib import Path

import pytest
from conftest import need_data
from data_helpers import write

from sgpt.data import DataFormatError, NLIPair, detect_nli_layout, read_nli_pairs

ALLNLI = (
    "split\tdataset\tfilename\tsentence1\tsentence2\tlabel\n"
    "train\tSNLI\tsnli_1.0_train.jsonl\tA man sleeps.\tA person rests.\tentailment\n"
    "dev\tSNLI\tsnli_1.0_dev.jsonl\tA dog barks.\tA cat meows.\tcontradiction\n"
    "train\tMultiNLI\tmultinli_1.0_train.jsonl\t Two kids. \tChildren.\tneutral\n"
)
SICK = (
    "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\r\n"
    "1\tA boy plays.\tA kid plays.\t4.5\tENTAILMENT\r\n"
    "2\tA boy plays.\tNo boy plays.\t3.2\tCONTRADICTION\r\n"
)


def senteval(folder: Path, split: str, s1: list[str], s2: list[str], labels: list[str], gz: bool = False) -> None:
    folder.mkdir(exist_ok=True)
    ext = ".gz" if gz else ""
    for role, items in (("s1", s1), ("s2", s2), ("labels", labels)):
        write(folder / f"{role}.{split}{ext}", "".join(f"{x}\n" for x in items))


# ------------------------------------------------------------------------------------------- jsonl


def test_snli_jsonl_labels_and_no_gold(tmp_path, caplog):
    path = write(
        tmp_path / "snli_1.0_dev.jsonl.gz",
        "\n".join(
            [
                '{"sentence1": " A. ", "sentence2": "B.", "gold_label": "entailment", "pairID": "1"}',
                '{"sentence1": "C.", "sentence2": "", "gold_label": "-"}',
                '{"premise": "D.", "hypothesis": "E.", "label": 2}',
                '{"premise": "F.", "hypothesis": "G.", "label": -1}',
                '{"sentence1": "H.", "sentence2": "I.", "gold_label": "NEUTRAL"}',
            ]
        ),
    )
    with caplog.at_level(logging.INFO, logger="sgpt.data"):
        pairs = read_nli_pairs(path)
    assert pairs == [
        NLIPair("A.", "B.", "entailment"),
        NLIPair("D.", "E.", "contradiction"),
        NLIPair("H.", "I.", "neutral"),
    ]
    assert "skipped 2 pairs without gold label" in caplog.text
    assert "bad rows" not in caplog.text


def test_unknown_label_message(tmp_path):
    path = write(tmp_path / "x.jsonl", '{"sentence1": "a", "sentence2": "b", "gold_label": "entailed"}\n')
    with pytest.raises(DataFormatError) as info:
        read_nli_pairs(path)
    assert str(info.value) == (
        f"{path}:1: field \"gold_label\": unknown label 'entailed' (expected one of entailment, neutral, contradiction)"
    )


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ('{"sentence1": "a", "gold_label": "neutral"}', "sentence2", "missing field"),
        ('{"sentence1": "a", "sentence2": "  ", "gold_label": "neutral"}', "sentence2", "empty text"),
        ('{"sentence1": "a", "sentence2": "b", "gold_label": 7}', "gold_label", "unknown label 7"),
        ('{"sentence1": "a", "sentence2": "b", "gold_label": ""}', "gold_label", "empty label"),
    ],
)
def test_jsonl_row_errors(tmp_path, row, field, message):
    path = write(tmp_path / "x.jsonl", '{"sentence1": "a", "sentence2": "b", "gold_label": "neutral"}\n' + row)
    with pytest.raises(DataFormatError, match=message) as info:
        read_nli_pairs(path)
    assert (info.value.line, info.value.field) == (2, field)


def test_jsonl_folder_picks_split(tmp_path):
    for split in ("train", "dev", "test"):
        write(tmp_path / f"snli_1.0_{split}.jsonl", f'{{"sentence1": "{split}", "sentence2": "x", "gold_label": 0}}\n')
    assert read_nli_pairs(tmp_path)[0].premise == "train"
    assert read_nli_pairs(tmp_path, split="test")[0].premise == "test"
    with pytest.raises(DataFormatError, match="0 jsonl files match split 'dev_matched'"):
        read_nli_pairs(tmp_path, split="dev_matched")


# ------------------------------------------------------------------------------------------- AllNLI / SICK


def test_allnli_split_filter(tmp_path):
    path = write(tmp_path / "AllNLI.tsv.gz", ALLNLI)
    assert read_nli_pairs(path) == [
        NLIPair("A man sleeps.", "A person rests.", "entailment"),
        NLIPair("Two kids.", "Children.", "neutral"),
    ]
    assert read_nli_pairs(tmp_path, split="dev") == [NLIPair("A dog barks.", "A cat meows.", "contradiction")]
    with pytest.raises(DataFormatError, match=r"no rows with split 'test' \(found: dev, train\)"):
        read_nli_pairs(path, split="test")


def test_allnli_field_count_and_header(tmp_path):
    path = write(tmp_path / "AllNLI.tsv", ALLNLI + "train\tSNLI\tf\tonly one sentence\tneutral\n")
    with pytest.raises(DataFormatError, match="expected 6 tab-separated fields, got 5") as info:
        read_nli_pairs(path)
    assert info.value.line == 5
    assert len(read_nli_pairs(path, skip_bad_rows=True)) == 2


def test_sick_file_and_folder(tmp_path):
    path = write(tmp_path / "SICK_test_annotated.txt", SICK)
    expected = [
        NLIPair("A boy plays.", "A kid plays.", "entailment"),
        NLIPair("A boy plays.", "No boy plays.", "contradiction"),
    ]
    assert read_nli_pairs(path) == expected
    assert read_nli_pairs(tmp_path, split="test") == expected
    with pytest.raises(DataFormatError, match=r"no SICK file for split 'train' \(found: test_annotated\)"):
        read_nli_pairs(tmp_path)


def test_missing_column(tmp_path):
    path = write(tmp_path / "s.tsv", "pair_ID\tsentence_A\tsentence_B\tentailment_judgment\n1\ta\tb\tNEUTRAL\n")
    assert read_nli_pairs(path) == [NLIPair("a", "b", "neutral")]
    path = write(tmp_path / "a.tsv", "split\tsentence1\tsentence2\tgold\ntrain\ta\tb\tneutral\n")
    assert detect_nli_layout(path) is None
    with pytest.raises(DataFormatError, match="no NLI layout recognised"):
        read_nli_pairs(path)


# ------------------------------------------------------------------------------------------- SentEval


def test_senteval_all_splits_sorted(tmp_path):
    senteval(tmp_path, "test", ["t1 ."], ["t2 ."], ["neutral"], gz=True)
    senteval(tmp_path, "dev", ["d1 . ", "x"], ["d2 .", "y"], ["entailment", "-"])
    pairs = read_nli_pairs(tmp_path)
    assert pairs == [NLIPair("d1 .", "d2 .", "entailment"), NLIPair("t1 .", "t2 .", "neutral")]
    assert read_nli_pairs(tmp_path, split="test") == pairs[1:]
    assert read_nli_pairs(tmp_path / "s2.dev") == pairs[:1]
    assert detect_nli_layout(tmp_path) == "senteval"


def test_senteval_line_counts_differ(tmp_path):
    senteval(tmp_path, "dev", ["a", "b"], ["c", "d"], ["neutral"])
    with pytest.raises(DataFormatError, match="line counts differ .*labels.dev has 1"):
        read_nli_pairs(tmp_path)


def test_senteval_bad_bytes_name_the_file(tmp_path):
    senteval(tmp_path, "dev", ["a", "b"], ["c", "d"], ["neutral", "neutral"])
    write(tmp_path / "s2.dev", b"c\nd\xff\n")
    with pytest.raises(DataFormatError, match=r"not valid UTF-8 \(byte 0xff at column 2\)") as info:
        read_nli_pairs(tmp_path)
    assert (Path(info.value.path).name, info.value.line, info.value.field) == ("s2.dev", 2, "s2")


def test_senteval_missing_split_file(tmp_path):
    senteval(tmp_path, "dev", ["a"], ["c"], ["neutral"])
    (tmp_path / "labels.dev").unlink()
    with pytest.raises(DataFormatError, match="lacks file"):
        read_nli_pairs(tmp_path)


def test_senteval_skip_bad_rows(tmp_path, caplog):
    senteval(tmp_path, "dev", ["a", "", "e"], ["b", "d", "f"], ["neutral", "neutral", "entailed"])
    with caplog.at_level(logging.WARNING, logger="sgpt.data"):
        assert read_nli_pairs(tmp_path, skip_bad_rows=True) == [NLIPair("a", "b", "neutral")]
    assert "skipped 2 bad rows in" in caplog.text


# ------------------------------------------------------------------------------------------- real data


def test_real_snli_senteval_counts():
    folder = need_data("snli-senteval")
    expected = {
        "dev": {"contradiction": 3278, "entailment": 3329, "neutral": 3235},
        "test": {"contradiction": 3237, "entailment": 3368, "neutral": 3219},
    }
    for split, counts in expected.items():
        pairs = read_nli_pairs(folder, split=split)
        assert collections.Counter(p.label for p in pairs) == counts
        assert all(p.premise == p.premise.strip() and p.hypothesis for p in pairs)
    assert len(read_nli_pairs(folder)) == 9842 + 9824


def test_real_sick_counts():
    folder = need_data("sick")
    expected = {"train": (665, 1299, 2536), "trial": (74, 144, 282), "test_annotated": (720, 1414, 2793)}
    for split, (con, ent, neu) in expected.items():
        counts = collections.Counter(p.label for p in read_nli_pairs(folder, split=split))
        assert counts == {"contradiction": con, "entailment": ent, "neutral": neu}
    assert len(read_nli_pairs(folder / "SICK_test_annotated.txt.gz")) == 4927  # CRLF file
