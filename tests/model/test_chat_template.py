"""Chat-template formatting (``TextFormat(chat_template=True)``) against sentence-transformers 6,
which renders a chat model's texts as ``message`` inputs: the oracle for ids, truncation with the
template's tail restored, prompts as system messages, save/load both ways."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaModel

import sgpt
from sgpt.model.formatting import Formatter, TextFormat

st = pytest.importorskip("sentence_transformers")

# ChatML as SmolLM2-Instruct has it (shorter default system message)
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a small helpful robot<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
)
REPO = Path(__file__).resolve().parents[2]

TEXTS = [
    "the cat runs",
    "",
    "  padded with spaces  ",
    "a dog\nwith a line break\n",
    "the quick brown fox jumps over the lazy dog in the rain. " * 8,
    "x",
]


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory, tiny_gpt_dir) -> Path:
    """A plain transformers folder: random 2-layer Llama + the test BPE with ChatML special tokens
    and template; pad = ``<|im_end|>``, as SmolLM2-Instruct."""
    folder = tmp_path_factory.mktemp("tiny_chat_llama")
    tok = AutoTokenizer.from_pretrained(tiny_gpt_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.pad_token = "<|im_end|>"
    tok.chat_template = CHATML
    torch.manual_seed(0)
    model = LlamaModel(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )
    ).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def st_rows(model, texts) -> list[list[int]]:
    feats = model.preprocess(texts)
    return [ids[: int(m.sum())].tolist() for ids, m in zip(feats["input_ids"], feats["attention_mask"], strict=False)]


def test_ids_and_vectors_equal_sentence_transformers(chat_dir):
    """A plain chat folder: sentence-transformers renders the template by default; sgpt with
    chat_template=True gives the same ids (cut rows keep the template tail) and vectors."""
    ours = sgpt.load(chat_dir, pooling="mean", max_seq_length=40, chat_template=True)
    ref = st.SentenceTransformer(str(chat_dir), device="cpu")
    ref.max_seq_length = 40
    ids = ours.token_ids(TEXTS)
    assert ids == st_rows(ref, TEXTS)
    im_end = ours.tokenizer.convert_tokens_to_ids("<|im_end|>")
    newline = ours.tokenizer.encode("\n", add_special_tokens=False)
    assert len(ids[4]) == 40 and ids[4][-1 - len(newline) :] == [im_end, *newline]  # tail written back
    assert ours.formatter.template_tail() == [im_end, *newline]
    np.testing.assert_allclose(ours.encode(TEXTS, batch_size=4), ref.encode(TEXTS, batch_size=4), atol=1e-5)


def test_chat_model_round_trips_through_sentence_transformers(chat_dir, tmp_path):
    """Saved with prompts: sentence-transformers renders them as system messages, like sgpt."""
    ours = sgpt.load(
        chat_dir,
        pooling="weightedmean",
        max_seq_length=48,
        chat_template=True,
        query_prompt="Find passages that answer the question",
        document_prompt="Describe the passage",
    )
    ours.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "sentence_bert_config.json").read_text())
    assert "message" in config["modality_config"]
    assert json.loads((tmp_path / "m" / "sgpt_format.json").read_text())["chat_template"] is True
    ref = st.SentenceTransformer(str(tmp_path / "m"), device="cpu")
    np.testing.assert_allclose(ours.encode_queries(TEXTS), ref.encode_query(TEXTS), atol=1e-5)
    np.testing.assert_allclose(ours.encode_documents(TEXTS), ref.encode_document(TEXTS), atol=1e-5)
    np.testing.assert_allclose(ours.encode(TEXTS), ref.encode(TEXTS), atol=1e-5)
    again = sgpt.load(tmp_path / "m")
    assert again.text_format == ours.text_format
    np.testing.assert_allclose(again.encode_queries(TEXTS), ours.encode_queries(TEXTS), atol=1e-6)
    assert np.abs(ours.encode_queries(TEXTS) - ours.encode_documents(TEXTS)).max() > 1e-2  # system messages differ


def test_plain_chat_folder_defaults_to_the_template_like_sentence_transformers(chat_dir, tiny_gpt_dir):
    """Loaded without a choice, a plain folder whose tokenizer has a chat template embeds through
    it, as sentence-transformers 6 builds that folder; brackets or no template mean raw text."""
    ours = sgpt.load(chat_dir, pooling="mean", max_seq_length=40)
    assert ours.text_format.chat_template is True
    ref = st.SentenceTransformer(str(chat_dir), device="cpu")
    ref.max_seq_length = 40
    np.testing.assert_allclose(ours.encode(TEXTS), ref.encode(TEXTS), atol=1e-5)
    assert sgpt.load(chat_dir, special_tokens="specb").text_format.chat_template is False
    assert sgpt.load(tiny_gpt_dir).text_format.chat_template is False


def test_raw_text_model_stays_raw_in_sentence_transformers(chat_dir, tmp_path):
    """--no-chat-template embeds raw text (SGPT); its saved folder must keep sentence-transformers
    off the template although the tokenizer has one."""
    ours = sgpt.load(chat_dir, pooling="weightedmean", max_seq_length=40, chat_template=False)
    assert ours.text_format.chat_template is False
    ours.save(tmp_path / "m")
    assert "modality_config" not in json.loads((tmp_path / "m" / "sentence_bert_config.json").read_text())
    ref = st.SentenceTransformer(str(tmp_path / "m"), device="cpu")
    plain = [t for t in TEXTS if t and t == t.strip()]  # raw text: sgpt strips, and embeds "" as zeros
    np.testing.assert_allclose(ours.encode(plain), ref.encode(plain), atol=1e-5)
    templated = sgpt.load(chat_dir, pooling="weightedmean", max_seq_length=40, chat_template=True)
    assert np.abs(templated.encode(TEXTS) - ours.encode(TEXTS)).max() > 1e-2


def test_sentence_transformers_chat_folder_loads_with_the_template(chat_dir, tmp_path):
    ref = st.SentenceTransformer(str(chat_dir), device="cpu")
    ref.save(str(tmp_path / "st"))
    ours = sgpt.load(tmp_path / "st")
    assert ours.text_format.chat_template is True
    np.testing.assert_allclose(ours.encode(TEXTS), ref.encode(TEXTS), atol=1e-5)
    assert sgpt.load(tmp_path / "st", chat_template=False).text_format.chat_template is False


def test_chat_template_errors(chat_dir, tiny_gpt_dir):
    with pytest.raises(ValueError, match="cannot be combined with the chat template"):
        TextFormat(special_tokens="specb", chat_template=True)
    with pytest.raises(ValueError, match="no chat template"):
        sgpt.load(tiny_gpt_dir, chat_template=True)
    with pytest.raises(ValueError, match="sgpt_format.json: chat_template must be true or false"):
        TextFormat.from_dict({"chat_template": "yes"}, "sgpt_format.json")
    tok = AutoTokenizer.from_pretrained(chat_dir)
    fmt = Formatter(tok, TextFormat(chat_template=True))
    full = fmt(["hello"], None, 100)[0]
    head, tail = fmt._template_parts("")
    assert full[head : -len(tail)] == tok.encode("hello", add_special_tokens=False)
    assert fmt(["hello"], None, head + len(tail) + 1) == [full[:head] + full[head : head + 1] + tail]  # one text id
    with pytest.raises(ValueError, match=f"max_seq_length {head + len(tail)} leaves no room for text"):
        fmt(["hello"], None, head + len(tail))  # every text would embed the same


@pytest.mark.slow
def test_smollm2_chat_ids_equal_sentence_transformers():
    """The real SmolLM2-Instruct template (the folder setup.sh converts) at the main job's length."""
    folder = REPO / "models" / "smollm2-135m"
    if not (folder / "config.json").exists():
        pytest.skip(f"{folder} is missing (bash setup.sh converts it)")
    ours = sgpt.load(folder, pooling="weightedmean", max_seq_length=75, chat_template=True)
    ref = st.SentenceTransformer(str(folder), device="cpu")
    ref.max_seq_length = 75
    texts = TEXTS + ["A man is playing a guitar.", "Émoji 🎸 and ünïcode"]
    ids = ours.token_ids(texts)
    assert ids == st_rows(ref, texts)
    assert len(ids[0]) == 24 + 3 + 2  # system + user header (24), "the cat runs", <|im_end|>\n
    assert sgpt.load(folder).text_format.chat_template is True  # the default, as sentence-transformers


