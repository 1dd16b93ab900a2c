"""Tests for sgpt.data.sts_sets: STS-B, STS12-16 and SICK-R on tiny files, errors, real-data counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import need_data
from data_helpers import write

from sgpt.data import DataFormatError, STSData, read_sts, read_sts_subsets

STSB = (
    'main-captions\tMSRvid\t2012test\t0024\t2.500\tA girl is "styling" her hair.\tA girl is brushing her hair.\n'
    'main-forums\tdeft\t2014\t0001\t5.000\t It\'s "fine.\t  Fine" it is.\tlicense-a\tlicense-b\n'
)


# ------------------------------------------------------------------------------------------- STS-B


def test_stsb_file_quotes_and_extra_fields(tmp_path):
    data = read_sts(write(tmp_path / "sts-test.csv.gz", STSB))
    assert data == STSData(
        ['A girl is "styling" her hair.', "It's \"fine."],
        ["A girl is brushing her hair.", 'Fine" it is.'],
        [0.5, 1.0],
        "sts-test",
    )
    assert len(data) == 2


def test_stsb_folder_split(tmp_path):
    write(tmp_path / "sts-dev.csv", STSB)
    assert read_sts(tmp_path, split="dev").name == "sts-dev"
    with pytest.raises(DataFormatError, match=r"no stsb file for split 'test' \(found: dev\)"):
        read_sts(tmp_path)


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ("g\tf\t2012\t1\thigh\ta\tb", "score", "not a number: 'high'"),
        ("g\tf\t2012\t1\t5.5\ta\tb", "score", r"score 5.5 outside \[0, 5\]"),
        ("g\tf\t2012\t1\tnan\ta\tb", "score", "outside"),
        ("g\tf\t2012\t1\t3.0\ta", None, "expected at least 7 tab-separated fields"),
        ("g\tf\t2012\t1\t3.0\ta\t ", "sentence2", "empty text"),
    ],
)
def test_stsb_errors(tmp_path, row, field, message):
    path = write(tmp_path / "sts-test.csv", STSB + row + "\n")
    with pytest.raises(DataFormatError, match=message) as info:
        read_sts(path)
    assert (info.value.line, info.value.field) == (3, field)


STSB_TSV = (  # sbert.net's stsbenchmark.tsv.gz (what SGPT's NLI script reads): one file, a split column
    "split\tgenre\tdataset\tyear\tsid\tscore\tsentence1\tsentence2\n"
    "train\tmain-captions\tMSRvid\t2012test\t0001\t5.000\tA plane is taking off.\tAn air plane is taking off.\n"
    'dev\tmain-captions\tMSRvid\t2012test\t0005\t3.800\tA man "plays" a flute.\tA man plays the flute.\n'
    "dev\tmain-forums\tdeft\t2014\t0010\t0.000\t It's fine.\tNo.\n"
    "test\tmain-news\theadlines\t2015\t0003\t2.500\tA cat.\tA dog.\n"
)


def test_stsbenchmark_tsv_splits(tmp_path):
    path = write(tmp_path / "stsbenchmark.tsv.gz", STSB_TSV)
    assert read_sts(path, split="dev") == STSData(
        ['A man "plays" a flute.', "It's fine."], ["A man plays the flute.", "No."], [0.76, 0.0], "sts-dev"
    )
    assert read_sts(path) == STSData(["A cat."], ["A dog."], [0.5], "sts-test")  # default split: test
    assert read_sts(tmp_path, split="train").sentences1 == ["A plane is taking off."]  # the folder holding it
    with pytest.raises(DataFormatError, match=r"no rows with split 'validation' \(found: dev, test, train\)"):
        read_sts(path, split="validation")


def test_stsbenchmark_tsv_errors(tmp_path):
    bad = write(tmp_path / "stsbenchmark.tsv", STSB_TSV + "dev\tg\td\t2012\t9\t7.5\ta\tb\n")
    with pytest.raises(DataFormatError, match=r"outside \[0, 5\]") as info:
        read_sts(bad, split="dev")
    assert (info.value.line, info.value.field) == (6, "score")
    short = write(tmp_path / "short.tsv", STSB_TSV + "dev\tg\td\t2012\n")
    with pytest.raises(DataFormatError, match="expected 8 tab-separated fields, got 4"):
        read_sts(short, split="dev")


# ------------------------------------------------------------------------------------------- STS12-16


def make_year(folder: Path, prefix: str = "STS") -> Path:
    folder.mkdir()
    write(folder / f"{prefix}.input.b-set.txt.gz", "b1\tb2\tsrc\tsrc\nu1\tu2\tsrc\tsrc\nc1\tc2\tsrc\tsrc\n")
    write(folder / f"{prefix}.gs.b-set.txt.gz", "4.0\n\n1\n")
    write(folder / f"{prefix}.input.a.set.txt", "a1\ta2\n")
    write(folder / f"{prefix}.gs.a.set.txt", "2.5\n")
    write(folder / "00-readme.txt", "not data")
    return folder


def test_year_folder_concatenates_sorted_subsets(tmp_path):
    folder = make_year(tmp_path / "STS16", prefix="STS2016")
    subsets = read_sts_subsets(folder)
    assert [s.name for s in subsets] == ["STS16.a.set", "STS16.b-set"]
    assert subsets[1] == STSData(["b1", "c1"], ["b2", "c2"], [0.8, 0.2], "STS16.b-set")  # unscored line skipped
    assert read_sts(folder) == STSData(["a1", "b1", "c1"], ["a2", "b2", "c2"], [0.5, 0.8, 0.2], "STS16")
    assert read_sts(folder / "STS2016.input.a.set.txt").name == "STS16.a.set"


def test_parent_folder_picks_year(tmp_path):
    make_year(tmp_path / "STS12")
    assert read_sts(tmp_path, split="sts12").name == "STS12"
    assert len(read_sts_subsets(tmp_path, split="STS12")) == 2
    with pytest.raises(DataFormatError, match=r"no year folder 'test' \(found: STS12\)"):
        read_sts(tmp_path)


def test_year_folder_errors(tmp_path):
    folder = make_year(tmp_path / "STS13")
    write(folder / "STS.gs.a.set.txt", "2.5\n3\n")
    with pytest.raises(DataFormatError, match="1 lines but STS.gs.a.set.txt has 2"):
        read_sts(folder)
    write(folder / "STS.gs.a.set.txt", "two\n")
    with pytest.raises(DataFormatError, match="not a number") as info:
        read_sts(folder)
    assert (Path(info.value.path).name, info.value.line, info.value.field) == ("STS.gs.a.set.txt", 1, "score")
    (folder / "STS.gs.a.set.txt").unlink()
    with pytest.raises(DataFormatError, match="no gold file STS.gs.a.set.txt"):
        read_sts(folder)


# ------------------------------------------------------------------------------------------- SICK-R


def test_sick_relatedness(tmp_path):
    write(
        tmp_path / "SICK_test_annotated.txt",
        "pair_ID\tsentence_A\tsentence_B\trelatedness_score\t"
        "entailment_judgment\r\n1\tA\tB\t4.5\tNEUTRAL\r\n2\tC\tD\t1\tNEUTRAL\r\n",
    )
    assert read_sts(tmp_path) == STSData(["A", "C"], ["B", "D"], [0.9, 0.2], "sick-test")
    write(tmp_path / "SICK_train.txt", "pair_ID\tsentence_A\tsentence_B\trelatedness_score\n1\tA\tB\t0.5\n")
    with pytest.raises(DataFormatError, match=r"outside \[1, 5\]") as info:
        read_sts(tmp_path, split="train")
    assert (info.value.line, info.value.field) == (2, "relatedness_score")


def test_unknown_folder_and_bad_stsdata(tmp_path):
    with pytest.raises(DataFormatError, match="no STS layout recognised"):
        read_sts(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_sts(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="lengths differ"):
        STSData(["a"], [], [1.0], "x")


# ------------------------------------------------------------------------------------------- real data


@pytest.mark.parametrize(("split", "count"), [("train", 5749), ("dev", 1500), ("test", 1379)])
def test_real_stsb(split, count):
    data = read_sts(need_data("stsb"), split=split)
    assert (len(data), data.name) == (count, f"sts-{split}")
    assert min(data.scores) == 0.0 and max(data.scores) == 1.0


@pytest.mark.parametrize(
    ("year", "counts"),
    [
        ("STS12", {"MSRpar": 750, "MSRvid": 750, "SMTeuroparl": 459, "surprise.OnWN": 750, "surprise.SMTnews": 399}),
        ("STS13", {"FNWN": 189, "OnWN": 561, "headlines": 750}),
        (
            "STS14",
            {"OnWN": 750, "deft-forum": 450, "deft-news": 300, "headlines": 750, "images": 750, "tweet-news": 750},
        ),
        ("STS15", {"answers-forums": 375, "answers-students": 750, "belief": 375, "headlines": 750, "images": 750}),
        (
            "STS16",
            {"answer-answer": 254, "headlines": 249, "plagiarism": 230, "postediting": 244, "question-question": 209},
        ),
    ],
)
def test_real_sts12_16(year, counts):
    folder = need_data("sts12-16", year)
    subsets = read_sts_subsets(folder)
    assert {s.name: len(s) for s in subsets} == {f"{year}.{k}": v for k, v in counts.items()}
    assert len(read_sts(folder)) == sum(counts.values())  # STS12 3108, STS15 3000 scored


def test_real_sick():
    folder = need_data("sick")
    assert len(read_sts(folder)) == 4927
    assert len(read_sts(folder, split="train")) == 4500
    trial = read_sts(folder / "SICK_trial.txt.gz")
    assert len(trial) == 500 and min(trial.scores) >= 0.2
