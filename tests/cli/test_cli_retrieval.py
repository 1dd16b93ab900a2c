"""``sgpt eval beir`` and ``sgpt mine-negatives`` end to end: JSON equal to the library, real BM25 figures,
and one clear line for every bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import sgpt
from sgpt.cli import main
from sgpt.data import load_beir
from sgpt.evaluation.retrieval import evaluate_retrieval
from sgpt.search.bm25 import BM25Retriever

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

DOCS = [("d1", "Cats", "Cats sleep most of the day."), ("d2", "Dogs", "Dogs bark at the postman."),
        ("d3", "", "Rain floods the old town."), ("d4", "Python", "Python programs run in an interpreter."),
        ("d5", "Kittens", "Young cats play with wool.")]
QUERIES = [("q1", "why do cats sleep"), ("q2", "barking dog"), ("q3", "flooding rain"), ("q4", "python")]


def toy_beir(root: Path, qrels: str = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td5\t1\nq2\td2\t1\nq3\td3\t1\n",
             split: str = "test") -> Path:
    (root / "qrels").mkdir(parents=True)
    corpus = "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in DOCS)
    (root / "corpus.jsonl.gz").write_bytes(gzip.compress(corpus.encode()))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES))
    (root / "qrels" / f"{split}.tsv").write_text(qrels)
    return root


def test_eval_beir_bm25_writes_the_library_metrics(tmp_path, capsys):
    folder = toy_beir(tmp_path / "toy")
    out = tmp_path / "r.json"
    assert main(["eval", "beir", "bm25", "--data", str(folder), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == result
    data = load_beir(folder, "test")
    expected = evaluate_retrieval(BM25Retriever(data.corpus), data, k=1000)
    assert {k: result[k] for k in expected} == expected
    assert (result["model"], result["data"], result["split"], result["n_queries"], result["n_docs"]) == \
        ("bm25", str(folder), "test", 3, 5)
    assert result["ndcg@10"] > 0.9  # each toy query shares its key words with its documents


def test_eval_beir_model_equals_the_library_and_several_datasets_average(minilm_path, tmp_path):
    a = toy_beir(tmp_path / "a")
    b = toy_beir(tmp_path / "b", qrels="q4\td4\t1\nq2\td1\t1\n")  # no header; q2's "positive" is wrong
    out = tmp_path / "r.json"
    assert main(["eval", "beir", str(minilm_path), "--data", str(a), "--data", str(b), "--k", "3",
                 "--score", "dot", "--batch-size", "4", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    model = sgpt.load(minilm_path)
    for name, folder in (("a", a), ("b", b)):
        expected = evaluate_retrieval(model, load_beir(folder, "test"), k=3, score="dot")
        assert result["datasets"][name]["ndcg@10"] == pytest.approx(expected["ndcg@10"], abs=1e-6)
    assert result["average"]["ndcg@10"] == pytest.approx(
        (result["datasets"]["a"]["ndcg@10"] + result["datasets"]["b"]["ndcg@10"]) / 2)
    assert result["average"]["datasets"] == ["a", "b"] and "sub_average" not in result


def test_bm25_reference_figures_on_real_data(tmp_path):
    folders = [DATA / "beir" / "scifact", DATA / "msmarco" / "dl19-subset", DATA / "beir" / "dbpedia-entity-subset"]
    if not all(f.exists() for f in folders):
        pytest.skip("../shared/data is absent")
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
    assert main(["mine-negatives", "--data", str(folder), "--split", "train", "--out", str(out), "--k", "5"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["query_id"] for r in rows] == ["q1", "q2", "q3"]
    assert rows[0]["pos"] == ["d1", "d5"]
    for r in rows:
        assert not set(r["pos"]) & set(r["neg"])
    assert "mined" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["neg.jsonl"]  # no temporary file left behind
    assert main(["mine-negatives", "--data", str(folder), "--split", "train", "--out", str(out), "--k", "5",
                 "--num-negatives", "1"]) == 0
    assert all(len(json.loads(line)["neg"]) <= 1 for line in out.read_text().splitlines())


def test_mine_negatives_with_a_model(minilm_path, tmp_path):
    folder = toy_beir(tmp_path / "toy", split="train")
    out = tmp_path / "neg.jsonl"
    assert main(["mine-negatives", "--data", str(folder), "--split", "train", "--out", str(out), "--method", "model",
                 "--model", str(minilm_path), "--k", "2"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # q1 has two positives among 5 docs: with k=2 and MiniLM both are the top hits, so no negative is left
    assert rows[0] == {"query_id": "q1", "pos": ["d1", "d5"], "neg": []}
    assert all(len(r["neg"]) >= 1 for r in rows[1:])


def _error(capsys) -> str:
    return capsys.readouterr().err.strip()


def test_bad_inputs_give_one_clear_line(tmp_path, capsys):
    folder = toy_beir(tmp_path / "toy", qrels="q1\td1\t1\nq2\td2\thigh\n")
    assert main(["eval", "beir", "bm25", "--data", str(folder)]) == 2
    assert _error(capsys) == f'sgpt: error: {folder}/qrels/test.tsv:2: field "score": not an integer: \'high\''
    assert main(["eval", "beir", "bm25", "--data", str(folder), "--split", "dev"]) == 2
    assert "no dev.tsv or dev.tsv.gz for split 'dev' (splits present: test)" in _error(capsys)
    assert main(["mine-negatives", "--data", str(folder), "--out", str(tmp_path / "n.jsonl"), "--method", "model"]) == 2
    assert _error(capsys) == "sgpt: error: --method model needs --model"
    assert main(["mine-negatives", "--data", str(folder), "--out", str(tmp_path / "n.jsonl"), "--model", "m"]) == 2
    assert "--model is only used with --method model" in _error(capsys)
    unknown = toy_beir(tmp_path / "unknown", qrels="q1\td1\t1\nq2\tzz\t1\n")
    assert main(["eval", "beir", "bm25", "--data", str(unknown)]) == 2
    assert "1 judgments name doc ids not in the corpus (e.g. 'zz')" in _error(capsys)
    assert main(["eval", "beir", "bm25", "--data", str(unknown), "--skip-bad-rows", "--output",
                 str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["n_queries"] == 1
