"""Issue 10, items 1, 3 and 5: a command never deletes or overwrites what it did not create unless
told (``--overwrite``), never writes into its inputs, checks its output before the long work, writes
strict JSON, and one output has one writer at a time. Each test hashes the tree around the command
and asserts that nothing but the command's own new output changed."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import toy_beir
from faults import FailAt, fail_at, respecting_permissions, sgpt_cmd, small_disk, tree_digest

import sgpt
from sgpt.cli import main
from sgpt.train.config import TrainConfig
from sgpt.train.trainer import fit
from sgpt.utils.io import atomic_dir, write_json
from sgpt.utils.lock import lock_path, output_lock

TRIPLETS = [
    {"anchor": f"the {w} sat on a mat {i}", "positive": f"a {w} was sitting {i}", "negative": f"rain fell {i}"}
    for i, w in enumerate("cat dog bird fish frog goat lion mole".split())
]


def _data(tmp: Path) -> Path:
    file = tmp / "triplets.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in TRIPLETS), encoding="utf-8")
    return file


def _train(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "nli", "--model", str(model), "--train-data", str(data), "--output", str(out),
            "--max-steps", "1", "--batch-size", "2", "--max-seq-length", "16", *extra]  # fmt: skip


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.fixture
def st_model(tiny_gpt_dir, tmp_path) -> Path:
    """A saved sentence-transformers folder of the tiny GPT (a user's model)."""
    return sgpt.load(tiny_gpt_dir, pooling="mean").save(tmp_path / "user-model")


def test_training_into_its_own_input_model_is_refused(st_model, tmp_path, capsys):
    data = _data(tmp_path)
    before = tree_digest(tmp_path)
    for extra in ((), ("--overwrite",)):  # an input: never, even with --overwrite
        assert main(_train(st_model, data, st_model, *extra)) == 2
        assert (
            _error(capsys)
            == f"sgpt: error: --output {st_model}: is the input --model {st_model}; write the output elsewhere"
        )
    assert main(_train(st_model, data, st_model / "sub")) == 2
    assert "is inside the input --model" in _error(capsys)
    assert tree_digest(tmp_path) == before


def test_an_existing_model_is_replaced_only_with_overwrite(tiny_gpt_dir, st_model, tmp_path, capsys):
    data = _data(tmp_path)
    out = tmp_path / "other"
    shutil.copytree(st_model, out)
    before = tree_digest(tmp_path)
    assert main(_train(tiny_gpt_dir, data, out)) == 2
    assert "holds a saved model; pass --overwrite" in _error(capsys)
    assert tree_digest(tmp_path) == before
    assert main(_train(tiny_gpt_dir, data, out, "--overwrite")) == 0
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "triplets.jsonl", "user-model"]  # aside copy gone


def test_a_failed_overwrite_puts_the_old_folder_back(tiny_gpt_dir, st_model, tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"anchor": "a", "positive": 3}\n', encoding="utf-8")
    out = tmp_path / "other"
    shutil.copytree(st_model, out)
    before = tree_digest(tmp_path)
    assert main(_train(tiny_gpt_dir, data, out, "--overwrite")) == 2
    assert "bad.jsonl:1" in _error(capsys)
    assert tree_digest(tmp_path) == before


