"""The ``sgpt`` command: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse
import json
import logging

from sgpt.cli.beir import positive_int
from sgpt.cli.common import add_model_args, add_precision_arg, load_kwargs

logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader logs four INFO lines on every import


def add_index(sub) -> None:
    index = sub.add_parser("index", help="build a dense search index").add_subparsers(dest="task", required=True)
    p = index.add_parser("build", help="embed a BEIR corpus.jsonl(.gz) into a FAISS index folder")
    p.add_argument("corpus", help="BEIR corpus.jsonl or corpus.jsonl.gz (_id, title, text)")
    p.add_argument("--model", required=True, help="saved bi-encoder folder, backbone folder, hub id or .gguf file")
    p.add_argument(
        "--out", required=True, help="index folder to write (replaced atomically; its parent folder must exist)"
    )
    p.add_argument(
        "--shard-size",
        type=positive_int,
        default=10_000,
        help="documents per resumable shard (a crash loses at most one)",
    )
    p.add_argument(
        "--index-type",
        choices=["flat", "ivf", "hnsw"],
        default="flat",
        help="flat = exact inner product; ivf / hnsw = approximate",
    )
    p.add_argument(
        "--nlist",
        type=positive_int,
        default=None,
        help="ivf: number of lists (default 4*sqrt(n_docs), at most n_docs/39, at least 1)",
    )
    p.add_argument("--nprobe", type=positive_int, default=None, help="ivf: lists visited per query (default nlist/16)")
    p.add_argument("--hnsw-m", type=positive_int, default=32, help="hnsw: links per node")
    p.add_argument("--ef-construction", type=positive_int, default=200, help="hnsw: candidates while building")
    p.add_argument(
        "--ef-search", type=positive_int, default=128, help="hnsw: candidates while searching (>= the -k of searches)"
    )
    add_precision_arg(p)
    p.add_argument("--no-resume", action="store_true", help="discard the shards of an interrupted build")
    add_model_args(p)
    p.set_defaults(func=_run_index_build)


def _run_index_build(args: argparse.Namespace) -> int:
    from sgpt.search.build import build_index
    from sgpt.utils.io import check_output_dir

    args.interrupt_hint = (
        "rerun without --no-resume to resume from the finished shards"
        if args.no_resume
        else "rerun the same command to resume from the finished shards"
    )
    check_output_dir(args.out, "--out")
    out = build_index(
        args.corpus,
        args.model,
        args.out,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        index_type=args.index_type,
        nlist=args.nlist,
        nprobe=args.nprobe,
        m=args.hnsw_m,
        ef_construction=args.ef_construction,
        ef_search=args.ef_search,
        precision=args.precision,
        show_progress=True,
        resume=not args.no_resume,
        load_kwargs=load_kwargs(args),
    )
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    print(f"indexed {manifest['n_docs']} documents (d={manifest['dim']}, {manifest['index']['type']}) in {out}")
    return 0


def add_search(sub) -> None:
    p = sub.add_parser("search", help="search an index folder for a query")
    p.add_argument("index", help="index folder written by `sgpt index build`")
    p.add_argument("query", help="query text")
    p.add_argument("-k", type=int, default=10, help="number of hits")
    p.add_argument("--json", action="store_true", help='print [{"id", "score", "text"}, ...]')
    p.add_argument(
        "--model",
        default=None,
        help="query model (default: the one recorded in the index); its signature must match. "
        "--pooling, --max-seq-length and --dtype apply to it (to the recorded one when "
        "--model is not given), so a pooling or length other than the index's is refused",
    )
    p.add_argument("--nprobe", type=int, default=None, help="ivf: lists visited, 1..nlist (default: the index's)")
    p.add_argument(
        "--ef-search", type=int, default=None, help="hnsw: candidates, >= 1 and best >= -k (default: the index's)"
    )
    add_model_args(p)
    p.set_defaults(func=_run_search)


def _run_search(args: argparse.Namespace) -> int:
    from sgpt.search.index import Index

    index = Index.load(args.index)
    index.check_search_args(args.k, nprobe=args.nprobe, ef_search=args.ef_search, queries=[args.query])
    overrides = load_kwargs(args)  # the model flags apply to the query model, given or recorded
    if args.model is not None:
        import sgpt

        model = sgpt.load(args.model, **overrides)
    else:
        model = index.recorded_model(**overrides) if overrides else None
    hits = index.search(
        [args.query], args.k, model, batch_size=args.batch_size, nprobe=args.nprobe, ef_search=args.ef_search
    )[0]
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return 0
    print(f"{'rank':>4}  {'score':>7}  {'id':<16}  text")
    for rank, h in enumerate(hits, 1):
        text = " ".join(h.text.split())
        print(f"{rank:>4}  {h.score:7.4f}  {h.id:<16}  {text[:90] + '...' if len(text) > 90 else text}")
    return 0
