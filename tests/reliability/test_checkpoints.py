"""Issue 10, item 4 and issue 11, item 7: checkpoints carry checksums written last; ``--resume`` names
a damaged file and falls back to the newest intact checkpoint; a ``train nli`` run with dev
evaluation killed with SIGKILL, or stopped with SIGTERM, resumes to the same model, best step and
logs; a checkpoint that cannot be written (read-only folder, full disk) keeps the previous one."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from faults import respecting_permissions, sgpt_cmd, small_disk, tree_digest

import sgpt
from sgpt.train.checkpoints import complete_checkpoints, latest_checkpoint
from sgpt.train.config import TrainConfig
from sgpt.train.trainer import fit
from sgpt.utils.checksums import verify_checksums

EXAMPLES = [(f"question {i} about {w}", f"answer {i} on {w}") for i, w in enumerate("abcdefghij")]


def _cfg(out, **kw) -> TrainConfig:
    return TrainConfig(output=str(out), batch_size=2, epochs=3, lr=1e-3, checkpoint_every_epoch=True, **kw)


def _fit(tiny_gpt_dir, out, **kw):
    torch.manual_seed(0)
    model = sgpt.load(tiny_gpt_dir, pooling="mean")
    return model, fit(model, EXAMPLES, _cfg(out, **kw))


@pytest.mark.parametrize("damaged", ["model.safetensors", "trainer_state.pt"])
def test_resume_falls_back_from_a_truncated_checkpoint(tiny_gpt_dir, tmp_path, capsys, damaged):
    clean, _ = _fit(tiny_gpt_dir, tmp_path / "clean")
    out = tmp_path / "run"
    _fit(tiny_gpt_dir, out)
    newest, older = complete_checkpoints(out)[:2]
    assert (newest.name, older.name) == ("checkpoint-15", "checkpoint-10")
    assert verify_checksums(newest) == []
    (out / "train_summary.json").unlink()  # as if killed after the last checkpoint
    file = newest / damaged
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    capsys.readouterr()
    resumed, _ = _fit(tiny_gpt_dir, out, resume=True)
    said = capsys.readouterr().out
    assert f"--resume: {file}: size " in said and "falling back to an older checkpoint" in said
    assert f"resuming from {older} at step 11" in said
    texts = ["question 3 about d", "something else"]
    np.testing.assert_array_equal(resumed.encode(texts), clean.encode(texts))  # the same run, bit for bit


def test_a_checkpoint_without_checksums_still_resumes(tiny_gpt_dir, tmp_path, capsys):
    out = tmp_path / "run"
    _fit(tiny_gpt_dir, out, max_steps=5)
    (out / "train_summary.json").unlink()
    for folder in complete_checkpoints(out):
        (folder / "checksums.json").unlink()  # written by an older sgpt
    capsys.readouterr()
    _fit(tiny_gpt_dir, out, max_steps=5, resume=True)
    assert "resuming from" in capsys.readouterr().out


# save_checkpoint is patched in the trainer's namespace, where the run calls it
KILL_AFTER_SECOND_CHECKPOINT = """
import os, signal, sys
import sgpt.train.trainer as trainer
real, saved = trainer.save_checkpoint, []
def save_then_die(*args, **kwargs):
    folder = real(*args, **kwargs)
    saved.append(folder)
    if len(saved) == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # a real kill -9, right after the second complete checkpoint
    return folder
