"""Parameter counts and peak-memory estimates without weights (issue 11; SPEC 1.6-1.10)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

import sgpt
from sgpt.model.heads import Dense, HeadSpec
from sgpt.train.gradcache import saved_bytes
from sgpt.train.memory import (
    EMBEDDING_GRAD_COPIES,
    activation_bytes_per_text,
    config_from_figures,
    count_parameters,
    estimate_peak_memory,
)
from sgpt.train.params import apply_freezing

SMOLLM2 = Path(__file__).resolve().parents[2] / "models" / "smollm2-135m"
GPT_NEO_125M = {  # EleutherAI/gpt-neo-125M config.json
    "model_type": "gpt_neo",
    "hidden_size": 768,
    "num_layers": 12,
    "num_heads": 12,
    "vocab_size": 50257,
    "max_position_embeddings": 2048,
    "attention_types": [[["global", "local"], 6]],
    "window_size": 256,
}
GPT_J_6B = {  # EleutherAI/gpt-j-6B config.json
    "model_type": "gptj",
    "n_embd": 4096,
    "n_layer": 28,
    "n_head": 16,
    "rotary_dim": 64,
    "vocab_size": 50400,
    "n_positions": 2048,
}
FLAGS = [{}, {"freeze": True}, {"freezenonbias": True}, {"freeze": True, "freezenonbias": True},
         {"freezenonbias": True, "unfreezewte": True}, {"freeze": True, "unfreezewte": True}]  # fmt: skip


# ------------------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "+".join(f) or "full")
def test_counts_equal_a_loaded_tiny_gpt_neo(tiny_gpt_dir, flags):
    model = sgpt.load(tiny_gpt_dir)
    expected = apply_freezing(model, freeze=flags.get("freeze", False), freezenonbias=flags.get("freezenonbias", False),
                              unfreeze_wte=flags.get("unfreezewte", False))  # fmt: skip
    assert count_parameters(AutoConfig.from_pretrained(tiny_gpt_dir), **flags) == expected


def test_counts_equal_loaded_minilm(minilm_path):
    config = AutoConfig.from_pretrained(minilm_path)
    assert count_parameters(config) == (22_713_216, 22_713_216)
    assert count_parameters(config, freezenonbias=True) == (26_112, 22_713_216)  # SPEC 8
    model = sgpt.load(minilm_path)
    assert count_parameters(config, freeze=True, unfreezewte=True) == apply_freezing(
        model, freeze=True, unfreeze_wte=True
    )


def test_counts_equal_loaded_smollm2():
    if not (SMOLLM2 / "config.json").exists():
        pytest.skip(f"{SMOLLM2} is missing (benchmarks/common.py smollm2_path() converts it)")
    config = AutoConfig.from_pretrained(SMOLLM2)
    trainable, total = count_parameters(config)
    assert total == trainable == sum(p.numel() for p in sgpt.load(SMOLLM2).parameters()) == 134_515_008
    with pytest.raises(ValueError, match="llama backbone has none"):  # BitFit would train nothing
        count_parameters(config, freezenonbias=True)


def test_published_architectures_from_figures():
    neo = count_parameters(config_from_figures(GPT_NEO_125M))
    assert neo == (125_198_592, 125_198_592)  # the tied LM head is not part of AutoModel
    trainable, total = count_parameters(config_from_figures(GPT_J_6B), freezenonbias=True)
    assert total == 5_844_393_984  # the transformer; + the untied LM head (4096 * 50400 + 50400) = 6.05B
    assert abs(total + 4096 * 50400 + 50400 - 6.05e9) < 0.01e9
    # BitFit: ln_1, fc_in, fc_out biases per layer + ln_f (SPEC 1.6: ~0.7M of 6B)
    assert trainable == 28 * (4096 + 16384 + 4096) + 4096 == 692_224


def test_config_from_figures_needs_a_known_model_type():
    with pytest.raises(ValueError, match="model_type"):
        config_from_figures({"hidden_size": 8})
    with pytest.raises(ValueError, match="unknown model_type 'nope'"):
        config_from_figures({"model_type": "nope"})


@pytest.mark.parametrize(
    ("heads", "freezenonbias", "layers"),
    [
        (HeadSpec(addxlinear=3, useact=True), False, [(64, 64, True)] * 3),
        (HeadSpec(addxlinear=1, outfeats=16), False, [(64, 16, True)]),
        (HeadSpec(addxlinear=2), True, [(64, 64, False)] * 2),  # BitFit: heads without bias (SPEC 1.7)
    ],
)
def test_heads_always_train(tiny_gpt_dir, heads, freezenonbias, layers):
    config = AutoConfig.from_pretrained(tiny_gpt_dir)
    base_trainable, base_total = count_parameters(config, freeze=True, freezenonbias=freezenonbias)
    dense = sum(p.numel() for i, o, b in layers for p in Dense(i, o, bias=b).parameters())
    got = count_parameters(config, freeze=True, freezenonbias=freezenonbias, heads=heads)
    assert got == (base_trainable + dense, base_total + dense)


def test_learntmean_and_asym(tiny_gpt_dir):
    config = AutoConfig.from_pretrained(tiny_gpt_dir)
    trainable, total = count_parameters(config, freezenonbias=True)
    assert count_parameters(config, freezenonbias=True, asym=True) == (2 * trainable, 2 * total)
    got = count_parameters(config, freezenonbias=True, heads=HeadSpec(learntmean=True), max_seq_length=75)
    assert got == (trainable + 76, total + 76)
    with pytest.raises(ValueError, match="max_seq_length"):
        count_parameters(config, heads=HeadSpec(learntmean=True))


# ------------------------------------------------------------------------------ activations
def _tiny(model_type: str):
    figures = {
        "bert": {"hidden_size": 96, "num_hidden_layers": 2, "num_attention_heads": 6, "intermediate_size": 256},
        "llama": {"hidden_size": 96, "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 2,
                  "intermediate_size": 256, "head_dim": 16},
        "gpt_neo": {"hidden_size": 96, "num_layers": 2, "num_heads": 6, "intermediate_size": 256,
                    "attention_types": [[["global", "local"], 1]]},
        "gptj": {"n_embd": 96, "n_layer": 2, "n_head": 6, "n_inner": 256, "rotary_dim": 8},
    }[model_type]  # fmt: skip
    return config_from_figures({"model_type": model_type, "vocab_size": 500, **figures})


@pytest.mark.parametrize("model_type", ["bert", "llama", "gpt_neo", "gptj"])
def test_activation_formula_matches_what_autograd_saves(model_type):
    """The oracle: bytes of the tensors autograd keeps, measured by saved-tensor hooks."""
    from transformers import AutoModel

    config, seq = _tiny(model_type), 48
    torch.manual_seed(0)
    model = AutoModel.from_config(config).train()

    def embed(texts, group):
        ids = torch.randint(5, 500, (len(texts), seq))
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.mean(1)

    measured = (saved_bytes(embed, ["x"] * 6) - saved_bytes(embed, ["x"] * 2)) / 4  # per text
    assert activation_bytes_per_text(config, seq, precision="fp32", device="cpu") == pytest.approx(measured, rel=0.03)


def test_activation_formula_by_hand():
    config = _tiny("gpt_neo")  # eager attention, no dropout: c = 1; factors a = 8, b = 5, e = 1
    s = 32
    expected = 4 * (2 * (8 * s * 96 + 5 * s * 256 + 1 * 6 * s * s) + 1 * s * 96)
    assert activation_bytes_per_text(config, s, precision="fp32", device="cpu") == expected
    assert activation_bytes_per_text(config, s, precision="bf16", device="cpu") == expected // 2


# ------------------------------------------------------------------------------ the estimate
def _estimate(config, **kw):
    args = {"trainable": 1_000, "total": 10_000, "batch_size": 16, "texts_per_example": 3, "seq_len": 32,
            "gradcache": False, "chunk_size": 8, "device": "cpu"} | kw  # fmt: skip
    return estimate_peak_memory(config, **args)


def test_estimate_arithmetic():
    config = _tiny("gpt_neo")
    e = _estimate(config)
    assert e["weights"] == 4 * 10_000 and e["gradients"] == 4 * 1_000 and e["optimizer"] == 8 * 1_000
    assert e["total"] == sum(v for k, v in e.items() if k != "total")
    assert _estimate(config, optimizer="sgd")["optimizer"] == 0
    assert _estimate(config, precision="bf16")["weights"] == 6 * 10_000  # + the bf16 copies autocast keeps
    assert _estimate(config, device="cuda")["runtime"] != e["runtime"]


def test_gradcache_activations_follow_the_chunk_not_the_batch():
    config = _tiny("gpt_neo")
    small, large = (_estimate(config, batch_size=b, gradcache=True)["activations"] for b in (16, 256))
    assert large - small == 3 * 4 * (256 - 16) * 3 * 96  # only the cached [n, d] embeddings grow with the batch
    plain_small, plain_large = (_estimate(config, batch_size=b)["activations"] for b in (16, 256))
    assert plain_large == 16 * plain_small  # the whole batch's graph
    assert large < plain_large / 10
    one_chunk = _estimate(config, batch_size=256, gradcache=True, chunk_size=4096)["activations"]
    assert one_chunk >= plain_large  # a chunk as large as the batch holds what the plain step holds


def test_gradcache_counts_embedding_gradients_only_when_they_train():
    config = _tiny("gpt_neo")  # vocab 500 x hidden 96
    frozen = _estimate(config, gradcache=True, trainable=1_000, total=100_000)["activations"]
    full = _estimate(config, gradcache=True, trainable=100_000, total=100_000)["activations"]
    assert full - frozen == int(EMBEDDING_GRAD_COPIES * 4 * 500 * 96)
    assert _estimate(config, trainable=100_000, total=100_000)["activations"] == _estimate(config)["activations"]


SWEEPS = [("batch_size", [1, 4, 16, 64]), ("seq_len", [8, 32, 128, 512]), ("chunk_size", [1, 4, 16, 64]),
          ("trainable", [0, 10, 10_000])]  # fmt: skip


@pytest.mark.parametrize(("name", "values"), SWEEPS)
def test_estimate_is_monotone(name, values):
    config = _tiny("bert")
    for gradcache in (False, True):
        totals = [_estimate(config, gradcache=gradcache, **{name: v})["total"] for v in values]
        assert totals == sorted(totals)
        if name == "chunk_size" and not gradcache:
            assert len(set(totals)) == 1  # the plain step does not chunk
        else:
            assert totals[0] < totals[-1]


def test_estimate_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"batch_size must be >= 1.*trainable <= total.*precision"):
        _estimate(_tiny("bert"), batch_size=0, trainable=20_000, precision="fp16")
