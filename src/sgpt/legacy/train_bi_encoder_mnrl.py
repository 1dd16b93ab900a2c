"""SGPT's ``examples/training/ms_marco/train_bi-encoder_mnrl.py`` command line, run by sgpt (SPEC 2.2).

Every flag of the original, with its default, is accepted and mapped onto ``sgpt train msmarco``
(the dest vocabulary of the released recipes); the run itself is sgpt's. Like the original it
reads ``msmarco-data/`` in the working directory (``collection.tsv``, ``queries.train.tsv``, the
cross-encoder scores and the mined hard negatives; downloaded from the original's addresses when
missing and a network is there), trains with MultipleNegativesRankingLoss over the hard
negatives (10 epochs, 1 000 warm-up steps, texts cut at 300 tokens, seed 0), saves a checkpoint
every epoch and the model to ``output/train_bi-encoder-mnrl-<model>-margin_3.0-<timestamp>``, then
scores MS MARCO dev (``queries.dev.small.tsv``, ``qrels.dev.tsv``).

Where sgpt differs from the original, one warning names the flag that changes it: ``--pooling``
defaults to ``mean`` as in the original (the paper's models pass ``weightedmean``), ``--use_amp``
trains under bf16 autocast (the original: fp16 with a loss scaler), ``--pooling lasttoken`` keeps
the original's token-0 behaviour (``lasttoken_legacy``, SPEC 5 row 1). Combinations the original
failed on fail here with its message: ``--use_amp --gradcache``, ``--asym --gradcache``; and
``--asym`` with ``--specb`` / ``--speca`` (silently broken in the original, SPEC 1.4) is refused.

sgpt extensions (not in the original): ``--max_steps`` (stop after N optimizer steps) and
``--dry_run`` (print the resolved configuration).

Usage (from the repository root or any folder holding ``msmarco-data/``)::

    accelerate launch examples/training/ms_marco/train_bi-encoder_mnrl.py --model_name EleutherAI/gpt-neo-125m \\
        --train_batch_size 32 --freezenonbias --specb --pooling weightedmean --gradcache --chunksize 32
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from sgpt.legacy.common import DataFile, LegacyError, main_guard, run, timestamp, warn
from sgpt.legacy.training_nli_v2 import gradcache, legacy_pooling, logging_flags

SCRIPT = "train_bi-encoder_mnrl.py"
DATA_FOLDER = "msmarco-data"
_MSMARCO = "https://msmarco.blob.core.windows.net/msmarcoranking/"
_HARD_NEGATIVES = "https://huggingface.co/datasets/sentence-transformers/msmarco-hard-negatives/resolve/main/"
TRAIN_FILES = (
    DataFile(f"{DATA_FOLDER}/collection.tsv", _MSMARCO + "collection.tar.gz", f"{DATA_FOLDER}/collection.tar.gz"),
    DataFile(f"{DATA_FOLDER}/queries.train.tsv", _MSMARCO + "queries.tar.gz", f"{DATA_FOLDER}/queries.tar.gz"),
    DataFile(
        f"{DATA_FOLDER}/cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz",
        _HARD_NEGATIVES + "cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz",
    ),
    DataFile(f"{DATA_FOLDER}/msmarco-hard-negatives.jsonl.gz", _HARD_NEGATIVES + "msmarco-hard-negatives.jsonl.gz"),
)
DEV_FILES = (
    DataFile(
        f"{DATA_FOLDER}/queries.dev.small.tsv",
        _MSMARCO + "collectionandqueries.tar.gz",
        f"{DATA_FOLDER}/collectionandqueries.tar.gz",
    ),
    DataFile(f"{DATA_FOLDER}/qrels.dev.tsv", _MSMARCO + "qrels.dev.tsv"),
)


def build_parser(prog: str = SCRIPT) -> argparse.ArgumentParser:
    """The original's argparse (same flags, defaults and types), plus sgpt's two extensions."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--train_batch_size", default=64, type=int)
    p.add_argument("--eval_batch_size", default=64, type=int)
    p.add_argument("--max_seq_length", default=300, type=int)
    p.add_argument("--model_name", required=True)
    p.add_argument("--steps_per_epoch", default=None, type=int)
    p.add_argument("--epochs", default=10, type=int)
    p.add_argument("--pooling", default=None, help="mean (the original's default), weightedmean, ...")
    p.add_argument("--negs_to_use", default=None, help="systems whose negatives are used, comma-separated; None = all")
    p.add_argument("--warmup_steps", default=1000, type=int)
    p.add_argument("--lr", default=2e-5, type=float)
    p.add_argument("--num_negs_per_system", default=5, type=int)
    p.add_argument("--train_dataset_max_size", default=None, type=int)
    p.add_argument("--dev_corpus_max_size", default=-1, type=int)
    p.add_argument("--use_pre_trained_model", default=False, action="store_true")
    p.add_argument("--use_all_queries", default=False, action="store_true")
    p.add_argument("--ce_score_margin", default=3.0, type=float)
    p.add_argument("--model_save_path", default=None, type=str)
    p.add_argument("--seed", default=0, type=int)
    p.add_argument("--no_training", action="store_true")
    p.add_argument("--use_amp", action="store_true")
    p.add_argument("--add_special_token", action="store_true", help="[QRY]/[DOC] prefix tokens (not supported)")
    p.add_argument("--speca", action="store_true")
    p.add_argument("--specb", action="store_true")
    p.add_argument("--asym", action="store_true")
    p.add_argument("--wandb", action="store_true")
    p.add_argument("--wandbwatchlog", default="all", type=str)  # e.g. gradients for large models
    p.add_argument("--local_rank", type=int, default=-1, help="accepted and ignored (the launcher sets the rank)")
    p.add_argument("--freeze", action="store_true", help="Freeze transformer")
    p.add_argument("--freezenonbias", action="store_true", help="Freeze all except biases in transformer")
    p.add_argument("--unfreezewte", action="store_true", help="Unfreeze Word Token Embeddings")
    p.add_argument("--gradcache", action="store_true")
    p.add_argument("--chunksize", default=1, type=int, help="Chunks to use for gradcache")
    extensions = p.add_argument_group("sgpt extensions (not in the original)")
    extensions.add_argument("--max_steps", default=None, type=int, help="stop after N optimizer steps")
    extensions.add_argument("--dry_run", action="store_true", help="print the resolved configuration and stop")
    return p


