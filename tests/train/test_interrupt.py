"""Issue 11, items 6-7: checkpoints every N steps and at dev evaluations, pruned to the newest two;
SIGTERM / SIGINT stop a run after the step with a checkpoint and the command that resumes it."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys

import numpy as np
import pytest
import torch

import sgpt
from sgpt.cli import main
from sgpt.train import trainer as trainer_mod
from sgpt.train.checkpoints import TRAINER_STATE, complete_checkpoints
from sgpt.train.config import TrainConfig
from sgpt.train.interrupt import TrainingInterrupted, TrainingTerminated, command_line, resume_command
from sgpt.train.trainer import fit
from sgpt.utils.checksums import verify_checksums, write_checksums

EXAMPLES = [(f"question {i} about {w}", f"answer {i} on {w}") for i, w in enumerate("abcdefghij")]
TEXTS = ["question 3 about d", "something else"]


def _cfg(out, **kw) -> TrainConfig:
    return TrainConfig(
        **{"output": str(out), "batch_size": 2, "max_steps": 6, "lr": 1e-3, "checkpoint_every_epoch": True, **kw}
    )


def _model(tiny_gpt_dir):
    torch.manual_seed(0)
    return sgpt.load(tiny_gpt_dir, pooling="mean")


def _signal_after(monkeypatch, step: int, *signums: int) -> None:
    """Send ``signums`` to this very process inside optimizer step ``step`` (a real signal, mid-step)."""
    real, seen = trainer_mod._optimizer_step, []

    def step_then_signal(*args, **kwargs):
        loss = real(*args, **kwargs)
        seen.append(1)
        if len(seen) == step:
            for s in signums:
                os.kill(os.getpid(), s)
        return loss

    monkeypatch.setattr(trainer_mod, "_optimizer_step", step_then_signal)


class _Scores:
    """A dev 'evaluator' with fixed scores per call (no encoding: only the bookkeeping is tested)."""

    def __init__(self, *scores: float) -> None:
        self.scores, self.calls = list(scores), 0

    def __call__(self, model) -> dict:
        self.calls += 1
        return {"spearman_cosine": self.scores[min(self.calls, len(self.scores)) - 1]}


def test_sigterm_stops_after_the_step_with_a_checkpoint_and_resumes_exactly(tiny_gpt_dir, tmp_path, monkeypatch):
    clean = _model(tiny_gpt_dir)
    fit(clean, EXAMPLES, _cfg(tmp_path / "clean", eval_steps=2), evaluator=_Scores(0.1, 0.3, 0.2))
    out, before = tmp_path / "run", signal.getsignal(signal.SIGTERM)
    _signal_after(monkeypatch, 3, signal.SIGTERM)
    with pytest.raises(TrainingTerminated) as stop:
        fit(_model(tiny_gpt_dir), EXAMPLES, _cfg(out, eval_steps=2), evaluator=_Scores(0.1, 0.3, 0.2))
    assert stop.value.code == 143 and stop.value.exit_code == 143
    assert stop.value.checkpoint == out / "checkpoints" / "checkpoint-3"
    assert "SIGTERM: training stopped after step 3; saved " in str(stop.value)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler was for the call only
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-3", "checkpoint-2"]
    assert verify_checksums(out / "checkpoints" / "checkpoint-3") == []
    monkeypatch.undo()
    resumed = _model(tiny_gpt_dir)
    summary = fit(resumed, EXAMPLES, _cfg(out, eval_steps=2, resume=True), evaluator=_Scores(0.3, 0.2))
    np.testing.assert_array_equal(resumed.encode(TEXTS), clean.encode(TEXTS))
    assert summary["best_step"] == 4 and summary["best_score"] == 0.3  # the best model chosen across the stop
    assert (out / "eval_log.csv").read_text() == (tmp_path / "clean" / "eval_log.csv").read_text()


def test_sigint_in_the_cli_exits_130_and_prints_the_resume_command(tiny_gpt_dir, tmp_path, monkeypatch, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(f'{{"anchor": "{a}", "positive": "{p}"}}\n' for a, p in EXAMPLES))
    argv = ["train", "nli", "--model", str(tiny_gpt_dir), "--train-data", str(data), "--batch-size", "2",
            "--max-seq-length", "16", "--max-steps", "4", "--no-checkpoints", "--output", str(tmp_path / "o"),
            "--overwrite"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["sgpt", *argv])
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup / a background CI job
    _signal_after(monkeypatch, 2, signal.SIGINT)
    assert main(argv) == 130
    err = capsys.readouterr().err
    expected = shlex.join(["sgpt", *argv[:-1], "--resume"])  # --overwrite dropped: a resume replaces nothing
    assert f"SIGINT: training stopped after step 2; saved {tmp_path / 'o' / 'checkpoints' / 'checkpoint-2'}" in err
    assert f"resume with: {expected}\n" in err
    assert signal.getsignal(signal.SIGINT) is before
    # the printed command continues the run (a checkpoint is saved even with --no-checkpoints)
    monkeypatch.undo()
    assert main(shlex.split(expected)[1:]) == 0
    assert "resuming from" in capsys.readouterr().out


def test_a_second_signal_abandons_at_once(tiny_gpt_dir, tmp_path, monkeypatch):
    _signal_after(monkeypatch, 2, signal.SIGTERM, signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as stop:
        fit(_model(tiny_gpt_dir), EXAMPLES, _cfg(tmp_path / "run"))
    assert not isinstance(stop.value, (TrainingInterrupted, TrainingTerminated))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_checkpoints_every_n_steps_and_at_evaluations_keep_the_newest_two(tiny_gpt_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    saved = []
    real = trainer_mod.save_checkpoint
    monkeypatch.setattr(trainer_mod, "save_checkpoint", lambda o, step, *a: saved.append(step) or real(o, step, *a))
    cfg = _cfg(out, max_steps=9, checkpoint_steps=4, eval_steps=3)  # 5 steps per epoch (10 examples / 2)
    scores = _Scores(0.5)

    def evaluator(model):
        if scores.calls == 1:  # after the first checkpoint: a file the run did not write, never its to delete
            (out / "checkpoints" / "notes.txt").write_text("mine")
        return scores(model)

    fit(_model(tiny_gpt_dir), EXAMPLES, cfg, evaluator=evaluator)
    assert saved == [3, 4, 5, 6, 8, 9]  # evaluations 3, 6, 9; every 4; epoch end 5; the end 9
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-8", "checkpoint-9", "notes.txt"]


def test_a_checkpoint_from_before_a_setting_existed_still_resumes(tiny_gpt_dir, tmp_path, capsys):
    out = tmp_path / "run"
    fit(_model(tiny_gpt_dir), EXAMPLES, _cfg(out, max_steps=3, checkpoint_steps=2))
    (out / "train_summary.json").unlink()  # as if killed after step 2
    shutil.rmtree(out / "checkpoints" / "checkpoint-3")
    folder = out / "checkpoints" / "checkpoint-2"
    state = torch.load(folder / TRAINER_STATE, weights_only=False)
    del state["run"]["config"]["unfreezewte"]  # written before RESUME_KEYS had it
    torch.save(state, folder / TRAINER_STATE)
    files = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "checksums.json"]
    write_checksums(folder, files)
    capsys.readouterr()
    fit(_model(tiny_gpt_dir), EXAMPLES, _cfg(out, max_steps=3, checkpoint_steps=2, resume=True))
    assert f"resuming from {folder} at step 3" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/usr/bin/sgpt", "train", "nli", "--output", "a b"], "sgpt train nli --output 'a b' --resume"),
        (["sgpt", "train", "nli", "--overwrite", "--resume"], "sgpt train nli --resume"),
        ([os.path.join(os.path.dirname(sgpt.__file__), "cli", "__main__.py"), "train"], "-m sgpt.cli train --resume"),
        (["-c", "train"], None),
        (["/home/me/notebook.py"], None),
    ],
)
def test_resume_command(argv, expected):
    got = resume_command(argv)
    assert got == expected if expected is None or got is None else got.endswith(expected)
    assert (command_line(argv) is None) == (expected is None)
