"""Retrieval training: round-robin examples (SPEC 2.2), query/document roles in the step, epoch
checkpoints and resume."""

from __future__ import annotations

import csv

import pytest
import torch

import sgpt
from sgpt.data import NoDuplicatesBatchSampler, RetrievalExample, RoundRobinExamples
from sgpt.train import trainer as trainer_mod
from sgpt.train.checkpoints import latest_checkpoint
from sgpt.train.config import TrainConfig
from sgpt.train.losses import mnrl_from_columns
from sgpt.train.step import QUERY_DOCUMENT, make_step
from sgpt.train.trainer import fit

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def queries(n: int) -> list[RetrievalExample]:
    return [
        RetrievalExample(
            f"{WORDS[i % 12]} question {i}",
            positives=[f"{WORDS[i % 12]} answer {i}", f"{WORDS[(i + 1) % 12]} answer two {i}"],
            negatives=[f"negative {i} a", f"negative {i} b", f"negative {i} c"],
        )
        for i in range(n)
    ]


def test_round_robin_rotates_positives_and_negatives_per_epoch():
    ex = RoundRobinExamples(queries(1), seed=0)
    q = ex.items[0]
    assert sorted(q.negatives) == ["negative 0 a", "negative 0 b", "negative 0 c"]  # shuffled once, same set
    seen = []
    for epoch in range(4):
        ex.set_epoch(epoch)
        seen.append(ex[0])
    # pop front, push back: positives p0 p1 p0 p1, negatives n0 n1 n2 n0 (in the once-shuffled order)
    assert [s[1] for s in seen] == [q.positives[0], q.positives[1], q.positives[0], q.positives[1]]
    assert [s[2] for s in seen] == [q.negatives[0], q.negatives[1], q.negatives[2], q.negatives[0]]
    two = RoundRobinExamples(queries(1), negatives_per_query=2, seed=0)
    two.set_epoch(1)
    assert two[0][2:] == (two.items[0].negatives[2], two.items[0].negatives[0])
    pairs = RoundRobinExamples([RetrievalExample("q", ["p"])], negatives_per_query=0)
    assert pairs[0] == ("q", "p")


def test_round_robin_errors_name_the_query():
    with pytest.raises(ValueError, match="no positive"):
        RoundRobinExamples([RetrievalExample("what is x", [])])
    with pytest.raises(ValueError, match="'what is x' has no hard negative"):
        RoundRobinExamples([RetrievalExample("what is x", ["p"])])


def test_sampler_follows_the_epoch_of_changing_examples():
    ex = RoundRobinExamples(queries(4), seed=0)
    sampler = NoDuplicatesBatchSampler(ex, 2, seed=0)
    sampler.set_epoch(1)
    assert ex.epoch == 1
    assert sampler._keys[0] == frozenset(t.lower() for t in ex[0])


@pytest.mark.parametrize("gradcache", [False, True])
def test_query_document_step_embeds_each_column_in_its_role(tiny_gpt_dir, tmp_path, gradcache):
    model = sgpt.load(tiny_gpt_dir, pooling="weightedmean", special_tokens="specb")
    ex = RoundRobinExamples(queries(5), seed=0)
    batch = [ex[i] for i in range(5)]
    cfg = TrainConfig(output=str(tmp_path), gradcache=gradcache, chunk_size=3, micro_batch_size=3)
    model.zero_grad()
    loss = make_step(model, cfg, QUERY_DOCUMENT)(batch, 1.0)
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    cols = list(zip(*batch, strict=False))
    want = mnrl_from_columns(
        [
            model.embed(cols[0], role="query"),
            model.embed(cols[1], role="document"),
            model.embed(cols[2], role="document"),
        ],
        scale=20.0,
    )
    want.backward()
    assert loss == pytest.approx(float(want.detach()), rel=1e-5)
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(got[n], p.grad, rtol=1e-4, atol=1e-6)
    plain = mnrl_from_columns([model.embed(c) for c in cols], scale=20.0)  # without roles: another loss
    assert abs(float(plain.detach()) - loss) > 1e-4


