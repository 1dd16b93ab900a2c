"""SGPT's ``examples/training/nli/training_nli_v2.py`` command line, run by sgpt (SPEC 2.1).

Every flag of the original, with its default, is accepted and mapped onto ``sgpt train nli``
(the dest vocabulary of the released recipes); the run itself is sgpt's. Like the original it reads
``data/AllNLI.tsv.gz`` and ``data/stsbenchmark.tsv.gz`` from the working directory (downloaded
from sbert.net when missing and a network is there), trains one epoch with
MultipleNegativesRankingLoss (texts cut at 75 tokens, warm-up over 10 % of the steps, the STS-B
dev score every 10 % picks the model: cosine Spearman, where the original took the best of its four
Spearman values), saves to ``output/training_nli_v2_<model>-<timestamp>`` and scores STS-B test.

Where sgpt differs from the original, one warning names the flag that changes it: the run is
seeded (``--seed``, default 0; the original was not), several processes each walk the whole data
set as the original's did (``--data_parallel shard`` splits it instead), ``--pooling`` still
defaults to ``mean`` (the paper's models pass ``weightedmean``). The pad token and the
distributed settings are chosen from the tokenizer and the model, not from ``"gpt"`` in the name
(SPEC 5 row 17).

sgpt extensions (not in the original): ``--seed``, ``--data_parallel``, ``--max_steps`` (stop after
N optimizer steps, e.g. for a smoke test) and ``--dry_run`` (print the resolved configuration).

Usage (from the repository root or any folder holding ``data/``)::

    accelerate launch examples/training/nli/training_nli_v2.py --model_name EleutherAI/gpt-neo-125m --pooling mean
    python -m sgpt.legacy.training_nli_v2 --model_name EleutherAI/gpt-neo-125m --pooling weightedmean
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from sgpt.legacy.common import DataFile, LegacyError, ensure_files, main_guard, run, timestamp, warn

SCRIPT = "training_nli_v2.py"
MAX_SEQ_LENGTH = 75  # hard-coded in the original
NUM_EPOCHS = 1  # hard-coded in the original
NLI_FILE = DataFile("data/AllNLI.tsv.gz", "https://sbert.net/datasets/AllNLI.tsv.gz")
STS_FILE = DataFile("data/stsbenchmark.tsv.gz", "https://sbert.net/datasets/stsbenchmark.tsv.gz")


def build_parser(prog: str = SCRIPT) -> argparse.ArgumentParser:
    """The original's argparse (same flags, defaults and types), plus sgpt's four extensions."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_batch_size", default=64, type=int)  # = eval_batch_size
    # --modelname: the spelling of the seed README's SBERT-large-nli-v2 command
    parser.add_argument("--model_name", "--modelname", dest="model_name", required=True)
    parser.add_argument("--gradient_accumulation", default=1, type=int)
    parser.add_argument("--lr", default=2e-5, type=float)
    parser.add_argument("--pooling", default=None, type=str, help="mean (the original's default), weightedmean, ...")
    parser.add_argument("--freeze", action="store_true", help="Freeze transformer")
    parser.add_argument("--freezenonbias", action="store_true", help="Freeze all except biases in transformer")
    parser.add_argument("--addxlinear", default=0, type=int, help="Add x linear layers")
    parser.add_argument("--outfeats", default=0, type=int, help="Final out features - To be used with addxlinear 1")
    parser.add_argument("--linearthenpool", action="store_true", help="Move linear layers before pooling")
    parser.add_argument("--useact", action="store_true", help="Whether to use GELU activation on the Linear layers")
    parser.add_argument("--wandb", action="store_true")
    parser.add_argument("--wandbwatchlog", default="all", type=str)  # e.g. gradients for large models
    parser.add_argument("--learntmean", action="store_true")
    parser.add_argument("--no_training", action="store_true")
    parser.add_argument("--model_save_path", default=None, type=str)
    parser.add_argument("--gradcache", action="store_true")
    parser.add_argument("--chunksize", default=1, type=int, help="Chunks to use for gradcache")
    extensions = parser.add_argument_group("sgpt extensions (not in the original)")
    extensions.add_argument("--seed", default=None, type=int, help="seeds data construction and shuffling (0)")
    extensions.add_argument(
        "--data_parallel",
        choices=["replicate", "shard"],
        default=None,
        help="several processes: each walks the whole data set (replicate, the original's) or its slice (shard)",
    )
    extensions.add_argument("--max_steps", default=None, type=int, help="stop after N optimizer steps")
    extensions.add_argument("--dry_run", action="store_true", help="print the resolved configuration and stop")
    return parser


def parse(argv: Sequence[str] | None = None, *, prog: str = SCRIPT) -> tuple[str, dict[str, Any]]:
    """The ``(task, flags)`` of a command line (warnings printed once, errors raised).

    Raises:
        LegacyError: flags the original refused (``--outfeats`` without ``--addxlinear 1``).
        SystemExit: argparse's own errors (unknown flag, missing ``--model_name``).
    """
    return "nli", to_flags(build_parser(prog).parse_args(argv), prog)


