"""Peak memory of real training steps vs ``sgpt.train.memory.estimate_peak_memory`` (issue 11).

    python benchmarks/memory_estimate.py              # MiniLM batches 16/64, SmolLM2 batches 8/32, +-GradCache
    python benchmarks/memory_estimate.py --models minilm --threads 1

Every configuration runs in its own subprocess, so its peak is its own: the process's peak
resident set size (``ru_maxrss``, as ``benchmarks/gradcache.py`` measures it) after 2 optimizer
steps of sgpt's trainer (``sgpt.train.trainer.fit``, max_steps=2, AdamW, fp32, CPU; the peak is
read right after the second step, before ``fit`` saves the model). Examples are triplets of
texts made of consecutive STS-B train sentences, each longer than ``--max-seq-length`` tokens,
so every text is truncated to exactly that length (the estimate assumes full-length texts).
Each row compares the measured peak with the estimate from the config alone (no weights);
the target is a ratio estimate / measured within 0.7-1.3 on every row. The child also reports
the RSS before any weight is loaded (Python, torch, transformers, sgpt and the tokenizer): the
baseline behind ``sgpt.train.memory.CPU_RUNTIME_BYTES``.

Writes ``benchmarks/results/memory_estimate.json`` and ``memory_estimate.png``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, minilm_path, smollm2_path

RESULTS = Path(__file__).parent / "results"
MODELS = {"minilm": (minilm_path, "mean", [16, 64], 16), "smollm2": (smollm2_path, "weightedmean", [8, 32], 8)}
TEXTS_PER_EXAMPLE = 3  # NLI triplets: anchor, positive, hard negative


def rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def long_triplets(tokenizer, n: int, min_tokens: int) -> list[tuple[str, str, str]]:
    """``n`` triplets of distinct texts, each of consecutive STS-B train sentences joined until it
    has more than ``min_tokens`` tokens."""
    from sgpt.data import read_sts

    data = read_sts(DATA / "stsb", split="train")
    sentences = iter(dict.fromkeys(s for pair in zip(data.sentences1, data.sentences2, strict=False) for s in pair))
    texts: list[str] = []
    while len(texts) < TEXTS_PER_EXAMPLE * n:
        words = [next(sentences)]
        while len(tokenizer(" ".join(words))["input_ids"]) <= min_tokens:
            words.append(next(sentences))
        texts.append(" ".join(words))
    return [tuple(texts[i : i + TEXTS_PER_EXAMPLE]) for i in range(0, len(texts), TEXTS_PER_EXAMPLE)]  # type: ignore[misc]


def child(job: dict) -> dict:
    import torch
    from transformers import AutoTokenizer

    import sgpt
    import sgpt.train.trainer as trainer
    from sgpt.train.config import TrainConfig

    torch.set_num_threads(job["threads"])
    tokenizer = AutoTokenizer.from_pretrained(job["path"])
    examples = long_triplets(tokenizer, 2 * job["batch"], job["max_len"] + 8)
    baseline = rss_peak()  # before any weight: the runtime's own memory
    model = sgpt.load(job["path"], pooling=job["pooling"], max_seq_length=job["max_len"], chat_template=False)
    loaded = rss_peak()
    peaks: list[int] = []
    optimizer_step = trainer._optimizer_step

    def measured(*args, **kwargs):  # the peak after each step, before fit saves the model
        loss = optimizer_step(*args, **kwargs)
        peaks.append(rss_peak())
        return loss

    trainer._optimizer_step = measured  # type: ignore[assignment]
    cfg = TrainConfig(
        output=str(Path(job["tmp"]) / "out"),
        batch_size=job["batch"],
        max_steps=2,
        precision="fp32",
        gradcache=job["chunk"] is not None,
        chunk_size=job["chunk"] or 32,
    )
    start = time.perf_counter()
    trainer.fit(model, examples, cfg)
    return {**job, "baseline_bytes": baseline, "loaded_bytes": loaded, "step_peaks_bytes": peaks,
            "peak_bytes": peaks[-1], "seconds": time.perf_counter() - start}  # fmt: skip


def estimate(job: dict) -> dict:
    from transformers import AutoConfig

    from sgpt.train.memory import count_parameters, estimate_peak_memory

    config = AutoConfig.from_pretrained(job["path"])
    trainable, total = count_parameters(config)
    return estimate_peak_memory(
        config,
        trainable=trainable,
        total=total,
        batch_size=job["batch"],
        texts_per_example=TEXTS_PER_EXAMPLE,
        seq_len=job["max_len"],
        gradcache=job["chunk"] is not None,
        chunk_size=job["chunk"] or 32,
        device="cpu",
    )


def earlier_rows(models: list[str]) -> list[dict]:
    """Rows of the other models from the last results file (a run of some models keeps the rest)."""
    file = RESULTS / "memory_estimate.json"
    old = json.loads(file.read_text())["results"] if file.exists() else []
    return [r for r in old if r["model"] not in models]


def reestimate(rows: list[dict]) -> list[dict]:
    """The stored measurements with the estimate (and ratio) recomputed by the current code."""
    for row in rows:
        if "peak_bytes" in row:
            row["estimate"] = estimate(row)
            row["ratio"] = row["estimate"]["total"] / row["peak_bytes"]
    return rows


def run_all(args) -> list[dict]:
    rows = earlier_rows(args.models)
    for model in args.models:
        path_fn, pooling, batches, chunk = MODELS[model]
        for batch in batches:
            for c in (None, chunk):
                job = {"model": model, "path": path_fn(), "pooling": pooling, "batch": batch, "chunk": c,
                       "max_len": args.max_seq_length, "threads": args.threads}  # fmt: skip
                with tempfile.TemporaryDirectory() as tmp:
                    proc = subprocess.run(
                        [sys.executable, __file__, "--child", json.dumps({**job, "tmp": tmp})],
                        check=False,
                        capture_output=True,
                        text=True,
                    )
                if proc.returncode != 0:
                    print(f"{label(job)} FAILED\n{proc.stderr[-2000:]}", flush=True)
                    rows.append({**job, "failed": proc.stderr[-400:]})
                    continue
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                row.pop("tmp")
                row["estimate"] = estimate(job)
                row["ratio"] = row["estimate"]["total"] / row["peak_bytes"]
                rows.append(row)
                print(
                    f"{label(row):32s} estimated {row['estimate']['total'] / 2**20:7.0f} MiB  measured "
                    f"{row['peak_bytes'] / 2**20:7.0f} MiB  ratio {row['ratio']:.2f}  "
                    f"(baseline {row['baseline_bytes'] / 2**20:.0f} MiB, {row['seconds']:.0f} s)",
                    flush=True,
                )
                write(args, rows)
    return rows


def label(row: dict) -> str:
    kind = "no cache" if row["chunk"] is None else f"chunk {row['chunk']}"
    return f"{row['model']} batch {row['batch']} {kind}"


def write(args, rows: list[dict]) -> None:
    RESULTS.mkdir(exist_ok=True)
    done = [r for r in rows if "ratio" in r]
    summary = {
        "max_seq_length": args.max_seq_length,
        "texts_per_example": TEXTS_PER_EXAMPLE,
        "threads": args.threads,
        "target": "0.7 <= estimate / measured <= 1.3 on every row",
        "met": bool(done) and len(done) == len(rows) and all(0.7 <= r["ratio"] <= 1.3 for r in done),
        "results": rows,
    }
    (RESULTS / "memory_estimate.json").write_text(json.dumps(summary, indent=2))


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if "ratio" in r]
    x = range(len(done))
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(done)), 4))
    ax.bar([i - 0.2 for i in x], [r["estimate"]["total"] / 2**30 for r in done], 0.4, label="estimate")
    ax.bar([i + 0.2 for i in x], [r["peak_bytes"] / 2**30 for r in done], 0.4, label="measured peak RSS")
    for i, r in zip(x, done, strict=False):
        ax.text(i, max(r["estimate"]["total"], r["peak_bytes"]) / 2**30, f"{r['ratio']:.2f}", ha="center", va="bottom")
    ax.set_xticks(list(x), [label(r).replace(" batch", "\nbatch").replace(" no", "\nno").replace(" chunk", "\nchunk")
                            for r in done], fontsize=8)  # fmt: skip
    ax.set_ylabel("GiB")
    ax.set_title("Peak memory of 2 training steps (CPU, fp32): estimate vs measured (ratio above the bars)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "memory_estimate.png", dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--max-seq-length", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch threads per configuration")
    p.add_argument("--reestimate", action="store_true", help="no measuring: recompute the estimates of the stored rows")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    rows = reestimate(earlier_rows([])) if args.reestimate else run_all(args)
    for row in rows:
        if "ratio" in row:
            print(f"{label(row):32s} estimated {row['estimate']['total'] / 2**20:7.0f} MiB  measured "
                  f"{row['peak_bytes'] / 2**20:7.0f} MiB  ratio {row['ratio']:.2f}")  # fmt: skip
    write(args, rows)
    plot(rows)


if __name__ == "__main__":
    main()
