"""Data-parallel training (sgpt.train.distributed): two gloo processes on CPU equal one process.

Oracle: the single-process step on the whole batch. The test starts two worker processes the
way ``torchrun`` does (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` in the
environment; this file is the worker script), each embeds its part of the batch, and the
summed gradients and loss must be those of the whole batch: with and without GradCache, and
with unequal parts (label offsets). Each worker destroys its process group (``process_group``);
a timeout turns a hang into a failure.

The CLI test launches ``sgpt train nli`` through ``accelerate launch --multi_gpu`` and
``torchrun`` (two CPU processes here) and compares the trained weights with a one-process run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sgpt
from sgpt.train import batching as batching_mod
from sgpt.train import trainer as trainer_mod
from sgpt.train.config import TrainConfig

REL = 1e-5
TIMEOUT_S = 600  # a hang guard only: each launch takes ~20 s on 2 shared cores, far below it under any load
HERE = Path(__file__).resolve()

CASES = [  # name, local sizes of rank 0 and 1, GradCache chunk (None = plain step)
    ("halves", [4, 4], None),
    ("halves-gradcache", [4, 4], 3),
    ("unequal", [3, 6], None),
    ("unequal-gradcache", [6, 3], 4),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def batch_of(n: int) -> list[tuple[str, str, str]]:
    words = ["red", "blue", "green", "old", "new", "tall", "small", "quiet", "loud", "warm", "cold", "dark"]
    return [
        (
            f"q{i} " + " ".join(words[: 1 + i % 7]),
            f"p{i} " + words[i % 12] + " house" * (i % 4),
            f"n{i} a " + words[(i * 5) % 12] + " tree",
        )
        for i in range(n)
    ]


def step_config(chunk: int | None, output: str) -> TrainConfig:
    return TrainConfig(output=output, micro_batch_size=2, gradcache=chunk is not None, chunk_size=chunk or 32)


# --------------------------------------------------------------------------------------- worker process
def worker(spec_file: str) -> None:
    """One rank: for every case, the step on its part, gradients summed over processes, saved to a file."""
    from sgpt.train.distributed import (
        all_reduce_gradients,
        process_group,
        rank,
        sum_over_processes,
    )

    torch.set_num_threads(1)
    spec = json.loads(Path(spec_file).read_text())
    with process_group(timeout_s=TIMEOUT_S):
        me = rank()
        model = sgpt.load(spec["model"], pooling="weightedmean").train()
        results = {}
        for name, sizes, chunk in CASES:
            batch = batch_of(sum(sizes))
            local = batch[sum(sizes[:me]) : sum(sizes[: me + 1])]
            model.zero_grad(set_to_none=True)
            share = trainer_mod.make_step(model, step_config(chunk, spec["out"]))(local, 1.0)
            all_reduce_gradients([p for p in model.parameters() if p.requires_grad])
            results[name] = {
                "loss": sum_over_processes(share, torch.device("cpu")),
                "grads": {n: p.grad for n, p in model.named_parameters()},
            }
        torch.save(results, Path(spec["out"]) / f"rank{me}.pt")


def launch(cmd: list[str], env: dict, cwd: Path | None = None) -> list[subprocess.CompletedProcess]:
    """Run ``cmd`` once per rank (or once when it is a launcher: ``env`` without RANK) with a timeout."""
    procs = []
    ranks = [None] if "RANK" not in env else [0, 1]
    for r in ranks:
        e = {**os.environ, **env, "OMP_NUM_THREADS": "1"}
        if r is not None:
            e.update(RANK=str(r), LOCAL_RANK=str(r))
        procs.append(subprocess.Popen(cmd, env=e, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    results = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"{cmd} hung for {TIMEOUT_S} s")
        results.append(subprocess.CompletedProcess(cmd, p.returncode, out))
    for res in results:
        assert res.returncode == 0, res.stdout[-4000:]
    return results


def test_two_processes_equal_one(tiny_gpt_dir, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"model": str(tiny_gpt_dir), "out": str(tmp_path)}))
    env = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0"}
    launch([sys.executable, str(HERE), str(spec)], env)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]

    # the one-process oracle runs under conftest's one torch thread, like each worker (worker() above)
    model = sgpt.load(tiny_gpt_dir, pooling="weightedmean").train()
    for name, sizes, chunk in CASES:
        model.zero_grad(set_to_none=True)
        want_loss = trainer_mod.make_step(model, step_config(chunk, str(tmp_path)))(batch_of(sum(sizes)), 1.0)
        for r, result in enumerate(ranks):
            got = result[name]
            assert got["loss"] == pytest.approx(want_loss, rel=REL), (name, r)
            for n, p in model.named_parameters():
                err = float((got["grads"][n] - p.grad).abs().max() / p.grad.abs().max())
                assert err <= REL, f"{name}, rank {r}, {n}: relative difference {err:.2e}"


# ---------------------------------------------------------------------------------------- data modes
def test_shard_and_replicate_batches(monkeypatch):
    examples = [(f"a{i}", f"b{i}") for i in range(40)]
    cfg = TrainConfig(output="x", batch_size=4, seed=1)
    monkeypatch.setattr(batching_mod, "world_size", lambda: 2)

    def first_batches(mode, me, n=3):
        monkeypatch.setattr(batching_mod, "rank", lambda: me)
        per_epoch, stream = trainer_mod.rank_batches(examples, TrainConfig(**{**cfg.to_dict(), "data_parallel": mode}))
        return per_epoch, [next(stream) for _ in range(n)]

    (n0, s0), (n1, s1) = first_batches("shard", 0), first_batches("shard", 1)
    assert n0 == n1 == 40 // 8
    global_batches = trainer_mod.NoDuplicatesBatchSampler(examples, 8, seed=1)
    for a, b, g in zip(s0, s1, global_batches, strict=False):
        assert a + b == g and len(a) == len(b) == 4  # each process its slice of one global batch
    (m0, r0), (m1, r1) = first_batches("replicate", 0), first_batches("replicate", 1)
    assert m0 == m1 == 40 // 4  # each process walks the whole data
    assert r0 != r1 and all(len(b) == 4 for b in r0 + r1)
    monkeypatch.setattr(batching_mod, "world_size", lambda: 1)
    assert first_batches("shard", 0) == first_batches("replicate", 0)  # one process: the same stream


def test_main_process_outside_a_group_follows_the_launcher(monkeypatch):
    from sgpt.train.distributed import is_main_process, world_size

    assert is_main_process() and world_size() == 1
    monkeypatch.setenv("RANK", "1")  # e.g. after fit() destroyed the group: keep I/O on rank 0
    assert not is_main_process() and world_size() == 1


def test_an_epoch_without_a_batch_is_an_error():
    """Examples that all share a text cannot fill a duplicate-free batch: an error, not an endless loop."""
    examples = [("same anchor", f"b{i}") for i in range(10)]
    _, stream = trainer_mod.rank_batches(examples, TrainConfig(output="x", batch_size=2))
    with pytest.raises(ValueError, match="without duplicate texts"):
        next(stream)


# --------------------------------------------------------------------------------------------- the CLI
def _write_triplets(path: Path, n: int) -> None:
    path.write_text("".join(json.dumps({"anchor": a, "positive": p, "negative": q}) + "\n" for a, p, q in batch_of(n)))


def _weights(folder: Path) -> dict:
    return dict(sgpt.load(folder).backbone.state_dict())


@pytest.mark.parametrize("launcher", ["accelerate", "torchrun"])
def test_cli_two_processes_train_like_one(tiny_gpt_dir, tmp_path, launcher):
    """``shard``: 2 processes x batch 4 take the same global batches as 1 process x batch 8 -> same weights."""
    data = tmp_path / "train.jsonl"
    _write_triplets(data, 40)
    common = [
        "train",
        "nli",
        "--model",
        str(tiny_gpt_dir),
        "--train-data",
        str(data),
        "--max-steps",
        "3",
        "--lr",
        "1e-3",
        "--warmup-ratio",
        "0",
        "--seed",
        "5",
        "--max-seq-length",
        "32",
    ]
    extra = ["--gradcache", "--chunksize", "3"] if launcher == "accelerate" else []
    port = str(free_port())
    if launcher == "accelerate":
        prefix = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            port,
            "-m",
            "sgpt",
        ]
    else:
        prefix = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            port,
            "-m",
            "sgpt",
        ]
    launch(
        prefix + common + extra + ["--batch-size", "4", "--data-parallel", "shard", "--output", str(tmp_path / "two")],
        {},
    )
    from sgpt.cli import main

    assert main(common + ["--batch-size", "8", "--output", str(tmp_path / "one")]) == 0
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    base = _weights(tiny_gpt_dir)
    assert any(not torch.equal(one[k], base[k]) for k in one)  # it trained
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-6)
    summary = json.loads((tmp_path / "two" / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 3


if __name__ == "__main__":
    worker(sys.argv[1])
