"""``sgpt index build`` and ``sgpt search``: a FAISS index folder of a corpus, and queries against it."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

from sgpt.cli.common import (
    add_k_arg,
    add_model_args,
    add_output_arg,
    add_precision_arg,
    default_of,
    given,
    model_spec,
    positive_int,
    with_default,
    writing_output,
)

if TYPE_CHECKING:
    from sgpt.model.biencoder import BiEncoder

logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader logs four INFO lines on every import


def add_index(sub) -> None:
    from sgpt.search.settings import IndexSettings

    def default(name: str):
        return default_of(IndexSettings, name)

    index = sub.add_parser("index", help="build a dense search index").add_subparsers(dest="task", required=True)
    p = index.add_parser("build", help="embed a BEIR corpus.jsonl(.gz) into a FAISS index folder")
    p.add_argument("corpus", help="BEIR corpus.jsonl or corpus.jsonl.gz (_id, title, text)")
    p.add_argument("--model", required=True, help="saved bi-encoder folder, backbone folder, hub id or .gguf file")
    add_output_arg(p, "index folder to write (replaced atomically; its parent folder must exist)")
    p.add_argument(
        "--shard-size",
        type=positive_int,
        help=with_default("documents per resumable shard (a crash loses at most one)", default("shard_size")),
    )
    p.add_argument(
        "--index-type",
        choices=["flat", "ivf", "hnsw"],
        help=with_default("flat = exact inner product; ivf / hnsw = approximate", default("index_type")),
    )
    p.add_argument(
        "--nlist",
        type=positive_int,
        help="ivf: number of lists (default 4*sqrt(n_docs), at most n_docs/39, at least 1)",
    )
    p.add_argument("--nprobe", type=positive_int, help="ivf: lists visited per query (default nlist/16)")
    p.add_argument("--hnsw-m", dest="m", type=positive_int, help=with_default("hnsw: links per node", default("m")))
    p.add_argument(
        "--ef-construction",
        type=positive_int,
        help=with_default("hnsw: candidates while building", default("ef_construction")),
    )
    p.add_argument(
        "--ef-search",
        type=positive_int,
        help=with_default("hnsw: candidates while searching (>= the -k of searches)", default("ef_search")),
    )
    add_precision_arg(p)
    p.add_argument("--no-resume", action="store_true", help="discard the shards of an interrupted build")
    add_model_args(p)
    p.set_defaults(func=_run_index_build)


def _run_index_build(args: argparse.Namespace) -> int:
    from sgpt.search.build import build_index, is_index
    from sgpt.search.settings import IndexSettings

    args.interrupt_hint = (
        "rerun without --no-resume to resume from the finished shards"
        if args.no_resume
        else f"the finished shards are kept in {args.output}.partial; rerun the same command to resume from them"
    )
    fields = ("index_type", "nlist", "nprobe", "m", "ef_construction", "ef_search", "shard_size", "batch_size")
    settings = IndexSettings(**given(args, (*fields, "precision")), resume=not args.no_resume)
    inputs = {"corpus": args.corpus, "model": args.model}
    with writing_output(args, folder=True, inputs=inputs, replaceable=is_index, kind="sgpt index"):
        out = build_index(
            args.corpus, args.model, args.output, settings, spec=model_spec(args), show_progress=True,
            overwrite=bool(args.overwrite),
        )  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    print(f"indexed {manifest['n_docs']} documents (d={manifest['dim']}, {manifest['index']['type']}) in {out}")
    return 0


def add_search(sub) -> None:
    p = sub.add_parser("search", help="search an index folder for a query")
    p.add_argument("index", help="index folder written by `sgpt index build`")
    p.add_argument("query", help="query text")
    add_k_arg(p, 10, "number of hits")
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
    p.add_argument(
        "--allow-model-change",
        action="store_true",
        help="search with a query model whose weights differ from those the index was built with "
        "(same settings: e.g. the model folder was replaced by a fine-tuned one); refused by default, "
        "since the rankings change",
    )
    add_model_args(p)
    p.set_defaults(func=_run_search)


def _run_search(args: argparse.Namespace) -> int:
    from sgpt.search.index import Index

    index = Index.load(args.index, allow_model_change=args.allow_model_change)
    index.check_search_args(args.k, nprobe=args.nprobe, ef_search=args.ef_search, queries=[args.query])
    spec = model_spec(args)  # the model flags apply to the query model, given or recorded
    model: BiEncoder | None
    if args.model is not None:
        from sgpt.model.loader import load

        model = load(args.model, spec)  # checked by index.search (signature, and weights unless allowed)
    else:
        model = index.recorded_model(spec) if spec.given() else None
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