def to_flags(args: argparse.Namespace, script: str = SCRIPT) -> dict[str, Any]:
    """Map the original's arguments onto ``sgpt train nli`` dests (the recipes' ``flags:``).

    Raises:
        LegacyError: flags the original refused.
    """
    if args.outfeats and args.addxlinear != 1:  # the original's check and message
        raise LegacyError("Outfeats currently only supported with 1 linear layer for rescaling")
    flags: dict[str, Any] = {
        "model": args.model_name,
        "output": args.model_save_path or default_save_path(args.model_name),
        "train_data": [NLI_FILE.path],
        "dev_data": STS_FILE.path,
        "pooling": _pooling(args.pooling, args.learntmean, script),
        "max_seq_length": MAX_SEQ_LENGTH,
        "batch_size": args.train_batch_size,
        "eval_batch_size": args.train_batch_size,  # the original scores STS-B with the train batch size
        "lr": args.lr,
        "epochs": NUM_EPOCHS,
        "warmup_ratio": 0.1,
        "seed": _seed(args.seed, script),
        "data_parallel": _data_parallel(args.data_parallel, script),
        "precision": "fp32",  # the original: use_amp=False
    }
    flags.update(freezing(args.freeze, args.freezenonbias))
    flags.update(heads(args))
    flags.update(gradcache(args.gradcache, args.chunksize, script))
    flags.update(logging_flags(args.wandb, args.wandbwatchlog, script))
    if args.gradient_accumulation != 1:
        warn(
            script,
            f"--gradient_accumulation {args.gradient_accumulation}: sgpt averages exactly that many micro-batches "
            "per step (the original stepped after the first one, SPEC 5 row 7)",
        )
        flags["grad_accum"] = args.gradient_accumulation
    if args.max_steps is not None:
        flags["max_steps"] = args.max_steps
    return flags


def default_save_path(model_name: str) -> str:
    """The original's ``output/training_nli_v2_<model, / -> ->-<timestamp>``."""
    return "output/training_nli_v2_" + model_name.replace("/", "-") + "-" + timestamp()


def _pooling(pooling: str | None, learntmean: bool, script: str) -> str:
    if pooling is None:
        if learntmean:  # the learned pooling replaces it
            return "mean"
        warn(script, "--pooling defaults to mean, as in the original; the paper's models pass --pooling weightedmean")
        return "mean"
    return legacy_pooling(pooling, script)


def legacy_pooling(pooling: str, script: str) -> str:
    """The original's pooling names; ``lasttoken`` keeps the original's behaviour (SPEC 5 row 1)."""
    if pooling == "lasttoken":
        warn(
            script,
            "--pooling lasttoken: the original pooled token 0 of rows without padding (SPEC 5 row 1); "
            "reproduced as lasttoken_legacy (`sgpt train --pooling lasttoken` is the corrected mode)",
        )
        return "lasttoken_legacy"
    return pooling


def _seed(seed: int | None, script: str) -> int:
    if seed is None:
        warn(script, "the original did not seed its triplets and shuffling; this run is seeded with --seed 0")
        return 0
    return seed


def _data_parallel(mode: str | None, script: str) -> str:
    if mode is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            warn(
                script,
                "each process walks the whole data set, as the original's did (an epoch has N / batch size "
                "steps of processes x batch size examples); --data_parallel shard gives each process its slice",
            )
        return "replicate"
    return mode


def freezing(freeze: bool, freezenonbias: bool) -> dict[str, bool]:
    """``--freeze`` / ``--freezenonbias``: both together are BitFit, as in the original (SPEC 1.6)."""
    if freezenonbias:
        return {"freezenonbias": True}
    return {"freeze": True} if freeze else {}


def heads(args: argparse.Namespace) -> dict[str, Any]:
    """The head flags that are on (SPEC 1.7); the original's 0 means none."""
    flags: dict[str, Any] = {}
    if args.addxlinear:
        flags["addxlinear"] = args.addxlinear
    for name in ("linearthenpool", "useact", "learntmean"):
        if getattr(args, name):
            flags[name] = True
    if args.outfeats:
        flags["outfeats"] = args.outfeats
    return flags


def gradcache(on: bool, chunksize: int, script: str) -> dict[str, Any]:
    """``--gradcache --chunksize N``; the original ignored ``--chunksize`` without ``--gradcache``."""
    if on:
        return {"gradcache": True, "chunksize": chunksize}
    if chunksize != 1:
        warn(script, f"--chunksize {chunksize} without --gradcache is ignored, as in the original")
    return {}


def logging_flags(wandb: bool, watch: str, script: str) -> dict[str, Any]:
    """``--wandb [--wandbwatchlog X]``: W&B run in project sgpt, your default entity."""
    if not wandb:
        return {}
    warn(script, "--wandb logs to project sgpt under your default W&B entity (the original's was muennighoff)")
    return {"wandb": True, "wandb_watch": watch}


def _main(argv: Sequence[str] | None, prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    flags = to_flags(args, prog)
    if args.no_training:
        return _evaluate_only(flags["output"], args.train_batch_size, args.model_save_path is None)
    return run(prog, "nli", flags, files=(NLI_FILE, STS_FILE), dry_run=args.dry_run)


def _evaluate_only(path: str, batch_size: int, default_path: bool) -> int:
    """``--no_training``: score the model saved at ``--model_save_path`` on STS-B test, as the original."""
    from pathlib import Path

    if default_path or not Path(path).exists():
        raise LegacyError(f"--no_training scores the model at --model_save_path, and there is none at {path}")
    ensure_files(SCRIPT, (STS_FILE,))
    from sgpt.model.loader import load
    from sgpt.recipes.train_nli import sts_evaluator

    scores = sts_evaluator(STS_FILE.path, "test", batch_size)(load(path))
    print(f"sts-test: spearman_cosine = {scores['spearman_cosine']:.4f}")
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = SCRIPT) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    return main_guard(prog, lambda a: _main(a, prog), argv)


if __name__ == "__main__":
    raise SystemExit(main())
