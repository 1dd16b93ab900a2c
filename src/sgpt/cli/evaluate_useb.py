"""``sgpt eval useb``: USEB (SPEC 3.4) on the tasks found in a ``data-eval`` folder; a table and JSON."""

from __future__ import annotations

import argparse
import json
import math

from sgpt.cli.common import add_model_args, add_output_arg, model_spec
from sgpt.data.useb import USEB_TASKS as TASKS


def add_eval_useb(sub) -> None:
    """Register ``sgpt eval useb``."""
    p = sub.add_parser(
        "useb",
        help="USEB: AskUbuntu MAP, CQADupStack MAP@100, TwitterPara AP, SciDocs MAP and their average",
        description="Score a model on USEB (Wang et al. 2021) as USEB's code and SGPT's useb script do: "
        "plain encode, L2-normalised embeddings, all scores x100. Tasks whose folders are missing are "
        "left out of the average (the JSON says which).",
    )
    p.add_argument("model", help="saved bi-encoder folder, backbone folder, hub id or .gguf file")
    p.add_argument(
        "--data",
        required=True,
        help="USEB data-eval folder: askubuntu/ (text_tokenized.txt, test.txt), cqadupstack/ (corpus.json, "
        "retrieval_split.json), twitterpara/ (Twitter_URL_Corpus_test.txt, test.data), scidocs/ (data.json); "
        "any file may be gzipped; or one task folder",
    )
    p.add_argument(
        "--tasks",
        type=_task_list,
        default=TASKS,
        help=f"comma-separated tasks to run (default: {','.join(TASKS)}; those not found are reported)",
    )
    p.add_argument("--split", choices=("test", "valid"), default="test", help="split (default: test)")
    p.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="do not L2-normalise the embeddings (SGPT's --notnormalize: AskUbuntu and CQADupStack then rank "
        "by dot product; TwitterPara and SciDocs use cosine either way)",
    )
    add_output_arg(p, "write the results as JSON here (its folder must exist)", required=False)
    add_model_args(p, formatting=False)
    p.set_defaults(func=_run_eval_useb)


def _task_list(text: str) -> tuple[str, ...]:
    """argparse type of ``--tasks``: known names, comma-separated, each once."""
    names = tuple(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
    bad = [t for t in names if t not in TASKS]
    if not names or bad:
        shown = ", ".join(map(repr, bad)) if bad else "none given"
        raise argparse.ArgumentTypeError(f"unknown task(s) {shown} (choose from {','.join(TASKS)})")
    return names


def _run_eval_useb(args: argparse.Namespace) -> int:
    from sgpt.data.useb import read_useb
    from sgpt.evaluation.useb import evaluate_useb
    from sgpt.model.loader import load
    from sgpt.utils.io import check_output_file, finite_json, write_json

    if args.output:
        # before reading and scoring, not after
        check_output_file(
            args.output, overwrite=bool(args.overwrite), inputs={"--data": args.data, "model": args.model}
        )
    data = read_useb(args.data, args.tasks, split=args.split)  # every task read and checked before encoding
    model = load(args.model, model_spec(args))
    scores = evaluate_useb(model, data, batch_size=args.batch_size, normalize=args.normalize, show_progress=True)
    result = {"model": str(args.model), "data": str(args.data), "split": args.split, "normalize": args.normalize}
    result.update(scores)
    print(format_table(result))
    if args.output:
        write_json(args.output, result)
    else:
        print(json.dumps(finite_json(result), indent=2))
    return 0


def format_table(result: dict) -> str:
    """A short table: one row per task (main metric, score, parts), the average, and the notes."""
    lines = [f"USEB ({result['split']}) {result['model']}", f"{'task':<12} {'metric':<8} {'score':>7}  parts"]
    for task, r in result["tasks"].items():
        parts = ", ".join(f"{name} {p[r['metric']]:.2f}" for name, p in r.get("parts", {}).items())
        lines.append(f"{task:<12} {r['metric']:<8} {_fmt(r['score'])}  {parts}".rstrip())
    for task in result["tasks_missing"]:
        lines.append(f"{task:<12} {'-':<8} {'-':>7}  not found")
    lines.append(f"{'average':<12} {'':<8} {_fmt(result['average'])}  over {', '.join(result['average_over'])}")
    lines.extend(f"note: {n}" for n in result["notes"])
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{'nan':>7}" if math.isnan(value) else f"{value:7.2f}"
