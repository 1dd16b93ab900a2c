"""The ``sgpt`` command: argument parsing only; every command calls the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from sgpt.cli.encode import add_convert_gguf, add_encode
from sgpt.cli.evaluate import add_eval_beir, add_eval_sts
from sgpt.cli.evaluate_useb import add_eval_useb
from sgpt.cli.index import add_index, add_search
from sgpt.cli.mine import add_mine_negatives
from sgpt.cli.recipe import add_recipes, recipe_main
from sgpt.cli.train import add_train_nli, add_train_retrieval
from sgpt.cli.train_msmarco import add_train_msmarco
from sgpt.version import __version__


def build_parser() -> argparse.ArgumentParser:
    """The full ``sgpt`` argument parser."""
    parser = argparse.ArgumentParser(prog="sgpt", description="Train, evaluate and use SGPT-style bi-encoders.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    train_parser = sub.add_parser(
        "train",
        help="train a bi-encoder",
        description="sgpt train TASK [flags], or sgpt train --recipe NAME [--dry-run] [any TASK flag] "
        "to run a released model's recipe (`sgpt recipes` lists them; flags override the recipe)",
    )
    train_parser.add_argument("--recipe", metavar="NAME", help="run a recipe by name or YAML file (see `sgpt recipes`)")
    train_parser.add_argument(
        "--dry-run",
        action="store_true",
        help="with --recipe: print the resolved configuration, parameter counts and a peak-memory "
        "estimate, loading no weights",
    )
    train = train_parser.add_subparsers(dest="task", required=True)
    add_train_nli(train)
    add_train_retrieval(train)
    add_train_msmarco(train)
    evaluate = sub.add_parser("eval", help="evaluate a bi-encoder").add_subparsers(dest="task", required=True)
    add_eval_sts(evaluate)
    add_eval_beir(evaluate)
    add_eval_useb(evaluate)
    add_encode(sub)
    add_convert_gguf(sub)
    add_index(sub)
    add_search(sub)
    add_mine_negatives(sub)
    add_recipes(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sgpt`` console script; returns the exit status.

    User errors (bad data, bad flags, missing files) print one clear line and exit with 2. Ctrl-C
    prints ``sgpt: interrupted`` (plus the command's ``interrupt_hint``, e.g. how to resume) and
    exits with 130. ``-v`` shows the traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    lead = 0
    while lead < len(argv) and argv[lead] in ("-v", "--verbose"):
        lead += 1
    rest = argv[lead + 1 :]
    if argv[lead : lead + 1] == ["train"] and any(a == "--recipe" or a.startswith("--recipe=") for a in rest):
        # sgpt [-v] train --recipe NAME ...: the recipe says which task's flags follow
        _configure_logging(lead > 0)
        return _call(lambda: recipe_main(rest), lead > 0, None)
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    return _call(lambda: args.func(args), args.verbose, lambda: getattr(args, "interrupt_hint", None))


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("transformers", "accelerate", "urllib3", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # bm25s logs each index build at DEBUG (and sets its logger to DEBUG on import; sgpt.search.bm25 undoes that)
    logging.getLogger("bm25s").setLevel(logging.NOTSET if verbose else logging.WARNING)


def _call(run: Callable[[], int | None], verbose: bool, hint: Callable[[], str | None] | None) -> int:
    """Run a command: user errors print one line (exit 2), Ctrl-C ``sgpt: interrupted`` (exit 130)."""
    try:
        return int(run() or 0)
    except KeyboardInterrupt:
        if verbose:
            raise
        text = hint() if hint else None
        print(f"sgpt: interrupted{'; ' + text if text else ''}", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        if verbose:
            raise
        print(f"sgpt: error: {error_text(e)}", file=sys.stderr)
        return 2


def error_text(e: BaseException) -> str:
    """``str(e)``, without the ``[Errno N]`` prefix of an OS error: ``PATH: Permission denied``."""
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        return f"{e.filename}: {e.strerror}"
    return str(e)


if __name__ == "__main__":
    raise SystemExit(main())