def parse(argv: Sequence[str] | None = None, *, prog: str = SCRIPT) -> tuple[str, dict[str, Any]]:
    """The ``(task, flags)`` of a command line (warnings printed once, errors raised).

    Raises:
        LegacyError: flags the original failed on, or that sgpt does not support.
        SystemExit: argparse's own errors (unknown flag, missing ``--model_name``).
    """
    return "msmarco", to_flags(build_parser(prog).parse_args(argv), prog)


def to_flags(args: argparse.Namespace, script: str = SCRIPT) -> dict[str, Any]:
    """Map the original's arguments onto ``sgpt train msmarco`` dests (the recipes' ``flags:``).

    Raises:
        LegacyError: flags the original failed on, or that sgpt does not support.
    """
    _refuse(args)
    flags: dict[str, Any] = {
        "model": args.model_name,
        "output": args.model_save_path or default_save_path(args.model_name, args.ce_score_margin),
        "data": DATA_FOLDER,
        "pooling": _pooling(args, script),
        "max_seq_length": args.max_seq_length,
        "batch_size": args.train_batch_size,
        "eval_batch_size": args.eval_batch_size,
        "lr": args.lr,
        "epochs": args.epochs,
        "warmup_steps": args.warmup_steps,
        "seed": args.seed,
        "precision": _precision(args.use_amp, script),
        "ce_score_margin": args.ce_score_margin,
        "num_negs_per_system": args.num_negs_per_system,
        "eval_dev": True,  # the original always scores MS MARCO dev after training
    }
    if args.pooling is None and args.use_pre_trained_model:
        del flags["pooling"]  # a saved model keeps its own pooling, as in the original
    flags.update(_data_flags(args, script))
    flags.update(_model_flags(args, script))
    flags.update(gradcache(args.gradcache, args.chunksize, script))
    flags.update(logging_flags(args.wandb, args.wandbwatchlog, script))
    if args.steps_per_epoch is not None:
        warn(script, f"--steps_per_epoch {args.steps_per_epoch}: this run stops after epochs x that many steps")
        flags["max_steps"] = args.steps_per_epoch * args.epochs
    if args.max_steps is not None:
        flags["max_steps"] = args.max_steps
    return flags


