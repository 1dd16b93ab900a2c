"""What the model accepts as input (issue 10): texts that are not strings, lengths too short for
the formatting, a default length the position table cannot hold, identical texts, folders that
are not models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

import sgpt
from sgpt.model.formatting import Formatter, TextFormat
from sgpt.search.exact import retrieve

st = pytest.importorskip("sentence_transformers")

LONG = "the quick brown fox jumps over the lazy dog in the rain. " * 40  # > 512 BERT tokens


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return sgpt.load(minilm_path)


@pytest.fixture(scope="module")
def gpt(tiny_gpt_dir):
    return sgpt.load(tiny_gpt_dir, pooling="weightedmean")


# ------------------------------------------------------------------------------ 1. non-string texts


@pytest.mark.parametrize(
    ("bad", "name"),
    [(None, "NoneType"), (b"a dog", "bytes"), (3, "int"), (2.5, "float"), (math.nan, "float"), (["x"], "list")],
)
def test_non_string_texts_are_a_type_error_naming_index_and_type(minilm, bad, name):
    texts = ["a dog", "the cat", "None", bad]
    for call, where in [
        (minilm.encode, "encode"),
        (minilm.encode_queries, "encode"),
        (minilm.encode_documents, "encode"),
        (minilm.embed, "embed"),
        (minilm.token_ids, "token_ids"),
    ]:
        with pytest.raises(TypeError, match=rf"^{where}: texts\[3\] is {name}, not str$"):
            call(texts)


@pytest.mark.parametrize(
    ("texts", "name"), [({"a": 1}, "dict"), ({"a", "b"}, "set"), (None, "NoneType"), (b"ab", "bytes"), (7, "int")]
)
def test_texts_that_are_not_a_sequence_are_a_type_error(minilm, texts, name):
    with pytest.raises(TypeError, match=rf"^encode: texts is {name}, not a sequence of str"):
        minilm.encode(texts)
    with pytest.raises(TypeError, match=rf"^embed: texts is {name}, not a sequence of str"):
        minilm.embed(texts)


def test_string_sequences_of_every_kind_still_encode(minilm):
    texts = ["a dog", "the cat"]
    want = minilm.encode(texts)
    for given in (tuple(texts), np.array(texts), (t for t in texts), [np.str_(t) for t in texts]):
        np.testing.assert_array_equal(minilm.encode(given), want)
    np.testing.assert_array_equal(minilm.encode("a dog"), want[0])  # a single string: one vector
    with pytest.raises(TypeError, match="embed: texts is str, not a sequence of str; pass"):
        minilm.embed("a dog")  # would embed its characters


# ------------------------------------------------------------------------------ 2. minimum max_seq_length


def test_bert_length_below_cls_sep_plus_one_is_refused(minilm_path):
    tok = AutoTokenizer.from_pretrained(minilm_path)
    assert len(tok("")["input_ids"]) == 2  # [CLS] [SEP]
    for length in (1, 2):  # 1: the tokenizer would not truncate at all; 2: every text [CLS] [SEP]
        with pytest.raises(ValueError, match=rf"max_seq_length {length} leaves no room for text.*takes 2 tokens"):
            sgpt.load(minilm_path, max_seq_length=length)
    m = sgpt.load(minilm_path, max_seq_length=3)
    assert m.token_ids([LONG]) == [[tok.cls_token_id, tok.convert_tokens_to_ids("the"), tok.sep_token_id]]
    with pytest.raises(ValueError, match=r"\[CLS\] \[SEP\]\); use at least 3$"):
        m.max_seq_length = 2  # the attribute is checked too
    assert m.max_seq_length == 3  # and left as it was
    m.max_seq_length = 7
    assert len(m.token_ids([LONG])[0]) == 7
    m.max_seq_length = None  # the model's default again
    assert m.max_seq_length == 512
    with pytest.raises(TypeError, match="must be an integer"):
        m.max_seq_length = 7.5


def test_minimum_follows_each_roles_formatting(minilm_path, tiny_gpt_dir):
    tok = AutoTokenizer.from_pretrained(minilm_path)
    prompt_tokens = len(tok("query: ")["input_ids"])  # [CLS] query : [SEP]
    assert prompt_tokens == 4
    with pytest.raises(ValueError, match=f"query text takes {prompt_tokens} tokens.*use at least {prompt_tokens + 1}"):
        sgpt.load(minilm_path, query_prompt="query: ", max_seq_length=prompt_tokens)
    m = sgpt.load(minilm_path, query_prompt="query: ", max_seq_length=prompt_tokens + 1)
    assert len(m.token_ids([LONG], "query")[0]) == prompt_tokens + 1
    # specb on BERT: [CLS] [ x ] [SEP]; speca on the GPT tokenizer (adds no special tokens): [SOS] x [EOS]
    with pytest.raises(ValueError, match="takes 4 tokens.*use at least 5"):
        sgpt.load(minilm_path, special_tokens="specb", max_seq_length=4)
    with pytest.raises(ValueError, match=r"speca brackets: \[SOS\] \[EOS\]\); use at least 3"):
        sgpt.load(tiny_gpt_dir, special_tokens="speca", max_seq_length=2)
    g = sgpt.load(tiny_gpt_dir, special_tokens="speca", max_seq_length=3)
    assert len(g.token_ids([LONG], "document")[0]) == 3
    plain = sgpt.load(tiny_gpt_dir, max_seq_length=1)  # GPT-2 style: no special tokens, one token is text
    assert len(plain.token_ids([LONG])[0]) == 1


def test_minimum_under_a_chat_template(tmp_path, tiny_gpt_dir):
    tok = AutoTokenizer.from_pretrained(tiny_gpt_dir)
    tok.chat_template = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    folder = tmp_path / "chat"
    folder.mkdir()
    for f in tiny_gpt_dir.iterdir():
        if f.name in ("config.json", "model.safetensors"):
            (folder / f.name).write_bytes(f.read_bytes())
    tok.save_pretrained(folder)
    head = len(tok("<|im_start|>user\n", add_special_tokens=False)["input_ids"])
    tail = len(tok("<|im_end|>\n", add_special_tokens=False)["input_ids"])
    fmt = Formatter(tok, TextFormat(chat_template=True))
    assert fmt.min_length(None) == head + tail + 1
    with pytest.raises(ValueError, match=f"takes {head + tail} tokens .*use at least {head + tail + 1}"):
        sgpt.load(folder, max_seq_length=head + tail)
    m = sgpt.load(folder, max_seq_length=head + tail + 1)
    assert m.text_format.chat_template and len(m.token_ids([LONG])[0]) == head + tail + 1


# ------------------------------------------------------------------------------ 3. default length capped


@pytest.mark.parametrize("arch", ["bert", "gpt_neo"])
def test_default_length_is_capped_at_the_position_table(tmp_path, minilm_path, tiny_gpt_dir, arch):
    from transformers import BertConfig, BertModel, GPTNeoConfig, GPTNeoModel

    folder = tmp_path / arch
    if arch == "bert":
        tok = AutoTokenizer.from_pretrained(minilm_path)
        config = BertConfig(
            vocab_size=len(tok),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=32,
        )
        model_cls = BertModel
    else:
        tok = AutoTokenizer.from_pretrained(tiny_gpt_dir)
        config = GPTNeoConfig(
            vocab_size=len(tok),
            hidden_size=16,
            num_layers=1,
            num_heads=2,
            attention_types=[[["global"], 1]],
            max_position_embeddings=32,
            window_size=32,
            intermediate_size=32,
        )
        model_cls = GPTNeoModel
    torch.manual_seed(0)
    model_cls(config).save_pretrained(folder)
    tok.model_max_length = 512  # longer than the 32 learned positions
    tok.save_pretrained(folder)

    m = sgpt.load(folder)
    oracle = st.SentenceTransformer(str(folder), device="cpu")
    assert m.max_seq_length == oracle.max_seq_length == 32
    assert len(m.token_ids([LONG])[0]) == 32
    emb = m.encode([LONG, "a dog"])  # an IndexError in the position table before
    assert emb.shape == (2, 16) and np.isfinite(emb).all()
    if arch == "bert":  # the GPT tokenizer has no pad token for sentence-transformers to batch with
        np.testing.assert_allclose(emb, oracle.encode([LONG, "a dog"]), atol=1e-5)


# ------------------------------------------------------------------------------ 4. identical texts


@pytest.mark.parametrize("which", ["minilm", "gpt"])
def test_identical_texts_get_bit_identical_rows_in_any_order(minilm, gpt, which):
    model = {"minilm": minilm, "gpt": gpt}[which]
    x = "my old friend writes about the morning news every morning"
    texts = ["a", x, "a", LONG, "the cat", "a", x, "  a  ", "b", LONG[:100], "a"]
    out = model.encode(texts, batch_size=2)
    same = [i for i, t in enumerate(texts) if t.strip() == "a"]
    assert len(same) == 5
    for i in same:
        assert np.array_equal(out[i], out[0])  # bit for bit, whatever the batch position
    assert np.array_equal(out[1], out[6])
    rng = np.random.default_rng(0)
    for _ in range(3):
        perm = rng.permutation(len(texts))
        again = model.encode([texts[i] for i in perm], batch_size=2)
        assert np.array_equal(again, out[perm])  # permuting the input permutes the rows exactly
    # the distinct texts alone give the very same vectors: duplicates neither add nor change work
    distinct = sorted({t.strip() for t in texts})
    alone = model.encode(distinct, batch_size=2)
    for t, row in zip(distinct, alone, strict=True):
        assert np.array_equal(row, out[[s.strip() for s in texts].index(t)])


def test_exact_search_scores_duplicates_equally_whatever_the_corpus_order(gpt):
    from sgpt.data.beir import RetrievalData

    docs = {"d1": "the cat sees a green tree", "d2": "a red car", "d3": "the cat sees a green tree", "d4": LONG}
    queries = {"q1": "a cat and a tree", "q2": "cars"}
    data = RetrievalData(corpus={d: {"title": "", "text": t} for d, t in docs.items()}, queries=queries, qrels={})
    hits = retrieve(gpt, data, k=4, batch_size=2)
    for q in queries:
        assert hits[q]["d1"] == hits[q]["d3"]
    reordered = RetrievalData(corpus={d: data.corpus[d] for d in ("d4", "d3", "d2", "d1")}, queries=queries, qrels={})
    again = retrieve(gpt, reordered, k=4, batch_size=2)
    assert {q: dict(sorted(h.items())) for q, h in again.items()} == {
        q: dict(sorted(h.items())) for q, h in hits.items()
    }


# ------------------------------------------------------------------------------ 5. not a model


def test_a_folder_or_file_that_is_not_a_model_is_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    (junk / "weights.bin").write_bytes(bytes(range(256)))
    for folder in (empty, junk):
        with pytest.raises(ValueError) as e:
            sgpt.load(folder)
        assert str(e.value) == f"{folder}: not a model folder (no config.json, modules.json or .gguf file)"
    rows = tmp_path / "train.jsonl"
    rows.write_text('{"query": "a", "pos": "b"}\n')
    with pytest.raises(ValueError, match=r"^.*train\.jsonl: not a model \(a file that is not \.gguf") as e:
        sgpt.load(rows)
    assert "\n" not in str(e.value)
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    (config_only / "config.json").write_text("{}")  # transformers' answer: the sentencepiece paragraph
    with pytest.raises(ValueError) as e:
        sgpt.load(config_only)
    assert str(e.value).startswith(f"{config_only}: cannot load the tokenizer") and "\n" not in str(e.value)
    assert "sentencepiece" not in str(e.value)
