"""``sgpt train msmarco``: MS MARCO's own files (SPEC 2.2) -> the MS MARCO recipe.

Flags map to :class:`~sgpt.recipes.tasks.MSMarcoTask` (the data and its filter) and
:class:`~sgpt.train.config.TrainConfig` over SGPT's MS MARCO defaults (``MSMARCO_TRAINING``:
batch 64, 10 epochs, 1000 warm-up steps); every default lives there.
"""

from __future__ import annotations

import argparse
from typing import Any

from sgpt.cli.common import (
    add_spec_args,
    default_of,
    given,
    model_spec,
    nonnegative_int,
    positive_int,
    with_default,
)
from sgpt.cli.resolved import Resolved, run_resolved
from sgpt.cli.train import add_training_args, head_spec, train_config

TASK_FLAGS = (
    "ce_score_margin",
    "num_negs_per_system",
    "negs_to_use",
    "use_all_queries",
    "train_dataset_max_size",
    "eval_dev",
    "dev_corpus_max_size",
    "skip_bad_rows",
)


def systems_arg(text: str) -> list[str]:
    """``--negs-to-use``: comma-separated system names (``bm25,msmarco-MiniLM-L-6-v3``)."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated system names, got {text!r}")
    return names


def add_train_msmarco(sub) -> None:
    """Register ``sgpt train msmarco``."""
    from sgpt.recipes.tasks import MSMARCO_TRAINING, MSMarcoTask

    def task_default(name: str) -> Any:
        return default_of(MSMarcoTask, name)

    p = sub.add_parser(
        "msmarco",
        help="train on MS MARCO with cross-encoder-filtered hard negatives (SGPT's msmarco script), "
        "score MRR@10 / nDCG@10 on its dev split",
    )
    p.add_argument("--model", required=True, help="hub id, folder, .gguf file or saved bi-encoder")
    add_spec_args(
        p, formatting=True, pooling_default="weightedmean", max_seq_length_default=task_default("max_seq_length")
    )
    p.add_argument(
        "--asym",
        action="store_true",
        default=None,
        help="separate query and document transformers (two copies of the model; twice the parameters)",
    )
    p.add_argument(
        "--data",
        required=True,
        help="folder with collection.tsv, queries.train.tsv, msmarco-hard-negatives.jsonl.gz and "
        "cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz (+ queries.dev.small.tsv, qrels.dev.tsv for "
        "--eval-dev), or the hub data set sentence-transformers/msmarco-hard-negatives",
    )
    p.add_argument(
        "--ce-score-margin",
        type=float,
        default=None,
        help=with_default(
            "keep a negative whose cross-encoder score is at most the lowest positive's minus this",
            task_default("ce_score_margin"),
        ),
    )
    p.add_argument(
        "--num-negs-per-system",
        type=positive_int,
        default=None,
        help=with_default("hard negatives taken from each retrieval system", task_default("num_negs_per_system")),
    )
    p.add_argument(
        "--negs-to-use",
        type=systems_arg,
        default=None,
        metavar="A,B",
        help="retrieval systems to take negatives from, comma-separated (default: every system of the first line)",
    )
    p.add_argument(
        "--use-all-queries",
        action="store_true",
        default=None,
        help="also train queries left without a hard negative (they get a random passage)",
    )
    p.add_argument(
        "--train-dataset-max-size",
        type=positive_int,
        default=None,
        help="read at most N lines of the hard-negatives file (default: all)",
    )
    p.add_argument(
        "--eval-dev",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="after training, score MRR@10 and nDCG@10 on the dev split (queries.dev.small.tsv, qrels.dev.tsv)",
    )
    p.add_argument(
        "--dev-corpus-max-size",
        type=nonnegative_int,
        default=None,
        metavar="K",
        help="dev corpus = the judged passages + the first K of the collection (default, or 0: all passages)",
    )
    add_training_args(p, defaults=MSMARCO_TRAINING)
    p.set_defaults(func=_run_train_msmarco)


def msmarco_config(args: argparse.Namespace) -> Resolved:
    """The :class:`Resolved` run of ``sgpt train msmarco`` flags.

    Raises:
        ValueError: an invalid setting (every one named), or an ``--output`` inside ``--data``.
    """
    from sgpt.recipes.tasks import MSMARCO_TRAINING, MSMarcoTask
    from sgpt.utils.io import check_not_input

    defaults = dict(MSMARCO_TRAINING)
    if args.warmup_ratio is not None and args.warmup_steps is None:
        del defaults["warmup_steps"]  # an explicit --warmup-ratio replaces the task's warm-up steps
    if args.dev_corpus_max_size == 0:  # SGPT's -1: the whole collection
        args.dev_corpus_max_size = None
    if args.dev_corpus_max_size is not None and not args.eval_dev:
        raise ValueError("--dev-corpus-max-size applies only with --eval-dev")
    cfg = train_config(args, defaults, checkpoint_every_epoch=args.checkpoints)
    task = MSMarcoTask(data=args.data, **given(args, TASK_FLAGS))
    check_not_input(args.output, [("--data", args.data)], folder=True)
    return Resolved("msmarco", args.model, task, cfg, model_spec(args), head_spec(args))


def _run_train_msmarco(args: argparse.Namespace) -> int:
    run = msmarco_config(args)
    args.interrupt_hint = f"continue with the same command and --resume (checkpoints in {args.output}/checkpoints)"
    return run_resolved(run)
