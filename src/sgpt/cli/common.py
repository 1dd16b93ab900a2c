"""Flags shared by the ``sgpt`` commands, spelled one way everywhere.

Flags whose value lands in a dataclass of the library (:class:`~sgpt.model.spec.ModelSpec`,
:class:`~sgpt.train.config.TrainConfig`, a recipe's task) default to "not given" (``None``): the
dataclass fills in its own default, and the help text shows that default, read from the
dataclass, so the two can never disagree.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sgpt.model.pooling import POOLING_CHOICES
from sgpt.model.spec import SPECIAL_TOKEN_CHOICES, ModelSpec
from sgpt.utils.io import Inputs
from sgpt.utils.precision import PRECISION_METAVAR, canonical_precision

# ModelSpec fields that add_model_args provides (asym is a training-only flag)
FORMAT_FIELDS = ("special_tokens", "query_prompt", "document_prompt", "chat_template")
MODEL_FIELDS = ("pooling", "max_seq_length", "dtype", *FORMAT_FIELDS)


def default_of(cls: type, name: str, defaults: dict[str, Any] | None = None) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (``defaults`` first, e.g. a task's own)."""
    if defaults and name in defaults:
        return defaults[name]
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


def with_default(text: str, value: Any) -> str:
    """``text (default: value)``; tuples and lists are shown comma-separated, empty ones as none."""
    if isinstance(value, (tuple, list)):
        value = ", ".join(map(str, value)) or "none"
    if value is None:
        return text
    return f"{text} (default: {value})"


