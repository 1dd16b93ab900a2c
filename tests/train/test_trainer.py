"""The training loop on real data: loss falls, BitFit touches only biases, accumulation, checkpoints."""

from __future__ import annotations

import pytest
import torch
from conftest import need_data

import sgpt
from sgpt.data import NoDuplicatesBatchSampler, build_triplets, read_nli_pairs
from sgpt.train import trainer as trainer_mod
from sgpt.train.config import TrainConfig
from sgpt.train.losses import mnrl_from_columns, split_columns
from sgpt.train.params import apply_freezing
from sgpt.train.step import flatten_columns
from sgpt.train.trainer import fit


@pytest.fixture(scope="module")
def snli_triplets():
    triplets, seen = [], set()
    for t in build_triplets(read_nli_pairs(need_data("snli-senteval"), split="dev"), seed=0):
        if not seen.intersection(x.lower() for x in t):  # duplicate-free, so any batch can be formed
            triplets.append(t)
            seen.update(x.lower() for x in t)
        if len(triplets) == 64:
            return triplets


def test_bitfit_run_on_real_data_loss_falls_and_only_biases_change(minilm_path, snli_triplets, tmp_path):
    model = sgpt.load(minilm_path, pooling="mean", max_seq_length=75)
    apply_freezing(model, freezenonbias=True)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    examples = snli_triplets[:16]  # one batch, seen again every step: the loss must fall
    cfg = TrainConfig(output=str(tmp_path / "out"), batch_size=16, lr=1e-3, max_steps=6, warmup_steps=0)
    summary = fit(model, examples, cfg)
    losses = [float(r["loss"]) for r in _csv(tmp_path / "out" / "train_log.csv")]
    assert summary["steps"] == 6 and len(losses) == 6
    assert losses[-1] < 0.8 * losses[0]
    after = model.backbone.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "nothing trained"
    assert all("bias" in k for k in changed)
    # every bias moved but the BERT pooler's, which the embedding never uses
    assert changed == {k for k in before if "bias" in k and not k.startswith("pooler.")}
    # the saved folder is the trained model and loads in sentence-transformers
    st = pytest.importorskip("sentence_transformers").SentenceTransformer(str(tmp_path / "out"), device="cpu")
    texts = [e[0] for e in examples[:4]]
    assert abs(st.encode(texts) - model.encode(texts)).max() < 1e-5
    assert (tmp_path / "out" / "training_curve.png").stat().st_size > 1000


def _csv(path):
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


class _RecordingSGD(torch.optim.SGD):
    """lr 0: records the gradient handed to each optimizer step instead of changing weights."""

    def __init__(self, params):
        self.params_list = [p for p in params if p.requires_grad]
        super().__init__(self.params_list, lr=0.0)
        self.grads = []

    def step(self, closure=None):
        self.grads.append([p.grad.clone() for p in self.params_list])


def test_gradient_accumulation_averages_micro_batches(tiny_gpt_dir, snli_triplets, tmp_path, monkeypatch):
    model = sgpt.load(tiny_gpt_dir, pooling="weightedmean")
    opt = {}
    monkeypatch.setattr(trainer_mod, "adamw", lambda m, **kw: opt.setdefault("o", _RecordingSGD(m.parameters())))
    cfg = TrainConfig(
        output=str(tmp_path / "o"), batch_size=4, lr=1e-3, max_steps=1, grad_accum=2, max_grad_norm=0.0, seed=3
    )
    fit(model, snli_triplets, cfg)
    (got,) = opt["o"].grads
    # by hand: the same two batches, loss = mean of the two micro-batch losses
    sampler = NoDuplicatesBatchSampler(snli_triplets, 4, seed=3)
    sampler.set_epoch(0)
    it = iter(sampler)
    model.zero_grad()
    total = 0
    for _ in range(2):
        batch = [snli_triplets[i] for i in next(it)]
        total = total + mnrl_from_columns(split_columns(model.embed(flatten_columns(batch)), 3)) / 2
    total.backward()
    want = [p.grad for p in model.parameters() if p.requires_grad]
    for g, w in zip(got, want, strict=False):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)


