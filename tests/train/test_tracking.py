"""Issue 11, item 8: W&B (offline) and TensorBoard through accelerate's trackers, under ``<output>/runs``."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest
import torch

import sgpt
from sgpt.train import tracking
from sgpt.train.config import TrainConfig
from sgpt.train.trainer import fit

EXAMPLES = [(f"question {i} about {w}", f"answer {i} on {w}") for i, w in enumerate("abcdefgh")]


def _fit(tiny_gpt_dir, out, **kw):
    torch.manual_seed(0)
    model = sgpt.load(tiny_gpt_dir, pooling="mean")
    cfg = TrainConfig(output=str(out), batch_size=2, max_steps=3, lr=1e-3, **kw)
    fit(model, EXAMPLES, cfg)
    with open(out / "train_log.csv") as f:
        return model, [float(r["loss"]) for r in csv.DictReader(f)]


def test_tensorboard_event_file_holds_the_losses(tiny_gpt_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    _, losses = _fit(tiny_gpt_dir, out, log_with=("tensorboard",), project="tiny")
    (events,) = (out / "runs" / "tiny").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events))
    acc.Reload()
    logged = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert [s for s, _ in logged] == [1, 2, 3]
    assert [v for _, v in logged] == pytest.approx(losses, rel=1e-6)


def _log_records(path):
    """The records of a LevelDB-log file, the layout of W&B's ``run-*.wandb`` (a 7-byte file header,
    then 32 KiB blocks of records with a 7-byte header: crc32, length, type full/first/middle/last)."""
    data, block, pos, parts = path.read_bytes(), 32768, 7, []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if length == 0 and kind == 0:
            break
        parts.append(data[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):  # full, last
            yield b"".join(parts)
            parts = []


def _wandb_records(run_file):
    """The history rows and the config of an offline ``run-*.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    history, config = [], {}
    for data in _log_records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif kind in ("config", "run"):
            items = record.config.update if kind == "config" else record.run.config.update
            config.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
    return history, config


def test_wandb_offline_run_has_the_loss_history_and_config(tiny_gpt_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for var, sub in (("WANDB_CONFIG_DIR", "cfg"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / sub))  # nothing written to the real home
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out, hooked = tmp_path / "run", []
    real_finish = tracking.Tracking.finish

    def finish(self):  # wandb.watch hooked the model for the run
        hooked.append(self.watched is not None and any(p._backward_hooks for p in self.watched.parameters()))
        real_finish(self)

    monkeypatch.setattr(tracking.Tracking, "finish", finish)
    model, losses = _fit(tiny_gpt_dir, out, log_with=("wandb",), wandb_watch="all", project="p", wandb_entity="someone")
    assert hooked == [True]
    (run_dir,) = (out / "runs" / "wandb").glob("offline-run-*")
    (run_file,) = run_dir.glob("run-*.wandb")
    history, config = _wandb_records(run_file)
    logged = [(row["_step"], row["train/loss"]) for row in history if "train/loss" in row]
    assert [s for s, _ in logged] == [1, 2, 3]
    assert [v for _, v in logged] == pytest.approx(losses, rel=1e-6)
    assert config["batch_size"] == 2 and config["max_steps"] == 3 and config["output"] == str(out)
    assert config["project"] == "p" and config["wandb_watch"] == "all" and config["wandb_entity"] == "someone"
    # wandb.watch's hooks are gone: the caller's model is left as it was
    assert not any(getattr(m, "_forward_hooks", None) for m in model.modules())
    assert all(not getattr(p, "_backward_hooks", None) for p in model.parameters())


def test_a_missing_tracker_package_is_one_line_with_the_install_command(tiny_gpt_dir, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match=r"^--log-with wandb needs the wandb package: pip install 'sgpt\[wandb\]'$"):
        _fit(tiny_gpt_dir, tmp_path / "run", log_with=("wandb",))
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_tracker_config_is_flat_and_typed():
    cfg = tracking.tracker_config(TrainConfig(output="x", log_with=("wandb",), max_steps=None))
    assert cfg["log_with"] == "('wandb',)" and cfg["max_steps"] == "None" and cfg["lr"] == 2e-5
