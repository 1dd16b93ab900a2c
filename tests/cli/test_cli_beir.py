"""``sgpt eval beir`` and ``sgpt mine-negatives`` end to end: JSON equal to the library, real BM25 figures,
and one clear line for every bad input."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from conftest import need_data, toy_beir

import sgpt
from sgpt.cli import main
from sgpt.data import load_beir
from sgpt.evaluation.beir import evaluate_retrieval
from sgpt.search.bm25 import BM25Retriever


def test_eval_beir_bm25_writes_the_library_metrics(tmp_path, capsys):
    folder = toy_beir(tmp_path / "toy")
    out = tmp_path / "r.json"
    assert main(["eval", "beir", "bm25", "--data", str(folder), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == result
    data = load_beir(folder, "test")
    expected = evaluate_retrieval(BM25Retriever(data.corpus), data, k=1000)
    assert {k: result[k] for k in expected} == expected
    assert (result["model"], result["data"], result["split"], result["n_queries"], result["n_docs"]) == (
        "bm25",
        str(folder),
        "test",
        3,
        5,
    )
    assert result["ndcg@10"] > 0.9  # each toy query shares its key words with its documents


def test_eval_beir_model_equals_the_library_and_several_datasets_average(minilm_path, tmp_path):
    a = toy_beir(tmp_path / "a")
    b = toy_beir(tmp_path / "b", qrels="q4\td4\t1\nq2\td1\t1\n")  # no header; q2's "positive" is wrong
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                "beir",
                str(minilm_path),
                "--data",
                str(a),
                "--data",
                str(b),
                "--k",
                "3",
                "--score",
                "dot",
                "--batch-size",
                "4",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    model = sgpt.load(minilm_path)
    for name, folder in (("a", a), ("b", b)):
        expected = evaluate_retrieval(model, load_beir(folder, "test"), k=3, score="dot")
        assert result["datasets"][name]["ndcg@10"] == pytest.approx(expected["ndcg@10"], abs=1e-6)
    assert result["average"]["ndcg@10"] == pytest.approx(
        (result["datasets"]["a"]["ndcg@10"] + result["datasets"]["b"]["ndcg@10"]) / 2
    )
    assert result["average"]["datasets"] == ["a", "b"] and "sub_average" not in result
    assert result["ndcg@10"] == result["average"]["ndcg@10"]  # the average's metrics at top level too


def test_bm25_reference_figures_on_real_data(tmp_path):
    folders = [need_data(p) for p in ("beir/scifact", "msmarco/dl19-subset", "beir/dbpedia-entity-subset")]
    out = tmp_path / "r.json"
    assert main(["eval", "beir", "bm25", *(a for f in folders for a in ("--data", str(f))), "--output", str(out)]) == 0
    got = json.loads(out.read_text())["datasets"]
    # the reference: BM25 (bm25s, English stemming) 0.686 / 0.727 / 0.368
    assert got["scifact"]["ndcg@10"] == pytest.approx(0.686, abs=5e-4)
    assert got["dl19-subset"]["ndcg@10"] == pytest.approx(0.727, abs=5e-4)
    assert got["dbpedia-entity-subset"]["ndcg@10"] == pytest.approx(0.368, abs=5e-4)
    assert [got[n]["n_queries"] for n in ("scifact", "dl19-subset", "dbpedia-entity-subset")] == [300, 43, 40]


def test_mine_negatives_bm25_skips_positives(tmp_path, capsys):
    folder = toy_beir(tmp_path / "toy", split="train")
    out = tmp_path / "mined" / "neg.jsonl"
    out.parent.mkdir()
    assert main(["mine-negatives", "--data", str(folder), "--split", "train", "--out", str(out), "--k", "5"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["query_id"] for r in rows] == ["q1", "q2", "q3"]
    assert rows[0]["pos"] == ["d1", "d5"]
    for r in rows:
        assert not set(r["pos"]) & set(r["neg"])
    assert "mined" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["neg.jsonl"]  # no temporary file left behind
    assert (
        main(
            [
                "mine-negatives",
                "--data",
                str(folder),
                "--split",
                "train",
                "--out",
                str(out),
                "--k",
                "5",
                "--num-negatives",
                "1",
                "--overwrite",  # the file exists: replaced only when asked
            ]
        )
        == 0
    )
    assert all(len(json.loads(line)["neg"]) <= 1 for line in out.read_text().splitlines())


def test_mine_negatives_with_a_model(minilm_path, tmp_path):
    folder = toy_beir(tmp_path / "toy", split="train")
    out = tmp_path / "neg.jsonl"
    assert (
        main(
            [
                "mine-negatives",
                "--data",
                str(folder),
                "--split",
                "train",
                "--out",
                str(out),
                "--method",
                "model",
                "--model",
                str(minilm_path),
                "--k",
                "2",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # q1 has two positives among 5 docs: with k=2 and MiniLM both are the top hits, so no negative is left
    assert rows[0] == {"query_id": "q1", "pos": ["d1", "d5"], "neg": []}
    assert all(len(r["neg"]) >= 1 for r in rows[1:])


def _error(capsys) -> str:
    return capsys.readouterr().err.strip()


def test_bad_inputs_give_one_clear_line(tmp_path, capsys):
    folder = toy_beir(tmp_path / "toy", qrels="q1\td1\t1\nq2\td2\thigh\n")
    assert main(["eval", "beir", "bm25", "--data", str(folder)]) == 2
    assert _error(capsys) == f"sgpt: error: {folder}/qrels/test.tsv:2: field \"score\": not an integer: 'high'"
    assert main(["eval", "beir", "bm25", "--data", str(folder), "--split", "dev"]) == 2
    assert "no dev.tsv or dev.tsv.gz for split 'dev' (splits present: test)" in _error(capsys)
    assert main(["mine-negatives", "--data", str(folder), "--out", str(tmp_path / "n.jsonl"), "--method", "model"]) == 2
    assert _error(capsys) == "sgpt: error: --method model needs --model"
    assert main(["mine-negatives", "--data", str(folder), "--out", str(tmp_path / "n.jsonl"), "--model", "m"]) == 2
    assert "--model is only used with --method model" in _error(capsys)
    unknown = toy_beir(tmp_path / "unknown", qrels="q1\td1\t1\nq2\tzz\t1\n")
    assert main(["eval", "beir", "bm25", "--data", str(unknown)]) == 2
    assert _error(capsys) == (
        f'sgpt: error: {unknown / "qrels" / "test.tsv"}:2: field "corpus-id": 1 judgment '
        "names a doc id not in the corpus (e.g. 'zz')"
    )
    assert (
        main(["eval", "beir", "bm25", "--data", str(unknown), "--skip-bad-rows", "--output", str(tmp_path / "r.json")])
        == 0
    )
    assert json.loads((tmp_path / "r.json").read_text())["n_queries"] == 1


def test_several_datasets_put_the_average_metrics_at_top_level(tmp_path, capsys, caplog):
    a = toy_beir(tmp_path / "a")
    b = toy_beir(tmp_path / "b", qrels="q4\td4\t1\nq2\td1\t1\n")
    out = tmp_path / "r.json"
    with caplog.at_level(logging.DEBUG):
        assert main(["eval", "beir", "bm25", "--data", str(a), "--data", str(b), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result)[:3] == ["model", "split", "ndcg@1"] and list(result["datasets"]) == ["a", "b"]
    metrics = [k for k in result["datasets"]["a"] if "@" in k]
    assert {k: result[k] for k in metrics} == {k: result["average"][k] for k in metrics}
    assert result["ndcg@10"] == pytest.approx(
        (result["datasets"]["a"]["ndcg@10"] + result["datasets"]["b"]["ndcg@10"]) / 2
    )
    # bm25s stays quiet without -v: no progress bars, no DEBUG lines
    err = capsys.readouterr().err
    assert "BM25S" not in err and "Split strings" not in err
    assert not [r for r in caplog.records if r.name.startswith("bm25s")]
    assert logging.getLogger("bm25s").level == logging.WARNING


def test_help_documents_the_top_level_metrics(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "beir", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert 'are always top-level keys: with one --data that set\'s, with several the "average" ones' in text


def test_everything_is_checked_before_any_encoding(tmp_path, capsys, monkeypatch):
    import sgpt
    import sgpt.evaluation.beir as evaluation

    monkeypatch.setattr(sgpt, "load", lambda *a, **k: pytest.fail("a model was loaded"))
    monkeypatch.setattr(evaluation, "evaluate_retrieval", lambda *a, **k: pytest.fail("something was encoded"))
    good = toy_beir(tmp_path / "good")
    bad = toy_beir(tmp_path / "bad", qrels="q1\td1\t1\nq2\td2\thigh\n")
    assert main(["eval", "beir", "some/model", "--data", str(good), "--data", str(bad)]) == 2
    assert _error(capsys) == f"sgpt: error: {bad}/qrels/test.tsv:2: field \"score\": not an integer: 'high'"
    assert main(["eval", "beir", "some/model", "--data", str(good), "--data", str(tmp_path / "nowhere")]) == 2
    assert _error(capsys) == f"sgpt: error: no such BEIR folder: {tmp_path / 'nowhere'}"

    with pytest.raises(SystemExit) as info:
        main(["eval", "beir", "some/model", "--data", str(good), "--k", "-5"])
    assert info.value.code == 2 and _error(capsys).splitlines()[-1].endswith("argument -k/--k: must be >= 1, got -5")

    folder = tmp_path / "results"
    folder.mkdir()
    assert main(["eval", "beir", "some/model", "--data", str(good), "--output", str(folder)]) == 2
    assert _error(capsys) == f"sgpt: error: --output {folder}: is a folder; give the name of a file to write"
    missing = tmp_path / "no" / "r.json"
    assert main(["eval", "beir", "some/model", "--data", str(good), "--output", str(missing)]) == 2
    assert _error(capsys) == f"sgpt: error: --output {missing}: no such folder {tmp_path / 'no'} (create it first)"
    file_parent = tmp_path / "r.json"
    file_parent.write_text("{}")
    assert main(["eval", "beir", "some/model", "--data", str(good), "--output", str(file_parent / "x.json")]) == 2
    assert _error(capsys) == f"sgpt: error: --output {file_parent / 'x.json'}: {file_parent} is not a folder"
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    real_access = os.access  # root may write anywhere: pretend it may not
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    assert main(["eval", "beir", "some/model", "--data", str(good), "--output", str(locked / "r.json")]) == 2
    assert _error(capsys) == f"sgpt: error: --output {locked / 'r.json'}: the folder {locked} is not writable"
    monkeypatch.setattr(os, "access", real_access)

    assert main(["mine-negatives", "--data", str(good), "--out", str(folder)]) == 2
    assert _error(capsys) == f"sgpt: error: --output {folder}: is a folder; give the name of a file to write"
    with pytest.raises(SystemExit):
        main(["mine-negatives", "--data", str(good), "--out", str(tmp_path / "n.jsonl"), "--num-negatives", "-1"])
    assert _error(capsys).splitlines()[-1].endswith("argument --num-negatives: must be >= 0, got -1")


def test_model_flags_without_a_model_are_refused(tmp_path, capsys):
    good = toy_beir(tmp_path / "good")
    assert main(["eval", "beir", "bm25", "--data", str(good), "--pooling", "cls", "--dtype", "bfloat16"]) == 2
    assert _error(capsys) == "sgpt: error: --pooling, --dtype: only used with a model (bm25 is the BM25 baseline)"
    assert (
        main(["mine-negatives", "--data", str(good), "--out", str(tmp_path / "n.jsonl"), "--max-seq-length", "64"]) == 2
    )
    assert _error(capsys) == "sgpt: error: --max-seq-length: only used with a model (--method model; got --method bm25)"


def test_ctrl_c_and_os_errors_are_one_line(tmp_path, capsys, monkeypatch):
    import sgpt.evaluation.beir as evaluation

    good = toy_beir(tmp_path / "good")

    def raise_(error):
        def fake(*args, **kwargs):
            raise error

        return fake

    monkeypatch.setattr(evaluation, "evaluate_retrieval", raise_(KeyboardInterrupt()))
    assert main(["eval", "beir", "bm25", "--data", str(good)]) == 130
    assert _error(capsys) == "sgpt: interrupted"
    monkeypatch.setattr(evaluation, "evaluate_retrieval", raise_(PermissionError(13, "Permission denied", "x.bin")))
    assert main(["eval", "beir", "bm25", "--data", str(good)]) == 2
    assert _error(capsys) == "sgpt: error: x.bin: Permission denied"


def test_format_flags_reach_the_model(minilm_path, tmp_path):
    """--special-tokens/--query-prompt on inference commands, and `encode --role`."""
    import numpy as np

    import sgpt
    from sgpt.cli import main

    out = tmp_path / "q.npy"
    assert (
        main(
            [
                "encode",
                str(minilm_path),
                "--text",
                "what is a glacier",
                "--output",
                str(out),
                "--role",
                "query",
                "--special-tokens",
                "specb",
            ]
        )
        == 0
    )
    want = sgpt.load(minilm_path, special_tokens="specb").encode_queries(["what is a glacier"])
    np.testing.assert_allclose(np.load(out), want, atol=1e-6)
    assert (
        main(
            [
                "encode",
                str(minilm_path),
                "--text",
                "what is a glacier",
                "--output",
                str(out),
                "--role",
                "query",
                "--query-prompt",
                "query: ",
                "--overwrite",
            ]
        )
        == 0
    )
    want = sgpt.load(minilm_path, query_prompt="query: ").encode_queries(["what is a glacier"])
    np.testing.assert_allclose(np.load(out), want, atol=1e-6)
    plain = sgpt.load(minilm_path).encode(["what is a glacier"])
    assert np.abs(np.load(out) - plain).max() > 1e-3
