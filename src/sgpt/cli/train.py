"""``sgpt train nli`` and ``sgpt train retrieval``: flags -> (ModelSpec, task, TrainConfig) -> the recipe.

Every flag defaults to "not given"; the defaults live in the dataclasses (``TrainConfig``, the
recipes' ``NLITask`` / ``RetrievalTask``) and the help text reads them from there.
"""

from __future__ import annotations

import argparse
from typing import Any

from sgpt.cli.common import (
    add_output_arg,
    add_precision_arg,
    add_spec_args,
    add_training_precision_arg,
    default_of,
    given,
    model_spec,
    nonnegative_int,
    positive_int,
    with_default,
)
from sgpt.cli.resolved import Resolved, run_resolved
from sgpt.model.heads import HeadSpec
from sgpt.train.config import TrainConfig

# TrainConfig fields set by flags of the same name (other fields: --chunksize, --log-with, --no-checkpoints)
TRAIN_FLAGS = (
    "max_steps",
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "warmup_ratio",
    "weight_decay",
    "grad_accum",
    "eval_steps",
    "eval_batch_size",
    "micro_batch_size",
    "precision",
    "freeze",
    "freezenonbias",
    "unfreezewte",
    "warmup_steps",
    "checkpoint_steps",
    "wandb_watch",
    "wandb_entity",
    "project",
    "gradcache",
    "max_memory",
    "data_parallel",
    "resume",
    "overwrite",
)


def add_train_nli(sub) -> None:
    from sgpt.recipes.tasks import NLITask

    p = sub.add_parser(
        "nli",
        help="train on NLI triplets with MultipleNegativesRankingLoss, score on STS",
    )
    p.add_argument("--model", required=True, help="hub id, folder, .gguf file or saved bi-encoder")
    add_spec_args(
        p,
        formatting=False,
        pooling_default="weightedmean",
        max_seq_length_default=default_of(NLITask, "max_seq_length"),
    )
    p.add_argument(
        "--train-data",
        action="append",
        required=True,
        help="NLI file/folder (SNLI/MultiNLI jsonl, AllNLI.tsv.gz, SentEval, SICK), triplet "
        "jsonl/csv/tsv or hub dataset name; repeatable",
    )
    p.add_argument("--dev-data", help="STS set (e.g. STS-B folder) whose dev split picks the best checkpoint")
    p.add_argument("--test-data", help="STS set scored on its test split after training (default: --dev-data)")
    p.add_argument(
        "--eval-before",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also score the untrained model on the test split (default: no)",
    )
    add_training_args(p, defaults={})
    p.set_defaults(func=_run_train_nli)


def add_train_retrieval(sub) -> None:
    from sgpt.recipes.tasks import DEFAULT_BATCH_SIZE, RetrievalTask

    def task_default(name: str) -> Any:
        return default_of(RetrievalTask, name)

    p = sub.add_parser(
        "retrieval",
        help="train for asymmetric search (query -> passage) with MNRL over "
        "in-batch and hard negatives, score on BEIR-layout test sets",
    )
    p.add_argument("--model", required=True, help="hub id, folder, .gguf file or saved bi-encoder")
    add_spec_args(
        p,
        formatting=True,
        pooling_default="weightedmean",
        max_seq_length_default=task_default("max_seq_length"),
    )
    p.add_argument(
        "--asym",
        action="store_true",
        default=None,
        help="separate query and document transformers (two copies of the model; twice the parameters)",
    )
    p.add_argument(
        "--train-data",
        action="append",
        required=True,
        help="BEIR-layout folder (its --split qrels, negatives from --negatives) or generic "
        "jsonl {query, pos: [...], neg: [...]}; repeatable",
    )
    p.add_argument("--split", help=with_default("qrels split of BEIR-layout training folders", task_default("split")))
    p.add_argument(
        "--negatives",
        help="hard negatives of a BEIR-layout folder: a `sgpt mine-negatives` file, or "
        "'bm25' to mine the top 30 BM25 hits now into OUTPUT/negatives/ (default: none, in-batch negatives only)",
    )
    p.add_argument(
        "--negatives-per-query",
        type=nonnegative_int,
        help=with_default(
            "hard negatives per training example (rotated round-robin over epochs); 0 = in-batch only",
            task_default("negatives_per_query"),
        ),
    )
    p.add_argument(
        "--eval-data",
        action="append",
        help="BEIR-layout folder scored (nDCG@10 ...) on --eval-split after training; repeatable",
    )
    p.add_argument("--eval-split", help=with_default("qrels split of --eval-data", task_default("eval_split")))
    add_precision_arg(
        p,
        "--eval-precision",
        help="encode evaluation sets in bf16 (bfloat16) autocast (faster; default: fp32)",
    )
    p.add_argument(
        "--eval-before",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also score the untrained model on --eval-data (default: no)",
    )
    p.add_argument(
        "--dev-data",
        help="BEIR-layout folder whose --dev-split picks the best checkpoint by "
        "nDCG@10 (never select on test data); default: keep the last model",
    )
    p.add_argument("--dev-split", help=with_default("qrels split of --dev-data", task_default("dev_split")))
    add_training_args(p, defaults={"batch_size": DEFAULT_BATCH_SIZE})
    p.set_defaults(func=_run_train_retrieval)


