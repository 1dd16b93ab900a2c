"""The ``sgpt`` command: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse

from sgpt.cli.common import (
    FORMAT_ARGS,
    HelpFormatter,
    add_chat_template_arg,
    add_format_args,
    add_precision_arg,
    load_kwargs,
    precision_name,
    train_precision,
)
from sgpt.model.pooling import POOLING_MODES


def add_train_nli(sub) -> None:
    p = sub.add_parser(
        "nli",
        help="train on NLI triplets with MultipleNegativesRankingLoss, score on STS",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", required=True, help="hub id, folder, .gguf file or saved bi-encoder")
    p.add_argument(
        "--pooling",
        choices=POOLING_MODES,
        default=None,
        help="pooling mode (default: a saved bi-encoder's own, else weightedmean)",
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
        default=False,
        help="also score the untrained model on the test split",
    )
    p.add_argument("--max-seq-length", type=int, default=75, help="tokens per text (SGPT NLI: 75)")
    add_chat_template_arg(p)
    add_training_args(p, batch_size=64)
    p.set_defaults(func=_run_train_nli)


def add_train_retrieval(sub) -> None:
    p = sub.add_parser(
        "retrieval",
        help="train for asymmetric search (query -> passage) with MNRL over "
        "in-batch and hard negatives, score on BEIR-layout test sets",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", required=True, help="hub id, folder, .gguf file or saved bi-encoder")
    p.add_argument(
        "--pooling",
        choices=POOLING_MODES,
        default=None,
        help="pooling mode (default: a saved bi-encoder's own, else weightedmean)",
    )
    add_format_args(p)
    p.add_argument(
        "--asym",
        action="store_true",
        help="separate query and document transformers (two copies of the model; twice the parameters)",
    )
    p.add_argument(
        "--train-data",
        action="append",
        required=True,
        help="BEIR-layout folder (its --split qrels, negatives from --negatives) or generic "
        "jsonl {query, pos: [...], neg: [...]}; repeatable",
    )
    p.add_argument("--split", default="train", help="qrels split of BEIR-layout training folders")
    p.add_argument(
        "--negatives",
        help="hard negatives of a BEIR-layout folder: a `sgpt mine-negatives` file, or "
        "'bm25' to mine the top 30 BM25 hits now (default: none, in-batch negatives only)",
    )
    p.add_argument(
        "--negatives-per-query",
        type=int,
        default=1,
        help="hard negatives per training example (rotated round-robin over epochs); 0 = in-batch only",
    )
    p.add_argument(
        "--eval-data",
        action="append",
        default=[],
        help="BEIR-layout folder scored (nDCG@10 ...) on --eval-split after training; repeatable",
    )
    p.add_argument("--eval-split", default="test", help="qrels split of --eval-data")
    add_precision_arg(
        p, "--eval-precision", help="encode evaluation sets in bfloat16 (bf16) autocast (faster; default float32)"
    )
    p.add_argument(
        "--eval-before",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also score the untrained model on --eval-data",
    )
    p.add_argument(
        "--dev-data",
        help="BEIR-layout folder whose --dev-split picks the best checkpoint by "
        "nDCG@10 (never select on test data); default: keep the last model",
    )
    p.add_argument("--dev-split", default="dev", help="qrels split of --dev-data")
    p.add_argument(
        "--max-seq-length",
        type=int,
        default=300,
        help="tokens per text, brackets and special tokens included (SGPT msmarco: 300)",
    )
    p.add_argument(
        "--no-checkpoints",
        dest="checkpoints",
        action="store_false",
        help="do not save OUTPUT/checkpoints/checkpoint-STEP at the end of every epoch (saved by default)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output")
    add_training_args(p, batch_size=32)
    p.set_defaults(func=_run_train_retrieval)


def add_training_args(p: argparse.ArgumentParser, *, batch_size: int) -> None:
    """Flags every training command shares: output, optimisation, precision, freezing, logging, scaling."""
    p.add_argument("--output", required=True, help="folder for the trained model and logs")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps (default: --epochs epochs)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the training data")
    p.add_argument(
        "--batch-size",
        type=int,
        default=batch_size,
        help="examples per optimizer step and process (in-batch negatives)",
    )
    p.add_argument("--lr", type=float, default=2e-5, help="peak learning rate (AdamW)")
    p.add_argument("--seed", type=int, default=0, help="seeds sampling, data construction and dropout")
    p.add_argument("--warmup-ratio", type=float, default=0.1, help="linear warm-up over this share of the steps")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW decay (not on biases and norms)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--eval-steps", type=int, default=None, help="dev evaluation interval (default: 10%% of steps)")
    p.add_argument("--eval-batch-size", type=int, default=64, help="texts per forward pass when scoring")
    p.add_argument(
        "--micro-batch-size",
        type=int,
        default=32,
        help="texts per forward pass inside a batch, grouped by length (speed only)",
    )
    p.add_argument(
        "--precision",
        type=train_precision,
        default="auto",
        metavar="{auto,fp32,bf16}",
        help="bf16 (bfloat16) = autocast (loss in float32); fp32 (float32) = none; auto = bf16 on a "
        "GPU that supports it, else fp32",
    )
    p.add_argument(
        "--dtype",
        type=precision_name,
        default=None,
        metavar="{float32,bfloat16}",
        help="weight dtype (float32 = fp32, bfloat16 = bf16; default float32)",
    )
    p.add_argument("--freeze", action="store_true", help="freeze the transformer (only added heads train)")
    p.add_argument("--freezenonbias", action="store_true", help="BitFit: train only bias tensors")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip malformed data rows (the count is reported)")
    p.add_argument(
        "--log-with",
        action="append",
        default=[],
        choices=["wandb", "tensorboard"],
        help="experiment tracker (repeatable)",
    )
    add_batch_scaling_args(p)


def train_config(args: argparse.Namespace, **extra):
    """The ``TrainConfig`` of the flags of :func:`add_training_args` (+ ``extra`` fields)."""
    from sgpt.train.config import TrainConfig

    return TrainConfig(
        output=args.output,
        batch_size=args.batch_size,
        lr=args.lr,
        epochs=args.epochs,
        max_steps=args.max_steps,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        grad_accum=args.grad_accum,
        seed=args.seed,
        precision=args.precision,
        micro_batch_size=args.micro_batch_size,
        eval_steps=args.eval_steps,
        eval_batch_size=args.eval_batch_size,
        log_with=tuple(args.log_with),
        **batch_scaling_config(args),
        **extra,
    )


def chunk_size_arg(value: str) -> int | str:
    """``--chunksize``: a positive integer or ``auto``."""
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {value!r}")
    return n


def add_batch_scaling_args(p: argparse.ArgumentParser) -> None:
    """GradCache and multi-process flags, shared by every training command (SPEC 1.10, 1.12)."""
    p.add_argument(
        "--gradcache",
        action="store_true",
        help="GradCache: gradient of the whole batch in the memory of one chunk (about 1/3 more compute)",
    )
    p.add_argument(
        "--chunksize",
        type=chunk_size_arg,
        default=32,
        help="texts per GradCache chunk, or 'auto': the largest that fits --max-memory (printed)",
    )
    p.add_argument(
        "--max-memory",
        default=None,
        help="memory budget for --chunksize auto, e.g. 16GiB (default: what the device has free)",
    )
    p.add_argument(
        "--data-parallel",
        choices=["shard", "replicate"],
        default="shard",
        help="with several processes (torchrun / accelerate launch): shard = each optimizer step "
        "takes processes x batch-size examples, each process its slice; replicate = each process "
        "walks the whole data (SGPT's NLI script)",
    )


def batch_scaling_config(args: argparse.Namespace) -> dict:
    """The ``TrainConfig`` fields of :func:`add_batch_scaling_args`."""
    return {
        "gradcache": args.gradcache,
        "chunk_size": args.chunksize,
        "max_memory": args.max_memory,
        "data_parallel": args.data_parallel,
    }


def _run_train_nli(args: argparse.Namespace) -> int:
    from sgpt.recipes.train_nli import train_nli

    cfg = train_config(args)
    results = train_nli(
        args.model,
        args.train_data,
        cfg,
        pooling=args.pooling,
        max_seq_length=args.max_seq_length,
        dev_data=args.dev_data,
        test_data=args.test_data,
        eval_before=args.eval_before,
        freeze=args.freeze,
        freezenonbias=args.freezenonbias,
        skip_bad_rows=args.skip_bad_rows,
        dtype=args.dtype,
        chat_template=args.chat_template,
    )
    for key in ("test_before", "test_after"):
        if results[key]:
            print(f"{key}: spearman_cosine = {results[key]['spearman_cosine']:.4f}")
    print(f"model saved to {args.output}")
    return 0


def _run_train_retrieval(args: argparse.Namespace) -> int:
    from sgpt.recipes.train_retrieval import train_retrieval

    cfg = train_config(args, checkpoint_every_epoch=args.checkpoints, resume=args.resume)
    results = train_retrieval(
        args.model,
        args.train_data,
        cfg,
        pooling=args.pooling,
        max_seq_length=args.max_seq_length,
        **load_kwargs(args, FORMAT_ARGS),
        asym=args.asym,
        split=args.split,
        negatives=args.negatives,
        negatives_per_query=args.negatives_per_query,
        eval_data=args.eval_data,
        eval_split=args.eval_split,
        eval_before=args.eval_before,
        dev_data=args.dev_data,
        dev_split=args.dev_split,
        freeze=args.freeze,
        freezenonbias=args.freezenonbias,
        skip_bad_rows=args.skip_bad_rows,
        dtype=args.dtype,
        eval_precision=args.eval_precision,
    )
    for key in ("before", "after"):
        for name, scores in (results.get(key) or {}).items():
            print(f"{key}: {name} ndcg@10 = {scores['ndcg@10']:.4f}")
    print(f"model saved to {args.output}")
    return 0
