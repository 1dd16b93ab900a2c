"""Semantic search: corpus encoding vs sentence-transformers, and FAISS indexes vs brute-force numpy, in one run.

    python benchmarks/search.py                          # both parts: 200 SciFact docs; 5k and 100k vectors
    python benchmarks/search.py --parts encode --models smollm2 --n-docs 500
    python benchmarks/search.py --parts search --sizes 5000 --threads 1
    python benchmarks/search.py --quick                  # tiny settings, only checks that it runs

(a) ``encode``: the first ``--n-docs`` documents of SciFact's corpus (``title text``, about 350
tokens each, truncated at ``--max-seq-length`` 300) embedded by sgpt's ``encode_documents`` and by
sentence-transformers' ``encode``, same model folder, batch size and precision (see
``common.encode_vs_st``); prints documents/s, tokens/s, the ratio, and checks that the embeddings
agree. Target: >= 2x on SmolLM2-135M (weightedmean).

(b) ``search``: synthetic normalised vectors (d = 384): ``n / 20`` Gaussian cluster centres (sigma
0.7), each document a centre plus unit noise, each query a document plus unit noise. A query's
best document then has cosine about 0.77, its 10th about 0.26, a random one 0 (uniform random
vectors in 384 dimensions have no neighbourhoods and make approximate search look worse than
it is; well separated clusters make it look perfect). For each size, sgpt's index builder (``sgpt.search.index``:
IndexFlatIP, IndexIVFFlat with nlist = 4 sqrt(n) and nprobe = nlist / 16, IndexHNSWFlat with
M = 32, efConstruction 200, efSearch 128) against brute force ``q @ D.T`` + ``argpartition``:
build seconds, latency at batch 1 (ms/query, mean over ``--latency-queries``), throughput at
batch 1000 (queries/s) and recall@10 against the exact top 10.

``--threads N`` limits FAISS and numpy's BLAS to N threads (default: their own choice). Writes
``benchmarks/results/search.json`` and ``search.png`` (``search_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import DATA, encode_vs_st, minilm_path, smollm2_path

RESULTS = Path(__file__).parent / "results"
K = 10


def scifact_documents(n: int) -> list[str]:
    """The first ``n`` SciFact documents as sgpt embeds them (``document_text``: title and text)."""
    from sgpt.data import document_text, read_corpus

    corpus = read_corpus(DATA / "beir" / "scifact" / "corpus.jsonl.gz")
    return [document_text(doc) for doc in list(corpus.values())[:n]]


def synthetic(n: int, n_queries: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``[n, dim]`` clustered documents and ``[n_queries, dim]`` queries near them, all L2-normalised float32."""
    rng = np.random.default_rng(seed)
    centres = 0.7 * rng.standard_normal((max(10, n // 20), dim), dtype=np.float32)
    docs = centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, dim), dtype=np.float32)
    queries = docs[rng.integers(0, n, n_queries)] + rng.standard_normal((n_queries, dim), dtype=np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return docs, queries


def numpy_topk(docs: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Exact top-``k`` rows of ``docs`` for each query (inner product), best first: ``[q, k]`` int64."""
    scores = q @ docs.T  # [q, n]
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact top-k found, over queries."""
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)]))


def time_search(fn, queries: np.ndarray, n_latency: int, batch: int, repeats: int) -> tuple[float, float]:
    """(ms per query at batch 1, queries/s at batch ``batch``), best of ``repeats`` for the latter."""
    fn(queries[:1])  # warm-up
    t = time.perf_counter()
    for i in range(n_latency):
        fn(queries[i : i + 1])
    ms = (time.perf_counter() - t) / n_latency * 1e3
    best = min(_seconds(fn, queries[:batch]) for _ in range(repeats))
    return ms, batch / best


def _seconds(fn, q: np.ndarray) -> float:
    t = time.perf_counter()
    fn(q)
    return time.perf_counter() - t


