"""Asymmetric towers (SGPT ``--asym``, SPEC 1.8): separate query and document transformers.

Oracle: stock sentence-transformers (``Router.for_query_document``) loading the folders sgpt
writes, and sgpt loading the Router folders sentence-transformers writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import sgpt
from sgpt.model.backbone import load_backbone
from sgpt.model.biencoder import BiEncoder
from sgpt.model.heads import Dense
from sgpt.train.params import apply_freezing

st = pytest.importorskip("sentence_transformers")
st_modules = pytest.importorskip("sentence_transformers.sentence_transformer.modules")


TOL = 1e-5
QUERIES = ["how do cats see in the dark", "x"]
DOCS = ["the cat sees some bright stars again and again.", "a red car walks past the quiet garden every morning!"]


def read(path: Path):
    return json.loads(path.read_text())


def perturb(module: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """Move every weight of ``module`` a little, deterministically."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


def asym_model(tiny_gpt_dir, **kwargs) -> BiEncoder:
    """Tiny asymmetric model whose document tower has moved away from the query tower."""
    model = sgpt.load(tiny_gpt_dir, pooling="weightedmean", max_seq_length=32, asym=True, **kwargs)
    perturb(model.document_backbone, seed=1)
    return model


def assert_vectors(ours: BiEncoder, oracle, atol: float = TOL) -> None:
    """``ours`` embeds queries, documents and plain text like the sentence-transformers ``oracle``."""
    np.testing.assert_allclose(ours.encode_queries(QUERIES), oracle.encode_query(QUERIES), atol=atol, rtol=0)
    np.testing.assert_allclose(ours.encode_documents(DOCS), oracle.encode_document(DOCS), atol=atol, rtol=0)
    np.testing.assert_allclose(ours.encode(DOCS), oracle.encode(DOCS), atol=atol, rtol=0)


# ---------------------------------------------------------------------------------------------- towers


def test_make_asymmetric_copies_the_backbone(tiny_gpt_dir):
    sym = sgpt.load(tiny_gpt_dir, pooling="weightedmean", max_seq_length=32)
    n_sym = sum(p.numel() for p in sym.parameters())
    model = asym_model(tiny_gpt_dir)
    assert model.is_asymmetric and not sym.is_asymmetric
    assert model.towers() == [model.backbone, model.document_backbone] and sym.towers() == [sym.backbone]
    assert sum(p.numel() for p in model.parameters()) == 2 * n_sym
    ptrs = {p.data_ptr() for p in model.backbone.parameters()}
    assert not ptrs & {p.data_ptr() for p in model.document_backbone.parameters()}  # no shared storage
    assert model.signature() == sym.signature() | {"asymmetric": True, "default_role": "document"}
    assert sym.signature()["asymmetric"] is False
    # the query tower is the original backbone: same query vectors as the symmetric model
    np.testing.assert_array_equal(model.encode_queries(QUERIES), sym.encode_queries(QUERIES))
    with pytest.raises(ValueError, match="already"):
        model.make_asymmetric()


def test_fresh_towers_start_identical(tiny_gpt_dir):
    model = sgpt.load(tiny_gpt_dir, asym=True)
    np.testing.assert_array_equal(model.encode_queries(DOCS), model.encode_documents(DOCS))


@pytest.mark.parametrize("role", ["query", "document"])
def test_towers_are_independent(tiny_gpt_dir, role):
    model = asym_model(tiny_gpt_dir)
    before = {r: model.encode(DOCS, role=r) for r in ("query", "document")}
    perturb(model.tower(role), seed=7)
    other = "document" if role == "query" else "query"
    np.testing.assert_array_equal(model.encode(DOCS, role=other), before[other])
    assert np.abs(model.encode(DOCS, role=role) - before[role]).max() > 1e-3


@pytest.mark.parametrize("role", ["query", "document"])
def test_embed_trains_only_its_roles_tower(tiny_gpt_dir, role):
    model = asym_model(tiny_gpt_dir).train()
    out = model.embed(DOCS, micro_batch_size=1, role=role)
    assert out.shape == (2, 64) and out.requires_grad
    out.pow(2).sum().backward()
    trained, untouched = model.tower(role), model.tower("document" if role == "query" else "query")
    assert all(p.grad is not None for p in trained.parameters() if p.requires_grad)
    assert all(p.grad is None for p in untouched.parameters())
    with torch.no_grad():  # and it is the same vector inference gives
        np.testing.assert_allclose(out.numpy(), model.encode(DOCS, role=role), atol=1e-5)


