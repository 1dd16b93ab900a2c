"""``sgpt encode`` (texts -> .npy) and ``sgpt convert-gguf`` (.gguf -> safetensors folder)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sgpt.cli.common import add_model_args, add_output_arg, add_precision_arg, model_spec, writing_output


def add_encode(sub) -> None:
    p = sub.add_parser("encode", help="embed texts into a .npy file")
    p.add_argument("model", help="saved bi-encoder folder, backbone folder, hub id or .gguf file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", action="append", help="a text to embed (repeatable)")
    src.add_argument("--input", help="a text file (one text per line) or .jsonl file (see --field), optionally .gz")
    p.add_argument("--field", default="text", help="jsonl field holding the text (default: text)")
    add_output_arg(p, ".npy file to write, float32 [n, d]")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the vectors")
    p.add_argument(
        "--role",
        choices=["query", "document"],
        default=None,
        help="embed the texts as queries or documents (the model's brackets/prompts and tower); default: plain texts",
    )
    add_precision_arg(p)
    add_model_args(p)
    p.set_defaults(func=_run_encode)


def read_texts(path: str, field: str) -> list[str]:
    """Texts of a text file (one per line) or a JSON Lines file (``field`` of each object), plain
    or gzip; read by :func:`sgpt.data.rows.read_texts`, the path every command reads text files by.

    Raises:
        FileNotFoundError: no such file.
        ValueError: ``FILE:LINE: ...`` for bytes that are not UTF-8, invalid JSON, a JSON array
            file, a missing or non-string field, or corrupt gzip.
    """
    from sgpt.data.rows import read_texts as read_text_file

    return read_text_file(path, field)


def _run_encode(args: argparse.Namespace) -> int:
    import numpy as np

    from sgpt.model.loader import load
    from sgpt.utils.io import atomic_file

    with writing_output(args, inputs={"--input": args.input, "model": args.model}) as out:
        assert out is not None  # --output is required
        texts = args.text or read_texts(args.input, args.field)
        model = load(args.model, model_spec(args))
        emb = model.encode(
            texts,
            batch_size=args.batch_size,
            normalize=args.normalize,
            show_progress=True,
            precision=args.precision,
            role=args.role,
        )
        with atomic_file(out, "wb") as f:  # a crash never leaves a half-written .npy
            np.save(f, emb)
    print(f"wrote {emb.shape[0]} x {emb.shape[1]} float32 to {out}")
    return 0


def add_convert_gguf(sub) -> None:
    p = sub.add_parser("convert-gguf", help="write a .gguf checkpoint as a plain safetensors folder")
    p.add_argument("file", help=".gguf file")
    p.add_argument("output", help="folder to write (its parent must exist)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model folder (default: refuse)")
    p.set_defaults(func=_run_convert_gguf)


def _is_model_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def _run_convert_gguf(args: argparse.Namespace) -> int:
    from sgpt.model.backbone import convert_gguf

    with writing_output(
        args, folder=True, inputs={"file": args.file}, replaceable=_is_model_folder, kind="model folder"
    ):
        convert_gguf(args.file, args.output, overwrite=bool(args.overwrite))
    print(f"wrote {args.output}")
    return 0