def add_training_args(p: argparse.ArgumentParser, *, defaults: dict[str, Any]) -> None:
    """Flags every training command shares: output, optimisation, precision, freezing, logging, scaling.
    Their defaults are ``TrainConfig``'s, or the task's own in ``defaults``."""

    def flag(name: str, text: str, **kwargs: Any) -> None:
        value = default_of(TrainConfig, name, defaults)
        p.add_argument(f"--{name.replace('_', '-')}", default=None, help=with_default(text, value), **kwargs)

    add_output_arg(p, "folder for the trained model and logs")
    p.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="continue the run in --output from its newest intact checkpoint (a finished run is left as it is)",
    )
    p.add_argument(
        "--checkpoint-steps",
        type=positive_int,
        default=None,
        help="also save a checkpoint every N optimizer steps (default: at epoch ends and dev evaluations)",
    )
    p.add_argument(
        "--no-checkpoints",
        dest="checkpoints",
        action="store_false",
        help="do not save OUTPUT/checkpoints/checkpoint-STEP at the end of every epoch (saved by default)",
    )
    p.add_argument("--max-steps", type=positive_int, default=None, help="optimizer steps (default: --epochs epochs)")
    flag("epochs", "passes over the training data", type=positive_int)
    flag("batch_size", "examples per optimizer step and process (in-batch negatives)", type=positive_int)
    flag("lr", "peak learning rate (AdamW)", type=float)
    flag("seed", "seeds sampling, data construction and dropout", type=int)
    flag("warmup_ratio", "linear warm-up over this share of the steps", type=float)
    p.add_argument(
        "--warmup-steps", type=nonnegative_int, default=None, help="linear warm-up steps (instead of --warmup-ratio)"
    )
    flag("weight_decay", "AdamW decay (not on biases and norms)", type=float)
    flag("grad_accum", "micro-batches per optimizer step", type=positive_int)
    p.add_argument(
        "--eval-steps", type=positive_int, default=None, help="dev evaluation interval (default: 10%% of steps)"
    )
    flag("eval_batch_size", "texts per forward pass when scoring", type=positive_int)
    flag("micro_batch_size", "texts per forward pass inside a batch, grouped by length (speed only)", type=positive_int)
    add_training_precision_arg(p, default_of(TrainConfig, "precision"))
    p.add_argument(
        "--freeze", action="store_true", default=None, help="freeze the transformer (only added heads train)"
    )
    p.add_argument("--freezenonbias", action="store_true", default=None, help="BitFit: train only bias tensors")
    p.add_argument(
        "--unfreezewte",
        action="store_true",
        default=None,
        help="with --freeze/--freezenonbias, also train the token embeddings",
    )
    add_head_args(p)
    p.add_argument(
        "--skip-bad-rows",
        action="store_true",
        default=None,
        help="skip malformed data rows (the count is reported)",
    )
    p.add_argument(
        "--log-with",
        action="append",
        default=None,
        choices=["wandb", "tensorboard"],
        help="experiment tracker (repeatable)",
    )
    p.add_argument("--wandb", action="store_true", default=None, help="log to Weights & Biases (= --log-with wandb)")
    p.add_argument(
        "--wandb-watch",
        choices=["gradients", "parameters", "all"],
        default=None,
        help="wandb.watch the model (histograms every 100 steps; SGPT's --wandbwatchlog)",
    )
    p.add_argument("--project", default=None, help=with_default("tracker project", default_of(TrainConfig, "project")))
    p.add_argument("--wandb-entity", default=None, help="W&B entity (team or user; default: yours)")
    add_batch_scaling_args(p)


def add_head_args(p: argparse.ArgumentParser) -> None:
    """Layers a run adds to the backbone (SPEC 1.7): dense layers and a learned pooling."""
    p.add_argument(
        "--addxlinear",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="add N dense layers (hidden -> hidden) after pooling, or before it with --linearthenpool",
    )
    p.add_argument(
        "--linearthenpool",
        action="store_true",
        default=None,
        help="apply the --addxlinear layers to every token before pooling",
    )
    p.add_argument("--useact", action="store_true", default=None, help="GELU after each --addxlinear layer")
    p.add_argument(
        "--outfeats", type=positive_int, default=None, help="output size of the layer (only with --addxlinear 1)"
    )
    p.add_argument(
        "--learntmean",
        action="store_true",
        default=None,
        help="pool with a learned weight per position (initialised to 1 = mean pooling)",
    )


