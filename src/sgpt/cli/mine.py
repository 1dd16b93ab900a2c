"""``sgpt mine-negatives``: hard negatives for a BEIR training split, from BM25 or a bi-encoder."""

from __future__ import annotations

import argparse

from sgpt.cli.common import (
    add_k_arg,
    add_model_args,
    add_output_arg,
    add_precision_arg,
    model_spec,
    nonnegative_int,
    refuse_model_flags,
    writing_output,
)

BM25 = "bm25"


def bm25_retriever(corpus, verbose: bool):
    """BM25 (bm25s, English stemming) over ``corpus``; bm25s' own progress bars only with ``-v``."""
    from sgpt.search.bm25 import BM25Retriever

    return BM25Retriever(corpus, show_progress=verbose)


def add_mine_negatives(sub) -> None:
    p = sub.add_parser("mine-negatives", help="mine hard negatives for a BEIR training split (BM25 or a model)")
    p.add_argument("--data", required=True, help="BEIR folder (corpus.jsonl[.gz], queries.jsonl[.gz], qrels/)")
    p.add_argument("--split", default="train", help="qrels split whose queries get negatives (default: train)")
    add_output_arg(
        p, 'jsonl to write (its folder must exist; not inside --data): {"query_id", "pos": [ids], "neg": [ids]}'
    )
    p.add_argument(
        "--method",
        choices=[BM25, "model"],
        default=BM25,
        help="bm25 (bm25s, English stemming) or model (exact search with --model) (default: bm25)",
    )
    p.add_argument("--model", default=None, help="bi-encoder for --method model")
    add_k_arg(p, 30, "hits retrieved per query (positives are then skipped)")
    p.add_argument(
        "--num-negatives",
        type=nonnegative_int,
        default=None,
        help="keep at most this many per query (default: all that --k leaves)",
    )
    p.add_argument(
        "--score", choices=["cos", "dot"], default="cos", help="similarity with --method model (default: cos)"
    )
    add_precision_arg(p)
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
    if args.method == BM25:
        refuse_model_flags(args, "--method model; got --method bm25")
    with writing_output(args, inputs={"--data": args.data, "--model": args.model}):
        data = load_beir(args.data, args.split, skip_bad_rows=args.skip_bad_rows)
        retriever = _load_model(args) if args.method == "model" else bm25_retriever(data.corpus, args.verbose)
        rows = mine_negatives(
            data,
            retriever,
            k=args.k,
            num_negatives=args.num_negatives,
            batch_size=args.batch_size,
            score=args.score,
            show_progress=True,
            precision=args.precision,
        )
        out = write_negatives(args.output, rows)
    n_neg = sum(len(r["neg"]) for r in rows)
    empty = sum(1 for r in rows if not r["neg"])
    print(f"mined {n_neg} negatives for {len(rows)} queries ({empty} with none) with {args.method} into {out}")
    return 0


def _load_model(args: argparse.Namespace):
    from sgpt.model.loader import load

    return load(args.model, model_spec(args))
