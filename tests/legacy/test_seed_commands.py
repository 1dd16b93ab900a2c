"""Every training command of the seed README (tests/legacy/seed_commands.md) against its released recipe.

Oracle: the seed README itself (copied verbatim into seed_commands.md). Each launch line, mapped by
``sgpt.legacy`` as its original script would run it, must give the configuration of the recipe whose
``command:`` is that line, except the keys the recipe lists under ``differences`` (where the README
command's configuration differs from the canonical recipe, e.g. an omitted ``--pooling weightedmean``),
the model path and output folder, and W&B logging (``--wandb --wandbwatchlog``: the recipes do not
log to W&B). The GPU count of the title line must be the recipe's ``processes``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sgpt.cli.recipe import resolve
from sgpt.legacy.commands import parse_command
from sgpt.recipes.registry import RELEASED, released_recipes

SEED = Path(__file__).with_name("seed_commands.md")
_TITLE = re.compile(r"^Training of `([^`]+)` on (\d+) [^\n]*\n\n```[^\n]*\n(.*?)```", re.S | re.M)
NOT_CONFIG = {"model", "output", "wandb", "wandb_watch"}  # where it starts and writes, and W&B logging
LOGGING = ("log_with", "wandb_watch")  # TrainConfig fields of --wandb / --wandbwatchlog
# backbone parameters (no LM head) of each architecture; oracle: the public checkpoints' counts
# (BERT with its pooler; GPT-J 6B = 6,050,882,784 with its LM head = this + 4096 x 50400 + 50400)
KNOWN_PARAMETERS = {
    "bert-base-uncased": 109_482_240,
    "bert-large-uncased": 335_141_888,
    "EleutherAI/gpt-neo-125m": 125_198_592,
    "EleutherAI/gpt-neo-1.3B": 1_315_575_808,
    "EleutherAI/gpt-neo-2.7B": 2_651_307_520,
    "EleutherAI/gpt-j-6B": 5_844_393_984,
    "bigscience/bloom-7b1": 7_069_016_064,
}


def seed_commands() -> list[tuple[str, int, str]]:
    """``(title name, GPUs, launch line)`` of every command in seed_commands.md, in file order."""
    entries = []
    for m in _TITLE.finditer(SEED.read_text(encoding="utf-8")):
        launch = [line.strip() for line in m.group(3).splitlines() if ".py" in line]
        assert len(launch) == 1, m.group(0)
        entries.append((m.group(1), int(m.group(2)), launch[0]))
    return entries


SEEDS = seed_commands()
RECIPES = released_recipes()
BY_COMMAND = {r.command: r for r in RECIPES.values()}


def test_seed_file_and_recipes_match_one_to_one():
    assert len(SEEDS) == 38  # 36 README commands + the two slurm scripts
    assert len(RECIPES) == len(list(RELEASED.glob("*.yaml"))) == 38  # every file parses (and checks)
    assert len(BY_COMMAND) == len(RECIPES)  # no two recipes claim one command
    assert sorted(BY_COMMAND) == sorted(line for _, _, line in SEEDS)


@pytest.mark.parametrize(("title", "gpus", "line"), SEEDS, ids=[BY_COMMAND[line].name for _, _, line in SEEDS])
def test_seed_command_maps_to_its_recipe(title, gpus, line):
    recipe = BY_COMMAND[line]
    assert recipe.processes == gpus
    assert recipe.name == title or recipe.name.startswith(title + "-")  # earlier runs get a suffix
    task, flags = parse_command(line)
    assert task == recipe.task
    differing = {k for k in {*flags, *recipe.flags} - NOT_CONFIG if flags.get(k) != recipe.flags.get(k)}
    listed = set(recipe.differences) - {"model"}
    assert differing == listed, f"{recipe.name}: differs in {sorted(differing)}, lists {sorted(listed)}"
    assert (flags["model"] != recipe.model) == ("model" in recipe.differences)


@pytest.mark.parametrize("line", [line for _, _, line in SEEDS], ids=[BY_COMMAND[line].name for _, _, line in SEEDS])
def test_seed_command_resolves_like_its_recipe(line):
    recipe = BY_COMMAND[line]
    if recipe.task == "msmarco":
        pytest.importorskip("sgpt.cli.train_msmarco")
        from sgpt.cli import train_msmarco

        if not hasattr(train_msmarco, "msmarco_config"):
            pytest.skip("`sgpt train msmarco` cannot be resolved yet")
    task, flags = parse_command(line)
    flags = {**flags, "model": recipe.model, "output": "out"}
    flags.update({k: recipe.flags[k] for k in recipe.differences if k in recipe.flags})
    from_seed = resolve(task, flags).as_dict()
    from_recipe = resolve(recipe.task, {"model": recipe.model, "output": "out", **recipe.flags}).as_dict()
    for config in (from_seed, from_recipe):
        for key in LOGGING:
            config["train"].pop(key)
    assert from_seed == from_recipe


@pytest.mark.parametrize("line", [line for _, _, line in SEEDS], ids=[BY_COMMAND[line].name for _, _, line in SEEDS])
def test_seed_and_recipe_flags_are_sgpt_train_options(line):
    """Every key is an option (argparse dest) of `sgpt train <task>` and its value converts (this
    holds before a task's resolver exists, e.g. msmarco while it is being built)."""
    from sgpt.cli.recipe import _actions, _convert, task_parser

    recipe = BY_COMMAND[line]
    actions = _actions(task_parser(recipe.task))
    for flags in (parse_command(line)[1], recipe.flags):
        for key, value in flags.items():
            assert key in actions, f"{recipe.name}: {key}"
            _convert(actions[key], value)


def test_recipe_headers():
    for recipe in RECIPES.values():
        lines = recipe.path.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith(f"# {recipe.name}: "), recipe.path
        reproduce = f"accelerate launch --num_processes {recipe.processes} -m sgpt.cli train --recipe {recipe.name}"
        assert lines[1] == f"# Reproduce: {reproduce}", recipe.path
        assert lines[2] == f"# Original: {recipe.command}", recipe.path
        assert recipe.description and recipe.published and recipe.architecture


def test_architecture_figures_build_the_known_model():
    torch = pytest.importorskip("torch")
    from transformers import AutoConfig, AutoModel

    figures = {r.model: r.architecture for r in RECIPES.values()}
    assert set(figures) == set(KNOWN_PARAMETERS)
    for recipe in RECIPES.values():
        assert recipe.architecture == figures[recipe.model], recipe.name  # one set of figures per model
    for model, arch in figures.items():
        rest = dict(arch)
        config = AutoConfig.for_model(rest.pop("model_type"), **rest)
        with torch.device("meta"):
            backbone = AutoModel.from_config(config)
        assert sum(p.numel() for p in backbone.parameters()) == KNOWN_PARAMETERS[model], model
