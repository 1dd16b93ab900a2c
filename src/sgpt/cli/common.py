"""The ``sgpt`` command: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse

from sgpt.model.pooling import POOLING_MODES


def add_model_args(p: argparse.ArgumentParser, *, formatting: bool = True) -> None:
    """Flags shared by commands that load a model for inference (``formatting``: also the
    query/document formatting flags, for commands that embed queries or documents)."""
    p.add_argument(
        "--pooling", choices=POOLING_MODES, default=None, help="pooling mode (default: the saved one, else mean)"
    )
    p.add_argument("--max-seq-length", type=int, default=None, help="truncate inputs to this many tokens")
    p.add_argument(
        "--dtype",
        type=precision_name,
        default=None,
        metavar="{float32,bfloat16}",
        help="weight dtype (float32 = fp32, bfloat16 = bf16; default float32)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    if formatting:
        add_format_args(p)
    else:
        add_chat_template_arg(p)


def add_format_args(p: argparse.ArgumentParser) -> None:
    """Query/document formatting flags (``sgpt.model.formatting``); unset = the saved model's own."""
    p.add_argument(
        "--special-tokens",
        choices=["specb", "speca", "none"],
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


PRECISIONS = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def precision_name(text: str) -> str:
    """An inference ``--precision``: ``float32`` or ``bfloat16``, also spelled ``fp32`` / ``bf16``."""
    if text not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"expected float32 (fp32) or bfloat16 (bf16), got {text!r}")
    return PRECISIONS[text]


def train_precision(text: str) -> str:
    """The training ``--precision``: ``auto``, ``fp32`` or ``bf16`` (``float32`` / ``bfloat16`` accepted)."""
    if text == "auto":
        return text
    return {"float32": "fp32", "bfloat16": "bf16"}[precision_name(text)]


def add_precision_arg(
    p: argparse.ArgumentParser,
    flag: str = "--precision",
    help: str = "bfloat16 (bf16) = encode under autocast; float32 (fp32) = none; vectors come back float32 either way",
) -> None:
    """The inference precision flag (one spelling set for every command)."""
    p.add_argument(flag, type=precision_name, default=None, metavar="{float32,bfloat16}", help=help)


FORMAT_ARGS = ("special_tokens", "query_prompt", "document_prompt", "chat_template")
# sgpt.load arguments that add_model_args may provide
LOAD_ARGS = ("pooling", "max_seq_length", "dtype", *FORMAT_ARGS)


def load_kwargs(args: argparse.Namespace, names: tuple[str, ...] = LOAD_ARGS) -> dict:
    """The ``sgpt.load`` keyword arguments given on the command line (flags left unset are
    omitted; ``--special-tokens none`` is an explicit ``None``)."""
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if given.get("special_tokens") == "none":
        given["special_tokens"] = None
    return given


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after a flag's help unless the help already says its default or
    there is nothing to show (``None``, an off switch, or the default of a ``--no-...`` flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or action.default in (None, False, [], argparse.SUPPRESS)
            or any(s.startswith("--no-") for s in action.option_strings)
        ):
            return text
        return super()._get_help_string(action)
