"""A short real run through the CLI: ``--gradcache`` trains to the same weights as the plain run.

MiniLM (a real BERT, dropout on) on one batch of SNLI triplets for a few AdamW steps, same seed, with and
without GradCache. The plain run embeds in micro-batches of the chunk size, so both runs draw
the same dropout masks and must agree up to float rounding, step by step.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import need_data

import sgpt
from sgpt.cli import build_parser, main
from sgpt.cli.train import train_config


@pytest.fixture(scope="module")
def triplet_file(tmp_path_factory) -> Path:
    from sgpt.data import build_triplets, read_nli_pairs

    triplets, seen = [], set()
    for t in build_triplets(read_nli_pairs(need_data("snli-senteval"), split="dev"), seed=0):
        if not seen & set(t):
            triplets.append(t)
            seen |= set(t)
        if len(triplets) == 8:  # one duplicate-free batch, seen every step: the loss must fall
            break
    path = tmp_path_factory.mktemp("snli") / "train.jsonl"
    rows = [dict(zip(("anchor", "positive", "negative"), t, strict=True)) for t in triplets]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _losses(folder: Path) -> list[float]:
    with open(folder / "train_log.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def test_gradcache_run_matches_plain_run(minilm_path, triplet_file, tmp_path):
    common = [
        "train",
        "nli",
        "--model",
        str(minilm_path),
        "--pooling",
        "mean",
        "--train-data",
        str(triplet_file),
        "--batch-size",
        "8",
        "--max-steps",
        "4",
        "--lr",
        "5e-4",
        "--warmup-ratio",
        "0",
        "--seed",
        "3",
        "--max-seq-length",
        "32",
        "--micro-batch-size",
        "3",
    ]
    assert main(common + ["--output", str(tmp_path / "plain")]) == 0
    assert main(common + ["--gradcache", "--chunksize", "3", "--output", str(tmp_path / "cached")]) == 0
    plain, cached = _losses(tmp_path / "plain"), _losses(tmp_path / "cached")
    assert len(plain) == 4 and plain[-1] < 0.8 * plain[0]  # it learns
    assert cached == pytest.approx(plain, rel=1e-4)
    start = sgpt.load(minilm_path).backbone.state_dict()
    want, got = (
        sgpt.load(tmp_path / "plain").backbone.state_dict(),
        sgpt.load(tmp_path / "cached").backbone.state_dict(),
    )
    assert any(not torch.equal(want[k], start[k]) for k in want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=2e-6)
    config = json.loads((tmp_path / "cached" / "train_summary.json").read_text())["config"]
    assert config["gradcache"] is True and config["chunk_size"] == 3


def test_cli_flags():
    args = build_parser().parse_args(
        [
            "train",
            "nli",
            "--model",
            "m",
            "--train-data",
            "d",
            "--output",
            "o",
            "--gradcache",
            "--chunksize",
            "auto",
            "--max-memory",
            "8GiB",
            "--data-parallel",
            "replicate",
        ]
    )
    assert (args.gradcache, args.chunksize, args.max_memory, args.data_parallel) == (True, "auto", "8GiB", "replicate")
    cfg = train_config(args, {})
    assert (cfg.gradcache, cfg.chunk_size, cfg.max_memory, cfg.data_parallel) == (True, "auto", "8GiB", "replicate")
    # flags left out are "not given"; the run config fills in its own defaults
    defaults = build_parser().parse_args(["train", "nli", "--model", "m", "--train-data", "d", "--output", "o"])
    assert (defaults.gradcache, defaults.chunksize, defaults.data_parallel, defaults.precision) == (None,) * 4
    cfg = train_config(defaults, {})
    assert (cfg.gradcache, cfg.chunk_size, cfg.data_parallel, cfg.precision) == (False, 32, "shard", "auto")
    for bad in (["--chunksize", "0"], ["--chunksize", "big"], ["--data-parallel", "both"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", "nli", "--model", "m", "--train-data", "d", "--output", "o", *bad])