def test_an_unrelated_folder_is_never_replaced(tiny_gpt_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    data = _data(tmp_path)
    before = tree_digest(tmp_path)
    for extra in ((), ("--overwrite",)):
        assert main(_train(tiny_gpt_dir, data, out, *extra)) == 2
        assert "is not an sgpt model or training output; refusing to replace it" in _error(capsys)
    assert tree_digest(tmp_path) == before


def test_save_never_deletes_a_users_files(tiny_gpt_dir, tmp_path):
    model = sgpt.load(tiny_gpt_dir, pooling="mean")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8 not really")
    file = tmp_path / "report.txt"
    file.write_text("keep me")
    before = tree_digest(tmp_path)
    with pytest.raises(ValueError, match=r"photos: holds a.jpg, which writing this folder would delete"):
        model.save(folder)
    with pytest.raises(ValueError, match=r"report.txt: exists and is not a folder; refusing to replace it"):
        model.save(file)
    with pytest.raises(ValueError, match="empty path"):
        model.save("")
    assert tree_digest(tmp_path) == before  # nothing replaced, no .tmp or .old folder left


def test_mining_into_its_own_data_is_refused(tmp_path, capsys):
    folder = toy_beir(tmp_path / "toy", split="train")
    before = tree_digest(tmp_path)
    assert main(["mine-negatives", "--data", str(folder), "--output", str(folder / "queries.jsonl")]) == 2
    inside = f"is inside the input --data {folder}; write the output elsewhere"
    assert _error(capsys) == f"sgpt: error: --output {folder / 'queries.jsonl'}: {inside}"
    assert tree_digest(tmp_path) == before


def test_existing_result_files_are_kept_without_overwrite(tmp_path, capsys):
    folder = toy_beir(tmp_path / "toy", split="test")
    result = tmp_path / "r.json"
    result.write_text("{}\n")
    assert main(["eval", "beir", "bm25", "--data", str(folder), "--output", str(result)]) == 2
    assert (
        _error(capsys)
        == f"sgpt: error: --output {result}: exists; pass --overwrite to replace it, or choose another --output"
    )
    assert result.read_text() == "{}\n"
    assert main(["eval", "beir", "bm25", "--data", str(folder), "--output", str(result), "--overwrite"]) == 0
    assert json.loads(result.read_text())["n_queries"] > 0


def test_resume_of_a_finished_run_changes_nothing(tiny_gpt_dir, tmp_path, capsys):
    data = _data(tmp_path)
    out = tmp_path / "run"
    assert main(_train(tiny_gpt_dir, data, out)) == 0
    summary = json.loads((out / "train_summary.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    assert math.isfinite(summary["final_loss"])
    before = tree_digest(tmp_path)
    assert main([*_train(tiny_gpt_dir, data, out), "--resume"]) == 0
    assert "holds the finished run (1 steps); nothing to do" in capsys.readouterr().out
    assert tree_digest(tmp_path) == before


def test_json_is_strict_and_undefined_values_are_null(tmp_path, caplog):
    file = tmp_path / "r.json"
    write_json(file, {"spearman": float("nan"), "rows": [1.0, float("inf")], "n": 3})
    assert json.loads(file.read_text(), parse_constant=pytest.fail) == {"spearman": None, "rows": [1.0, None], "n": 3}
    assert "spearman is undefined" in caplog.text and "rows[1] is undefined" in caplog.text


def test_output_is_checked_before_training(tiny_gpt_dir, tmp_path):
    data = _data(tmp_path)
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        done = subprocess.run(respecting_permissions(sgpt_cmd(*_train(tiny_gpt_dir, data, locked / "out"))),
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        locked.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.strip().splitlines()[-1]
        == f"sgpt: error: --output {locked / 'out'}: the folder {locked} is not writable"
    )
    assert "train:" not in done.stderr  # refused before the first step
    assert list(locked.iterdir()) == []
    missing = tmp_path / "no" / "out"
    assert main(_train(tiny_gpt_dir, data, missing)) == 2
    assert not (tmp_path / "no").exists()


def test_a_full_disk_is_found_before_training(tiny_gpt_dir, tmp_path, capsys):
    data = _data(tmp_path)
    with small_disk(tmp_path / "disk", "256k") as disk:
        assert main([*_train(tiny_gpt_dir, data, disk / "out")]) == 2
        err = _error(capsys)
        assert err.startswith(f"sgpt: error: {disk / 'out'}: a checkpoint needs about ") and "MB are free" in err
        assert list(disk.iterdir()) == []


def test_a_write_failure_during_training_keeps_the_previous_checkpoint(tiny_gpt_dir, tmp_path, monkeypatch):
    examples = [tuple(r.values()) for r in TRIPLETS]
    out = tmp_path / "run"
    cfg = TrainConfig(output=str(out), batch_size=2, epochs=2, checkpoint_every_epoch=True, lr=1e-3)
    torch.manual_seed(0)
    clean = fail_at(monkeypatch, None, "sgpt.train.checkpoints.write_checksums")
    fit(sgpt.load(tiny_gpt_dir, pooling="mean"), examples, cfg)
    assert clean.calls == 2  # one per epoch checkpoint
    shutil.rmtree(out)
    monkeypatch.setattr("sgpt.train.checkpoints.write_checksums", FailAt(clean.original, 2))
    expected = (
        r"could not write the checkpoint of step 8 to .*checkpoint-8 \(No space left on device \(injected\)\); "
        r"the newest intact checkpoint is .*checkpoint-4 \(continue with --resume\)"
    )
    with pytest.raises(OSError, match=expected):
        fit(sgpt.load(tiny_gpt_dir, pooling="mean"), examples, cfg)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-4"]  # the partial one removed


def test_every_step_of_replacing_a_model_can_fail_safely(tiny_gpt_dir, tmp_path, monkeypatch):
    """atomic_dir through a failure at each of its renames: the old model is whole afterwards."""
    target = tmp_path / "m"
    sgpt.load(tiny_gpt_dir, pooling="lasttoken").save(target)
    (target / "train_log.csv").write_text("step,loss\n1,0.5\n")
    before = tree_digest(tmp_path)
    model = sgpt.load(tiny_gpt_dir, pooling="mean")
    real_replace = os.replace
    for i in range(1, 20):  # every rename of the save, until one run gets through
        monkeypatch.setattr(os, "replace", FailAt(real_replace, i))
        try:
            model.save(target, keep=["train_log.csv"], overwrite=True)
        except OSError:
            assert tree_digest(tmp_path) == before, f"a failure at rename {i} changed the folder"
            continue
        finally:
            monkeypatch.setattr(os, "replace", real_replace)
        assert i > 2  # saving writes files, then swaps folders: several renames could fail
        break
    assert sgpt.load(target).pooling == "mean"
    assert (target / "train_log.csv").read_text() == "step,loss\n1,0.5\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_second_writer_stops_at_once(tmp_path, capsys):
    folder = toy_beir(tmp_path / "toy", split="train")
    out = tmp_path / "neg.jsonl"
    holder = subprocess.Popen(
        [*sgpt_cmd()[:1], "-c", "import sys, time; from sgpt.utils.lock import output_lock\n"
         f"with output_lock({str(out)!r}, command='sgpt mine-negatives (first)'):\n"
         "    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(["mine-negatives", "--data", str(folder), "--output", str(out)]) == 2
        err = _error(capsys)
        assert f"is being written by another sgpt process (pid {holder.pid}" in err
        assert "sgpt mine-negatives (first)" in err and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its lock file is stale and is taken over
    assert lock_path(out).exists()
    assert main(["mine-negatives", "--data", str(folder), "--output", str(out)]) == 0
    assert not lock_path(out).exists() and out.is_file()


def test_the_lock_is_exclusive_within_one_machine(tmp_path):
    with output_lock(tmp_path / "x"):
        started = time.perf_counter()
        with pytest.raises(ValueError, match=rf"pid {os.getpid()}"), output_lock(tmp_path / "x"):
            pass
        assert time.perf_counter() - started < 30  # does not wait for the holder
    assert not lock_path(tmp_path / "x").exists()


def test_atomic_dir_refuses_before_writing(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"), atomic_dir(tmp_path / "f"):
        pytest.fail("never entered")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
