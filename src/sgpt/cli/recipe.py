"""``sgpt recipes`` and ``sgpt train --recipe NAME [flags] [--dry-run]``: the released models as runnable data.

A recipe's ``flags`` are ``sgpt train <task>`` options by argparse dest; :func:`resolve` turns any
such ``(task, flags)`` into the :class:`~sgpt.cli.resolved.Resolved` run that ``sgpt train <task>``
would build from the same flags (so a recipe, the command line and the original SGPT scripts in
:mod:`sgpt.legacy` meet in one configuration). Flags given on the command line override the recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from sgpt.cli.resolved import Resolved, run_resolved
from sgpt.recipes.registry import Recipe, RecipeError, find_recipe, name_errors, nearest, released_recipes

# flags that are not configuration: how to run, not what to train
_NOT_CONFIG = {"help", "func", "verbose"}


def task_parser(task: str) -> argparse.ArgumentParser:
    """The ``sgpt train <task>`` parser with nothing required (a recipe supplies what is missing).

    Raises:
        ValueError: an unknown task.
    """
    from sgpt.cli.train import add_train_nli, add_train_retrieval
    from sgpt.cli.train_msmarco import add_train_msmarco

    adders: dict[str, Callable] = {"nli": add_train_nli, "retrieval": add_train_retrieval, "msmarco": add_train_msmarco}
    if task not in adders:
        raise ValueError(f"unknown training task {task!r}; expected one of {', '.join(adders)}")
    root = argparse.ArgumentParser(prog="sgpt train")
    sub = root.add_subparsers()
    adders[task](sub)
    parser = sub.choices[task]
    parser.prog = f"sgpt train --recipe NAME ({task} flags)"
    for action in parser._actions:
        action.required = False
    for group in parser._mutually_exclusive_groups:
        group.required = False
    return parser


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in _NOT_CONFIG}


def _convert(action: argparse.Action, value: Any) -> Any:
    """A recipe value as the parser would have stored it.

    Raises:
        ValueError: a value of the wrong kind for the flag.
    """
    flag = action.option_strings[-1] if action.option_strings else action.dest
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)):
        if not isinstance(value, bool):
            raise ValueError(f"{flag} is a switch: use true or false, got {value!r}")
        if isinstance(action, argparse._StoreFalseAction):
            return value  # --no-checkpoints (dest checkpoints): the recipe states the setting itself
        return value
    if isinstance(action, argparse._AppendAction):
        values = value if isinstance(value, list) else [value]
        return [_typed(action, v, flag) for v in values]
    if isinstance(value, (list, dict)):
        raise ValueError(f"{flag} takes one value, got {value!r}")
    return _typed(action, value, flag)


def _typed(action: argparse.Action, value: Any, flag: str) -> Any:
    if action.type is not None and not isinstance(value, bool):
        kind = action.type
        try:
            value = kind(value if isinstance(value, str) or kind is float else str(value))  # type: ignore[operator]
        except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
            raise ValueError(f"{flag}: {e}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{flag} must be one of {', '.join(map(str, action.choices))}, got {value!r}")
    return value


def resolve(
    task: str,
    flags: dict[str, Any],
    *,
    where: Callable[[str], str] | None = None,
    recipe: str | None = None,
    processes: int | None = None,
) -> Resolved:
    """The run that ``sgpt train <task>`` builds from ``flags`` (argparse dests -> values).

    Args:
        task: ``nli``, ``retrieval`` or ``msmarco``.
        flags: option values by dest; ``model`` and ``output`` included.
        where: ``dest -> "file:line"`` for messages (a recipe's :meth:`Recipe.where`).
        recipe, processes: recorded in the result.

    Raises:
        ValueError: every problem at once, one per line: unknown flags (with the nearest valid
            one), values of the wrong kind, and settings that do not go together.
    """
    parser = task_parser(task)
    actions = _actions(parser)
    namespace = argparse.Namespace(**{dest: action.default for dest, action in actions.items()})
    errors = []

    def at(key: str) -> str:
        return f"{where(key)}: " if where else ""

    for key, value in flags.items():
        if key not in actions:
            hint = nearest(key, list(actions))
            errors.append(f"{at('flags.' + key)}unknown flag {key!r} of `sgpt train {task}`{hint}")
            continue
        try:
            setattr(namespace, key, _convert(actions[key], value))
        except ValueError as e:
            errors.append(f"{at('flags.' + key)}{e}")
    for key in ("model", "output", "data" if task == "msmarco" else "train_data"):
        if getattr(namespace, key, None) in (None, []):
            errors.append(f"{at('flags')}--{key.replace('_', '-')} is required")
    if not errors:
        try:
            run = _builder(task)(namespace)
        except ValueError as e:
            errors.extend(f"{at('flags')}{line}" for line in str(e).splitlines())
    if errors:
        raise ValueError("\n".join(errors))
    return Resolved(run.task_name, run.model, run.task, run.train, run.spec, run.heads, recipe, processes)


def _builder(task: str) -> Callable[[argparse.Namespace], Resolved]:
    from sgpt.cli import train, train_msmarco

    builders = {"nli": train.nli_config, "retrieval": train.retrieval_config, "msmarco": train_msmarco.msmarco_config}
    return builders[task]


def given_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, Any]:
    """The flags of ``argv`` that were given (their value differs from the parser's default).

    Raises:
        SystemExit: argparse's usage error (exit 2) for flags the parser does not know.
    """
    namespace = parser.parse_args(list(argv))
    return {
        dest: getattr(namespace, dest)
        for dest, action in _actions(parser).items()
        if getattr(namespace, dest, action.default) != action.default
    }


DEFAULT_OUTPUT = "output"  # a recipe run without --output writes output/<recipe name>, as SGPT's scripts wrote output/


def recipe_run(recipe: Recipe, argv: Sequence[str]) -> Resolved:
    """The run of ``recipe`` with the command-line flags ``argv`` on top.

    Raises:
        ValueError: every problem of the recipe and the flags at once, each with its file and line.
        SystemExit: a flag that ``sgpt train <task>`` does not have (argparse's message, exit 2).
    """
    overrides = given_flags(task_parser(recipe.task), argv)
    flags = {"model": recipe.model, **recipe.flags, **overrides}
    flags.setdefault("output", str(Path(DEFAULT_OUTPUT) / recipe.name))

    def where(key: str) -> str:
        name = key.removeprefix("flags.")
        return "command line" if name in overrides else recipe.where(key)

    errors = name_errors(recipe)
    try:
        run = resolve(recipe.task, flags, where=where, recipe=recipe.name, processes=recipe.processes)
    except ValueError as e:
        errors.extend(str(e).splitlines())
    if errors:
        raise RecipeError("\n".join(dict.fromkeys(errors)))
    return run


def recipe_main(argv: Sequence[str]) -> int:
    """``sgpt train --recipe NAME [--dry-run] [train flags]``; returns the exit status."""
    pre = argparse.ArgumentParser(prog="sgpt train --recipe", add_help=False)
    pre.add_argument("--recipe", required=True)
    pre.add_argument("--dry-run", action="store_true")
    known, rest = pre.parse_known_args(list(argv))
    recipe = find_recipe(known.recipe)
    if any(a in ("-h", "--help") for a in rest):
        task_parser(recipe.task).print_help()
        return 0
    run = recipe_run(recipe, rest)
    _warn_processes(recipe, run)
    if known.dry_run:
        print(dry_run_report(recipe, run))
        return 0
    return run_resolved(run)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _warn_processes(recipe: Recipe, run: Resolved) -> None:
    """Say when this run's global batch differs from the recipe's (fewer processes than it had)."""
    here = _world_size()
    if here == recipe.processes:
        return
    batch = run.train.batch_size
    print(
        f"sgpt: warning: {recipe.name} was trained with {recipe.processes} processes x {batch} = "
        f"{recipe.processes * batch} texts per batch; this run has {here} process(es), so {here * batch} "
        f"(launch with `accelerate launch --num_processes {recipe.processes} -m sgpt.cli train --recipe "
        f"{recipe.name}`, or on one device pass --batch-size {recipe.processes * batch} --gradcache for the same "
        "in-batch negatives)",
        file=sys.stderr,
    )


def dry_run_report(recipe: Recipe, run: Resolved) -> str:
    """The resolved configuration, the parameter counts and the memory estimate, as printed by ``--dry-run``."""
    import yaml

    lines = [f"recipe {recipe.name} ({recipe.path})", f"  {recipe.description}"]
    if recipe.published:
        lines.append(f"  published: {recipe.published}")
    lines += ["configuration:", yaml.safe_dump(run.as_dict(), sort_keys=False, width=110).rstrip()]
    lines += _data_report(run)
    lines += _size_report(recipe, run)
    return "\n".join(lines)


def _data_report(run: Resolved) -> list[str]:
    """One line per input of the run that is not on this machine (a run would stop there)."""
    from sgpt.recipes.common import task_inputs

    missing = [
        f"  {flag} {path}: not here (give the file or folder with {flag}; a hub name needs a network)"
        for flag, path in task_inputs(run.model, run.task)
        if path is not None and flag != "--model" and not Path(str(path)).exists()
    ]
    return ["inputs not found on this machine:", *missing] if missing else ["inputs: all found"]


def _size_report(recipe: Recipe, run: Resolved) -> list[str]:
    """Trainable parameters and peak memory per device, without loading any weight."""
    from sgpt.train import memory

    config, source = model_config(run.model, recipe.architecture if run.model == recipe.model else {})
    if config is None:
        return [f"parameters and memory: unknown ({source})"]
    cfg, heads = run.train, run.heads
    trainable, total = memory.count_parameters(
        config,
        freeze=cfg.freeze,
        freezenonbias=cfg.freezenonbias,
        unfreezewte=cfg.unfreezewte,
        heads=heads,
        asym=run.spec.asym,
    )
    seq_len = run.spec.max_seq_length or run.task.max_seq_length
    texts = 3 if run.task_name == "nli" else 2 + int(getattr(run.task, "negatives_per_query", 1) or 0)
    device: Literal["cpu", "cuda"] = "cuda" if _cuda() else "cpu"
    lines = [
        f"model figures: {source}",
        f"parameters: {trainable:,} trainable of {total:,} ({100.0 * trainable / max(total, 1):.4f}%)",
        f"peak memory per {device} device (estimate, batch {cfg.batch_size} x {texts} texts of {seq_len} tokens):",
    ]
    chunk = cfg.chunk_size if isinstance(cfg.chunk_size, int) else 32
    for gradcache in (False, True):
        estimate = memory.estimate_peak_memory(
            config,
            trainable=trainable,
            total=total,
            batch_size=cfg.batch_size,
            texts_per_example=texts,
            seq_len=seq_len,
            gradcache=gradcache,
            chunk_size=chunk,
            precision="bf16" if cfg.precision == "bf16" else "fp32",
            device=device,
        )
        label = f"with GradCache (chunk {chunk})" if gradcache else "without GradCache"
        chosen = " <- this run" if gradcache == cfg.gradcache else ""
        parts = ", ".join(f"{k} {_gib(v)}" for k, v in estimate.items() if k != "total")
        lines.append(f"  {label}: {_gib(estimate['total'])}{chosen} ({parts})")
    return lines


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def model_config(model: str, figures: dict[str, Any]) -> tuple[Any, str]:
    """``(transformers config, where it came from)`` without loading weights: a local folder's
    ``config.json`` (or a ``.gguf`` file's metadata), else the recipe's architecture figures;
    ``(None, why)`` when neither is there."""
    from transformers import AutoConfig

    path = Path(model)
    try:
        if (path / "config.json").is_file():
            return AutoConfig.from_pretrained(str(path)), f"{path / 'config.json'}"
        if path.is_file() and path.suffix == ".gguf":
            return AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name), f"{path} (GGUF metadata)"
    except (OSError, ValueError) as e:
        return None, f"cannot read the configuration of {model}: {e}"
    if figures:
        from sgpt.train.memory import config_from_figures

        return config_from_figures(figures), "the recipe's architecture figures (the model is not on disk)"
    return None, f"{model} is not on disk and the recipe has no architecture figures"


def add_recipes(sub) -> None:
    """Register ``sgpt recipes``."""
    p = sub.add_parser("recipes", help="list the training recipes of the released SGPT models")
    p.add_argument("--task", choices=["nli", "msmarco"], default=None, help="only this task's recipes")
    p.add_argument("--json", action="store_true", help="one JSON object per recipe instead of a table")
    p.set_defaults(func=_run_recipes)


def _run_recipes(args: argparse.Namespace) -> int:
    rows = []
    for recipe in released_recipes().values():
        if args.task and recipe.task != args.task:
            continue
        batch = recipe.flags.get("batch_size")
        global_batch = recipe.processes * int(batch) if batch is not None else None
        rows.append((recipe, global_batch))
    if args.json:
        for recipe, global_batch in rows:
            print(
                json.dumps(
                    {
                        "name": recipe.name,
                        "model": recipe.model,
                        "task": recipe.task,
                        "processes": recipe.processes,
                        "global_batch": global_batch,
                        "description": recipe.description,
                    }
                )
            )
        return 0
    width = max((len(r.name) for r, _ in rows), default=4)
    model_width = max((len(r.model) for r, _ in rows), default=5)
    print(f"{'name':<{width}}  {'model':<{model_width}}  {'task':<7}  {'batch':>5}  description")
    for recipe, global_batch in rows:
        shown = str(global_batch) if global_batch is not None else "?"
        name, model = f"{recipe.name:<{width}}", f"{recipe.model:<{model_width}}"
        print(f"{name}  {model}  {recipe.task:<7}  {shown:>5}  {recipe.description}")
    print(f"\n{len(rows)} recipes (batch = processes x per-process batch); run one: sgpt train --recipe NAME")
    return 0


__all__ = ["RecipeError", "add_recipes", "recipe_main", "recipe_run", "resolve", "task_parser"]