def run_search(n: int, dim: int, n_latency: int, batch: int, repeats: int) -> list[dict]:
    """One row per method (numpy, flat, ivf, hnsw) for ``n`` synthetic documents."""
    from sgpt.search.faiss_params import index_params, make_faiss_index

    docs, queries = synthetic(n, max(batch, n_latency), dim)
    exact = numpy_topk(docs, queries[:batch], K)
    t_np_ms, np_qps = time_search(lambda q: numpy_topk(docs, q, K), queries, n_latency, batch, repeats)
    rows = [
        {
            "n": n,
            "dim": dim,
            "method": "numpy",
            "build_s": 0.0,
            "ms_per_query_b1": t_np_ms,
            f"qps_b{batch}": np_qps,
            "recall_at_10": 1.0,
            "params": {},
        }
    ]
    for kind in ("flat", "ivf", "hnsw"):
        params = index_params(kind, n)
        t = time.perf_counter()
        index = make_faiss_index(params, [docs], dim)
        build_s = time.perf_counter() - t
        variants = {kind: params}
        if kind == "ivf":  # the default nprobe and four times it: the speed/recall trade-off
            wider = min(params["nlist"], 4 * params["nprobe"])
            variants["ivf-nprobe-x4"] = {**params, "nprobe": wider}
        for method, used in variants.items():
            if kind == "ivf":
                index.nprobe = used["nprobe"]
            ms, qps = time_search(lambda q, index=index: index.search(q, K), queries, n_latency, batch, repeats)
            found = index.search(queries[:batch], K)[1]
            rows.append(
                {
                    "n": n,
                    "dim": dim,
                    "method": method,
                    "build_s": build_s,
                    "ms_per_query_b1": ms,
                    f"qps_b{batch}": qps,
                    "recall_at_10": recall(found, exact),
                    "params": used,
                }
            )
    for r in rows:
        r["speedup_b1_vs_numpy"] = t_np_ms / r["ms_per_query_b1"]
        r[f"speedup_b{batch}_vs_numpy"] = r[f"qps_b{batch}"] / np_qps
    return rows


