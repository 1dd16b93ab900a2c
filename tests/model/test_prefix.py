"""Shared-prefix forward (``sgpt.model.prefix``): the same hidden states and gradients as a plain
forward on causal decoders, taken only where exact, and really taken (two calls, a batch of one
for the prefix)."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2Model,
    GPTNeoConfig,
    GPTNeoModel,
    GPTNeoXConfig,
    GPTNeoXModel,
    LlamaConfig,
    LlamaModel,
    MistralConfig,
    MistralModel,
)

from sgpt.model import prefix
from sgpt.model.prefix import can_share_prefix, shared_prefix_length, transformer_states

V = 100


def causal_models() -> dict:
    torch.manual_seed(0)
    return {
        "llama": LlamaModel(
            LlamaConfig(
                vocab_size=V,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
            )
        ),
        "gpt-neo": GPTNeoModel(
            GPTNeoConfig(
                vocab_size=V,
                hidden_size=32,
                num_layers=2,
                num_heads=4,
                attention_types=[[["global", "local"], 1]],
                window_size=256,
            )
        ),
        "gpt-neox": GPTNeoXModel(
            GPTNeoXConfig(
                vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
            )
        ),
        "gpt2": GPT2Model(
            GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        ),
    }


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """4 right-padded rows (lengths 20, 15, 10, 20) sharing their first 8 tokens."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, V, (4, 20), generator=gen)
    ids[:, :8] = ids[0, :8]
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    mask[2, 10:] = 0
    ids[mask == 0] = 0
    return ids, mask


def count_calls(model) -> list[int]:
    """Batch sizes of every forward call of ``model`` (a forward pre-hook)."""
    sizes: list[int] = []
    model.register_forward_pre_hook(
        lambda m, args, kwargs: sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    return sizes


def test_shared_prefix_length_by_hand():
    ids, mask = batch()
    assert shared_prefix_length(ids, mask) == 8
    ids[3, 5] = (ids[0, 5] + 1) % V
    assert shared_prefix_length(ids, mask) == 5
    same = ids[:1].repeat(3, 1)
    assert shared_prefix_length(same, torch.ones_like(same)) == 19  # one token is left after the prefix
    assert shared_prefix_length(ids[:1], mask[:1]) == 0  # a single row shares nothing
    left = torch.tensor([[0, 0, 7, 7, 7, 7, 7, 7], [7, 7, 7, 7, 7, 7, 7, 7]])
    assert shared_prefix_length(left, (left != 0).long()) == 0  # left padding: not real tokens in row 0


@pytest.mark.parametrize("name", ["llama", "gpt-neo", "gpt-neox", "gpt2"])
def test_same_hidden_states_and_gradients_as_one_forward(name):
    model = causal_models()[name].train()
    ids, mask = batch()
    real = mask[..., None].float()
    plain = model(input_ids=ids, attention_mask=mask).last_hidden_state
    (plain * real).pow(2).sum().backward()
    want = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    sizes = count_calls(model)
    shared = transformer_states(model, ids, mask)
    assert sizes == [1, 4]  # the prefix once, then the rest of the batch
    assert ((shared - plain).abs() * real).max() <= 1e-5
    (shared * real).pow(2).sum().backward()
    for k, p in model.named_parameters():
        scale = want[k].abs().max().clamp_min(1e-8)
        assert ((p.grad - want[k]).abs().max() / scale) <= 1e-4, k


def test_not_taken_where_it_would_not_be_exact():
    ids, mask = batch()
    bert = BertModel(
        BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
    ).eval()
    assert not can_share_prefix(bert, 20)  # bidirectional: the prefix sees the rest
    sizes = count_calls(bert)
    transformer_states(bert, ids, mask)
    assert sizes == [4]
    noisy = GPT2Model(GPT2Config(vocab_size=V, n_embd=32, n_layer=1, n_head=4, resid_pdrop=0.1))
    assert not can_share_prefix(noisy.train(), 20)  # rows would share dropout masks
    assert can_share_prefix(noisy.eval(), 20)
    llama = causal_models()["llama"].train()
    llama.config.attention_dropout = 0.1
    llama = LlamaModel(llama.config).train()
    assert not can_share_prefix(llama, 20)  # functional attention dropout counts too
    mistral = MistralModel(
        MistralConfig(
            vocab_size=V,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            sliding_window=16,
        )
    ).eval()
    assert can_share_prefix(mistral, 16) and not can_share_prefix(mistral, 17)


def test_short_prefixes_take_the_plain_forward(monkeypatch):
    model = causal_models()["llama"].eval()
    ids, mask = batch()
    monkeypatch.setattr(prefix, "MIN_PREFIX", 9)
    sizes = count_calls(model)
    transformer_states(model, ids, mask)
    assert sizes == [4]
