"""The retrieval recipe end to end on a toy BEIR folder: data -> training -> nDCG before/after."""

from __future__ import annotations

import json

import pytest

import sgpt
from sgpt.cli import main
from sgpt.data import load_beir
from sgpt.evaluation.beir import evaluate_retrieval
from sgpt.recipes.train_retrieval import load_retrieval_examples, with_negatives

TOPICS = [
    "apples grow on trees in orchards",
    "rockets fly to the moon and back",
    "violins have four strings",
    "glaciers are slow rivers of ice",
    "bees make honey from nectar",
    "volcanoes erupt hot lava",
    "chess is played on a board of 64 squares",
    "penguins live in the cold south",
]
QUESTIONS = [
    "where do apples grow",
    "what flies to the moon",
    "how many strings does a violin have",
    "what is a glacier",
    "what do bees make",
    "what comes out of a volcano",
    "how big is a chess board",
    "where do penguins live",
]


def write_beir(folder, with_negatives=True):
    folder.mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for i, text in enumerate(TOPICS):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for i, text in enumerate(QUESTIONS):
            f.write(json.dumps({"_id": f"q{i}", "text": text}) + "\n")
    (folder / "qrels").mkdir()
    for split, ids in (("train", range(6)), ("test", range(6, 8))):
        (folder / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in ids)
        )
    negatives = folder / "negatives.jsonl"
    with open(negatives, "w") as f:
        for i in range(6 if with_negatives else 3):
            f.write(
                json.dumps({"query_id": f"q{i}", "pos": [f"d{i}"], "neg": [f"d{(i + 1) % 8}", f"d{(i + 2) % 8}"]})
                + "\n"
            )
    return folder, negatives


def test_queries_without_negatives_are_left_out(tmp_path, caplog):
    folder, negatives = write_beir(tmp_path / "toy", with_negatives=False)
    examples = load_retrieval_examples([folder], negatives=negatives)
    kept, n = with_negatives(examples, 1)
    assert [e.query for e in kept] == QUESTIONS[:3] and n == 1
    assert "3 of 6 training queries have no hard negative" in caplog.text
    assert with_negatives(examples, 0) == (examples, 0)
    # no negatives at all: in-batch negatives only, said out loud
    none, n = with_negatives(load_retrieval_examples([folder]), 1)
    assert len(none) == 6 and n == 0 and "in-batch negatives only" in caplog.text


def test_a_training_path_given_twice_is_read_once(tmp_path, caplog):
    folder, negatives = write_beir(tmp_path / "toy")
    once = load_retrieval_examples([folder], negatives=negatives)
    twice = load_retrieval_examples([folder, tmp_path / "toy" / "."], negatives=negatives)
    assert twice == once and len(once) == 6
    assert "given more than once" in caplog.text


def test_bm25_negatives_mined_on_the_fly(tmp_path):
    folder, _ = write_beir(tmp_path / "toy")
    examples = load_retrieval_examples([folder], negatives="bm25", mined_dir=tmp_path / "mined")
    assert (tmp_path / "mined" / "toy-bm25.jsonl").exists()
    by_query = {e.query: e for e in examples}
    apples = by_query["where do apples grow"]
    assert apples.positives == [TOPICS[0]] and TOPICS[0] not in apples.negatives
    assert all(e.query not in e.negatives for e in examples)


def test_train_retrieval_cli_end_to_end(minilm_path, tmp_path, capsys):
    folder, negatives = write_beir(tmp_path / "toy")
    out = tmp_path / "out"
    rc = main(
        [
            "train",
            "retrieval",
            "--model",
            str(minilm_path),
            "--pooling",
            "mean",
            "--special-tokens",
            "specb",
            "--train-data",
            str(folder),
            "--negatives",
            str(negatives),
            "--eval-data",
            str(folder),
            "--eval-before",
            "--output",
            str(out),
            "--batch-size",
            "3",
            "--epochs",
            "2",
            "--lr",
            "1e-4",
            "--max-seq-length",
            "32",
        ]
    )
    assert rc == 0
    results = json.loads((out / "eval" / "results.json").read_text())
    assert results["n_queries"] == 6 and results["train"]["steps"] == 4  # 2 epochs x 6 // 3
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    # the reported scores are those of the saved model on the test split
    model = sgpt.load(out)
    assert model.text_format.special_tokens == "specb" and model.max_seq_length == 32
    again = evaluate_retrieval(model, load_beir(folder, "test"), batch_size=8)
    assert results["after"]["toy"]["ndcg@10"] == pytest.approx(again["ndcg@10"], abs=1e-6)
    assert results["before"]["toy"]["ndcg@10"] > 0
    assert "after: toy ndcg@10 = " in capsys.readouterr().out
