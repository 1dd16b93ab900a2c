"""The ``sgpt`` command: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sgpt.cli.common import add_model_args, load_kwargs

BM25 = "bm25"


def add_eval_beir(sub) -> None:
    p = sub.add_parser("beir", help="nDCG/MAP/recall/precision@k and MRR@10 on BEIR-format data sets")
    p.add_argument("model", help=f"saved bi-encoder folder, backbone folder, hub id or .gguf file; "
                                 f"'{BM25}' scores the BM25 baseline (bm25s, English stemming)")
    p.add_argument("--data", action="append", required=True,
                   help="BEIR folder (corpus.jsonl[.gz], queries.jsonl[.gz], qrels/SPLIT.tsv); repeat for "
                        "several data sets (per-data-set results plus their average)")
    p.add_argument("--split", default="test", help="qrels split (msmarco: dev)")
    p.add_argument("--output", help="write the results as JSON here")
    p.add_argument("--k", type=int, default=1000, help="hits retrieved per query")
    p.add_argument("--score", choices=["cos", "dot"], default="cos", help="similarity (bi-encoders)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default=None, help="bfloat16 = autocast")
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="skip and count bad rows and judgments naming unknown ids instead of stopping")
    add_model_args(p)
    p.set_defaults(func=_run_eval_beir)


def _run_eval_beir(args: argparse.Namespace) -> int:
    from sgpt.data import load_beir
    from sgpt.evaluation.retrieval import average_over_datasets, evaluate_retrieval
    from sgpt.utils.io import write_json

    model = None if args.model == BM25 else _load_model(args)
    names = _dataset_names(args.data)
    per_dataset = {}
    for name, folder in zip(names, args.data):
        data = load_beir(folder, args.split, skip_bad_rows=args.skip_bad_rows, name=name)
        start = time.perf_counter()
        retriever = model if model is not None else _bm25(data.corpus)
        metrics = evaluate_retrieval(retriever, data, batch_size=args.batch_size, k=args.k, score=args.score,
                                     show_progress=True, precision=args.precision)
        per_dataset[name] = {"data": str(folder), "split": args.split, **metrics,
                             "seconds": round(time.perf_counter() - start, 2)}
    if len(per_dataset) == 1:
        result = {"model": str(args.model), **next(iter(per_dataset.values()))}
    else:
        result = {"model": str(args.model), "split": args.split, "datasets": per_dataset,
                  **average_over_datasets(per_dataset)}
    print(json.dumps(result, indent=2))
    if args.output:
        write_json(args.output, result)
    return 0


def _dataset_names(folders: list[str]) -> list[str]:
    """Folder names as result keys; the full path where two folders share a name."""
    base = [Path(f).name or str(f) for f in folders]
    return [b if base.count(b) == 1 else str(f) for b, f in zip(base, folders)]


def _load_model(args: argparse.Namespace):
    import sgpt

    return sgpt.load(args.model, **load_kwargs(args))


def _bm25(corpus):
    from sgpt.search.bm25 import BM25Retriever

    return BM25Retriever(corpus, show_progress=True)


def add_mine_negatives(sub) -> None:
    p = sub.add_parser("mine-negatives", help="mine hard negatives for a BEIR training split (BM25 or a model)")
    p.add_argument("--data", required=True, help="BEIR folder (corpus.jsonl[.gz], queries.jsonl[.gz], qrels/)")
    p.add_argument("--split", default="train", help="qrels split whose queries get negatives")
    p.add_argument("--out", required=True, help='jsonl to write: {"query_id", "pos": [ids], "neg": [ids]}')
    p.add_argument("--method", choices=[BM25, "model"], default=BM25,
                   help="bm25 (bm25s, English stemming) or model (exact search with --model)")
    p.add_argument("--model", default=None, help="bi-encoder for --method model")
    p.add_argument("--k", type=int, default=30, help="hits retrieved per query (positives are then skipped)")
    p.add_argument("--num-negatives", type=int, default=None, help="keep at most this many per query")
    p.add_argument("--score", choices=["cos", "dot"], default="cos", help="similarity (--method model)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default=None, help="bfloat16 = autocast")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count bad rows instead of stopping")
    add_model_args(p)
    p.set_defaults(func=_run_mine_negatives)


def _run_mine_negatives(args: argparse.Namespace) -> int:
    from sgpt.data import load_beir
    from sgpt.search.mining import mine_negatives, write_negatives

    if args.method == "model" and args.model is None:
        raise ValueError("--method model needs --model")
    if args.method == BM25 and args.model is not None:
        raise ValueError("--model is only used with --method model (got --method bm25)")
    data = load_beir(args.data, args.split, skip_bad_rows=args.skip_bad_rows)
    retriever = _load_model(args) if args.method == "model" else _bm25(data.corpus)
    rows = mine_negatives(data, retriever, k=args.k, num_negatives=args.num_negatives, batch_size=args.batch_size,
                          score=args.score, show_progress=True, precision=args.precision)
    out = write_negatives(args.out, rows)
    n_neg = sum(len(r["neg"]) for r in rows)
    empty = sum(1 for r in rows if not r["neg"])
    print(f"mined {n_neg} negatives for {len(rows)} queries ({empty} with none) with {args.method} into {out}")
    return 0