def test_document_backbone_is_checked(tiny_gpt_dir):
    backbone, tokenizer = load_backbone(tiny_gpt_dir)
    with pytest.raises(ValueError, match="copy"):
        BiEncoder(backbone, tokenizer, document_backbone=backbone)
    from transformers import GPTNeoConfig, GPTNeoModel

    small = GPTNeoModel(
        GPTNeoConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_layers=1,
            num_heads=4,
            attention_types=[[["global"], 1]],
            max_position_embeddings=64,
        )
    )
    with pytest.raises(ValueError, match="hidden size 64 .* 32"):
        BiEncoder(backbone, tokenizer, document_backbone=small)
    with pytest.raises(ValueError, match="default_role"):
        BiEncoder(backbone, tokenizer, default_role="passage")


# ---------------------------------------------------------------------------------------------- plain encode


def test_plain_encode_uses_the_default_tower(tiny_gpt_dir, tmp_path):
    model = asym_model(tiny_gpt_dir, query_prompt="q: ", document_prompt="d: ")
    # role=None: the document tower (sentence-transformers' default route), and no prompt
    plain = model.encode(DOCS)
    np.testing.assert_array_equal(plain, model.embed_ids(model.token_ids(DOCS), "document").detach().numpy())
    assert np.abs(plain - model.encode_documents(DOCS)).max() > 1e-3  # the prompt changes it
    model.default_role = "query"
    np.testing.assert_array_equal(model.encode(DOCS), model.embed_ids(model.token_ids(DOCS), "query").detach().numpy())
    model.default_role = None
    with pytest.raises(ValueError, match="encode_queries/encode_documents"):
        model.encode(DOCS)
    with pytest.raises(ValueError, match="encode_queries/encode_documents"):
        model.embed(DOCS)
    with pytest.raises(ValueError, match="role"):
        model.encode(DOCS, role="passage")
    model.encode_queries(QUERIES)  # the roles still work
    model.save(tmp_path / "m")
    assert read(tmp_path / "m" / "router_config.json")["parameters"] == {
        "default_route": None,
        "allow_empty_key": False,
        "route_mappings": {},
    }
    back = sgpt.load(tmp_path / "m")
    assert back.default_role is None
    with pytest.raises(ValueError, match="no default"):
        back.encode(DOCS)
    with pytest.raises(ValueError):  # sentence-transformers refuses too
        st.SentenceTransformer(str(tmp_path / "m"), device="cpu").encode(DOCS)


# ---------------------------------------------------------------------------------------------- save / load