def plot(results: dict, path: Path, batch: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in ("encode", "search") if results.get(p)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.8), squeeze=False)
    for ax, part in zip(axes[0], panels, strict=True):
        rows = results[part]
        if part == "encode":
            x = np.arange(len(rows))
            ax.bar(x - 0.2, [r["st_texts_per_s"] for r in rows], 0.4, label="sentence-transformers", color="tab:gray")
            ax.bar(x + 0.2, [r["sgpt_texts_per_s"] for r in rows], 0.4, label="sgpt encode_documents", color="tab:blue")
            ax.set_xticks(x, [f"{r['model']} ({r['speedup']:.2f}x)" for r in rows])
            ax.set_ylabel("documents / s")
            ax.set_title(
                f"SciFact docs, max len {rows[0]['max_seq_length']}, batch {rows[0]['batch_size']}, "
                f"{rows[0]['precision']}",
                fontsize=9,
            )
        else:
            sizes = sorted({r["n"] for r in rows})
            methods = list(dict.fromkeys(r["method"] for r in rows))
            x, width = np.arange(len(sizes)), 0.8 / len(methods)
            for i, m in enumerate(methods):
                vals = [next(r for r in rows if r["n"] == n and r["method"] == m) for n in sizes]
                bars = ax.bar(
                    x + (i - (len(methods) - 1) / 2) * width, [v["ms_per_query_b1"] for v in vals], width, label=m
                )
                for b, v in zip(bars, vals, strict=True):
                    ax.annotate(
                        f"R{v['recall_at_10']:.2f}",
                        (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center",
                        va="bottom",
                        fontsize=6,
                    )
            ax.set_yscale("log")
            ax.set_xticks(x, [f"{n:,} vectors" for n in sizes])
            ax.set_ylabel("ms / query at batch 1 (log)")
            ax.set_title(f"top-{K} search, d={rows[0]['dim']} (R = recall@10)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:  # noqa: PLR0915 - argument parsing, then one block per measured part
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", choices=["encode", "search"], default=["encode", "search"])
    p.add_argument("--models", nargs="+", choices=["minilm", "smollm2"], default=["minilm", "smollm2"])
    p.add_argument("--n-docs", type=int, default=200, help="SciFact documents to encode")
    p.add_argument("--max-seq-length", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--repeats", type=int, default=1, help="timings per side (best is kept)")
    p.add_argument("--sizes", nargs="+", type=int, default=[5_000, 100_000], help="synthetic index sizes")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--latency-queries", type=int, default=200, help="batch-1 queries timed per method")
    p.add_argument("--query-batch", type=int, default=1000, help="batch for the throughput figure")
    p.add_argument("--threads", type=int, default=None, help="FAISS and BLAS threads (default: theirs)")
    p.add_argument("--quick", action="store_true", help="tiny settings (8 docs, 2,000 vectors): checks it runs")
    args = p.parse_args()
    if args.quick:
        args.n_docs, args.sizes, args.latency_queries, args.query_batch = 8, [2_000], 20, 100
    limits = None
    if args.threads:
        import faiss
        from threadpoolctl import threadpool_limits

        faiss.omp_set_num_threads(args.threads)
        limits = threadpool_limits(args.threads)  # noqa: F841  (kept alive for the whole run)
    results: dict = {"settings": vars(args), "encode": [], "search": []}

    if "encode" in args.parts:
        texts = scifact_documents(args.n_docs)
        specs = {"minilm": (minilm_path, "mean"), "smollm2": (smollm2_path, "weightedmean")}
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
                role="document",
            )
            results["encode"].append(r)
            print(
                f"encode {name:8s} {r['texts']} docs, {r['tokens']} tokens: sgpt {r['sgpt_texts_per_s']:7.1f} doc/s "
                f"{r['sgpt_tokens_per_s']:7.0f} tok/s  sentence-transformers {r['st_texts_per_s']:7.1f} doc/s "
                f"{r['st_tokens_per_s']:7.0f} tok/s  ratio {r['speedup']:.2f}x  min cos {r['min_cosine']:.6f}"
            )
            floor = 1 - 1e-5 if args.precision == "float32" else 0.99  # bf16 runs differ by rounding
            assert r["min_cosine"] > floor, f"{name}: embeddings disagree (min cosine {r['min_cosine']})"

    if "search" in args.parts:
        b = args.query_batch
        for n in args.sizes:
            rows = run_search(n, args.dim, args.latency_queries, b, args.repeats)
            results["search"].extend(rows)
            for r in rows:
                print(
                    f"search n={n:>7,} {r['method']:13s} build {r['build_s']:6.2f} s  "
                    f"{r['ms_per_query_b1']:8.3f} ms/query (b1, {r['speedup_b1_vs_numpy']:6.1f}x numpy)  "
                    f"{r[f'qps_b{b}']:9.0f} q/s (b{b}, {r[f'speedup_b{b}_vs_numpy']:6.1f}x numpy)  "
                    f"recall@10 {r['recall_at_10']:.3f}"
                )

    import faiss

    results["settings"]["faiss_threads"] = faiss.omp_get_max_threads()
    RESULTS.mkdir(exist_ok=True)
    stem = "search_quick" if args.quick else "search"
    previous = RESULTS / f"{stem}.json"
    if previous.exists():  # a run of one part keeps the other part's last figures (and says when they were run)
        old = json.loads(previous.read_text())
        for part in ("encode", "search"):
            if part not in args.parts and old.get(part):
                results[part] = old[part]
                results.setdefault("kept_from_earlier_run", {})[part] = old.get("settings", {})
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, RESULTS / f"{stem}.png", args.query_batch)
    print(f"wrote {RESULTS / stem}.json and .png")


if __name__ == "__main__":
    main()
