"""Tests for sgpt.model.folder (the sentence-transformers folder format, SPEC 2.4) and sgpt.utils.io.atomic_dir.

Oracle: stock sentence-transformers loading the folders sgpt writes, and the MiniLM folder it wrote itself.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

import sgpt
from sgpt.model.biencoder import BiEncoder
from sgpt.model.heads import Dense
from sgpt.model.pooling import POOLING_MODES

st = pytest.importorskip("sentence_transformers")


TOL = 1e-5
ST_PREFIX = "sentence_transformers.models."
LEGACY_KEYS = {
    "word_embedding_dimension",
    "pooling_mode_cls_token",
    "pooling_mode_mean_tokens",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
}
MODE_KEY = {
    "cls": "pooling_mode_cls_token",
    "mean": "pooling_mode_mean_tokens",
    "max": "pooling_mode_max_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}


def st_encode(folder: Path, texts: list[str]) -> np.ndarray:
    """sentence-transformers' embeddings of ``texts`` (already stripped: ST does not strip)."""
    return st.SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_numpy=True)


def read(path: Path):
    return json.loads(path.read_text())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def stripped(texts) -> list[str]:
    return [t.strip() for t in texts]


# ---------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_save_loads_in_sentence_transformers_and_round_trips(tiny_gpt_dir, tmp_path, stripped, pooling):
    model = sgpt.load(tiny_gpt_dir, pooling=pooling, max_seq_length=100)
    ref = model.encode(stripped)
    out = model.save(tmp_path / "m")
    assert out == tmp_path / "m"

    # layout (SPEC 2.4)
    modules = read(out / "modules.json")
    assert modules == [
        {"idx": 0, "name": "0", "path": "", "type": ST_PREFIX + "Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": ST_PREFIX + "Pooling"},
    ]
    config = read(out / "1_Pooling" / "config.json")
    assert set(config) == LEGACY_KEYS
    assert config["word_embedding_dimension"] == 64
    assert [k for k in LEGACY_KEYS - {"word_embedding_dimension"} if config[k]] == [MODE_KEY[pooling]]
    assert read(out / "sentence_bert_config.json") == {"max_seq_length": 100, "do_lower_case": False}
    saved_tok = AutoTokenizer.from_pretrained(out)
    assert saved_tok.pad_token == saved_tok.eos_token == "<|endoftext|>"  # the pad token travels with the folder

    # stock sentence-transformers gives the same vectors
    oracle = st.SentenceTransformer(str(out), device="cpu")
    assert oracle.max_seq_length == 100
    assert np.abs(oracle.encode(stripped) - ref).max() <= TOL

    # sgpt round trip is exact
    back = sgpt.load(out)
    assert back.pooling == pooling and back.max_seq_length == 100
    assert back.normalize is False and len(back.dense) == 0 and back.training is False
    np.testing.assert_array_equal(back.encode(stripped), ref)


def test_truncation_matches_sentence_transformers(tiny_gpt_dir, tmp_path, stripped):
    model = sgpt.load(tiny_gpt_dir, pooling="lasttoken", max_seq_length=7)
    model.save(tmp_path / "m")
    ref = model.encode(stripped)
    assert max(len(x) for x in model.token_ids(stripped)) == 7
    assert np.abs(st_encode(tmp_path / "m", stripped) - ref).max() <= TOL
    np.testing.assert_array_equal(sgpt.load(tmp_path / "m").encode(stripped), ref)


def _with_dense(tiny_gpt_dir, bias: bool = True) -> BiEncoder:
    torch.manual_seed(1)
    model = sgpt.load(tiny_gpt_dir, pooling="weightedmean", max_seq_length=64)
    model.dense = torch.nn.ModuleList(
        [
            Dense(64, 32, bias=bias, activation="tanh", position="before"),
            Dense(32, 16, bias=bias, activation="gelu", position="after"),
        ]
    )
    model.normalize = True
    return model.eval()