def test_save_layout_round_trip_and_sentence_transformers(tiny_gpt_dir, tmp_path):
    model = asym_model(tiny_gpt_dir)
    out = model.save(tmp_path / "m")
    st_prefix = "sentence_transformers.models."
    assert read(out / "modules.json") == [
        {"idx": 0, "name": "0", "path": "", "type": st_prefix + "Router"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": st_prefix + "Pooling"},
    ]
    assert read(out / "router_config.json") == {
        "types": {
            "query_0_Transformer": st_prefix + "Transformer",
            "document_0_Transformer": st_prefix + "Transformer",
        },
        "structure": {"query": ["query_0_Transformer"], "document": ["document_0_Transformer"]},
        "parameters": {"default_route": "document", "allow_empty_key": True, "route_mappings": {}},
    }
    for tower in ("query_0_Transformer", "document_0_Transformer"):
        assert {"config.json", "model.safetensors", "tokenizer.json", "sentence_bert_config.json"} <= {
            p.name for p in (out / tower).iterdir()
        }
        assert read(out / tower / "sentence_bert_config.json") == {"max_seq_length": 32, "do_lower_case": False}
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()

    back = sgpt.load(out)
    assert back.is_asymmetric and back.default_role == "document" and back.signature() == model.signature()
    np.testing.assert_array_equal(back.encode_queries(QUERIES), model.encode_queries(QUERIES))
    np.testing.assert_array_equal(back.encode_documents(DOCS), model.encode_documents(DOCS))
    assert sgpt.load(out, asym=True).is_asymmetric  # already asymmetric: unchanged

    oracle = st.SentenceTransformer(str(out), device="cpu")
    assert oracle.max_seq_length == 32
    assert_vectors(model, oracle)


def test_shared_dense_heads_round_trip(tiny_gpt_dir, tmp_path):
    torch.manual_seed(3)
    model = asym_model(tiny_gpt_dir)
    model.dense = torch.nn.ModuleList(
        [Dense(64, 32, activation="tanh", position="before"), Dense(32, 16, activation="gelu", position="after")]
    )
    model.normalize = True
    out = model.save(tmp_path / "m")
    assert [m["path"] for m in read(out / "modules.json")] == ["", "1_Pooling", "2_Dense", "3_Normalize"]
    router = read(out / "router_config.json")
    assert router["structure"] == {
        "query": ["query_0_Transformer", "query_1_Dense"],
        "document": ["document_0_Transformer", "query_1_Dense"],
    }  # one shared head
    assert read(out / "1_Pooling" / "config.json")["word_embedding_dimension"] == 32
    back = sgpt.load(out)
    assert [h.position for h in back.dense] == ["before", "after"] and back.normalize
    np.testing.assert_array_equal(back.encode_documents(DOCS), model.encode_documents(DOCS))
    assert_vectors(model, st.SentenceTransformer(str(out), device="cpu"))


def test_symmetric_folder_made_asymmetric_on_load(tiny_gpt_dir, tmp_path):
    sym = sgpt.load(tiny_gpt_dir, pooling="lasttoken")
    sym.save(tmp_path / "sym")
    model = sgpt.load(tmp_path / "sym", asym=True)
    assert model.is_asymmetric and model.pooling == "lasttoken"
    np.testing.assert_array_equal(model.encode_documents(DOCS), sym.encode_documents(DOCS))


@pytest.mark.parametrize("default_route", ["document", "query"])
def test_loads_router_built_by_sentence_transformers(tiny_gpt_dir, tmp_path, default_route):
    query = st_modules.Transformer(str(tiny_gpt_dir), max_seq_length=24)
    document = st_modules.Transformer(str(tiny_gpt_dir), max_seq_length=24)
    for module in (query, document):  # the tiny GPT tokenizer has no pad token (SPEC 1.2)
        module.tokenizer.pad_token = module.tokenizer.eos_token
    perturb(document.model, seed=5)
    router = st_modules.Router.for_query_document(
        query_modules=[query], document_modules=[document], default_route=default_route
    )
    oracle = st.SentenceTransformer(
        modules=[router, st_modules.Pooling(64, pooling_mode="weightedmean"), st_modules.Normalize()], device="cpu"
    )
    oracle.save(str(tmp_path / "st"))
    model = sgpt.load(tmp_path / "st")
    assert model.is_asymmetric and model.default_role == default_route
    assert model.pooling == "weightedmean" and model.normalize and model.max_seq_length == 24
    assert_vectors(model, oracle)
    if default_route == "document":  # our save of it loads in sentence-transformers alike
        model.save(tmp_path / "ours")
        assert_vectors(model, st.SentenceTransformer(str(tmp_path / "ours"), device="cpu"))


def test_loads_sgpt_era_asym_folder(tiny_gpt_dir, tmp_path):
    """SGPT's --asym models: ``0_Asym/config.json`` with routes QRY/DOCPOS/DOCNEG (SPEC 1.8)."""
    model = asym_model(tiny_gpt_dir)
    out = model.save(tmp_path / "m")
    (out / "0_Asym").mkdir()
    shutil.move(out / "query_0_Transformer", out / "0_Asym" / "140_Transformer")
    shutil.move(out / "document_0_Transformer", out / "0_Asym" / "141_Transformer")
    (out / "router_config.json").unlink()
    (out / "0_Asym" / "config.json").write_text(
        json.dumps(
            {
                "types": {
                    "140_Transformer": "sentence_transformers.models.Transformer",
                    "141_Transformer": "sentence_transformers.models.Transformer",
                },
                "structure": {"QRY": ["140_Transformer"], "DOCPOS": ["141_Transformer"], "DOCNEG": ["141_Transformer"]},
                "parameters": {"allow_empty_key": False},
            }
        )
    )
    modules = read(out / "modules.json")
    modules[0].update(path="0_Asym", type="sentence_transformers.models.Asym")
    (out / "modules.json").write_text(json.dumps(modules))
    back = sgpt.load(out)
    assert back.is_asymmetric and back.default_role is None
    np.testing.assert_array_equal(back.encode_queries(QUERIES), model.encode_queries(QUERIES))
    np.testing.assert_array_equal(back.encode_documents(DOCS), model.encode_documents(DOCS))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c["parameters"].update(route_mappings={"('query', None)": "query"}), "route_mappings"),
        (lambda c: c["structure"].update(passage=c["structure"].pop("document")), "'passage'"),
        (lambda c: c["structure"].pop("document"), "a query and a document route"),
        (lambda c: c["structure"]["query"].append("1_Pooling"), "not a sub-folder"),
        (lambda c: c["structure"].update(query=["document_0_Transformer", "query_0_Transformer"]), "only Transformer"),
    ],
)
def test_unsupported_router_configs_raise_naming_the_file(tiny_gpt_dir, tmp_path, change, match):
    out = sgpt.load(tiny_gpt_dir, asym=True).save(tmp_path / "m")
    config = read(out / "router_config.json")
    change(config)
    (out / "router_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=match) as err:
        sgpt.load(out)
    assert "router_config.json" in str(err.value)


def test_routes_with_separate_heads_raise(tiny_gpt_dir, tmp_path):
    model = sgpt.load(tiny_gpt_dir, asym=True)
    model.dense = torch.nn.ModuleList([Dense(64, 64, position="before")])
    out = model.save(tmp_path / "m")
    shutil.copytree(out / "query_1_Dense", out / "document_1_Dense")
    config = read(out / "router_config.json")
    config["types"]["document_1_Dense"] = config["types"]["query_1_Dense"]
    config["structure"]["document"][1] = "document_1_Dense"
    (out / "router_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="differ after their transformers"):
        sgpt.load(out)


# ---------------------------------------------------------------------------------------------- formatting


def test_specb_applies_per_role_with_each_tower(tiny_gpt_dir, tmp_path):
    model = asym_model(tiny_gpt_dir, special_tokens="specb")
    sym = sgpt.load(tiny_gpt_dir, pooling="weightedmean", max_seq_length=32, special_tokens="specb")
    tok = model.tokenizer
    for role, brackets in (("query", ["[", "]"]), ("document", ["{", "}"])):
        ids = model.token_ids(["alpha"], role)[0]
        assert tok.convert_ids_to_tokens([ids[0], ids[-1]]) == brackets
    # queries: brackets [ ] and the query tower (= the original backbone)
    np.testing.assert_array_equal(model.encode_queries(QUERIES), sym.encode_queries(QUERIES))
    # documents: brackets { } and the document tower
    assert np.abs(model.encode_documents(DOCS) - sym.encode_documents(DOCS)).max() > 1e-3
    sym.backbone.load_state_dict(model.document_backbone.state_dict())
    np.testing.assert_allclose(model.encode_documents(DOCS), sym.encode_documents(DOCS), atol=1e-6, rtol=0)
    assert np.abs(model.encode_documents(DOCS) - model.encode(DOCS)).max() > 1e-3  # plain: no brackets
    model.save(tmp_path / "m")
    back = sgpt.load(tmp_path / "m")
    assert back.text_format.special_tokens == "specb" and back.is_asymmetric
    np.testing.assert_array_equal(back.encode_queries(QUERIES), model.encode_queries(QUERIES))
    np.testing.assert_array_equal(back.encode_documents(DOCS), model.encode_documents(DOCS))


def test_speca_resizes_both_towers(tiny_gpt_dir, tmp_path):
    model = sgpt.load(tiny_gpt_dir, special_tokens="speca", asym=True)
    rows = [t.get_input_embeddings().weight for t in model.towers()]
    assert rows[0].shape[0] == rows[1].shape[0] == len(model.tokenizer)
    torch.testing.assert_close(rows[0], rows[1])  # copies: the new rows start identical too
    # towers given separately: each is resized
    q, tokenizer = load_backbone(tiny_gpt_dir)
    d, _ = load_backbone(tiny_gpt_dir)
    built = BiEncoder(
        q, tokenizer, text_format=sgpt.model.formatting.TextFormat(special_tokens="speca"), document_backbone=d
    )
    assert [t.get_input_embeddings().num_embeddings for t in built.towers()] == [len(tokenizer)] * 2
    model.save(tmp_path / "m")
    back = sgpt.load(tmp_path / "m")
    assert [t.get_input_embeddings().num_embeddings for t in back.towers()] == [len(model.tokenizer)] * 2
    np.testing.assert_allclose(back.encode_documents(DOCS), model.encode_documents(DOCS), atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------- training


def test_bitfit_freezes_both_towers(tiny_gpt_dir):
    model = sgpt.load(tiny_gpt_dir, asym=True)
    apply_freezing(model, freezenonbias=True)
    for tower in model.towers():
        assert all(p.requires_grad == ("bias" in n) for n, p in tower.named_parameters())
