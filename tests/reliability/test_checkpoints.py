"""Issue 10, item 4: checkpoints carry checksums written last; ``--resume`` names a damaged file and
falls back to the newest intact checkpoint; a run killed with SIGKILL resumes to the same model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from faults import sgpt_cmd, tree_digest

import sgpt
from sgpt.train.checkpoints import complete_checkpoints
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


KILL_AFTER_FIRST_CHECKPOINT = """
import os, signal, sys
import sgpt.train.trainer as trainer
real = trainer.save_checkpoint
def save_then_die(*args, **kwargs):
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # a real kill -9, right after the first complete checkpoint
trainer.save_checkpoint = save_then_die
from sgpt.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tiny_gpt_dir, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in EXAMPLES * 2))
    argv = ["train", "nli", "--model", str(tiny_gpt_dir), "--train-data", str(data), "--batch-size", "2",
            "--max-seq-length", "16", "--epochs", "3", "--lr", "1e-3"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    clean, out = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(sgpt_cmd(*argv, "--output", str(clean)), check=True, env=env, capture_output=True, timeout=600)
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_CHECKPOINT, *argv, "--output", str(out)],
                            env=env, capture_output=True, timeout=600)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-10"]
    assert not (out / "train_summary.json").exists() and not (out / "modules.json").exists()
    resumed = subprocess.run(sgpt_cmd(*argv, "--output", str(out), "--resume"), check=True, env=env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert "resuming from" in resumed.stdout and "at step 11" in resumed.stdout
    weights = {k: v for k, v in tree_digest(clean).items() if k.endswith(".safetensors")}
    assert weights and {k: v for k, v in tree_digest(out).items() if k in weights} == weights  # bit-identical