@pytest.mark.parametrize("bias", [True, False])
def test_dense_and_normalize_round_trip(tiny_gpt_dir, tmp_path, stripped, bias):
    model = _with_dense(tiny_gpt_dir, bias=bias)
    assert model.embedding_dim == 16
    ref = model.encode(stripped)
    np.testing.assert_allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-6)
    out = model.save(tmp_path / "m")

    assert [(m["path"], m["type"].rsplit(".", 1)[-1]) for m in read(out / "modules.json")] == [
        ("", "Transformer"),
        ("1_Dense", "Dense"),
        ("2_Pooling", "Pooling"),
        ("3_Dense", "Dense"),
        ("4_Normalize", "Normalize"),
    ]
    assert read(out / "2_Pooling" / "config.json")["word_embedding_dimension"] == 32
    before, after = read(out / "1_Dense" / "config.json"), read(out / "3_Dense" / "config.json")
    assert before["module_input_name"] == "token_embeddings"
    assert after["module_input_name"] == "sentence_embedding"
    shapes = (before["in_features"], before["out_features"], after["in_features"], after["out_features"])
    assert shapes == (64, 32, 32, 16)
    assert after["activation_function"] == "torch.nn.modules.activation.GELU"
    assert before["bias"] is bias and after["bias"] is bias

    oracle = st_encode(out, stripped)
    assert oracle.shape == (len(stripped), 16)
    assert np.abs(oracle - ref).max() <= TOL

    back = sgpt.load(out)
    assert back.normalize is True and back.pooling == "weightedmean" and back.max_seq_length == 64
    assert [(h.position, h.activation, h.linear.bias is not None) for h in back.dense] == [
        ("before", "tanh", bias),
        ("after", "gelu", bias),
    ]
    for a, b in zip(model.dense, back.dense, strict=False):
        assert torch.equal(a.linear.weight, b.linear.weight)
    np.testing.assert_array_equal(back.encode(stripped), ref)


def test_do_lower_case_round_trips(tiny_gpt_dir, tmp_path):
    model = sgpt.load(tiny_gpt_dir)
    model.do_lower_case = True
    model.save(tmp_path / "m")
    assert read(tmp_path / "m" / "sentence_bert_config.json")["do_lower_case"] is True
    back = sgpt.load(tmp_path / "m")
    assert back.do_lower_case is True
    np.testing.assert_array_equal(back.encode("The Cat"), back.encode("the cat"))


# ---------------------------------------------------------------------------------------------- MiniLM


def test_minilm_folder_matches_sentence_transformers(minilm_path, minilm_st, stripped):
    model = sgpt.load(minilm_path)
    assert model.pooling == "mean" and model.normalize is True and model.max_seq_length == 256
    assert len(model.dense) == 0 and model.do_lower_case is False
    long = " ".join(stripped) * 4  # > 256 word pieces: truncation must match too
    assert len(model.token_ids([long])[0]) == 256
    items = stripped + [long]
    ref = minilm_st.encode(items)
    got = model.encode(items)
    assert np.abs(got - ref).max() <= TOL


def test_minilm_saved_by_sgpt_still_matches(minilm_path, minilm_st, tmp_path, stripped):
    sgpt.load(minilm_path).save(tmp_path / "m")
    assert read(tmp_path / "m" / "sentence_bert_config.json")["max_seq_length"] == 256
    assert np.abs(st_encode(tmp_path / "m", stripped) - minilm_st.encode(stripped)).max() <= TOL


# ---------------------------------------------------------------------------------------------- legacy configs


@pytest.fixture
def saved(tiny_gpt_dir, tmp_path) -> Path:
    """A saved tiny model with mean pooling (its Pooling config gets rewritten by the tests)."""
    return sgpt.load(tiny_gpt_dir, pooling="mean").save(tmp_path / "saved")


