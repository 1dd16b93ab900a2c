"""The released SGPT models as data: one YAML recipe per model (SPEC 2.3), found, read and checked here.

A recipe file (``src/sgpt/recipes/released/<name>.yaml``, or any path a user gives) holds::

    name: SGPT-125M-weightedmean-nli-bitfit
    task: nli                       # the `sgpt train` sub-command: nli | msmarco | retrieval
    description: one line for `sgpt recipes`
    published: what was published with it (SPEC 4)
    model: EleutherAI/gpt-neo-125m
    processes: 8                    # processes (GPUs) it was trained with; global batch = processes x batch_size
    command: the original command line (seed README)
    differences: {flag: why the original command's configuration differs from this canonical one}
    flags: {sgpt train <task> option (argparse dest): value}
    architecture: {model_type and config.json figures, for --dry-run without the model}

This module reads and checks the file's own shape (keys, types, the name against the flags, SPEC 5
row 5); which ``flags`` keys exist is the CLI's business (:mod:`sgpt.cli.recipe`), which reports
both kinds of errors together with the file and line of each.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RELEASED = Path(__file__).parent / "released"
TASKS = ("nli", "msmarco", "retrieval")
_REQUIRED = {"name": str, "task": str, "description": str, "model": str, "processes": int, "flags": dict}
_OPTIONAL = {"published": str, "command": str, "differences": dict, "architecture": dict}

__all__ = ["RELEASED", "Recipe", "RecipeError", "find_recipe", "load_recipe", "nearest", "released_recipes"]


class RecipeError(ValueError):
    """A recipe that cannot be used; the message lists every problem, each as ``file:line: ...``."""


@dataclass(frozen=True)
class Recipe:
    """One training recipe.

    Attributes:
        name: the released model's name (unique among the released recipes).
        task: the ``sgpt train`` sub-command it runs.
        description: one line.
        model: hub id (or path) of the model it starts from.
        processes: processes it was trained with (the global batch is ``processes * batch_size``).
        flags: ``sgpt train <task>`` options by argparse dest.
        published: what was published with it.
        command: the original command line.
        differences: flag -> why the original command's configuration differs from this recipe.
        architecture: ``model_type`` and ``config.json`` figures of ``model``.
        path: the file it was read from.
        lines: line (1-based) of each top-level key and of each ``flags.<key>``, for messages.
    """

    name: str
    task: str
    description: str
    model: str
    processes: int
    flags: dict[str, Any]
    published: str = ""
    command: str = ""
    differences: dict[str, str] = field(default_factory=dict)
    architecture: dict[str, Any] = field(default_factory=dict)
    path: Path = Path()
    lines: dict[str, int] = field(default_factory=dict)

    def where(self, key: str) -> str:
        """``file:line`` of a top-level key or ``flags.<key>`` (the file alone when unknown)."""
        line = self.lines.get(key)
        return f"{self.path}:{line}" if line else str(self.path)


def nearest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """``"; did you mean X?"`` for the closest of ``choices`` (difflib ratio >= 0.6), else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _lines(path: Path, text: str) -> dict[str, int]:
    """1-based lines of the top-level keys and of ``flags.<key>`` / ``architecture.<key>``."""
    lines: dict[str, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key, value in root.value:
        lines[str(key.value)] = key.start_mark.line + 1
        if isinstance(value, yaml.MappingNode):
            for sub, _ in value.value:
                lines[f"{key.value}.{sub.value}"] = sub.start_mark.line + 1
    return lines


def load_recipe(path: str | Path) -> Recipe:
    """Read one recipe file and check its shape (its name against its flags: :func:`name_errors`;
    the flags themselves: ``sgpt.cli.recipe``).

    Raises:
        RecipeError: not YAML, not a mapping, a missing or unknown key (with the nearest valid
            one), a value of the wrong type, or a ``task`` that is not one of :data:`TASKS`.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise RecipeError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping of name, task, model, flags, ...")
    lines = _lines(path, text)
    errors = _shape_errors(path, data, lines)
    if errors:
        raise RecipeError("\n".join(errors))
    return Recipe(path=path, lines=lines, **{k: data[k] for k in (*_REQUIRED, *_OPTIONAL) if data.get(k) is not None})


def _shape_errors(path: Path, data: dict, lines: dict[str, int]) -> list[str]:
    def at(key: str) -> str:
        return f"{path}:{lines[key]}" if key in lines else str(path)

    errors = []
    known = [*_REQUIRED, *_OPTIONAL]
    for key in data:
        if key not in known:
            errors.append(f"{at(str(key))}: unknown key {key!r}{nearest(str(key), known)}")
    for key, kind in {**_REQUIRED, **_OPTIONAL}.items():
        if key not in data or data[key] is None:
            if key in _REQUIRED:
                errors.append(f"{path}: missing key {key!r}")
            continue
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            errors.append(f"{at(key)}: {key} must be a {kind.__name__}, got {value!r}")
    if isinstance(data.get("task"), str) and data["task"] not in TASKS:
        errors.append(f"{at('task')}: task must be one of {', '.join(TASKS)}, got {data['task']!r}")
    if isinstance(data.get("processes"), int) and data["processes"] < 1:
        errors.append(f"{at('processes')}: processes must be >= 1, got {data['processes']}")
    if isinstance(data.get("name"), str) and data["name"] != path.stem and path.parent == RELEASED:
        errors.append(f"{at('name')}: name {data['name']!r} differs from the file name {path.stem!r}")
    return errors


# released-name part -> (flag, value) it promises (SPEC 5 row 5: the name is the contract)
_NAME_RULES: tuple[tuple[str, str, Any], ...] = (
    (r"-weightedmean-", "pooling", "weightedmean"),
    (r"-mean-", "pooling", "mean"),
    (r"-lasttoken-", "pooling", "lasttoken_legacy"),
    (r"-bitfit", "freezenonbias", True),
    (r"-specb-", "special_tokens", "specb"),
    (r"-speca-", "special_tokens", "speca"),
    (r"-asym", "asym", True),
)


def name_errors(recipe: Recipe) -> list[str]:
    """Where the recipe's name promises a setting its flags do not have (``-weightedmean-`` ->
    ``pooling: weightedmean``, ``-bitfit`` -> ``freezenonbias``, ``-specb-``, ``-speca-``, ``-asym``,
    ``-lasttoken-`` -> ``lasttoken_legacy``, ``-linearN`` / ``-linearthenpoolN`` -> ``addxlinear: N``)."""
    errors = []
    name = recipe.name + "-"
    for pattern, flag, value in _NAME_RULES:
        if re.search(pattern, name) and recipe.flags.get(flag) != value:
            errors.append(
                f"{recipe.where('flags.' + flag if 'flags.' + flag in recipe.lines else 'flags')}: "
                f"the name {recipe.name!r} promises {flag}: {value!r}, the flags have {recipe.flags.get(flag)!r}"
            )
    m = re.search(r"-linear(thenpool)?(\d+)", recipe.name)
    if m:
        want = {"addxlinear": int(m.group(2)), "linearthenpool": bool(m.group(1)) or None}
        for flag, value in want.items():
            if recipe.flags.get(flag) != value:
                errors.append(
                    f"{recipe.where('flags')}: the name {recipe.name!r} promises {flag}: {value!r}, "
                    f"the flags have {recipe.flags.get(flag)!r}"
                )
    return errors


def released_recipes() -> dict[str, Recipe]:
    """Every released recipe by name, sorted by name.

    Raises:
        RecipeError: a released file whose shape or name does not check (every problem of every file).
    """
    recipes, errors = {}, []
    for path in sorted(RELEASED.glob("*.yaml")):
        try:
            recipe = load_recipe(path)
        except RecipeError as e:
            errors.append(str(e))
            continue
        errors.extend(name_errors(recipe))
        recipes[recipe.name] = recipe
    if errors:
        raise RecipeError("\n".join(errors))
    return dict(sorted(recipes.items(), key=lambda kv: kv[0].lower()))


def find_recipe(name: str) -> Recipe:
    """A released recipe by name (case-insensitive), or a recipe file by path (``*.yaml``).

    Raises:
        RecipeError: no recipe of that name (the nearest names are listed) or a file that does not check.
    """
    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        return load_recipe(name)
    recipes = released_recipes()
    by_lower = {k.lower(): v for k, v in recipes.items()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name, list(recipes), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise RecipeError(f"--recipe: no recipe named {name!r}{hint} (`sgpt recipes` lists them)")
