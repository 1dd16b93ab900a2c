"""Tests for sgpt.model.heads (SPEC 1.7): add_heads' layers, sentence-transformers as oracle of the
saved heads, SGPT fork's Dense layout, and a real NLI training run with frozen transformer."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import sgpt
from sgpt.model.biencoder import BiEncoder
from sgpt.model.heads import Dense, HeadSpec, add_heads
from sgpt.recipes.tasks import NLITask
from sgpt.recipes.train_nli import train_nli
from sgpt.train.config import TrainConfig
from sgpt.train.params import apply_freezing

st = pytest.importorskip("sentence_transformers")

TOL = 1e-5
H = 384  # MiniLM hidden size
TEXTS = ["A man is playing a guitar.", "the cat sleeps", "Two dogs run across a wide green field today.", "x"]


def trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def minilm(minilm_path) -> BiEncoder:
    return sgpt.load(minilm_path)


@pytest.fixture
def fresh(minilm) -> BiEncoder:
    return copy.deepcopy(minilm)


# ---------------------------------------------------------------------------------------------- add_heads


@pytest.mark.parametrize(
    ("spec", "bias", "position", "activation", "dims", "params"),
    [
        (HeadSpec(addxlinear=5), True, "after", "identity", [(H, H)] * 5, 5 * (H * H + H)),
        (HeadSpec(addxlinear=5), False, "after", "identity", [(H, H)] * 5, 5 * H * H),  # --freezenonbias
        (
            HeadSpec(addxlinear=5, linearthenpool=True, useact=True),
            True,
            "before",
            "gelu",
            [(H, H)] * 5,
            5 * (H * H + H),
        ),
        (HeadSpec(addxlinear=1, outfeats=100), True, "after", "identity", [(H, 100)], H * 100 + 100),
        (HeadSpec(addxlinear=1, outfeats=100, linearthenpool=True), False, "before", "identity", [(H, 100)], H * 100),
    ],
)
def test_add_heads_layers_shapes_and_trainable_parameters(fresh, spec, bias, position, activation, dims, params):
    apply_freezing(fresh, freeze=True)  # as model_to_train: freeze first, heads after
    assert trainable(fresh) == 0
    add_heads(fresh, spec, bias=bias)
    heads = list(fresh.dense)
    assert [(h.in_features, h.out_features) for h in heads] == dims
    assert {(h.position, h.activation, h.linear.bias is not None) for h in heads} == {(position, activation, bias)}
    assert all(isinstance(h.act, torch.nn.GELU if activation == "gelu" else torch.nn.Identity) for h in heads)
    assert trainable(fresh) == params  # only the heads train
    assert all(p.requires_grad for h in heads for p in h.parameters())
    assert fresh.embedding_dim == dims[-1][1]
    assert fresh.encode(TEXTS).shape == (len(TEXTS), dims[-1][1])


def test_add_heads_uses_pytorch_default_init(fresh):
    torch.manual_seed(0)
    add_heads(fresh, HeadSpec(addxlinear=2))
    torch.manual_seed(0)
    ref = [torch.nn.Linear(H, H) for _ in range(2)]
    for head, lin in zip(fresh.dense, ref, strict=True):
        assert torch.equal(head.linear.weight, lin.weight) and torch.equal(head.linear.bias, lin.bias)


def test_add_heads_twice_is_refused(fresh):
    add_heads(fresh, HeadSpec(addxlinear=1))
    with pytest.raises(ValueError, match="already has heads") as err:
        add_heads(fresh, HeadSpec(addxlinear=1))
    assert "\n" not in str(err.value)


def test_heads_are_shared_by_both_towers(tiny_gpt_dir):
    model = sgpt.load(tiny_gpt_dir, max_seq_length=16).make_asymmetric()
    add_heads(model, HeadSpec(addxlinear=1, outfeats=8))
    assert model.embedding_dim == 8 and len(model.dense) == 1
    q, d = model.encode_queries(TEXTS), model.encode_documents(TEXTS)
    assert q.shape == d.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(q, d, atol=1e-6)  # identical towers at start, one shared head
    model.document_backbone.wte.weight.data.add_(0.5)
    assert np.abs(model.encode_queries(TEXTS) - q).max() == 0  # the query route does not see the document tower


# ---------------------------------------------------------------------------------------------- saved heads


@pytest.mark.parametrize(
    "spec",
    [
        HeadSpec(addxlinear=5, linearthenpool=True, useact=True),
        HeadSpec(addxlinear=2, useact=True),
        HeadSpec(addxlinear=1, outfeats=100),
    ],
    ids=["linearthenpool5-useact", "after2-useact", "outfeats100"],
)
def test_saved_heads_load_in_sentence_transformers_and_sgpt(fresh, tmp_path, spec):
    torch.manual_seed(1)
    add_heads(fresh, spec)
    ref = fresh.encode(TEXTS)
    out = fresh.save(tmp_path / "m")
    kinds = [m["type"].rsplit(".", 1)[-1] for m in json.loads((out / "modules.json").read_text())]
    n = spec.addxlinear
    dense_pooling = ["Dense"] * n + ["Pooling"] if spec.linearthenpool else ["Pooling"] + ["Dense"] * n
    assert kinds == ["Transformer", *dense_pooling, "Normalize"]
    oracle = st.SentenceTransformer(str(out), device="cpu").encode(TEXTS, convert_to_numpy=True)
    assert oracle.shape == ref.shape == (len(TEXTS), spec.outfeats or H)
    assert np.abs(oracle - ref).max() <= TOL
    back = sgpt.load(out)
    assert [(h.position, h.activation, h.out_features) for h in back.dense] == [
        (h.position, h.activation, h.out_features) for h in fresh.dense
    ]
    np.testing.assert_array_equal(back.encode(TEXTS), ref)


def _write_fork_dense(folder: Path, head: Dense, key_name: str) -> None:
    """A Dense module as SGPT's fork of sentence-transformers saved it (SPEC 1.7)."""
    folder.mkdir()
    config = {
        "in_features": head.in_features,
        "out_features": head.out_features,
        "bias": head.linear.bias is not None,
        "activation_function": "torch.nn.modules."
        + ("activation.GELU" if head.activation == "gelu" else "linear.Identity"),
        "key_name": key_name,
    }
    (folder / "config.json").write_text(json.dumps(config))
    torch.save({k: v.clone() for k, v in head.state_dict().items()}, folder / "pytorch_model.bin")


