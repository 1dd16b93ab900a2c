"""GradCache: peak memory and seconds per step, sgpt vs sentence-transformers' CachedMultipleNegativesRankingLoss.

    python benchmarks/gradcache.py                       # SmolLM2-135M, max length 75, batches 64 and 256
    python benchmarks/gradcache.py --model minilm --budget-s 120

Every configuration runs in its own subprocess, so its peak memory is its own: the peak resident
set size of that process on CPU (``ru_maxrss``: weights, gradients, AdamW state and the
activations of the step), ``torch.cuda.max_memory_allocated`` on GPU. A step = tokenise, embed,
MNRL loss, backward, clipping, AdamW (the same fused AdamW for both libraries), on the first
duplicate-free batch of SNLI dev+test triplets (anchor, positive, hard negative), fp32; a
smaller batch is the part of the largest that holds its longest texts (the activation memory
of a chunk of N texts grows with their length, and the longest of 768 sentences are longer
than the longest of 192). sentence-transformers loads the folder that sgpt saves (see
``train_step.st_model``). On a shared machine pass ``--threads 1``: two threads on two busy
cores spin against the other processes and make every step several times slower.

Targets (issue 3): with GradCache, peak memory grows by < 10% from batch 64 to 256 at a fixed
chunk; a cached step takes <= 1.5x the uncached step where the uncached step fits in memory;
sgpt's cached step is at least as fast as sentence-transformers' at the same batch and chunk.
Configurations run in priority order and stop when ``--budget-s`` is spent (the rest is
listed as skipped); an uncached step predicted (from the smaller batch) not to fit in the
available memory is skipped. Writes ``benchmarks/results/gradcache.json`` and ``gradcache.png``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import minilm_path, smollm2_path, snli_triplets

RESULTS = Path(__file__).parent / "results"


# ------------------------------------------------------------------------------------------ child side
def first_batch(batch_size: int, largest: int, path: str) -> list[tuple[str, str, str]]:
    """``batch_size`` triplets of the first duplicate-free batch of ``largest`` triplets: those
    holding its longest texts (in tokens), so every batch size has the same longest chunk and
    the memory growth measures GradCache, not that more SNLI sentences include longer ones."""
    from transformers import AutoTokenizer

    from sgpt.data import NoDuplicatesBatchSampler

    triplets = snli_triplets(max(4000, 8 * largest))
    big = [triplets[i] for i in next(iter(NoDuplicatesBatchSampler(triplets, largest, seed=0)))]
    tok = AutoTokenizer.from_pretrained(path)
    longest = [max(len(ids) for ids in tok(list(t))["input_ids"]) for t in big]
    keep = sorted(sorted(range(len(big)), key=lambda i: -longest[i])[:batch_size])  # input order kept
    return [big[i] for i in keep]


def sgpt_step(job: dict, device: torch.device):
    import sgpt
    from sgpt.train.config import TrainConfig
    from sgpt.train.step import make_step

    model = sgpt.load(
        job["path"], pooling=job["pooling"], max_seq_length=job["max_len"], device=device, chat_template=False
    ).train()  # raw text, as st_model builds it
    cfg = TrainConfig(
        output="unused",
        batch_size=job["batch"],
        precision="fp32",
        gradcache=job["chunk"] is not None,
        chunk_size=job["chunk"] or 32,
        micro_batch_size=job["chunk"] or 32,
    )
    step = make_step(model, cfg)
    return model, lambda batch: step(batch, 1.0)


def st_step(job: dict, device: torch.device):
    from sentence_transformers.losses import CachedMultipleNegativesRankingLoss
    from train_step import st_model

    model = st_model(job["path"], job["pooling"], job["max_len"]).to(device).train()
    loss_fn = CachedMultipleNegativesRankingLoss(model, mini_batch_size=job["chunk"])

    def step(batch):
        feats = []
        for column in zip(*batch, strict=False):
            f = model.preprocess(list(column))
            feats.append({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in f.items()})
        loss = loss_fn(feats, None)
        loss.backward()
        return float(loss.detach())

    return model, step


def child(job: dict) -> dict:
    from sgpt.train.params import adamw

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    batch = first_batch(job["batch"], job["largest"], job["path"])
    torch.manual_seed(0)
    model, step = (st_step if job["lib"] == "st" else sgpt_step)(job, device)
    optimizer = adamw(model, lr=2e-5)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], []
    for _ in range(job["steps"]):
        start = time.perf_counter()
        losses.append(step(batch))
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        **job,
        "device": device.type,
        "threads": torch.get_num_threads(),
        "seconds": times,
        "s_per_step": sum(times) / len(times),
        "peak_bytes": peak,
        "rss_after_load_bytes": rss_loaded,
        "loss": losses[0],
    }


# ----------------------------------------------------------------------------------------- parent side
def plan(batches: list[int], chunks: list[int]) -> list[dict]:
    """Configurations in priority order: what the targets need first."""
    small, large = min(batches), max(batches)
    jobs = [{"lib": "sgpt", "batch": small, "chunk": None}]
    jobs += [{"lib": "sgpt", "batch": small, "chunk": c} for c in sorted(chunks, reverse=True)]
    jobs += [{"lib": "sgpt", "batch": large, "chunk": max(chunks)}, {"lib": "st", "batch": large, "chunk": max(chunks)}]
    jobs += [{"lib": "sgpt", "batch": large, "chunk": c} for c in sorted(chunks, reverse=True)[1:]]
    jobs += [{"lib": "st", "batch": small, "chunk": c} for c in sorted(chunks)]
    jobs += [{"lib": "sgpt", "batch": large, "chunk": None}]
    jobs += [{"lib": "st", "batch": large, "chunk": c} for c in sorted(chunks, reverse=True)[1:]]
    return jobs


def available_bytes() -> int:
    if torch.cuda.is_available():
        return int(torch.cuda.mem_get_info()[0])
    with open("/proc/meminfo") as f:
        return int(dict(line.split(":", 1) for line in f)["MemAvailable"].split()[0]) * 1024


def name(job: dict) -> str:
    kind = "no cache" if job["chunk"] is None else f"chunk {job['chunk']}"
    return f"{'sentence-transformers' if job['lib'] == 'st' else 'sgpt'} {kind}, batch {job['batch']}"


def run_all(args) -> list[dict]:
    path = smollm2_path() if args.model == "smollm2" else minilm_path()
    pooling = "weightedmean" if args.model == "smollm2" else "mean"
    results, start = [], time.perf_counter()
    for job in plan(args.batch_sizes, args.chunks):
        job.update(
            path=path,
            pooling=pooling,
            max_len=args.max_seq_length,
            steps=args.steps,
            threads=args.threads,
            largest=max(args.batch_sizes),
        )
        elapsed = time.perf_counter() - start
        if elapsed > args.budget_s:
            results.append({**job, "skipped": f"time budget of {args.budget_s:.0f} s spent"})
            print(f"{name(job):45s} skipped (time budget)", flush=True)
            continue
        plain = [r for r in results if r["lib"] == "sgpt" and r["chunk"] is None and "peak_bytes" in r]
        if job["chunk"] is None and plain:  # predict the uncached peak from the smaller batch
            r = plain[0]
            need = r["rss_after_load_bytes"] + (r["peak_bytes"] - r["rss_after_load_bytes"]) * job["batch"] / r["batch"]
            if need > 0.85 * (available_bytes() + 0):
                results.append(
                    {
                        **job,
                        "skipped": f"needs about {need / 2**30:.1f} GiB, {available_bytes() / 2**30:.1f} GiB available",
                    }
                )
                print(f"{name(job):45s} skipped: {results[-1]['skipped']}", flush=True)
                continue
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(job)], check=False, capture_output=True, text=True
        )
        if proc.returncode != 0:
            results.append({**job, "skipped": f"failed (exit {proc.returncode}): {proc.stderr[-400:]}"})
            print(f"{name(job):45s} FAILED\n{proc.stderr[-2000:]}", flush=True)
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(
            f"{name(job):45s} {r['peak_bytes'] / 2**30:6.2f} GiB peak  {r['s_per_step']:7.1f} s/step  "
            f"loss {r['loss']:.4f}",
            flush=True,
        )
        write(args, results)
    return results


def find(results, lib, batch, chunk):
    return next(
        (r for r in results if (r["lib"], r["batch"], r["chunk"]) == (lib, batch, chunk) and "peak_bytes" in r), None
    )


def targets(results: list[dict], batches: list[int], chunks: list[int]) -> dict:
    small, large = min(batches), max(batches)
    out = {}
    for c in chunks:
        a, b = find(results, "sgpt", small, c), find(results, "sgpt", large, c)
        if a and b:
            growth = b["peak_bytes"] / a["peak_bytes"] - 1
            out[f"memory growth {small}->{large}, chunk {c}"] = {
                "value": growth,
                "target": "< 0.10",
                "met": growth < 0.10,
            }
    for batch in (large, small):
        plain = find(results, "sgpt", batch, None)
        for c in chunks:
            cached = find(results, "sgpt", batch, c)
            if plain and cached:
                ratio = cached["s_per_step"] / plain["s_per_step"]
                out[f"time cached/plain, batch {batch}, chunk {c}"] = {
                    "value": ratio,
                    "target": "<= 1.5",
                    "met": ratio <= 1.5,
                }
        for c in chunks:
            ours, st = find(results, "sgpt", batch, c), find(results, "st", batch, c)
            if ours and st:
                ratio = st["s_per_step"] / ours["s_per_step"]
                out[f"speed-up vs sentence-transformers, batch {batch}, chunk {c}"] = {
                    "value": ratio,
                    "target": ">= 1.0",
                    "met": ratio >= 1.0,
                    "memory_ratio_st_over_sgpt": st["peak_bytes"] / ours["peak_bytes"],
                }
    return out


def write(args, results: list[dict]) -> dict:
    RESULTS.mkdir(exist_ok=True)
    summary = {
        "model": args.model,
        "max_seq_length": args.max_seq_length,
        "steps_timed": args.steps,
        "threads": args.threads or torch.get_num_threads(),
        "results": results,
        "targets": targets(results, args.batch_sizes, args.chunks),
    }
    (RESULTS / "gradcache.json").write_text(json.dumps(summary, indent=2))
    return summary


def plot(results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in results if "peak_bytes" in r]
    labels = [name(r).replace("sentence-transformers", "ST").replace(", ", "\n") for r in done]
    colors = ["tab:gray" if r["lib"] == "st" else ("tab:orange" if r["chunk"] is None else "tab:blue") for r in done]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 1.3 * len(done)), 4))
    ax1.bar(range(len(done)), [r["peak_bytes"] / 2**30 for r in done], color=colors)
    ax1.set_ylabel("peak memory (GiB)")
    ax2.bar(range(len(done)), [r["s_per_step"] for r in done], color=colors)
    ax2.set_ylabel("seconds per step")
    for ax in (ax1, ax2):
        ax.set_xticks(range(len(done)), labels, fontsize=7)
    fig.suptitle("MNRL step with GradCache (blue: sgpt, orange: sgpt uncached, gray: sentence-transformers)")
    fig.tight_layout()
    fig.savefig(RESULTS / "gradcache.png", dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["smollm2", "minilm"], default="smollm2")
    p.add_argument("--batch-sizes", type=int, nargs=2, default=[64, 256])
    p.add_argument("--chunks", type=int, nargs="+", default=[8, 32])
    p.add_argument("--max-seq-length", type=int, default=75)
    p.add_argument("--steps", type=int, default=1, help="timed steps per configuration")
    p.add_argument("--budget-s", type=float, default=540, help="start no configuration after this many seconds")
    p.add_argument("--threads", type=int, default=None, help="torch threads per configuration (default: torch's)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    results = run_all(args)
    summary = write(args, results)
    plot(results)
    print("\ntargets:")
    for key, t in summary["targets"].items():
        print(f"  {key:55s} {t['value']:6.3f}  (target {t['target']}: {'met' if t['met'] else 'NOT met'})")


if __name__ == "__main__":
    main()
