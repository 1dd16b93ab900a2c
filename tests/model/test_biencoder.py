"""Tests for sgpt.model.biencoder (and the pad-token policy of sgpt.model.backbone).

Oracles: SGPT's README Hugging Face snippet (right padding, weights 1..L), a hand-run backbone,
sentence-transformers' encode for MiniLM, and the model itself on one text at a time.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import sgpt
from sgpt.model.backbone import set_pad_token
from sgpt.model.biencoder import BiEncoder

TOL = 1e-5


@pytest.fixture
def tiny(tiny_gpt_dir):
    """Factory: a fresh BiEncoder on the tiny GPT-Neo folder."""

    def make(pooling: str = "weightedmean", **kwargs) -> BiEncoder:
        return sgpt.load(tiny_gpt_dir, pooling=pooling, **kwargs)

    return make


@pytest.fixture
def minilm(minilm_path) -> BiEncoder:
    return sgpt.load(minilm_path)


def one_by_one(model: BiEncoder, texts: list[str], **kwargs) -> np.ndarray:
    return np.stack([model.encode(t, **kwargs) for t in texts])


# ---------------------------------------------------------------------------------------------- oracles


def test_weightedmean_matches_sgpt_readme_snippet(tiny_gpt_dir, tiny, texts):
    """SGPT's README HF recipe: right padding with pad = EOS, weights 1..L over padded positions."""
    model = tiny("weightedmean")
    tok = AutoTokenizer.from_pretrained(tiny_gpt_dir)
    tok.pad_token = tok.eos_token
    hf = AutoModel.from_pretrained(tiny_gpt_dir).eval()
    batch = tok([t.strip() for t in texts], padding=True, return_tensors="pt")
    assert tok.padding_side == "right"
    with torch.no_grad():
        last = hf(**batch).last_hidden_state  # [b, s, d]
    weights = torch.arange(1, last.shape[1] + 1).view(1, -1, 1).float() * batch["attention_mask"].unsqueeze(-1)
    expected = (last * weights).sum(1) / weights.sum(1)
    got = model.encode(texts)
    np.testing.assert_allclose(got, expected.numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("pooling", ["lasttoken", "mean", "max", "cls"])
def test_pooling_modes_match_hand_run_backbone(tiny_gpt_dir, tiny, pooling):
    model = tiny(pooling)
    text = "the quick brown fox jumps over the lazy dog"
    tok = AutoTokenizer.from_pretrained(tiny_gpt_dir)
    ids = tok(text)["input_ids"]
    with torch.no_grad():
        h = AutoModel.from_pretrained(tiny_gpt_dir)(input_ids=torch.tensor([ids])).last_hidden_state[0]  # [s, d]
    expected = {"lasttoken": h[-1], "mean": h.mean(0), "max": h.amax(0), "cls": h[0]}[pooling]
    np.testing.assert_allclose(model.encode(text), expected.numpy(), atol=TOL, rtol=0)


def test_max_seq_length_truncates(tiny_gpt_dir, tiny):
    model = tiny("lasttoken", max_seq_length=5)
    assert model.max_seq_length == 5
    text = "my old friend writes about the morning news every morning"
    ids = AutoTokenizer.from_pretrained(tiny_gpt_dir)(text)["input_ids"]
    assert len(ids) > 5
    with torch.no_grad():
        h = AutoModel.from_pretrained(tiny_gpt_dir)(input_ids=torch.tensor([ids[:5]])).last_hidden_state[0]
    np.testing.assert_allclose(model.encode(text), h[-1].numpy(), atol=TOL, rtol=0)
    assert model.token_ids([text]) == [ids[:5]]


def test_default_max_seq_length_is_model_limit(tiny):
    # the tokenizer leaves model_max_length unset -> max_position_embeddings of the GPT-Neo config
    assert tiny().max_seq_length == 256


def test_texts_are_stripped_and_optionally_lower_cased(tiny):
    model = tiny("mean")
    np.testing.assert_array_equal(model.encode("  the cat \n"), model.encode("the cat"))
    assert not np.allclose(model.encode("The Cat"), model.encode("the cat"), atol=1e-3)
    model.do_lower_case = True
    np.testing.assert_array_equal(model.encode("The Cat"), model.encode("the cat"))


# ---------------------------------------------------------------------------------------------- batch invariance


@pytest.mark.parametrize("pooling", ["weightedmean", "lasttoken", "mean"])
def test_gpt_batch_invariance(tiny, texts, pooling):
    model = tiny(pooling)
    alone = one_by_one(model, texts)
    for batch_size in (32, 2):
        together = model.encode(texts, batch_size=batch_size)
        assert np.abs(together - alone).max() <= TOL, batch_size
    # the short texts really were padded next to a long one
    lengths = [len(x) for x in model.token_ids(texts)]
    assert max(lengths) > 5 * min(lengths)


def test_minilm_batch_invariance(minilm, texts):
    alone = one_by_one(minilm, texts)
    together = minilm.encode(texts, batch_size=32)
    assert np.abs(together - alone).max() <= TOL


@pytest.mark.parametrize("which", ["gpt", "minilm"])
def test_output_order_matches_input_order(tiny, minilm, texts, which):
    model = tiny("weightedmean") if which == "gpt" else minilm
    ref = model.encode(texts, batch_size=4)
    perm = np.random.default_rng(0).permutation(len(texts))
    shuffled = model.encode([texts[i] for i in perm], batch_size=4)
    np.testing.assert_allclose(shuffled, ref[perm], atol=TOL, rtol=0)
    # rows really differ, so a wrong order would be seen
    assert min(np.abs(ref[i] - ref[j]).max() for i in range(len(texts)) for j in range(i)) > 1e-3


def test_duplicates_and_empty_input(tiny):
    model = tiny()
    out = model.encode(["the cat", "a dog", "the cat"])
    np.testing.assert_allclose(out[0], out[2], atol=TOL, rtol=0)
    assert np.abs(out[0] - out[1]).max() > 1e-3
    empty = model.encode([])
    assert empty.shape == (0, 64) and empty.dtype == np.float32


# ---------------------------------------------------------------------------------------------- encode outputs


def test_encode_types_and_shapes(tiny, texts):
    model = tiny()
    out = model.encode(texts)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (len(texts), 64)
    t = model.encode(texts, convert_to="torch")
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (len(texts), 64)
    assert t.device.type == "cpu"
    assert not torch.is_inference(t)  # usable in autograd and in-place ops afterwards
    np.testing.assert_array_equal(t.numpy(), out)
    single = model.encode(texts[2])
    assert single.shape == (64,)
    np.testing.assert_allclose(single, out[2], atol=TOL, rtol=0)
    assert model.embedding_dim == 64


def test_encode_normalize_gives_unit_norms(tiny, texts):
    model = tiny()
    raw = model.encode(texts)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)
    unit = model.encode(texts, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)