@pytest.mark.parametrize(
    ("config", "mode"),
    [
        ({"word_embedding_dimension": 64, "pooling_mode_weightedmean_tokens": True}, "weightedmean"),
        (
            {
                "word_embedding_dimension": 64,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": False,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
                "pooling_mode_lasttoken": True,
            },
            "lasttoken",
        ),
        ({"embedding_dimension": 64, "pooling_mode": "lasttoken", "include_prompt": True}, "lasttoken"),
        ({"embedding_dimension": 64, "pooling_mode": ["max"], "include_prompt": True}, "max"),
        ({"word_embedding_dimension": 64, "pooling_mode_cls_token": False}, "mean"),  # no mode set: ST's default
    ],
)
def test_pooling_config_variants(saved, stripped, config, mode):
    (saved / "1_Pooling" / "config.json").write_text(json.dumps(config))
    model = sgpt.load(saved)
    assert model.pooling == mode
    assert np.abs(model.encode(stripped) - st_encode(saved, stripped)).max() <= TOL  # ST reads it the same way


@pytest.mark.parametrize(
    "config",
    [
        {"word_embedding_dimension": 64, "pooling_mode_mean_tokens": True, "pooling_mode_lasttoken": True},
        {"embedding_dimension": 64, "pooling_mode": ["mean", "max"]},
    ],
)
def test_several_pooling_modes_raise_naming_the_file(saved, config):
    file = saved / "1_Pooling" / "config.json"
    file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json") as err:
        sgpt.load(saved)
    assert str(file) in str(err.value)


def test_unsupported_pooling_mode_raises(saved):
    file = saved / "1_Pooling" / "config.json"
    file.write_text(json.dumps({"word_embedding_dimension": 64, "pooling_mode_mean_sqrt_len_tokens": True}))
    with pytest.raises(ValueError, match="mean_sqrt_len_tokens") as err:
        sgpt.load(saved)
    assert str(file) in str(err.value)


def test_unknown_module_type_raises_naming_the_file(saved):
    file = saved / "modules.json"
    modules = read(file) + [{"idx": 2, "name": "2", "path": "2_LayerNorm", "type": ST_PREFIX + "LayerNorm"}]
    file.write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="LayerNorm") as err:
        sgpt.load(saved)
    assert str(file) in str(err.value)


def test_invalid_json_names_the_file(saved):
    file = saved / "1_Pooling" / "config.json"
    file.write_text('{"word_embedding_dimension": 64,\n "pooling_mode_mean_tokens": tru}')
    with pytest.raises(ValueError, match="config.json:2"):
        sgpt.load(saved)


def test_load_arguments_override_saved_folder(saved, caplog):
    with caplog.at_level(logging.WARNING, logger="sgpt.model"):
        model = sgpt.load(saved, pooling="lasttoken", max_seq_length=12)
    assert model.pooling == "lasttoken" and model.max_seq_length == 12
    assert "mean" in caplog.text and "lasttoken" in caplog.text
    with pytest.raises(ValueError, match="avg"):
        sgpt.load(saved, pooling="avg")


# ---------------------------------------------------------------------------------------------- atomic save


def test_save_over_existing_folder_replaces_it(tiny_gpt_dir, tmp_path, stripped):
    target = tmp_path / "parent" / "m"
    _with_dense(tiny_gpt_dir).save(target)
    assert (target / "1_Dense").is_dir() and (target / "4_Normalize").is_dir()
    (target / "stray.txt").write_text("left from before")
    plain = sgpt.load(tiny_gpt_dir, pooling="cls")
    before = snapshot(target)
    lost = "1_Dense, 2_Pooling, 3_Dense, 4_Normalize, stray.txt"
    with pytest.raises(ValueError, match=rf"m: holds {lost}, which writing"):
        plain.save(target)  # a user's file (and another layout's modules) are never deleted unasked
    assert snapshot(target) == before
    plain.save(target, overwrite=True)
    assert not (target / "1_Dense").exists() and not (target / "stray.txt").exists()
    assert read(target / "modules.json")[1]["path"] == "1_Pooling"
    assert sgpt.load(target).pooling == "cls"
    np.testing.assert_array_equal(sgpt.load(target).encode(stripped), plain.encode(stripped))
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]  # no temp or ".old" folder left


