"""The ``sgpt`` command: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from sgpt.model.pooling import POOLING_MODES


def _model_args(p: argparse.ArgumentParser, pooling_default: str | None = None) -> None:
    p.add_argument("--pooling", choices=POOLING_MODES, default=pooling_default,
                   help="pooling mode (default: the saved one, else mean)" if pooling_default is None else None)
    p.add_argument("--max-seq-length", type=int, default=None, help="truncate inputs to this many tokens")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="weight dtype (default float32)")
    p.add_argument("--batch-size", type=int, default=32)


def _add_train_nli(sub) -> None:
    p = sub.add_parser("nli", help="train on NLI triplets with MultipleNegativesRankingLoss, score on STS",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="hub id, folder, .gguf file or saved bi-encoder")
    p.add_argument("--pooling", choices=POOLING_MODES, default="weightedmean")
    p.add_argument("--train-data", action="append", required=True,
                   help="NLI file/folder (SNLI/MultiNLI jsonl, AllNLI.tsv.gz, SentEval, SICK), triplet "
                        "jsonl/csv/tsv or hub dataset name; repeatable")
    p.add_argument("--dev-data", help="STS set (e.g. STS-B folder) whose dev split picks the best checkpoint")
    p.add_argument("--test-data", help="STS set scored on its test split after training (default: --dev-data)")
    p.add_argument("--eval-before", action="store_true", help="also score the untrained model on the test split")
    p.add_argument("--output", required=True, help="folder for the trained model and logs")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps (default: one epoch)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--max-seq-length", type=int, default=75)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--eval-steps", type=int, default=None, help="dev evaluation interval (default: 10%% of steps)")
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--micro-batch-size", type=int, default=32,
                   help="texts per forward pass inside a batch, grouped by length (speed only)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16 = autocast")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="weight dtype")
    p.add_argument("--freeze", action="store_true", help="freeze the transformer (only added heads train)")
    p.add_argument("--freezenonbias", action="store_true", help="BitFit: train only bias tensors")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip malformed data rows (the count is reported)")
    p.add_argument("--log-with", action="append", default=[], choices=["wandb", "tensorboard"],
                   help="experiment tracker (repeatable)")
    p.set_defaults(func=_run_train_nli)


def _run_train_nli(args: argparse.Namespace) -> int:
    from sgpt.train.config import TrainConfig
    from sgpt.train.nli import train_nli

    cfg = TrainConfig(
        output=args.output, batch_size=args.batch_size, lr=args.lr, epochs=args.epochs, max_steps=args.max_steps,
        warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay, grad_accum=args.grad_accum, seed=args.seed,
        precision=args.precision, micro_batch_size=args.micro_batch_size, eval_steps=args.eval_steps,
        eval_batch_size=args.eval_batch_size, log_with=tuple(args.log_with),
    )
    results = train_nli(
        args.model, args.train_data, cfg, pooling=args.pooling, max_seq_length=args.max_seq_length,
        dev_data=args.dev_data, test_data=args.test_data, eval_before=args.eval_before, freeze=args.freeze,
        freezenonbias=args.freezenonbias, skip_bad_rows=args.skip_bad_rows, dtype=args.dtype,
    )
    for key in ("test_before", "test_after"):
        if results[key]:
            print(f"{key}: spearman_cosine = {results[key]['spearman_cosine']:.4f}")
    print(f"model saved to {args.output}")
    return 0


def _add_eval_sts(sub) -> None:
    p = sub.add_parser("sts", help="Spearman/Pearson of cosine, dot, Euclidean, Manhattan on an STS set")
    p.add_argument("model", help="saved bi-encoder folder, backbone folder, hub id or .gguf file")
    p.add_argument("--data", required=True, help="STS-B folder/file, STS12-16 year folder or SICK file")
    p.add_argument("--split", default="test")
    p.add_argument("--output", help="write the scores as JSON here")
    _model_args(p)
    p.set_defaults(func=_run_eval_sts)


def _run_eval_sts(args: argparse.Namespace) -> int:
    import sgpt
    from sgpt.data import read_sts
    from sgpt.evaluation.sts import evaluate_sts
    from sgpt.utils.io import write_json

    data = read_sts(args.data, split=args.split)
    model = sgpt.load(args.model, pooling=args.pooling, max_seq_length=args.max_seq_length, dtype=args.dtype)
    scores = evaluate_sts(model, data.sentences1, data.sentences2, data.scores, batch_size=args.batch_size,
                          show_progress=True)
    result = {"model": str(args.model), "data": str(args.data), "split": args.split, **scores}
    print(json.dumps(result, indent=2))
    if args.output:
        write_json(args.output, result)
    return 0


def _add_encode(sub) -> None:
    p = sub.add_parser("encode", help="embed texts into a .npy file")
    p.add_argument("model")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", action="append", help="a text to embed (repeatable)")
    src.add_argument("--input", help="a .txt file (one text per line) or .jsonl file (see --field)")
    p.add_argument("--field", default="text", help="jsonl field holding the text")
    p.add_argument("--output", required=True, help=".npy file to write, float32 [n, d]")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the vectors")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default=None, help="bfloat16 = autocast")
    _model_args(p)
    p.set_defaults(func=_run_encode)


def read_texts(path: str, field: str) -> list[str]:
    """Texts of a .txt file (one per line) or a .jsonl file (``field`` of each object).

    Raises:
        ValueError: invalid JSON or a missing/non-string field, naming file and line.
    """
    texts = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not path.endswith(".jsonl"):
                texts.append(line.rstrip("\n"))
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)[field]
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from e
            except (KeyError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: field {field!r} missing") from e
            if not isinstance(value, str):
                raise ValueError(f"{path}:{lineno}: field {field!r} is not a string")
            texts.append(value)
    return texts


def _run_encode(args: argparse.Namespace) -> int:
    import numpy as np

    import sgpt

    texts = args.text or read_texts(args.input, args.field)
    model = sgpt.load(args.model, pooling=args.pooling, max_seq_length=args.max_seq_length, dtype=args.dtype)
    emb = model.encode(texts, batch_size=args.batch_size, normalize=args.normalize, show_progress=True,
                       precision=args.precision)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.npy")
    np.save(tmp, emb)
    tmp.replace(out)
    print(f"wrote {emb.shape[0]} x {emb.shape[1]} float32 to {out}")
    return 0


def _add_convert_gguf(sub) -> None:
    p = sub.add_parser("convert-gguf", help="write a .gguf checkpoint as a plain safetensors folder")
    p.add_argument("file", help=".gguf file")
    p.add_argument("out", help="folder to write")
    p.set_defaults(func=_run_convert_gguf)


def _run_convert_gguf(args: argparse.Namespace) -> int:
    from sgpt.model.backbone import convert_gguf

    convert_gguf(args.file, args.out)
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full ``sgpt`` argument parser."""
    parser = argparse.ArgumentParser(prog="sgpt", description="Train, evaluate and use SGPT-style bi-encoders.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a bi-encoder").add_subparsers(dest="task", required=True)
    _add_train_nli(train)
    evaluate = sub.add_parser("eval", help="evaluate a bi-encoder").add_subparsers(dest="task", required=True)
    _add_eval_sts(evaluate)
    _add_encode(sub)
    _add_convert_gguf(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sgpt`` console script; returns the exit status.

    User errors (bad data, bad flags, missing files) print one clear line and exit with 2.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "accelerate", "urllib3", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as e:
        if args.verbose:
            raise
        print(f"sgpt: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