HEAD_FLAGS = ("addxlinear", "linearthenpool", "useact", "outfeats", "learntmean")


def head_spec(args: argparse.Namespace) -> HeadSpec:
    """The ``HeadSpec`` of the head flags given.

    Raises:
        ValueError: flags that do not go together (e.g. ``--outfeats`` with 2 layers).
    """
    return HeadSpec(**given(args, HEAD_FLAGS))


def chunk_size_arg(value: str) -> int | str:
    """``--chunksize``: a positive integer or ``auto``."""
    if value == "auto":
        return value
    try:
        return positive_int(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {value!r}") from None


def add_batch_scaling_args(p: argparse.ArgumentParser) -> None:
    """GradCache and multi-process flags, shared by every training command (SPEC 1.10, 1.12)."""
    p.add_argument(
        "--gradcache",
        action="store_true",
        default=None,
        help="GradCache: gradient of the whole batch in the memory of one chunk (about 1/3 more compute)",
    )
    p.add_argument(
        "--chunksize",
        type=chunk_size_arg,
        default=None,
        help=with_default(
            "texts per GradCache chunk, or 'auto': the largest that fits --max-memory (printed)",
            default_of(TrainConfig, "chunk_size"),
        ),
    )
    p.add_argument(
        "--max-memory",
        default=None,
        help="memory budget for --chunksize auto, e.g. 16GiB (default: what the device has free)",
    )
    p.add_argument(
        "--data-parallel",
        choices=["shard", "replicate"],
        default=None,
        help=with_default(
            "with several processes (torchrun / accelerate launch): shard = each optimizer step "
            "takes processes x batch-size examples, each process its slice; replicate = each process "
            "walks the whole data (SGPT's NLI script)",
            default_of(TrainConfig, "data_parallel"),
        ),
    )


def train_config(args: argparse.Namespace, defaults: dict[str, Any], **extra: Any) -> TrainConfig:
    """The ``TrainConfig`` of the training flags given, on top of the task's ``defaults``.

    Raises:
        ValueError: an invalid setting (every one named).
    """
    values: dict[str, Any] = {**defaults, **given(args, TRAIN_FLAGS), **extra}
    if not args.gradcache:  # flags that cannot apply are refused, not ignored
        for flag, value in (("--chunksize", args.chunksize), ("--max-memory", args.max_memory)):
            if value is not None:
                raise ValueError(f"{flag} applies only with --gradcache (chunks of a GradCache batch)")
    if args.chunksize is not None:
        values["chunk_size"] = args.chunksize
    trackers = list(args.log_with or [])
    if args.wandb and "wandb" not in trackers:
        trackers.append("wandb")
    if trackers:
        values["log_with"] = tuple(trackers)
    if args.wandb_watch is not None and "wandb" not in trackers:
        raise ValueError("--wandb-watch applies only with --wandb (or --log-with wandb)")
    return TrainConfig(output=args.output, **values)


def nli_config(args: argparse.Namespace) -> Resolved:
    """The :class:`Resolved` run of ``sgpt train nli`` flags.

    Raises:
        ValueError: an invalid setting (every one named).
    """
    from sgpt.recipes.tasks import NLITask

    cfg = train_config(args, {}, checkpoint_every_epoch=args.checkpoints)
    task = NLITask(
        train_data=tuple(args.train_data),
        **given(args, ("dev_data", "test_data", "eval_before", "skip_bad_rows")),
    )
    return Resolved("nli", args.model, task, cfg, model_spec(args), head_spec(args))


def retrieval_config(args: argparse.Namespace) -> Resolved:
    """The :class:`Resolved` run of ``sgpt train retrieval`` flags.

    Raises:
        ValueError: an invalid setting (every one named).
    """
    from sgpt.recipes.tasks import DEFAULT_BATCH_SIZE, RetrievalTask

    cfg = train_config(args, {"batch_size": DEFAULT_BATCH_SIZE}, checkpoint_every_epoch=args.checkpoints)
    fields = ("split", "negatives", "negatives_per_query", "eval_data", "eval_split", "eval_before", "dev_data")
    task = RetrievalTask(
        train_data=tuple(args.train_data),
        **given(args, (*fields, "dev_split", "eval_precision", "skip_bad_rows")),
    )
    return Resolved("retrieval", args.model, task, cfg, model_spec(args), head_spec(args))


def _run_train_nli(args: argparse.Namespace) -> int:
    return run_resolved(nli_config(args))


def _run_train_retrieval(args: argparse.Namespace) -> int:
    return run_resolved(retrieval_config(args))
