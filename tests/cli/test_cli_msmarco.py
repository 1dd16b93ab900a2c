"""``sgpt train msmarco``: a real short run on MiniLM from a folder in MS MARCO's layout, scored on
its dev split; missing files in one line; help texts whose defaults are the task's own."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))  # the layout lives with the data tests
from test_msmarco import write_msmarco  # noqa: E402

import sgpt  # noqa: E402
from sgpt.cli import build_parser, main  # noqa: E402
from sgpt.data.msmarco import COLLECTION, DEV_QRELS, DEV_QUERIES, HARD_NEGATIVES, read_dev_split  # noqa: E402
from sgpt.data.passages import PassageStore  # noqa: E402
from sgpt.evaluation.beir import evaluate_retrieval  # noqa: E402
from sgpt.recipes.tasks import MSMARCO_TRAINING, MSMarcoTask  # noqa: E402


def test_train_msmarco_cli_end_to_end_with_dev_scores(minilm_path, tmp_path, capsys):
    folder = write_msmarco(tmp_path / "marco")
    out = tmp_path / "out"
    argv = ["train", "msmarco", "--model", str(minilm_path), "--pooling", "mean", "--special-tokens", "specb"]
    argv += ["--data", str(folder), "--output", str(out), "--batch-size", "2", "--epochs", "2", "--lr", "1e-4"]
    argv += ["--warmup-ratio", "0.25", "--max-seq-length", "32", "--eval-dev", "--dev-corpus-max-size", "2"]
    assert main(argv) == 0
    results = json.loads((out / "eval" / "results.json").read_text())
    assert results["n_queries"] == 6 and results["train"]["steps"] == 6  # 2 epochs x 6 queries // 2
    summary = json.loads((out / "train_summary.json").read_text())["config"]
    assert (summary["warmup_steps"], summary["warmup_ratio"]) == (None, 0.25)  # --warmup-ratio replaces the 1000 steps
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-3", "checkpoint-6"]  # every epoch
    # the reported scores are those of the saved model on the dev split (judged passages + the first 2)
    model = sgpt.load(out)
    assert model.text_format.special_tokens == "specb" and model.max_seq_length == 32
    dev = read_dev_split(folder / DEV_QUERIES, folder / DEV_QRELS, PassageStore(folder / COLLECTION), corpus_max_size=2)
    again = evaluate_retrieval(model, dev, batch_size=8)
    scores = results["after"]["msmarco-dev"]
    assert scores["n_docs"] == 5 and scores["n_queries"] == 3
    assert scores["mrr@10"] == pytest.approx(again["mrr@10"], abs=1e-6)
    assert scores["ndcg@10"] == pytest.approx(again["ndcg@10"], abs=1e-6) and scores["ndcg@10"] > 0
    assert f"after: msmarco-dev mrr@10 = {scores['mrr@10']:.4f}" in capsys.readouterr().out
    # --resume on the finished run does nothing more
    assert main([*argv, "--resume"]) == 0
    assert "holds the finished run (6 steps); nothing to do" in capsys.readouterr().out


def test_a_missing_file_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    import sgpt.model.backbone

    monkeypatch.setattr(sgpt.model.backbone, "hub_reachable", lambda *a, **k: False)  # never download 1.2 GB here
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    folder = write_msmarco(tmp_path / "marco")
    (folder / HARD_NEGATIVES).unlink()
    argv = ["train", "msmarco", "--model", str(tmp_path / "no-model"), "--data", str(folder)]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sgpt: error: {folder / HARD_NEGATIVES}: missing (the mined hard")
    assert err[0].endswith(f"the cache {tmp_path / 'hub-cache'} does not hold it")  # both places it looked
    (folder / COLLECTION).unlink()  # MS MARCO's own files are never fetched from the hub
    assert main([*argv, "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"sgpt: error: {folder / COLLECTION}: missing (the passages); --data")
    write_msmarco(folder)
    assert main([*argv, "--output", str(folder / "inside")]) == 2  # never write into the data folder
    assert "is inside the input --data" in capsys.readouterr().err


def test_help_shows_the_task_defaults():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["train"]._subparsers._group_actions[0].choices
    flat = " ".join(sub["msmarco"].format_help().split())
    for text in (
        f"(default: {MSMARCO_TRAINING['batch_size']})",
        f"(default: {MSMARCO_TRAINING['epochs']})",
        f"(default: {MSMarcoTask.max_seq_length})",
        f"this (default: {MSMarcoTask.ce_score_margin})",
        f"system (default: {MSMarcoTask.num_negs_per_system})",
        "else weightedmean",
    ):
        assert text in flat, text
    args = parser.parse_args(
        ["train", "msmarco", "--model", "m", "--data", "d", "--output", "o", "--negs-to-use", "a,b"]
    )
    assert args.negs_to_use == ["a", "b"] and args.checkpoints is True
