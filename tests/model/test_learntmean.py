"""Tests for sgpt.model.learnt_pooling (SGPT ``--learntmean``, SPEC 1.3 end): the formula against
mean pooling and SGPT's fork, padding-side invariance, the saved fork layout and the sgpt round trip."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import sgpt
from sgpt.model.heads import HeadSpec, add_heads
from sgpt.model.learnt_pooling import LearntMeanPooling
from sgpt.model.pooling import pool
from sgpt.train.params import apply_freezing

D = 6
TEXTS = ["the cat sleeps", "a dog runs in the park every morning!", "x", "my old friend writes about the sea."]


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded [3, 5, D]: lengths 3, 5 (no padding), 1; junk under padding."""
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 5, D, generator=g, dtype=torch.float64)
    hidden[0, 3:], hidden[2, 1:] = 1e3, -1e3
    return hidden, torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])


def left_pad(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h, m = torch.full_like(hidden, 7.0), torch.zeros_like(mask)
    s = mask.shape[1]
    for r in range(mask.shape[0]):
        n = int(mask[r].sum())
        h[r, s - n :], m[r, s - n :] = hidden[r, :n], 1
    return h, m


def random_weights(module: LearntMeanPooling) -> LearntMeanPooling:
    with torch.no_grad():
        module.position_weights.copy_(torch.linspace(0.2, 3.0, module.position_weights.numel()))
    return module.double()


def test_init_is_mean_pooling(batch):
    hidden, mask = batch
    module = LearntMeanPooling(D, num_positions=75).double()
    assert module.position_weights.shape == (76,) and torch.equal(module.position_weights, torch.ones(76).double())
    torch.testing.assert_close(module(hidden, mask), pool(hidden, mask, "mean"))


def test_right_padding_equals_sgpt_fork_formula(batch):
    hidden, mask = batch
    module = random_weights(LearntMeanPooling(D, num_positions=8))
    w = module.position_weights.detach()[: hidden.shape[1]]  # fork: position_weights[:s] times the mask
    weights = mask.double() * w  # [b, s]
    expected = (hidden * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1e-9)
    torch.testing.assert_close(module(hidden, mask), expected)
    h = hidden[0]  # by hand: row of 3 tokens
    torch.testing.assert_close(module(hidden, mask)[0], (w[0] * h[0] + w[1] * h[1] + w[2] * h[2]) / w[:3].sum())


def test_padding_side_invariant(batch):
    hidden, mask = batch
    module = random_weights(LearntMeanPooling(D, num_positions=8))
    lh, lm = left_pad(hidden, mask)
    assert lm[0].tolist() == [0, 0, 1, 1, 1]
    torch.testing.assert_close(module(lh, lm), module(hidden, mask))
    wide_h = torch.cat([hidden, torch.full((3, 3, D), 5.0, dtype=hidden.dtype)], dim=1)  # more padding
    wide_m = torch.cat([mask, torch.zeros(3, 3, dtype=mask.dtype)], dim=1)
    torch.testing.assert_close(module(wide_h, wide_m), module(hidden, mask))


def test_gradients_reach_the_used_weights_only(batch):
    hidden, mask = batch
    module = random_weights(LearntMeanPooling(D, num_positions=8))
    module(hidden, mask).sum().backward()
    grad = module.position_weights.grad
    assert grad is not None and bool((grad[:5] != 0).all()) and bool((grad[5:] == 0).all())


def test_row_longer_than_the_weights_is_refused():
    module = LearntMeanPooling(D, num_positions=3)  # 4 weights
    with pytest.raises(ValueError, match="weights for 4 positions but a row has 5 tokens"):
        module(torch.randn(1, 5, D), torch.ones(1, 5))
    module(torch.randn(1, 6, D), torch.tensor([[0, 0, 1, 1, 1, 1]]))  # 4 real tokens, left-padded: fine


def test_bf16_hidden_accumulates_in_float32(batch):
    hidden, mask = batch
    module = LearntMeanPooling(D, num_positions=8)
    out = module(hidden.to(torch.bfloat16).clamp(-4, 4), mask)
    assert out.dtype == torch.bfloat16
    ref = module.double()(hidden.to(torch.bfloat16).clamp(-4, 4).double(), mask).to(torch.bfloat16)
    torch.testing.assert_close(out, ref)


# ---------------------------------------------------------------------------------------------- in a model


def test_add_heads_learntmean_trains_under_freeze_and_starts_as_mean(tiny_gpt_dir):
    mean = sgpt.load(tiny_gpt_dir, pooling="mean", max_seq_length=20)
    model = sgpt.load(tiny_gpt_dir, pooling="weightedmean", max_seq_length=20)
    apply_freezing(model, freeze=True)
    add_heads(model, HeadSpec(learntmean=True))
    assert model.pooling == "learntmean" and model.learnt_pooling.num_positions == 20
    trainable = [(n, p.numel()) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [("learnt_pooling.position_weights", 21)]
    np.testing.assert_allclose(model.encode(TEXTS), mean.encode(TEXTS), atol=1e-6)


def test_learntmean_after_linearthenpool_pools_the_head_outputs(tiny_gpt_dir):
    model = sgpt.load(tiny_gpt_dir, max_seq_length=20)
    add_heads(model, HeadSpec(addxlinear=1, outfeats=12, linearthenpool=True, learntmean=True))
    assert model.learnt_pooling.word_embedding_dimension == 12 and model.embedding_dim == 12
    assert model.encode(TEXTS).shape == (len(TEXTS), 12)


def test_saved_in_fork_layout_and_reloaded_exactly(tiny_gpt_dir, tmp_path, caplog):
    model = sgpt.load(tiny_gpt_dir, max_seq_length=20)
    add_heads(model, HeadSpec(addxlinear=1, useact=True, learntmean=True))
    with torch.no_grad():
        model.learnt_pooling.position_weights.copy_(torch.linspace(2.0, 0.1, 21))
    ref = model.encode(TEXTS)
    with caplog.at_level(logging.WARNING, logger="sgpt.model"):
        out = model.save(tmp_path / "m")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "stock sentence-transformers cannot load" in warnings[0]

    modules = json.loads((out / "modules.json").read_text())
    assert [(m["path"], m["type"]) for m in modules] == [
        ("", "sentence_transformers.models.Transformer"),
        ("1_WeightedMeanPooling", "sentence_transformers.models.WeightedMeanPooling"),
        ("2_Dense", "sentence_transformers.models.Dense"),
    ]
    config = json.loads((out / "1_WeightedMeanPooling" / "config.json").read_text())
    assert config == {"word_embedding_dimension": 64, "position_start": 0, "num_positions": 20}
    state = torch.load(out / "1_WeightedMeanPooling" / "pytorch_model.bin", weights_only=True)
    assert list(state) == ["position_weights"] and torch.equal(state["position_weights"], torch.linspace(2.0, 0.1, 21))

    back = sgpt.load(out)
    assert back.pooling == "learntmean" and back.max_seq_length == 20
    assert torch.equal(back.learnt_pooling.position_weights, model.learnt_pooling.position_weights)
    np.testing.assert_array_equal(back.encode(TEXTS), ref)

    plain = sgpt.load(out, pooling="mean")  # a pooling asked for replaces the learned one
    assert plain.pooling == "mean" and plain.learnt_pooling is None


def test_bad_saved_weights_are_refused(tiny_gpt_dir, tmp_path):
    model = sgpt.load(tiny_gpt_dir, max_seq_length=20)
    add_heads(model, HeadSpec(learntmean=True))
    out = model.save(tmp_path / "m")
    torch.save({"position_weights": torch.ones(7)}, out / "1_WeightedMeanPooling" / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"position_weights of shape \(7,\); expected \(21,\)"):
        sgpt.load(out)


def test_stock_sentence_transformers_cannot_load_it(tiny_gpt_dir, tmp_path):
    """What the module doc and the save warning say: the fork's module type is unknown to stock ST."""
    st = pytest.importorskip("sentence_transformers")
    model = sgpt.load(tiny_gpt_dir, max_seq_length=20)
    add_heads(model, HeadSpec(learntmean=True))
    out = model.save(tmp_path / "m")
    with pytest.raises(ImportError, match="WeightedMeanPooling"):
        st.SentenceTransformer(str(out), device="cpu")