def test_encode_bfloat16_precision(tiny, texts):
    model = tiny()
    fp32 = model.encode(texts)
    bf16 = model.encode(texts, precision="bfloat16")
    assert bf16.dtype == np.float32
    assert not np.array_equal(bf16, fp32)  # autocast really ran
    cos = (bf16 * fp32).sum(1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(fp32, axis=1)
    assert cos.min() > 0.99
    assert model.backbone.dtype == torch.float32  # weights untouched


def test_encode_rejects_bad_arguments(tiny):
    model = tiny()
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(["a"], batch_size=0)
    with pytest.raises(ValueError, match="convert_to"):
        model.encode(["a"], convert_to="list")
    with pytest.raises(ValueError, match="precision|dtype"):
        model.encode(["a"], precision="int8")


# ---------------------------------------------------------------------------------------------- empty texts


@pytest.mark.parametrize("pooling", ["weightedmean", "lasttoken", "mean", "max", "cls"])
def test_empty_and_whitespace_give_zero_vector_with_gpt(tiny, pooling):
    model = tiny(pooling)
    assert model.token_ids(["", "  \t\n "]) == [[], []]  # GPT tokenizer adds no special tokens
    for normalize in (False, True):
        out = model.encode(["", "the cat", "  \t\n "], normalize=normalize)
        assert np.isfinite(out).all()
        np.testing.assert_array_equal(out[0], np.zeros(64, np.float32))
        np.testing.assert_array_equal(out[2], np.zeros(64, np.float32))
        assert np.abs(out[1]).max() > 0
        np.testing.assert_allclose(out[1], model.encode("the cat", normalize=normalize), atol=TOL, rtol=0)
    only_empty = model.encode(["", " "])
    np.testing.assert_array_equal(only_empty, np.zeros((2, 64), np.float32))


def test_empty_text_with_normalize_module(tiny):
    model = tiny()
    model.normalize = True
    out = model.encode(["", "the cat"])
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[0], np.zeros(64, np.float32))
    assert np.linalg.norm(out[1]) == pytest.approx(1.0, abs=1e-6)


def test_empty_text_with_minilm_matches_sentence_transformers(minilm, minilm_st):
    out = minilm.encode("")
    assert np.isfinite(out).all() and np.linalg.norm(out) == pytest.approx(1.0, abs=1e-5)  # [CLS][SEP]
    np.testing.assert_allclose(out, minilm_st.encode(""), atol=TOL, rtol=0)


# ---------------------------------------------------------------------------------------------- pad token


def test_tokenizer_without_pad_gets_eos(tiny_gpt_dir, tiny):
    raw = AutoTokenizer.from_pretrained(tiny_gpt_dir)
    assert raw.pad_token is None  # the saved folder really has no pad token
    model = tiny()
    assert model.tokenizer.pad_token == model.tokenizer.eos_token == "<|endoftext|>"
    assert model.tokenizer.pad_token_id == model.tokenizer.eos_token_id