def given(args: argparse.Namespace, names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The flags among ``names`` that were given (not ``None``); lists become tuples."""
    values = {name: getattr(args, name, None) for name in names}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if v is not None}


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def add_output_arg(p: argparse.ArgumentParser, help: str, *, required: bool = True) -> None:
    """``--output PATH`` (``--out`` is accepted as a hidden alias, the spelling of earlier versions)
    and ``--overwrite`` (without it, an existing output is never replaced)."""
    group = p.add_mutually_exclusive_group(required=required)
    group.add_argument("--output", help=help)
    group.add_argument("--out", dest="output", help=argparse.SUPPRESS)
    p.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="replace an existing --output (default: refuse; inputs are never overwritten)",
    )


@contextlib.contextmanager
def writing_output(
    args: argparse.Namespace,
    *,
    folder: bool = False,
    inputs: Inputs = (),
    replaceable: Callable[[Path], bool] | None = None,
    kind: str = "sgpt output",
) -> Iterator[Path | None]:
    """Check ``args.output`` before any work (writable parent, not an input, not an existing
    output unless ``--overwrite``; see :func:`sgpt.utils.io.check_output_file` /
    :func:`~sgpt.utils.io.check_output_dir`) and hold its lock (:func:`sgpt.utils.lock.output_lock`:
    a second command writing it stops at once) for the ``with`` block. Yields ``None`` when no
    ``--output`` was given.

    Raises:
        ValueError: an unusable output (the flag and path named), or another process writes it.
    """
    from sgpt.utils.io import check_output_dir, check_output_file
    from sgpt.utils.lock import output_lock

    if args.output is None:
        yield None
        return
    overwrite = bool(getattr(args, "overwrite", False))
    if folder:
        check_output_dir(
            args.output, "--output", overwrite=overwrite, inputs=inputs, replaceable=replaceable, kind=kind
        )
    else:
        check_output_file(args.output, overwrite=overwrite, inputs=inputs)
    with output_lock(args.output):
        yield Path(args.output)


def add_k_arg(p: argparse.ArgumentParser, default: int, help: str) -> None:
    """``-k / --k N``: hits per query, an integer >= 1."""
    p.add_argument("-k", "--k", dest="k", type=positive_int, default=default, help=with_default(help, default))


def add_model_args(p: argparse.ArgumentParser, *, formatting: bool = True, pooling_default: str = "mean") -> None:
    """Flags of a model's loading choices (:class:`~sgpt.model.spec.ModelSpec`; unset = the saved
    model's own) plus ``--batch-size`` for commands that only embed. ``formatting``: also the
    query/document formatting flags, for commands that embed queries or documents."""
    add_spec_args(p, formatting=formatting, pooling_default=pooling_default)
    p.add_argument("--batch-size", type=positive_int, default=32, help="texts per forward pass (default: 32)")


def add_spec_args(
    p: argparse.ArgumentParser,
    *,
    formatting: bool = True,
    pooling_default: str = "mean",
    max_seq_length_default: int | None = None,
) -> None:
    """The :class:`~sgpt.model.spec.ModelSpec` flags (see :func:`model_spec`)."""
    p.add_argument(
        "--pooling",
        choices=POOLING_CHOICES,
        default=None,
        help=f"pooling mode (default: a saved bi-encoder's own, else {pooling_default})",
    )
    length = "a saved model's own" if max_seq_length_default is None else max_seq_length_default
    p.add_argument(
        "--max-seq-length",
        type=positive_int,
        default=None,
        help=f"tokens per text, brackets and special tokens included (default: {length})",
    )
    p.add_argument(
        "--dtype",
        type=inference_precision,
        default=None,
        metavar=PRECISION_METAVAR,
        help="weight dtype (default: fp32)",
    )
    if formatting:
        add_format_args(p)
    else:
        add_chat_template_arg(p)


def add_format_args(p: argparse.ArgumentParser) -> None:
    """Query/document formatting flags (``sgpt.model.formatting``); unset = the saved model's own."""
    p.add_argument(
        "--special-tokens",
        choices=SPECIAL_TOKEN_CHOICES,
        default=None,
        help="SGPT query/document brackets: specb = [query] {document} with existing tokens, speca = "
        "four new learned tokens, none = no brackets; default: a saved model's own choice, else none",
    )
    p.add_argument("--query-prompt", default=None, help="text put in front of every query, e.g. 'query: '")
    p.add_argument("--document-prompt", default=None, help="text put in front of every document")
    add_chat_template_arg(p)


def add_chat_template_arg(p: argparse.ArgumentParser) -> None:
    """``--chat-template / --no-chat-template`` (unset = the saved model's own choice)."""
    p.add_argument(
        "--chat-template",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="render every text as the user message of the tokenizer's chat template, as "
        "sentence-transformers 6 does for chat models such as SmolLM2-Instruct (prompts "
        "become the system message); --no-chat-template: raw text, as SGPT; default: a saved "
        "model's own choice, else on when the tokenizer has a chat template and no "
        "--special-tokens are given",
    )


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The :class:`~sgpt.model.spec.ModelSpec` of the model flags given."""
    return ModelSpec(**given(args, (*MODEL_FIELDS, "asym")))


def add_precision_arg(
    p: argparse.ArgumentParser,
    flag: str = "--precision",
    help: str = "bf16 = encode under bfloat16 autocast; fp32 = none; vectors come back float32 either way "
    "(default: fp32)",
) -> None:
    """The inference precision flag (one spelling set for every command, see :mod:`sgpt.utils.precision`)."""
    p.add_argument(flag, type=inference_precision, default=None, metavar=PRECISION_METAVAR, help=help)


def add_training_precision_arg(p: argparse.ArgumentParser, default: str) -> None:
    """The training ``--precision`` (``auto`` too)."""
    p.add_argument(
        "--precision",
        type=training_precision,
        default=None,
        metavar="{auto,fp32,bf16}",
        help=with_default(
            "bf16 = bfloat16 autocast (loss in float32); fp32 = none; auto = bf16 on a GPU that supports it, else fp32",
            default,
        ),
    )


def refuse_model_flags(args: argparse.Namespace, why: str) -> None:
    """Raise when model flags (--pooling, --max-seq-length, --dtype, ...) were given but no model uses them.

    Raises:
        ValueError: naming the flags.
    """
    flags = [f"--{name.replace('_', '-')}" for name in given(args, MODEL_FIELDS)]
    if flags:
        raise ValueError(f"{', '.join(flags)}: only used with a model ({why})")


def inference_precision(text: str) -> str:
    """argparse type of ``--dtype`` and an inference ``--precision``: ``fp32`` or ``bf16`` (or their aliases)."""
    try:
        return canonical_precision(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("precision: ")) from None


def training_precision(text: str) -> str:
    """argparse type of the training ``--precision``: ``auto``, ``fp32`` or ``bf16`` (or their aliases)."""
    try:
        return canonical_precision(text, allow_auto=True)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("precision: ")) from None