def test_training_gradients_equal_without_the_shared_prefix(chat_dir, monkeypatch):
    """An MNRL step on chat-template texts: the template head computed once per batch gives the
    loss and gradients of the plain forward (which sentence-transformers runs)."""
    from sgpt.model import prefix
    from sgpt.train.losses import mnrl_from_columns

    model = sgpt.load(chat_dir, pooling="weightedmean", max_seq_length=40, chat_template=True).train()
    columns = [["the cat runs", "a dog barks", "x"], ["a cat is running", "dogs bark", "y z"]]
    calls: list[int] = []
    model.backbone.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["input_ids"].shape[0]), with_kwargs=True)

    def step() -> tuple[float, dict]:
        model.zero_grad()
        loss = mnrl_from_columns([model.embed(c) for c in columns])
        loss.backward()
        return float(loss.detach()), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    shared_loss, shared = step()
    assert calls == [1, 3, 1, 3]  # per column: the template head once, then the rows
    monkeypatch.setattr(prefix, "MIN_PREFIX", 10**9)
    plain_loss, plain = step()
    assert calls[4:] == [3, 3]
    assert shared_loss == pytest.approx(plain_loss, abs=1e-6)
    for k, g in plain.items():
        assert (shared[k] - g).abs().max() <= 1e-4 * g.abs().max().clamp_min(1e-8), k


def test_cli_chat_template_flag(chat_dir, tmp_path):
    """``--chat-template`` reaches the model in the CLI (encode; eval sts shares the model flags)."""
    from sgpt.cli import main

    texts = ["the cat runs", "a dog barks"]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    for flag, chat in (("--chat-template", True), ("--no-chat-template", False)):
        out = tmp_path / f"{chat}.npy"
        assert (
            main(["encode", str(chat_dir), "--input", str(src), "--output", str(out), "--max-seq-length", "40", flag])
            == 0
        )
        want = sgpt.load(chat_dir, max_seq_length=40, chat_template=chat).encode(texts)
        np.testing.assert_allclose(np.load(out), want, atol=1e-6)