def test_set_pad_token_policy(gpt_tokenizer):
    tok = copy.deepcopy(gpt_tokenizer)
    set_pad_token(tok)
    assert tok.pad_token == "<|endoftext|>"
    tok.pad_token = "x"  # an existing pad token is kept
    set_pad_token(tok)
    assert tok.pad_token == "x"
    bare = copy.deepcopy(gpt_tokenizer)
    bare.eos_token = None
    assert bare.pad_token is None and bare.unk_token is None
    with pytest.raises(ValueError, match="pad"):
        set_pad_token(bare)


def test_biencoder_refuses_tokenizer_without_pad(tiny_gpt_dir, gpt_tokenizer):
    backbone = AutoModel.from_pretrained(tiny_gpt_dir)
    with pytest.raises(ValueError, match="set_pad_token"):
        BiEncoder(backbone, copy.deepcopy(gpt_tokenizer))
    with pytest.raises(ValueError, match="avg"):
        tok = copy.deepcopy(gpt_tokenizer)
        set_pad_token(tok)
        BiEncoder(backbone, tok, pooling="avg")


def test_collate_right_pads_with_pad_id(tiny):
    model = tiny()
    batch = model.collate([[5, 6, 7], [8]])
    pad = model.tokenizer.pad_token_id
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, pad, pad]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


# ---------------------------------------------------------------------------------------------- model state


@pytest.mark.parametrize("training", [True, False])
def test_encode_restores_train_eval_mode(tiny, texts, training):
    model = tiny()
    model.train(training)
    out = model.encode(texts, convert_to="torch")
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    assert out.requires_grad is False and out.grad_fn is None


def test_encode_restores_mixed_module_modes(tiny, texts):
    model = tiny()
    model.train()
    model.backbone.eval()  # e.g. a frozen backbone kept in eval while heads train
    model.encode(texts)
    assert model.training is True
    assert model.backbone.training is False


def test_bad_precision_leaves_train_mode_alone(tiny):
    model = tiny()
    model.train()
    with pytest.raises(ValueError, match="int8"):
        model.encode(["the cat"], precision="int8")
    assert model.training is True


def test_encode_leaves_grad_mode_alone(tiny):
    model = tiny()
    assert torch.is_grad_enabled()
    model.encode(["the cat"])
    assert torch.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------------------------------------- training path


def test_embed_equals_encode_and_gradients_flow(tiny, texts):
    model = tiny()
    model.train()  # GPT-Neo's dropouts are 0, so train mode gives the same numbers
    ref = model.encode(texts, convert_to="torch")
    emb = model.embed(texts)
    assert emb.requires_grad and emb.shape == ref.shape
    torch.testing.assert_close(emb.detach(), ref, atol=TOL, rtol=0)
    emb.pow(2).sum().backward()
    named = dict(model.backbone.named_parameters())
    for name in ("wte.weight", "h.0.attn.attention.q_proj.weight", "h.1.mlp.c_fc.bias", "ln_f.weight"):
        assert named[name].grad is not None, name
        assert named[name].grad.abs().sum() > 0, name


def test_embed_micro_batches_give_same_values_and_grads(tiny, texts):
    model_a, model_b = tiny(), tiny()
    a = model_a.embed(texts)
    b = model_b.embed(texts, micro_batch_size=2)
    torch.testing.assert_close(a, b, atol=TOL, rtol=0)
    a.sum().backward()
    b.sum().backward()
    for (name, pa), pb in zip(model_a.named_parameters(), model_b.parameters(), strict=False):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_embed_with_empty_text_keeps_graph(tiny):
    model = tiny()
    emb = model.embed(["", "the cat"])
    assert emb.requires_grad
    assert torch.equal(emb[0].detach(), torch.zeros(64))
    emb.sum().backward()
    assert model.backbone.wte.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- real GPT (slow)


@pytest.mark.slow
def test_smollm2_gguf_pad_token_and_batch_invariance(smollm2_gguf):
    """The real SmolLM2 GGUF (~20 s to load): pad = EOS, no BOS added, weightedmean batch invariant."""
    model = sgpt.load(smollm2_gguf, pooling="weightedmean", max_seq_length=64, chat_template=False)  # raw text
    tok = model.tokenizer
    assert tok.pad_token == tok.eos_token == "<|im_end|>" and tok.pad_token_id == 2
    assert model.token_ids(["hello world"]) == [tok.convert_tokens_to_ids(tok.tokenize("hello world"))]
    assert model.token_ids([""]) == [[]]
    assert model.embedding_dim == 576 and model.backbone.dtype == torch.float32
    items = [
        "A man is playing a guitar.",
        "",
        "Two dogs run through the snow while a child throws a red ball across the frozen field.",
        "hi",
    ]
    together = model.encode(items, batch_size=8)
    alone = one_by_one(model, items)
    assert np.abs(together - alone).max() <= 1e-4  # 30 layers, fp32, values up to ~30 (measured 2.3e-5)
    np.testing.assert_array_equal(together[1], np.zeros(576, np.float32))
    assert np.isfinite(together).all() and np.abs(together[3]).max() > 0
