"""``sgpt eval useb`` end to end on a small fake ``data-eval`` folder with all four tasks: JSON equal to the
library, the tasks and parts found or missing, and one clear line for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sgpt
from sgpt.cli import main
from sgpt.data.useb import read_useb
from sgpt.evaluation.useb import evaluate_useb

TITLES = {
    "1": "how do i install a package",
    "2": "installing packages with apt",
    "3": "my screen goes black after login",
    "4": "wifi does not connect",
    "5": "black screen on boot",
    "6": "cannot connect to wireless network",
}


def fake_useb(root: Path, *, pit: bool = True, scidocs: bool = True) -> Path:
    """A tiny data-eval folder: AskUbuntu (2 queries), CQADupStack (2 forums), TwitterPara, SciDocs."""
    (root / "askubuntu").mkdir(parents=True)
    pool = "".join(f"{i}\t{t}\tbody of {i}\n" for i, t in TITLES.items())
    (root / "askubuntu" / "text_tokenized.txt").write_text(pool)
    (root / "askubuntu" / "test.txt").write_text("1\t2\t3 2 4 5\t4 3 2 1\n3\t5\t1 5 6\t3 2 1\n")
    (root / "askubuntu" / "dev.txt").write_text("4\t6\t6 1\t1 2\n")
    (root / "cqadupstack").mkdir()
    corpus = {
        "gis": {"a": "reproject a shapefile", "b": "change the projection of a shapefile", "c": "raster colors"},
        "unix": {"x": "list hidden files", "y": "show dot files with ls", "z": "kill a process", "w": "stop a job"},
    }
    split = {"test": {"gis": {"a": ["b"]}, "unix": {"x": ["y"], "z": ["w"]}}, "valid": {}}
    (root / "cqadupstack" / "corpus.json").write_text(json.dumps(corpus))
    (root / "cqadupstack" / "retrieval_split.json").write_text(json.dumps(split))
    (root / "twitterpara").mkdir()
    url = (
        "Storm hits the coast\tA storm is hitting the coast\t(6,6)\tu1\n"
        "Storm hits the coast\tI love pizza\t(0,6)\tu1\n"
        "Storm hits the coast\tweather news tonight\t(3,6)\tu1\n"
        "\n"
        "Team wins the final\tThe team won the championship final\t(5,6)\tu2\n"
        "Team wins the final\tmy cat is asleep\t(1,6)\tu2\n"
    )
    (root / "twitterpara" / "Twitter_URL_Corpus_test.txt").write_text(url)
    if pit:
        data = (
            "1\tT\tThe movie was great\tThat film was great\t5\t\t\n1\tT\tThe movie was great\tGas prices rise\t0\t\t\n"
        )
        (root / "twitterpara" / "test.data").write_text(data)
        (root / "twitterpara" / "test.label").write_text("true\t1.0\nfalse\t0.0\n")
    if scidocs:
        (root / "scidocs").mkdir()
        papers = {"p": "neural machine translation", "r1": "attention for translation", "r2": "protein folding"}
        corpus = {k: {"title": v, "abstract": ""} for k, v in papers.items()}
        parts = {name: {"p": {"r1": 1, "r2": 0}} for name in ("cite", "cocite", "coread", "coview")}
        (root / "scidocs" / "data.json").write_text(json.dumps({"corpus": corpus, "test": parts, "valid": parts}))
    return root


def test_eval_useb_all_four_tasks_equals_the_library(minilm_path, tmp_path, capsys):
    data = fake_useb(tmp_path / "data-eval")
    out = tmp_path / "r.json"
    assert main(["eval", "useb", str(minilm_path), "--data", str(data), "--batch-size", "4", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    expected = evaluate_useb(sgpt.load(minilm_path), read_useb(data), batch_size=4)
    assert result["scores"] == pytest.approx(expected["scores"], abs=1e-6)
    assert result["average"] == pytest.approx(sum(result["scores"].values()) / 4)
    assert result["average_over"] == ["askubuntu", "cqadupstack", "twitterpara", "scidocs"]
    assert result["tasks_missing"] == []
    assert (result["model"], result["data"], result["split"], result["normalize"]) == (
        str(minilm_path),
        str(data),
        "test",
        True,
    )
    tasks = result["tasks"]
    assert set(tasks["askubuntu"]) >= {"map", "mrr", "p@1", "p@5", "score", "metric"}
    assert list(tasks["cqadupstack"]["parts"]) == ["gis", "unix"]
    assert len(tasks["cqadupstack"]["parts_missing"]) == 10
    assert list(tasks["twitterpara"]["parts"]) == ["twitterurl", "pit"]
    assert tasks["twitterpara"]["parts"]["twitterurl"]["n_dropped"] == 1
    assert list(tasks["scidocs"]["parts"]) == ["cite", "cocite", "coread", "coview"]
    assert tasks["scidocs"]["score"] == pytest.approx(100.0)  # the relevant paper is the closer one
    for task in tasks.values():
        assert 0 <= task["score"] <= 100
    printed = capsys.readouterr().out
    assert "average" in printed and "twitterpara" in printed and "cqadupstack: mean over gis, unix only" in printed


def test_eval_useb_missing_tasks_and_parts_are_reported(minilm_path, tmp_path, capsys):
    data = fake_useb(tmp_path / "d", pit=False, scidocs=False)
    out = tmp_path / "r.json"
    args = ["eval", "useb", str(minilm_path), "--data", str(data), "--tasks", "twitterpara,scidocs"]
    assert main([*args, "--no-normalize", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["average_over"], result["tasks_missing"]) == (["twitterpara"], ["scidocs"])
    assert result["average"] == result["scores"]["twitterpara"] == result["tasks"]["twitterpara"]["ap"]
    assert result["tasks"]["twitterpara"]["parts_missing"] == ["pit"]
    assert result["normalize"] is False
    assert any("pit not found" in n for n in result["notes"])
    assert "scidocs" in capsys.readouterr().out  # the table lists it as not found


def test_eval_useb_bad_inputs_give_one_line(minilm_path, tmp_path, capsys):
    data = fake_useb(tmp_path / "d")
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "useb", str(minilm_path), "--data", str(data), "--tasks", "askubuntu,quora"])
    assert exit_.value.code == 2 and "unknown task(s) 'quora'" in capsys.readouterr().err
    out = tmp_path / "r.json"
    out.write_text("{}")
    assert main(["eval", "useb", str(minilm_path), "--data", str(data), "--output", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    (data / "twitterpara" / "test.data").write_text("1\tT\tok\tfine\t5\n1\tT\tok\tbad\tseven\n")
    assert main(["eval", "useb", str(minilm_path), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"sgpt: error: {data}/twitterpara/test.data:2: field \"label\": expected an integer 0-5, got 'seven'"
    assert main(["eval", "useb", str(minilm_path), "--data", str(tmp_path / "empty")]) == 2
    assert "no such folder" in capsys.readouterr().err
