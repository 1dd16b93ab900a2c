"""The ``sgpt`` command: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse
import json

from sgpt.cli.common import add_model_args, load_kwargs


def add_eval_sts(sub) -> None:
    p = sub.add_parser("sts", help="Spearman/Pearson of cosine, dot, Euclidean, Manhattan on an STS set")
    p.add_argument("model", help="saved bi-encoder folder, backbone folder, hub id or .gguf file")
    p.add_argument("--data", required=True, help="STS-B folder/file, STS12-16 year folder or SICK file")
    p.add_argument("--split", default="test")
    p.add_argument("--output", help="write the scores as JSON here")
    p.add_argument(
        "--per-subset",
        action="store_true",
        help="STS12-16: also score each subset (e.g. STS12.MSRpar) on its own and report their mean "
        "and pair-weighted mean, as SentEval does (the top-level scores stay the pooled ones)",
    )
    add_model_args(p, formatting=False)
    p.set_defaults(func=_run_eval_sts)


def _run_eval_sts(args: argparse.Namespace) -> int:
    import sgpt
    from sgpt.data import read_sts, read_sts_subsets
    from sgpt.evaluation.sts import evaluate_sts, evaluate_sts_subsets
    from sgpt.utils.io import check_output_file, write_json

    if args.output:
        check_output_file(args.output, "--output")  # before scoring, not after
    subsets = read_sts_subsets(args.data, split=args.split) if args.per_subset else None
    data = None if subsets else read_sts(args.data, split=args.split)
    model = sgpt.load(args.model, **load_kwargs(args))
    if subsets:
        scores = evaluate_sts_subsets(model, subsets, batch_size=args.batch_size, show_progress=True)
    else:
        scores = evaluate_sts(
            model, data.sentences1, data.sentences2, data.scores, batch_size=args.batch_size, show_progress=True
        )
    result = {"model": str(args.model), "data": str(args.data), "split": args.split, **scores}
    print(json.dumps(result, indent=2))
    if args.output:
        write_json(args.output, result)
    return 0
