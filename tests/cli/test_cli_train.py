"""``sgpt train``: the README's retrieval command on real data, and help texts whose defaults are the
run config's own (one place for each default)."""

from __future__ import annotations

import json

from conftest import need_data

from sgpt.cli import build_parser, main
from sgpt.cli.train import train_config
from sgpt.recipes.tasks import DEFAULT_BATCH_SIZE, NLITask, RetrievalTask
from sgpt.train.config import TrainConfig


def test_train_retrieval_with_bm25_negatives_keeps_its_own_output(minilm_path, tmp_path):
    """The README's command (``--negatives bm25`` into a new ``--output``) for one step on SciFact:
    the mined file lands in OUTPUT/negatives/, the run does not refuse its own folder, and the final
    save keeps the mined file."""
    scifact = need_data("beir", "scifact")
    out = tmp_path / "new"
    argv = ["train", "retrieval", "--model", str(minilm_path), "--pooling", "mean", "--train-data", str(scifact)]
    argv += ["--negatives", "bm25", "--output", str(out), "--max-steps", "1", "--batch-size", "4"]
    argv += ["--max-seq-length", "32", "--no-checkpoints"]
    assert main(argv) == 0
    mined = out / "negatives" / "scifact-bm25.jsonl"
    rows = [json.loads(line) for line in mined.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 809  # SciFact's train queries that have a judgment (qrels/train.tsv)
    assert all(len(r["neg"]) <= 30 and not set(r["neg"]) & set(r["pos"]) for r in rows)
    assert (out / "modules.json").is_file() and (out / "train_log.csv").is_file()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 1 and summary["config"]["batch_size"] == 4


def test_help_shows_the_dataclass_defaults_and_unset_flags_take_them():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["train"]._subparsers._group_actions[0].choices
    nli_help, retrieval_help = sub["nli"].format_help(), sub["retrieval"].format_help()
    cfg = TrainConfig(output="x")
    flat = " ".join(nli_help.split())
    for text in (
        f"(default: {cfg.lr})",
        f"(default: {cfg.warmup_ratio})",
        f"(default: {cfg.batch_size})",
        f"(default: {NLITask.max_seq_length})",
    ):
        assert text in flat
    flat = " ".join(retrieval_help.split())
    assert f"(default: {DEFAULT_BATCH_SIZE})" in flat and f"(default: {RetrievalTask.max_seq_length})" in flat
    args = parser.parse_args(["train", "nli", "--model", "m", "--train-data", "d", "--output", "o"])
    assert train_config(args, {}) == cfg.__class__(output="o")
    args = parser.parse_args(
        ["train", "retrieval", "--model", "m", "--train-data", "d", "--output", "o", "--lr", "1e-4"]
    )
    got = train_config(args, {"batch_size": DEFAULT_BATCH_SIZE})
    assert (got.batch_size, got.lr, got.epochs) == (DEFAULT_BATCH_SIZE, 1e-4, cfg.epochs)


def test_a_non_finite_flag_is_one_line_before_anything_is_loaded(tmp_path, capsys):
    argv = ["train", "nli", "--model", str(tmp_path / "no-such-model"), "--train-data", "d"]
    assert main([*argv, "--output", str(tmp_path / "o"), "--lr", "inf", "--weight-decay", "nan"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "sgpt: error: invalid training config: lr must be a finite number > 0, got inf; "
        "weight_decay must be a finite number >= 0, got nan"
    ]
    assert not (tmp_path / "o").exists()