@pytest.mark.parametrize("order", ["fork", "keyname-decides"])
def test_fork_dense_layout_loads_with_key_name_positions(tiny_gpt_dir, tmp_path, order):
    """``{idx}_Dense/config.json`` with ``key_name`` + ``pytorch_model.bin``; ``keyname-decides`` lists
    the ``sentence_embedding`` layer before the Pooling module: key_name, not the order, places it."""
    torch.manual_seed(2)
    model = sgpt.load(tiny_gpt_dir, pooling="weightedmean", max_seq_length=32)
    before = Dense(64, 48, activation="gelu", position="before")
    after = Dense(48, 24, bias=False, position="after")
    model.dense = torch.nn.ModuleList([before, after])
    ref = model.encode(TEXTS)  # the oracle: the same layers applied where they belong

    out = tmp_path / "fork"
    sgpt.load(tiny_gpt_dir, pooling="weightedmean", max_seq_length=32).save(out)  # Transformer + 1_Pooling
    pooling_config = json.loads((out / "1_Pooling" / "config.json").read_text()) | {"word_embedding_dimension": 48}
    (out / "1_Pooling").rename(out / "2_Pooling")
    (out / "2_Pooling" / "config.json").write_text(json.dumps(pooling_config))
    _write_fork_dense(out / "1_Dense", before, "token_embeddings")
    _write_fork_dense(out / "3_Dense", after, "sentence_embedding")
    names = ["1_Dense", "2_Pooling", "3_Dense"] if order == "fork" else ["1_Dense", "3_Dense", "2_Pooling"]
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}] + [
        {"idx": i, "name": str(i), "path": p, "type": f"sentence_transformers.models.{p.split('_')[1]}"}
        for i, p in enumerate(names, start=1)
    ]
    (out / "modules.json").write_text(json.dumps(modules))

    back = sgpt.load(out)
    assert [(h.position, h.activation, h.linear.bias is not None) for h in back.dense] == [
        ("before", "gelu", True),
        ("after", "identity", False),
    ]
    assert torch.equal(back.dense[0].linear.weight, before.linear.weight)
    assert back.embedding_dim == 24
    np.testing.assert_allclose(back.encode(TEXTS), ref, atol=1e-6)


def test_dense_with_unknown_input_name_is_refused(tiny_gpt_dir, tmp_path):
    model = sgpt.load(tiny_gpt_dir, max_seq_length=16)
    model.dense = torch.nn.ModuleList([Dense(64, 64)])
    out = model.save(tmp_path / "m")
    config = json.loads((out / "2_Dense" / "config.json").read_text()) | {"module_input_name": "pixel_values"}
    (out / "2_Dense" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="pixel_values"):
        sgpt.load(out)


# ---------------------------------------------------------------------------------------------- training


def test_nli_run_trains_heads_with_frozen_transformer(minilm_path, minilm, tmp_path, monkeypatch):
    import sgpt.recipes.common as common

    initial: dict[str, torch.Tensor] = {}

    def add_and_record(model, heads, *, bias=True):
        add_heads(model, heads, bias=bias)
        initial.update({k: v.clone() for k, v in model.dense.state_dict().items()})

    monkeypatch.setattr(common, "add_heads", add_and_record)
    data = tmp_path / "triplets.jsonl"
    rows = [
        {"anchor": f"the cat number {i} sleeps", "positive": f"a cat {i} is asleep", "negative": f"dogs {i} run"}
        for i in range(8)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TrainConfig(
        output=str(tmp_path / "out"), batch_size=4, lr=1e-3, max_steps=2, warmup_steps=0, seed=0, freeze=True
    )
    task = NLITask(train_data=(str(data),), max_seq_length=16)
    results = train_nli(str(minilm_path), task, cfg, None, HeadSpec(addxlinear=2, linearthenpool=True))
    assert results["train"]["steps"] == 2
    trained = sgpt.load(tmp_path / "out")
    assert [(h.position, h.in_features, h.out_features) for h in trained.dense] == [("before", H, H)] * 2
    assert sorted(initial) == ["0.linear.bias", "0.linear.weight", "1.linear.bias", "1.linear.weight"]
    for name, value in trained.dense.state_dict().items():
        assert (value - initial[name]).abs().max() > 1e-5, name  # every head tensor trained
    original = minilm.backbone.state_dict()
    for name, value in trained.backbone.state_dict().items():
        assert torch.equal(value, original[name]), name  # cfg.freeze: the transformer did not move


def test_saved_heads_load_in_bfloat16(tiny_gpt_dir, tmp_path):
    model = sgpt.load(tiny_gpt_dir, max_seq_length=20)
    add_heads(model, HeadSpec(addxlinear=2, linearthenpool=True, learntmean=True))
    ref = model.encode(TEXTS)
    back = sgpt.load(model.save(tmp_path / "m"), dtype="bfloat16")
    assert {p.dtype for p in back.parameters()} == {torch.bfloat16}  # heads follow the backbone's dtype
    got = back.encode(TEXTS)
    assert got.shape == ref.shape and np.abs(got - ref).max() < 0.05 * np.abs(ref).max()
