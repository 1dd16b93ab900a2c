"""Issue 11, item 5 (SPEC 5, row 16): the model folder's README.md is written from the run itself."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from test_train_retrieval import write_beir

import sgpt
from sgpt.model.spec import ModelSpec
from sgpt.recipes.tasks import NLITask, RetrievalTask
from sgpt.recipes.train_nli import train_nli
from sgpt.recipes.train_retrieval import train_retrieval
from sgpt.train.checkpoints import KEPT_ON_SAVE
from sgpt.train.config import TrainConfig

PAIRS = [
    (f"the {w} sleeps in the sun", f"a {w} is resting outside") for w in "cat dog bird fish frog goat lion mole".split()
]
STS_ROWS = [("dev", 4.0, "a cat sleeps", "the cat is asleep"), ("dev", 0.5, "a dog runs", "rain falls"),
            ("dev", 2.5, "two birds fly", "birds are in the sky"), ("test", 5.0, "a man sings", "a man is singing"),
            ("test", 1.0, "fish swim", "a car drives"), ("test", 3.0, "the sun shines", "it is sunny")]  # fmt: skip


def _row(card: str, name: str) -> str:
    """The value cell of the card's row ``| name | value |``."""
    match = re.search(rf"^\| {re.escape(name)} \| (.*) \|$", card, re.MULTILINE)
    assert match, f"no row {name!r} in the card"
    return match.group(1)


def _score(card: str, where: str, metric: str) -> float:
    match = re.search(rf"^\| {re.escape(where)} \| {re.escape(metric)} \| ([-0-9.]+) \|$", card, re.MULTILINE)
    assert match, f"no score {where} / {metric} in the card"
    return float(match.group(1))


@pytest.fixture(scope="module")
def nli_run(tiny_gpt_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("card")
    data = tmp / "pairs.jsonl"
    data.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in PAIRS))
    sts = tmp / "stsb" / "stsbenchmark.tsv"
    sts.parent.mkdir()
    header = "split\tgenre\tdataset\tyear\tsid\tscore\tsentence1\tsentence2\n"
    sts.write_text(
        header + "".join(f"{s}\tg\td\t2020\t{i}\t{v}\t{a}\t{b}\n" for i, (s, v, a, b) in enumerate(STS_ROWS))
    )
    argv = ["sgpt", "train", "nli", "--model", str(tiny_gpt_dir), "--output", str(tmp / "out")]
    task = NLITask(train_data=(str(data),), dev_data=str(sts.parent), test_data=str(sts.parent), max_seq_length=16)
    cfg = TrainConfig(output=str(tmp / "out"), batch_size=2, grad_accum=2, max_steps=3, eval_steps=2, lr=1e-3)
    import sys

    saved, sys.argv = sys.argv, argv
    try:
        results = train_nli(str(tiny_gpt_dir), task, cfg)
    finally:
        sys.argv = saved
    return tmp / "out", results, argv, data


def test_the_card_describes_the_nli_run(nli_run):
    out, results, argv, data = nli_run
    card = (out / "README.md").read_text()
    summary = json.loads((out / "train_summary.json").read_text())
    assert card.startswith("---\nlibrary_name: sentence-transformers\n")
    assert f"```bash\n{shlex.join(argv)}\n```" in card
    assert _row(card, "train data") == f"`{data}`"
    assert int(_row(card, "training examples")) == results["n_examples"] == len(PAIRS)
    assert int(_row(card, "optimizer steps")) == results["train"]["steps"] == 3
    assert _row(card, "batch").startswith("2 per process × 1 process × 2 accumulated micro-batches = 4 examples")
    assert _row(card, "hardware") == f"{summary['device']}, 1 process"
    assert float(_row(card, "final loss")) == pytest.approx(results["train"]["final_loss"], abs=5e-5)
    best = results["train"]["best_step"]
    assert _row(card, "best dev step").startswith(f"{best} (spearman_cosine = ")
    for metric in ("spearman_cosine", "pearson_cosine"):
        after = results["test_after"][metric]
        assert _score(card, "test, after training", metric) == pytest.approx(after, abs=5e-5)
        assert _score(card, "dev, best step", metric) == pytest.approx(results["train"]["dev"][metric], abs=5e-5)
    assert 'model = sgpt.load("out")' in card and 'SentenceTransformer("out")' in card
    assert "encode_queries" not in card  # a symmetric model: plain encode


def test_the_card_survives_rewriting_the_model_folder(nli_run):
    out = nli_run[0]
    card = (out / "README.md").read_text()
    sgpt.load(out).save(out, keep=KEPT_ON_SAVE)  # what saving a new best model does
    assert (out / "README.md").read_text() == card


def test_the_retrieval_card_counts_queries_and_shows_query_document_usage(tiny_gpt_dir, tmp_path):
    folder, negatives = write_beir(tmp_path / "beir")
    task = RetrievalTask(
        train_data=(str(folder),), negatives=str(negatives), eval_data=(str(folder),), max_seq_length=16
    )
    cfg = TrainConfig(output=str(tmp_path / "out"), batch_size=2, max_steps=2, lr=1e-3)
    spec = ModelSpec(query_prompt="query: ", document_prompt="passage: ")
    results = train_retrieval(str(tiny_gpt_dir), task, cfg, spec)
    card = (tmp_path / "out" / "README.md").read_text()
    assert int(_row(card, "training queries")) == results["n_queries"] == 6
    assert int(_row(card, "hard negatives per example")) == 1
    assert _score(card, "beir, after training", "ndcg@10") == pytest.approx(
        results["after"]["beir"]["ndcg@10"], abs=5e-5
    )
    assert "model.encode_queries(" in card and "model.encode_document(" in card