def _train_log(folder):
    with open(folder / "train_log.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def test_resume_after_a_crash_equals_an_uninterrupted_run(tiny_gpt_dir, tmp_path, monkeypatch):
    ex_args = dict(negatives_per_query=1, seed=0)

    def run(out, resume=False):
        torch.manual_seed(0)
        model = sgpt.load(tiny_gpt_dir, pooling="mean", special_tokens="specb")
        cfg = TrainConfig(
            output=str(out), batch_size=4, epochs=3, lr=1e-3, checkpoint_every_epoch=True, resume=resume, warmup_steps=1
        )
        fit(model, RoundRobinExamples(queries(9), **ex_args), cfg, roles=QUERY_DOCUMENT)
        return model

    clean = run(tmp_path / "clean")
    assert sorted(p.name for p in (tmp_path / "clean" / "checkpoints").iterdir()) == [
        "checkpoint-4",
        "checkpoint-6",
    ]  # 9 queries // 4 = 2 steps an epoch; the newest two checkpoints are kept

    real_make_step = trainer_mod.make_step

    def crashing_make_step(*args, **kwargs):
        step = real_make_step(*args, **kwargs)
        calls = []

        def wrapped(batch, scale):
            calls.append(1)
            if len(calls) == 4:  # second step of epoch 2, after checkpoint-2
                raise RuntimeError("simulated crash")
            return step(batch, scale)

        return wrapped

    monkeypatch.setattr(trainer_mod, "make_step", crashing_make_step)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "resumed")
    assert latest_checkpoint(tmp_path / "resumed").name == "checkpoint-2"
    # an incomplete newer checkpoint (model written, trainer state not) is ignored
    (tmp_path / "resumed" / "checkpoints" / "checkpoint-4").mkdir()
    trained = []

    def counting_make_step(*args, **kwargs):
        step = real_make_step(*args, **kwargs)
        return lambda batch, scale: trained.append(1) or step(batch, scale)

    monkeypatch.setattr(trainer_mod, "make_step", counting_make_step)
    resumed = run(tmp_path / "resumed", resume=True)
    assert len(trained) == 4  # steps 3-6 only: it resumed, it did not start over
    for (n, a), b in zip(clean.state_dict().items(), resumed.state_dict().values(), strict=False):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=n)
    assert _train_log(tmp_path / "resumed") == _train_log(tmp_path / "clean")
    with open(tmp_path / "resumed" / "train_log.csv") as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
    assert seconds == sorted(seconds) and len(seconds) == 6  # the clock continues after the resume
    back = sgpt.load(tmp_path / "resumed")  # the final folder is the trained model, checkpoints kept
    assert back.text_format.special_tokens == "specb"
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-6" / "trainer_state.pt").exists()


def test_a_positive_is_never_used_as_a_negative():
    ex = RoundRobinExamples([RetrievalExample("q", ["p1", "p2"], ["p2", "n1", "n1"])], seed=0)
    assert ex.items[0].negatives == ["n1"]
    with pytest.raises(ValueError, match="every hard negative is also one of its positives"):
        RoundRobinExamples([RetrievalExample("q", ["p1"], ["p1"])])


def test_output_folder_that_a_run_would_destroy_is_refused(tiny_gpt_dir, tmp_path):
    model = sgpt.load(tiny_gpt_dir, pooling="mean")
    data = RoundRobinExamples(queries(4), seed=0)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("important")
    with pytest.raises(ValueError, match="not an sgpt model or training output; refusing to replace it"):
        fit(model, data, TrainConfig(output=str(other), batch_size=2, max_steps=1), roles=QUERY_DOCUMENT)
    assert (other / "notes.txt").read_text() == "important"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        fit(model, data, TrainConfig(output=str(tmp_path / "file"), batch_size=2, max_steps=1), roles=QUERY_DOCUMENT)
    out = tmp_path / "out"
    cfg = TrainConfig(output=str(out), batch_size=2, epochs=1, checkpoint_every_epoch=True)
    fit(model, data, cfg, roles=QUERY_DOCUMENT)
    with pytest.raises(ValueError, match="checkpoints of an earlier run; pass --resume"):
        fit(model, data, cfg, roles=QUERY_DOCUMENT)


def test_resume_refuses_a_checkpoint_of_another_run(tiny_gpt_dir, tmp_path):
    model = sgpt.load(tiny_gpt_dir, pooling="mean")
    out = tmp_path / "out"
    fit(
        model,
        RoundRobinExamples(queries(4), seed=0),
        TrainConfig(output=str(out), batch_size=2, epochs=1, checkpoint_every_epoch=True),
        roles=QUERY_DOCUMENT,
    )
    changed = TrainConfig(output=str(out), batch_size=2, epochs=2, lr=1e-3, checkpoint_every_epoch=True, resume=True)
    with pytest.raises(ValueError, match=r"differs: config\.epochs: 1 vs 2; config\.lr: 2e-05 vs 0\.001"):
        fit(model, RoundRobinExamples(queries(4), seed=0), changed, roles=QUERY_DOCUMENT)
    cls = sgpt.load(tiny_gpt_dir, pooling="cls")
    same = TrainConfig(output=str(out), batch_size=2, epochs=1, checkpoint_every_epoch=True, resume=True)
    with pytest.raises(ValueError, match="model.pooling: 'mean' vs 'cls'"):
        fit(cls, RoundRobinExamples(queries(4), seed=0), same, roles=QUERY_DOCUMENT)