trainer.save_checkpoint = save_then_die
from sgpt.cli import main
sys.exit(main(sys.argv[1:]))
"""
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STS = [("dev", 4.0, "question 1 about b", "answer 1 on b"), ("dev", 0.5, "question 2 about c", "answer 7 on h"),
       ("dev", 2.5, "question 4 about e", "answer 4 on f"), ("test", 5.0, "question 9", "answer 9 on j"),
       ("test", 1.0, "question 0 about a", "answer 5 on f")]  # fmt: skip


@pytest.fixture(scope="module")
def nli_run(tiny_gpt_dir, tmp_path_factory):
    """The argv of a ``train nli`` run with dev evaluation every 3 of its 10 steps (so checkpoints
    at 3, 6, 9 and 10), and the output of that run left uninterrupted."""
    tmp = tmp_path_factory.mktemp("nli")
    data = tmp / "pairs.jsonl"
    data.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in EXAMPLES * 2))
    sts = tmp / "stsb" / "stsbenchmark.tsv"
    sts.parent.mkdir()
    rows = "".join(f"{s}\tg\td\t2020\t{i}\t{v}\t{a}\t{b}\n" for i, (s, v, a, b) in enumerate(STS))
    sts.write_text("split\tgenre\tdataset\tyear\tsid\tscore\tsentence1\tsentence2\n" + rows)
    argv = ["train", "nli", "--model", str(tiny_gpt_dir), "--train-data", str(data), "--batch-size", "2",
            "--max-seq-length", "16", "--lr", "1e-3", "--dev-data", str(sts.parent), "--eval-steps", "3"]  # fmt: skip
    clean = tmp / "clean"
    subprocess.run(sgpt_cmd(*argv, "--output", str(clean)), check=True, env=ENV, capture_output=True, timeout=600)
    return argv, clean


def _same_run(out, clean) -> None:
    """``out`` ended as the uninterrupted ``clean`` run: the same weights (bit for bit), dev scores,
    best step, losses and test scores."""
    weights = {k: v for k, v in tree_digest(clean).items() if k.endswith(".safetensors")}
    assert weights and {k: v for k, v in tree_digest(out).items() if k in weights} == weights
    assert (out / "eval_log.csv").read_text() == (clean / "eval_log.csv").read_text()
    mine, theirs = (json.loads((o / "train_summary.json").read_text()) for o in (out, clean))
    assert (mine["best_step"], mine["best_dev"], mine["final_loss"]) == (
        theirs["best_step"], theirs["best_dev"], theirs["final_loss"])  # fmt: skip
    losses = [[r.split(",")[1] for r in (o / "train_log.csv").read_text().splitlines()] for o in (out, clean)]
    assert losses[0] == losses[1]
    results = [json.loads((o / "eval" / "results.json").read_text())["test_after"] for o in (out, clean)]
    assert results[0] == results[1]


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(nli_run, tmp_path):
    argv, clean = nli_run
    out = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_SECOND_CHECKPOINT, *argv, "--output", str(out)],
                            env=ENV, capture_output=True, timeout=600)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-6", "checkpoint-3"]
    assert not (out / "train_summary.json").exists() and (out / "modules.json").exists()  # a best model so far
    resumed = subprocess.run(sgpt_cmd(*argv, "--output", str(out), "--resume"), check=True, env=ENV,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert "resuming from" in resumed.stdout and "at step 7" in resumed.stdout
    _same_run(out, clean)
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-10", "checkpoint-9"]  # disk stays bounded


def test_sigterm_saves_a_checkpoint_exits_143_and_prints_the_resume_command(nli_run, tmp_path):
    argv, clean = nli_run
    out = tmp_path / "terminated"
    cmd = sgpt_cmd(*argv, "--output", str(out))
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = out / "train_log.csv"
    deadline = time.monotonic() + 300
    while not (log.exists() and len(log.read_text().splitlines()) > 3):  # 3 steps done: mid-run
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be stopped"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # as a cluster's scheduler does
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    line = next(x for x in err.splitlines() if "SIGTERM: training stopped after step" in x)
    step = int(re.search(r"after step (\d+);", line).group(1))
    assert 3 <= step < 10
    assert f"saved {out / 'checkpoints' / f'checkpoint-{step}'}; resume with: " in line
    resume = line.split("resume with: ", 1)[1]
    assert shlex.split(resume) == [*cmd, "--resume"]  # the same command line plus --resume
    assert latest_checkpoint(out) == out / "checkpoints" / f"checkpoint-{step}"
    assert verify_checksums(latest_checkpoint(out)) == []
    subprocess.run(shlex.split(resume), check=True, env=ENV, capture_output=True, timeout=600)
    _same_run(out, clean)


# After the first checkpoint, the folder of checkpoints turns read-only (lost permissions).
READ_ONLY_AFTER_FIRST_CHECKPOINT = """
import os, sys
import sgpt.train.trainer as trainer
real = trainer.save_checkpoint
def save_then_lock(out, *args, **kwargs):
    folder = real(out, *args, **kwargs)
    os.chmod(out / "checkpoints", 0o555)
    return folder
trainer.save_checkpoint = save_then_lock
from sgpt.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("fault", ["read-only", "full disk"])
def test_a_failed_checkpoint_of_train_nli_keeps_the_previous_one(nli_run, tmp_path, fault):
    argv, _ = nli_run
    if fault == "read-only":
        out = tmp_path / "run"
        cmd = respecting_permissions([sys.executable, "-c", READ_ONLY_AFTER_FIRST_CHECKPOINT, *argv,
                                      "--output", str(out)])  # fmt: skip
        done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
        os.chmod(out / "checkpoints", 0o755)
        check(done, out)
        return
    with small_disk(tmp_path / "disk", "2100k") as disk:  # room for the model and one checkpoint (1.4 MB), not two
        out = disk / "run"
        check(subprocess.run(sgpt_cmd(*argv, "--output", str(out)), env=ENV, capture_output=True, text=True,
                             timeout=600), out)  # fmt: skip


def check(done: subprocess.CompletedProcess, out) -> None:
    """The run stopped with one line naming the newest intact checkpoint, which verifies; no partial one is left."""
    assert done.returncode == 2, done.stderr
    # one line (tqdm's bar may share it: it ends with \r, not \n)
    (last,) = ["sgpt: error:" + x.split("sgpt: error:", 1)[1] for x in done.stderr.splitlines() if "sgpt: error:" in x]
    kept = latest_checkpoint(out)
    assert kept is not None and verify_checksums(kept) == []
    assert re.fullmatch(rf"sgpt: error: could not write .*; the newest intact checkpoint is {re.escape(str(kept))} "
                        r"\(continue with --resume\)", last), last  # fmt: skip
    assert all(verify_checksums(p) == [] for p in complete_checkpoints(out))
    assert all((p / "trainer_state.pt").exists() for p in (out / "checkpoints").iterdir() if not p.name.startswith("."))