def test_failed_save_leaves_old_folder_intact(tiny_gpt_dir, tmp_path, monkeypatch):
    target = tmp_path / "parent" / "m"
    sgpt.load(tiny_gpt_dir, pooling="lasttoken").save(target)
    before = snapshot(target)

    model = sgpt.load(tiny_gpt_dir, pooling="mean")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(model.tokenizer, "save_pretrained", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        model.save(target)
    assert snapshot(target) == before
    assert [p.name for p in target.parent.iterdir()] == ["m"]  # no '.m.tmp-*' left behind
    assert sgpt.load(target).pooling == "lasttoken"


def test_failed_first_save_leaves_nothing(tiny_gpt_dir, tmp_path, monkeypatch):
    model = sgpt.load(tiny_gpt_dir)
    monkeypatch.setattr(model.tokenizer, "save_pretrained", lambda *a, **k: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(OSError):
        model.save(tmp_path / "parent" / "m")
    assert list((tmp_path / "parent").iterdir()) == []


def test_save_keep_carries_named_entries_over(tiny_gpt_dir, tmp_path):
    target = tmp_path / "m"
    model = sgpt.load(tiny_gpt_dir, pooling="lasttoken")
    model.save(target)
    (target / "logs").mkdir()
    (target / "logs" / "train.csv").write_text("step,loss\n1,0.5\n")
    (target / "stray.txt").write_text("not kept")
    (target / "modules.json").write_text("[]")  # a kept name the new save writes: the new file wins
    model.pooling = "mean"
    model.save(target, keep=["logs", "modules.json", "absent"], overwrite=True)
    assert (target / "logs" / "train.csv").read_text() == "step,loss\n1,0.5\n"
    assert not (target / "stray.txt").exists() and not (target / "absent").exists()
    assert sgpt.load(target).pooling == "mean"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


# ---------------------------------------------------------------------------------------------- plain folder


def test_load_plain_transformers_folder(tiny_gpt_dir):
    assert not (tiny_gpt_dir / "modules.json").exists()
    model = sgpt.load(tiny_gpt_dir, pooling="weightedmean", max_seq_length=75)
    assert isinstance(model, BiEncoder)
    assert model.pooling == "weightedmean" and model.max_seq_length == 75
    assert model.normalize is False and len(model.dense) == 0 and model.training is False
    assert model.tokenizer.pad_token == "<|endoftext|>"
    assert model.backbone.dtype == torch.float32 and model.device.type == "cpu"
    default = sgpt.load(tiny_gpt_dir)
    assert default.pooling == "mean" and default.max_seq_length == 256


def test_load_plain_folder_in_bfloat16(tiny_gpt_dir, stripped):
    model = sgpt.load(tiny_gpt_dir, pooling="weightedmean", dtype="bfloat16")
    assert model.backbone.dtype == torch.bfloat16
    out = model.encode(stripped)
    assert out.dtype == np.float32
    ref = sgpt.load(tiny_gpt_dir, pooling="weightedmean").encode(stripped)
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.99


def test_load_missing_folder_raises(tmp_path):
    with pytest.raises(OSError):
        sgpt.load(tmp_path / "does-not-exist")


def test_default_pooling_applies_to_plain_backbones_only(minilm_path, tiny_gpt_dir):
    # the training recipes pass default_pooling="weightedmean": a saved bi-encoder keeps its own
    assert sgpt.load(minilm_path, default_pooling="weightedmean").pooling == "mean"
    assert sgpt.load(tiny_gpt_dir, default_pooling="weightedmean").pooling == "weightedmean"
    assert sgpt.load(tiny_gpt_dir).pooling == "mean"
    assert sgpt.load(minilm_path, pooling="cls", default_pooling="weightedmean").pooling == "cls"
