"""The ``sgpt`` command: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sgpt.cli.common import add_model_args, add_precision_arg, load_kwargs

BM25 = "bm25"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def refuse_model_flags(args: argparse.Namespace, why: str) -> None:
    """Raise when model flags (--pooling, --max-seq-length, --dtype, ...) were given but no model uses them."""
    given = [f"--{name.replace('_', '-')}" for name in load_kwargs(args)]
    if given:
        raise ValueError(f"{', '.join(given)}: only used with a model ({why})")


def add_eval_beir(sub) -> None:
    p = sub.add_parser("beir", help="nDCG/MAP/recall/precision@k and MRR@10 on BEIR-format data sets")
    p.add_argument(
        "model",
        help=f"saved bi-encoder folder, backbone folder, hub id or .gguf file; "
        f"'{BM25}' scores the BM25 baseline (bm25s, English stemming)",
    )
    p.add_argument(
        "--data",
        action="append",
        required=True,
        help="BEIR folder (corpus.jsonl[.gz], queries.jsonl[.gz], qrels/SPLIT.tsv); repeat for "
        "several data sets. Every --data is read and checked before any encoding",
    )
    p.add_argument("--split", default="test", help="qrels split (msmarco: dev)")
    p.add_argument(
        "--output",
        help="write the results as JSON here (its folder must exist). The metrics "
        '("ndcg@10", "map@100", "mrr@10", ...) are always top-level keys: '
        'with one --data that set\'s, with several the "average" ones (all sets '
        'but msmarco), and the per-set results are under "datasets"',
    )
    p.add_argument("--k", type=positive_int, default=1000, help="hits retrieved per query (>= 1)")
    p.add_argument("--score", choices=["cos", "dot"], default="cos", help="similarity (bi-encoders)")
    add_precision_arg(p)
    p.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="skip and count bad rows and judgments naming unknown ids instead of stopping",
    )
    add_model_args(p)
    p.set_defaults(func=_run_eval_beir)


def _run_eval_beir(args: argparse.Namespace) -> int:
    from sgpt.data import load_beir
    from sgpt.evaluation.beir import average_over_datasets, evaluate_retrieval
    from sgpt.utils.io import check_output_file, write_json

    if args.output:
        check_output_file(args.output, "--output")
    if args.model == BM25:
        refuse_model_flags(args, "bm25 is the BM25 baseline")
    names = _dataset_names(args.data)
    # every data set is read and checked before the (long) encoding of the first one
    datasets = [
        load_beir(folder, args.split, skip_bad_rows=args.skip_bad_rows, name=name)
        for name, folder in zip(names, args.data)
    ]
    model = None if args.model == BM25 else _load_model(args)
    per_dataset = {}
    for i, (name, folder) in enumerate(zip(names, args.data)):
        data, datasets[i] = datasets[i], None  # free each corpus once scored
        start = time.perf_counter()
        retriever = model if model is not None else _bm25(data.corpus, args.verbose)
        metrics = evaluate_retrieval(
            retriever,
            data,
            batch_size=args.batch_size,
            k=args.k,
            score=args.score,
            show_progress=True,
            precision=args.precision,
        )
        per_dataset[name] = {
            "data": str(folder),
            "split": args.split,
            **metrics,
            "seconds": round(time.perf_counter() - start, 2),
        }
    if len(per_dataset) == 1:
        result = {"model": str(args.model), **next(iter(per_dataset.values()))}
    else:
        averages = average_over_datasets(per_dataset)
        top = {key: value for key, value in averages["average"].items() if "@" in key}
        result = {"model": str(args.model), "split": args.split, **top, "datasets": per_dataset, **averages}
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


def _bm25(corpus, verbose: bool):
    from sgpt.search.bm25 import BM25Retriever

    return BM25Retriever(corpus, show_progress=verbose)  # bm25s' own bars only with -v


def add_mine_negatives(sub) -> None:
    p = sub.add_parser("mine-negatives", help="mine hard negatives for a BEIR training split (BM25 or a model)")
    p.add_argument("--data", required=True, help="BEIR folder (corpus.jsonl[.gz], queries.jsonl[.gz], qrels/)")
    p.add_argument("--split", default="train", help="qrels split whose queries get negatives")
    p.add_argument(
        "--out", required=True, help='jsonl to write (its folder must exist): {"query_id", "pos": [ids], "neg": [ids]}'
    )
    p.add_argument(
        "--method",
        choices=[BM25, "model"],
        default=BM25,
        help="bm25 (bm25s, English stemming) or model (exact search with --model)",
    )
    p.add_argument("--model", default=None, help="bi-encoder for --method model")
    p.add_argument("--k", type=positive_int, default=30, help="hits retrieved per query (positives are then skipped)")
    p.add_argument("--num-negatives", type=nonnegative_int, default=None, help="keep at most this many per query")
    p.add_argument("--score", choices=["cos", "dot"], default="cos", help="similarity (--method model)")
    add_precision_arg(p)
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count bad rows instead of stopping")
    add_model_args(p)
    p.set_defaults(func=_run_mine_negatives)


def _run_mine_negatives(args: argparse.Namespace) -> int:
    from sgpt.data import load_beir
    from sgpt.search.mining import mine_negatives, write_negatives
    from sgpt.utils.io import check_output_file

    if args.method == "model" and args.model is None:
        raise ValueError("--method model needs --model")
    if args.method == BM25 and args.model is not None:
        raise ValueError("--model is only used with --method model (got --method bm25)")
    if args.method == BM25:
        refuse_model_flags(args, "--method model; got --method bm25")
    check_output_file(args.out, "--out")
    data = load_beir(args.data, args.split, skip_bad_rows=args.skip_bad_rows)
    retriever = _load_model(args) if args.method == "model" else _bm25(data.corpus, args.verbose)
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
    out = write_negatives(args.out, rows)
    n_neg = sum(len(r["neg"]) for r in rows)
    empty = sum(1 for r in rows if not r["neg"])
    print(f"mined {n_neg} negatives for {len(rows)} queries ({empty} with none) with {args.method} into {out}")
    return 0
