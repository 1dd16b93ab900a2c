"""``sgpt eval sts`` and ``sgpt eval beir``: score a model (or BM25) and print / write the results as JSON."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sgpt.cli.common import (
    add_k_arg,
    add_model_args,
    add_output_arg,
    add_precision_arg,
    model_spec,
    refuse_model_flags,
)
from sgpt.cli.mine import BM25, bm25_retriever


def add_eval_sts(sub) -> None:
    p = sub.add_parser("sts", help="Spearman/Pearson of cosine, dot, Euclidean, Manhattan on an STS set")
    p.add_argument("model", help="saved bi-encoder folder, backbone folder, hub id or .gguf file")
    p.add_argument("--data", required=True, help="STS-B folder/file, STS12-16 year folder or SICK file")
    p.add_argument(
        "--split", default="test", help="split (default: test; STS12-16 parent folder: the year, e.g. STS12)"
    )
    add_output_arg(p, "write the scores as JSON here", required=False)
    p.add_argument(
        "--per-subset",
        action="store_true",
        help="STS12-16: also score each subset (e.g. STS12.MSRpar) on its own and report their mean "
        "and pair-weighted mean, as SentEval does (the top-level scores stay the pooled ones)",
    )
    add_model_args(p, formatting=False)
    p.set_defaults(func=_run_eval_sts)


def _run_eval_sts(args: argparse.Namespace) -> int:
    from sgpt.data import read_sts, read_sts_subsets
    from sgpt.evaluation.sts import evaluate_sts, evaluate_sts_subsets
    from sgpt.model.loader import load
    from sgpt.utils.io import check_output_file, finite_json, write_json

    if args.output:
        # before scoring, not after
        check_output_file(
            args.output, overwrite=bool(args.overwrite), inputs={"--data": args.data, "model": args.model}
        )
    subsets = read_sts_subsets(args.data, split=args.split) if args.per_subset else None
    data = None if subsets else read_sts(args.data, split=args.split)
    model = load(args.model, model_spec(args))
    if subsets:
        scores = evaluate_sts_subsets(model, subsets, batch_size=args.batch_size, show_progress=True)
    else:
        assert data is not None
        scores = evaluate_sts(
            model, data.sentences1, data.sentences2, data.scores, batch_size=args.batch_size, show_progress=True
        )
    result = {"model": str(args.model), "data": str(args.data), "split": args.split, **scores}
    print(json.dumps(finite_json(result), indent=2))
    if args.output:
        write_json(args.output, result)
    return 0


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
    p.add_argument("--split", default="test", help="qrels split (default: test; msmarco: dev)")
    add_output_arg(
        p,
        "write the results as JSON here (its folder must exist). The metrics "
        '("ndcg@10", "map@100", "mrr@10", ...) are always top-level keys: '
        'with one --data that set\'s, with several the "average" ones (all sets '
        'but msmarco), and the per-set results are under "datasets"',
        required=False,
    )
    add_k_arg(p, 1000, "hits retrieved per query")
    p.add_argument("--score", choices=["cos", "dot"], default="cos", help="similarity of bi-encoders (default: cos)")
    add_precision_arg(p)
    p.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="skip and count bad rows and judgments naming unknown ids instead of stopping",
    )
    add_model_args(p)
    p.set_defaults(func=_run_eval_beir)


def _run_eval_beir(args: argparse.Namespace) -> int:
    from sgpt.data import RetrievalData, load_beir
    from sgpt.evaluation.beir import average_over_datasets, evaluate_retrieval
    from sgpt.model.loader import load
    from sgpt.utils.io import check_output_file, finite_json, write_json

    if args.output:
        inputs = [("--data", d) for d in args.data] + [("model", args.model)]
        check_output_file(args.output, overwrite=bool(args.overwrite), inputs=inputs)
    if args.model == BM25:
        refuse_model_flags(args, "bm25 is the BM25 baseline")
    names = _dataset_names(args.data)
    # every data set is read and checked before the (long) encoding of the first one
    datasets: list[RetrievalData | None] = [
        load_beir(folder, args.split, skip_bad_rows=args.skip_bad_rows, name=name)
        for name, folder in zip(names, args.data, strict=True)
    ]
    model = None if args.model == BM25 else load(args.model, model_spec(args))
    per_dataset = {}
    for i, (name, folder) in enumerate(zip(names, args.data, strict=True)):
        data, datasets[i] = datasets[i], None  # free each corpus once scored
        assert data is not None  # each entry is read once, here
        start = time.perf_counter()
        retriever = model if model is not None else bm25_retriever(data.corpus, args.verbose)
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
    print(json.dumps(finite_json(result), indent=2))
    if args.output:
        write_json(args.output, result)
    return 0


def _dataset_names(folders: list[str]) -> list[str]:
    """Folder names as result keys; the full path where two folders share a name."""
    base = [Path(f).name or str(f) for f in folders]
    return [b if base.count(b) == 1 else str(f) for b, f in zip(base, folders, strict=False)]
