"""The ``sgpt`` command: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse

from sgpt.model.pooling import POOLING_MODES


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by commands that load a model for inference."""
    p.add_argument("--pooling", choices=POOLING_MODES, default=None, help="pooling mode (default: the saved one, else mean)")
    p.add_argument("--max-seq-length", type=int, default=None, help="truncate inputs to this many tokens")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="weight dtype (default float32)")
    p.add_argument("--batch-size", type=int, default=32)


# sgpt.load arguments that add_model_args (or later additions to it) may provide
LOAD_ARGS = ("pooling", "max_seq_length", "dtype", "special_tokens", "query_prompt", "document_prompt")


def load_kwargs(args: argparse.Namespace) -> dict:
    """The ``sgpt.load`` keyword arguments given on the command line (flags left unset are omitted)."""
    return {name: getattr(args, name) for name in LOAD_ARGS if getattr(args, name, None) is not None}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after a flag's help unless the help already says its default or
    there is nothing to show (``None``, an off switch, or the default of a ``--no-...`` flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.default in (None, False, [], argparse.SUPPRESS)
                or any(s.startswith("--no-") for s in action.option_strings)):
            return text
        return super()._get_help_string(action)