def test_best_checkpoint_kept_and_a_crash_leaves_it_intact(tiny_gpt_dir, snli_triplets, tmp_path):
    model = sgpt.load(tiny_gpt_dir, pooling="mean")
    out = tmp_path / "out"
    scores = iter([0.5, 0.9, 0.7])
    snapshots = {}

    def evaluator(m):
        s = next(scores)
        snapshots[s] = m.encode(["a probe sentence"])
        return {"spearman_cosine": s}

    cfg = TrainConfig(output=str(out), batch_size=4, lr=1e-2, max_steps=3, eval_steps=1, warmup_steps=0)
    summary = fit(model, snli_triplets, cfg, evaluator=evaluator)
    assert summary["best_step"] == 2 and summary["best_score"] == 0.9
    saved = sgpt.load(out)
    assert abs(saved.encode(["a probe sentence"]) - snapshots[0.9]).max() < 1e-6
    assert [int(r["step"]) for r in _csv(out / "eval_log.csv")] == [1, 2, 3]
    assert len(_csv(out / "train_log.csv")) == 3  # logs survive the checkpoint swaps

    # a run that crashes after its first checkpoint leaves that checkpoint loadable
    calls = iter(range(10))

    def crashing(m):
        if next(calls) == 1:
            raise RuntimeError("power cut")
        return {"spearman_cosine": 0.1}

    out2 = tmp_path / "out2"
    model2 = sgpt.load(tiny_gpt_dir, pooling="mean")
    with pytest.raises(RuntimeError, match="power cut"):
        fit(
            model2,
            snli_triplets,
            TrainConfig(output=str(out2), batch_size=4, max_steps=3, eval_steps=1),
            evaluator=crashing,
        )
    assert sgpt.load(out2).encode(["x"]).shape == (1, 64)
    assert not [p for p in out2.parent.iterdir() if p.name.startswith(".")]


def test_too_few_examples_is_a_clear_error(tiny_gpt_dir, snli_triplets, tmp_path):
    model = sgpt.load(tiny_gpt_dir)
    with pytest.raises(ValueError, match="not enough training examples"):
        fit(model, snli_triplets[:3], TrainConfig(output=str(tmp_path), batch_size=8))


def test_config_reports_every_error():
    with pytest.raises(ValueError, match=r"batch_size must be >= 1.*lr must be a finite number > 0, got 0"):
        TrainConfig(output="x", batch_size=0, lr=0)


def test_config_refuses_non_finite_numbers():
    nan, inf = float("nan"), float("inf")
    with pytest.raises(ValueError) as err:
        TrainConfig(output="x", lr=inf, weight_decay=nan, max_grad_norm=-1.0, scale=inf)
    assert str(err.value) == (
        "invalid training config: lr must be a finite number > 0, got inf; scale must be a finite number > 0, "
        "got inf; weight_decay must be a finite number >= 0, got nan; max_grad_norm must be a finite number >= 0, "
        "got -1.0"
    )


def test_a_non_finite_loss_stops_training_before_anything_is_saved(tiny_gpt_dir, tmp_path):
    model = sgpt.load(tiny_gpt_dir, pooling="mean", max_seq_length=16)
    with torch.no_grad():
        next(model.backbone.parameters())[0, 0] = float("nan")  # one NaN weight: every embedding is NaN
    examples = [(f"anchor {i}", f"positive {i}", f"negative {i}") for i in range(8)]
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"^step 1: the loss is nan .*training stopped before this update "
                       r"\(no step before it; no checkpoint was written\)"):  # fmt: skip
        fit(model, examples, TrainConfig(output=str(out), batch_size=4, max_steps=3))
    assert not (out / "modules.json").exists() and not (out / "train_summary.json").exists()
    with pytest.raises(ValueError, match="refusing to save a model with non-finite weights: .*wte.weight"):
        model.save(tmp_path / "nan-model")
    assert not (tmp_path / "nan-model").exists()


def test_the_logged_lr_is_the_rate_each_step_ran_at(tiny_gpt_dir, tmp_path):
    """Linear warm-up over 1 step then linear decay over 3 (transformers' schedule): the steps run at
    0, lr and lr/2, and train_log.csv says so (it used to log the next step's rate)."""
    model = sgpt.load(tiny_gpt_dir, pooling="mean", max_seq_length=16)
    examples = [(f"anchor {i}", f"positive {i}", f"negative {i}") for i in range(8)]
    cfg = TrainConfig(output=str(tmp_path / "out"), batch_size=4, lr=1e-3, max_steps=3, warmup_steps=1)
    fit(model, examples, cfg)
    logged = [float(r["lr"]) for r in _csv(tmp_path / "out" / "train_log.csv")]
    assert logged == pytest.approx([0.0, 1e-3, 5e-4])
