"""Freezing, BitFit and the AdamW parameter groups (SPEC 1.6, 1.11)."""

from __future__ import annotations

import pytest
import torch

import sgpt
from sgpt.train.params import adamw, apply_freezing


def test_bitfit_on_minilm_trains_only_biases(minilm_path):
    model = sgpt.load(minilm_path)
    trainable, total = apply_freezing(model, freezenonbias=True)
    assert trainable == 26_112  # SPEC 8: all-MiniLM-L6-v2 has 26,112 bias parameters
    assert total == 22_713_216
    assert all(("bias" in n) == p.requires_grad for n, p in model.backbone.named_parameters())


def test_bitfit_without_biases_is_a_clear_error(tiny_gpt_dir):
    model = sgpt.load(tiny_gpt_dir)
    # Remove every bias to mimic a LLaMA-family backbone (SmolLM2 has none).
    model.backbone = torch.nn.Module()
    model.backbone.register_parameter("weight", torch.nn.Parameter(torch.ones(3)))
    model.backbone.config = type("C", (), {"model_type": "llama"})()
    with pytest.raises(ValueError, match=r"llama backbone has none.*Alternatives"):
        apply_freezing(model, freezenonbias=True)


def test_freeze_keeps_heads_trainable(tiny_gpt_dir):
    from sgpt.model.heads import Dense

    model = sgpt.load(tiny_gpt_dir)
    model.dense.append(Dense(64, 8))
    trainable, _ = apply_freezing(model, freeze=True)
    assert trainable == 64 * 8 + 8
    assert not any(p.requires_grad for p in model.backbone.parameters())


def test_unfreeze_wte_keeps_token_embeddings(tiny_gpt_dir):
    model = sgpt.load(tiny_gpt_dir)
    apply_freezing(model, freezenonbias=True, unfreeze_wte=True)
    assert model.backbone.get_input_embeddings().weight.requires_grad
    assert not model.backbone.h[0].attn.attention.k_proj.weight.requires_grad


def test_adamw_groups_no_decay_for_biases_and_norms(minilm_path):
    model = sgpt.load(minilm_path)
    opt = adamw(model, lr=1e-3)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert opt.defaults["eps"] == 1e-6
    names = {id(p): n for n, p in model.named_parameters()}
    nd = {names[id(p)] for p in no_decay["params"]}
    assert all("bias" in n or "LayerNorm" in n for n in nd)
    assert any("LayerNorm.weight" in n for n in nd)
    assert not any("LayerNorm" in names[id(p)] or "bias" in names[id(p)] for p in decay["params"])


def test_adamw_refuses_nothing_to_train(tiny_gpt_dir):
    model = sgpt.load(tiny_gpt_dir)
    apply_freezing(model, freeze=True)
    with pytest.raises(ValueError, match="nothing to train"):
        adamw(model, lr=1e-3)