def default_save_path(model_name: str, margin: float) -> str:
    """The original's ``output/train_bi-encoder-mnrl-<model, / -> ->-margin_<m:.1f>-<timestamp>``."""
    return f"output/train_bi-encoder-mnrl-{model_name.replace('/', '-')}-margin_{margin:.1f}-{timestamp()}"


def _refuse(args: argparse.Namespace) -> None:
    if args.use_amp and args.gradcache:  # the original's fit() raised this
        raise LegacyError(
            "Amp is not yet compatible with GradCache, see MNRLGradCache docstring (--use_amp --gradcache)"
        )
    if args.asym and args.gradcache:
        raise LegacyError(
            "--asym with --gradcache: the original's GradCache cannot split asymmetric inputs "
            "(\"Model input split not implemented for type <class 'list'>\")"
        )
    if args.asym and (args.specb or args.speca):
        raise LegacyError(
            "--asym with --specb/--speca: the original ignored the brackets for --asym models or set them "
            "wrongly (SPEC 1.4); train --asym without brackets, or brackets without --asym"
        )
    if args.add_special_token:
        raise LegacyError("--add_special_token ([QRY]/[DOC] prefix tokens) is not supported by sgpt; use --specb")
    if args.no_training:
        raise LegacyError(
            "--no_training (score a saved model on MS MARCO dev) is not supported here; score it with "
            "`sgpt eval beir --model PATH` on a BEIR-layout MS MARCO folder"
        )


def _pooling(args: argparse.Namespace, script: str) -> str:
    if args.pooling is None:
        if not args.use_pre_trained_model:
            warn(
                script,
                "--pooling defaults to mean, as in the original; the paper's models pass --pooling weightedmean",
            )
        return "mean"
    return legacy_pooling(args.pooling, script)


def _precision(use_amp: bool, script: str) -> str:
    if use_amp:
        warn(script, "--use_amp: sgpt trains under bf16 autocast (the original: fp16 with a loss scaler)")
        return "bf16"
    return "fp32"


def _data_flags(args: argparse.Namespace, script: str) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    if args.negs_to_use is not None:
        flags["negs_to_use"] = args.negs_to_use  # comma-separated, as `sgpt train msmarco --negs-to-use` takes it
    if args.use_all_queries:
        flags["use_all_queries"] = True
    if args.train_dataset_max_size is not None:
        flags["train_dataset_max_size"] = args.train_dataset_max_size
    if args.dev_corpus_max_size > 0:
        flags["dev_corpus_max_size"] = args.dev_corpus_max_size
    else:
        warn(
            script,
            "after training, MS MARCO dev is scored against the whole collection (8.8M passages), as in "
            "the original; --dev_corpus_max_size K keeps the relevant passages plus the first K",
        )
    return flags


def _model_flags(args: argparse.Namespace, script: str) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    if args.speca:
        if args.specb:
            warn(script, "--speca and --specb: --speca applies, as in the original")
        flags["special_tokens"] = "speca"
    elif args.specb:
        flags["special_tokens"] = "specb"
    if args.asym:
        flags["asym"] = True
    if args.freezenonbias:
        flags["freezenonbias"] = True
    elif args.freeze:
        flags["freeze"] = True
    if args.unfreezewte:
        if args.freeze or args.freezenonbias:
            flags["unfreezewte"] = True
        else:
            warn(script, "--unfreezewte without --freeze/--freezenonbias changes nothing (all weights train)")
    return flags


def _main(argv: Sequence[str] | None, prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    flags = to_flags(args, prog)
    return run(prog, "msmarco", flags, files=(*TRAIN_FILES, *DEV_FILES), dry_run=args.dry_run)


def main(argv: Sequence[str] | None = None, *, prog: str = SCRIPT) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    return main_guard(prog, lambda a: _main(a, prog), argv)


if __name__ == "__main__":
    raise SystemExit(main())
