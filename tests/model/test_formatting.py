"""Query/document formatting: specb/speca brackets as token ids, prompts, persistence (SPEC 1.4)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sgpt
from sgpt.model.formatting import TextFormat, bracket_token_id, own_special_tokens

LONG = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma"


@pytest.fixture(scope="module")
def gpt_specb(tiny_gpt_dir):
    return sgpt.load(tiny_gpt_dir, pooling="weightedmean", max_seq_length=8, special_tokens="specb")


@pytest.fixture(scope="module")
def minilm_specb(minilm_path):
    return sgpt.load(minilm_path, max_seq_length=8, special_tokens="specb")


def test_specb_gpt_brackets_are_ids_around_truncated_content(gpt_specb):
    tok = gpt_specb.tokenizer
    content = tok(LONG, add_special_tokens=False)["input_ids"]
    q, d = gpt_specb.token_ids([LONG], "query")[0], gpt_specb.token_ids([LONG], "document")[0]
    lb, rb = bracket_token_id(tok, "["), bracket_token_id(tok, "]")
    lc, rc = bracket_token_id(tok, "{"), bracket_token_id(tok, "}")
    assert q == [lb] + content[:6] + [rb]  # exactly max_seq_length = 8 tokens, brackets included
    assert d == [lc] + content[:6] + [rc]
    assert gpt_specb.token_ids([LONG])[0] == content[:8]  # plain text: no brackets


def test_specb_at_the_truncation_boundary(gpt_specb):
    tok = gpt_specb.tokenizer
    words = LONG.split()
    for n in range(1, 10):
        text = " ".join(words[:n])
        content = tok(text, add_special_tokens=False)["input_ids"]
        ids = gpt_specb.token_ids([text], "query")[0]
        assert len(ids) == min(len(content), 6) + 2 <= 8
        assert ids[1:-1] == content[:6]


def test_specb_bracket_never_merges_with_its_neighbour(gpt_specb):
    tok = gpt_specb.tokenizer
    ids = gpt_specb.token_ids(["[alpha]"], "query")[0]
    # the text's own brackets are tokenised as text; ours are separate ids at both ends
    assert ids[0] == bracket_token_id(tok, "[") and ids[-1] == bracket_token_id(tok, "]")
    assert ids[1:-1] == tok("[alpha]", add_special_tokens=False)["input_ids"][:6]


def test_specb_bert_keeps_cls_in_front_and_sep_at_the_end(minilm_specb):
    tok = minilm_specb.tokenizer
    content = tok(LONG, add_special_tokens=False)["input_ids"]
    q = minilm_specb.token_ids([LONG], "query")[0]
    assert q == [tok.cls_token_id, tok.convert_tokens_to_ids("[")] + content[:4] + [
        tok.convert_tokens_to_ids("]"),
        tok.sep_token_id,
    ]
    assert len(q) == 8
    assert own_special_tokens(tok) == ([tok.cls_token_id], [tok.sep_token_id])
    assert minilm_specb.token_ids([""], "document")[0] == [
        tok.cls_token_id,
        tok.convert_tokens_to_ids("{"),
        tok.convert_tokens_to_ids("}"),
        tok.sep_token_id,
    ]


def test_specb_too_short_max_seq_length_is_a_clear_error(minilm_path):
    # [CLS] [ ] [SEP] take 4 tokens: refused when the model is loaded, not at the first query
    with pytest.raises(ValueError, match="max_seq_length 4 leaves no room for text.*use at least 5"):
        sgpt.load(minilm_path, max_seq_length=4, special_tokens="specb")
    m = sgpt.load(minilm_path, max_seq_length=5, special_tokens="specb")
    assert len(m.token_ids(["x y z"], "query")[0]) == 5


def test_speca_adds_four_learned_tokens_and_reloads(tiny_gpt_dir, tmp_path):
    m = sgpt.load(tiny_gpt_dir, pooling="mean", max_seq_length=8, special_tokens="speca")
    plain = sgpt.load(tiny_gpt_dir)
    rows = m.backbone.get_input_embeddings().num_embeddings
    assert rows == plain.backbone.get_input_embeddings().num_embeddings + 4 == len(m.tokenizer)
    q = m.token_ids(["alpha"], "query")[0]
    assert m.tokenizer.convert_ids_to_tokens([q[0], q[-1]]) == ["[SOS]", "[EOS]"]
    d = m.token_ids(["alpha"], "document")[0]
    assert m.tokenizer.convert_ids_to_tokens([d[0], d[-1]]) == ["{SOS}", "{EOS}"]
    m.save(tmp_path / "speca")
    back = sgpt.load(tmp_path / "speca")
    assert back.text_format.special_tokens == "speca"
    assert back.backbone.get_input_embeddings().num_embeddings == rows  # not added twice
    np.testing.assert_allclose(back.encode_queries(["alpha beta"]), m.encode_queries(["alpha beta"]), atol=1e-6)


def test_specb_saved_and_restored(gpt_specb, tmp_path):
    gpt_specb.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "sgpt_format.json").read_text())
    assert saved == {"special_tokens": "specb", "query_prompt": "", "document_prompt": "", "chat_template": False}
    back = sgpt.load(tmp_path / "m")
    assert back.text_format == gpt_specb.text_format
    texts = ["alpha beta", LONG]
    np.testing.assert_allclose(back.encode_documents(texts), gpt_specb.encode_documents(texts), atol=1e-6)
    # the formatting changes the vector: queries and documents differ, and both differ from plain text
    q, d, p = back.encode_queries(texts), back.encode_documents(texts), back.encode(texts)
    assert np.abs(q - d).max() > 1e-3 and np.abs(q - p).max() > 1e-3
    assert sgpt.load(tmp_path / "m", special_tokens=None).text_format.special_tokens is None  # override


def test_prompts_match_sentence_transformers(minilm_path, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    m = sgpt.load(minilm_path, query_prompt="query: ", document_prompt="passage: ")
    m.save(tmp_path / "p")
    cfg = json.loads((tmp_path / "p" / "config_sentence_transformers.json").read_text())
    assert cfg["prompts"] == {"query": "query: ", "document": "passage: "}
    oracle = st.SentenceTransformer(str(tmp_path / "p"), device="cpu")
    texts = ["how do plants make food", "Photosynthesis turns light into chemical energy."]
    ours = sgpt.load(tmp_path / "p")
    np.testing.assert_allclose(ours.encode_queries(texts), oracle.encode_query(texts), atol=1e-5)
    np.testing.assert_allclose(ours.encode_documents(texts), oracle.encode_document(texts), atol=1e-5)
    np.testing.assert_allclose(ours.encode(texts), oracle.encode(texts), atol=1e-5)  # no prompt on plain text
    assert np.abs(ours.encode_queries(texts) - ours.encode(texts)).max() > 1e-3


def test_text_format_rejects_unknown_values(tmp_path, tiny_gpt_dir):
    with pytest.raises(ValueError, match="specb"):
        TextFormat(special_tokens="specc")
    with pytest.raises(ValueError, match="unknown keys"):
        TextFormat.from_dict({"special_tokens": "specb", "brackets": 1}, "x.json")
    m = sgpt.load(tiny_gpt_dir)
    m.save(tmp_path / "m")
    (tmp_path / "m" / "sgpt_format.json").write_text('{"special_tokens": "specz"}')
    with pytest.raises(ValueError, match="sgpt_format.json"):
        sgpt.load(tmp_path / "m")
    with pytest.raises(ValueError, match="role"):
        m.token_ids(["x"], "passage")


def test_speca_start_is_the_same_on_every_load(tiny_gpt_dir):
    a = sgpt.load(tiny_gpt_dir, special_tokens="speca")
    b = sgpt.load(tiny_gpt_dir, special_tokens="speca")
    rows_a, rows_b = (m.backbone.get_input_embeddings().weight[-4:] for m in (a, b))
    assert torch.equal(rows_a, rows_b)
    assert len({tuple(r.tolist()) for r in rows_a}) == 4  # four distinct tokens
    np.testing.assert_array_equal(a.encode_queries(["alpha"]), b.encode_queries(["alpha"]))


def test_max_seq_length_is_checked_against_the_model(minilm_path, caplog):
    with pytest.raises(ValueError, match="max_seq_length must be >= 1, got 0"):
        sgpt.load(minilm_path, max_seq_length=0)
    m = sgpt.load(minilm_path, max_seq_length=100_000)
    assert m.max_seq_length == 512 and "longer than the model's 512 positions" in caplog.text
    assert m.encode(["word " * 2000]).shape == (1, 384)  # cut to 512 tokens, no crash inside the model
