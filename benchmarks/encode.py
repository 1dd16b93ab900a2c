"""Encoding throughput, sgpt vs sentence-transformers, in one run (same model, batch size, precision).

    python benchmarks/encode.py                      # MiniLM and SmolLM2, fp32, batch 32
    python benchmarks/encode.py --models smollm2 --precision bfloat16
    python benchmarks/encode.py --models smollm2 --chat-template --max-seq-length 75

Encodes the 2,758 STS-B test sentences (s1 and s2 of the 1,379 pairs) with both libraries,
checks the embeddings agree (max abs diff), and prints tokens/s and the ratio. Both sides run
from the same saved folder: raw text by default (a plain SmolLM2 folder would make
sentence-transformers 6 wrap texts in its chat template), or with ``--chat-template`` the
chat-template rendering that sentence-transformers gives SmolLM2 by default (the issue's
reference figures), where sgpt computes the template head shared by a batch once. Tokens/s
counts the tokens each model actually runs (template included). A warm-up encode of 64 texts
precedes each timing. Writes ``benchmarks/results/encode_<precision>[_chat].json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from common import encode_vs_st, minilm_path, smollm2_path, stsb_test_sentences


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=["minilm", "smollm2"], default=["minilm", "smollm2"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--repeats", type=int, default=1, help="timings per side (best is kept)")
    p.add_argument("--max-seq-length", type=int, default=None, help="truncation length (default: the model's)")
    p.add_argument(
        "--chat-template",
        action="store_true",
        help="render texts with the chat template on both sides (sentence-transformers' default for SmolLM2)",
    )
    args = p.parse_args()
    texts = stsb_test_sentences()
    specs = {"minilm": (minilm_path, "mean"), "smollm2": (smollm2_path, "weightedmean")}
    results = []
    for name in args.models:
        get_path, pooling = specs[name]
        r = encode_vs_st(
            name,
            get_path(),
            pooling,
            texts,
            args.batch_size,
            args.precision,
            args.repeats,
            max_seq_length=args.max_seq_length,
            chat_template=args.chat_template and name == "smollm2",
        )
        results.append(r)
        print(
            f"{name:8s} sgpt {r['sgpt_tokens_per_s']:8.0f} tok/s  sentence-transformers {r['st_tokens_per_s']:8.0f} "
            f"tok/s  ratio {r['speedup']:.2f}x  max|diff| {r['max_abs_diff']:.2e}  min cos {r['min_cosine']:.6f}"
        )
        floor = 1 - 1e-5 if args.precision == "float32" else 0.99  # bf16 runs differ by rounding
        assert r["min_cosine"] > floor, f"{name}: embeddings disagree (min cosine {r['min_cosine']})"
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    tag = f"{args.precision}{'_chat' if args.chat_template else ''}"
    (out / f"encode_{tag}.json").write_text(json.dumps(results, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(results))
    ax.bar(x - 0.2, [r["st_tokens_per_s"] for r in results], 0.4, label="sentence-transformers", color="tab:gray")
    ax.bar(x + 0.2, [r["sgpt_tokens_per_s"] for r in results], 0.4, label="sgpt", color="tab:blue")
    ax.set_xticks(x, [f"{r['model']} ({r['speedup']:.2f}x)" for r in results])
    ax.set_ylabel("tokens / s")
    ax.set_title(f"encode STS-B test, batch {args.batch_size}, {tag}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"encode_{tag}.png", dpi=100)


if __name__ == "__main__":
    main()
