"""Recipe files: shape checks with file and line, the name as a contract, and resolution into the
same configuration as ``sgpt train <task>`` flags."""

from __future__ import annotations

import textwrap

import pytest

from sgpt.cli import build_parser, main
from sgpt.cli.recipe import recipe_run, resolve
from sgpt.cli.train import nli_config
from sgpt.recipes.registry import RecipeError, find_recipe, load_recipe, name_errors

RECIPE = """\
name: SGPT-125M-weightedmean-nli-bitfit
task: nli
description: a test recipe
model: EleutherAI/gpt-neo-125m
processes: 8
flags:
  pooling: weightedmean
  batch_size: 128
  lr: 32e-5
  freezenonbias: true
  gradcache: true
  chunksize: 128
  data_parallel: replicate
  train_data: [data/AllNLI.tsv.gz]
  dev_data: data/stsbenchmark.tsv.gz
  wandb: true
  wandb_watch: gradients
"""


def write(tmp_path, text: str, name: str = "r.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_recipe_resolves_to_the_configuration_of_the_same_command_line_flags(tmp_path):
    recipe = load_recipe(write(tmp_path, RECIPE))
    run = recipe_run(recipe, ["--output", "out"])
    argv = ["train", "nli", "--model", "EleutherAI/gpt-neo-125m", "--pooling", "weightedmean", "--batch-size", "128"]
    argv += ["--lr", "32e-5", "--freezenonbias", "--gradcache", "--chunksize", "128", "--data-parallel", "replicate"]
    argv += ["--train-data", "data/AllNLI.tsv.gz", "--dev-data", "data/stsbenchmark.tsv.gz", "--wandb"]
    argv += ["--wandb-watch", "gradients", "--output", "out"]
    direct = nli_config(build_parser().parse_args(argv))
    expected = direct.as_dict() | {"recipe": recipe.name, "processes": 8}
    assert run.as_dict() == expected
    assert run.train.lr == pytest.approx(3.2e-4) and run.train.chunk_size == 128
    assert run.train.log_with == ("wandb",) and run.train.data_parallel == "replicate"


def test_command_line_flags_override_the_recipe_and_a_list_is_replaced_not_extended(tmp_path):
    recipe = load_recipe(write(tmp_path, RECIPE))
    run = recipe_run(recipe, ["--model", "models/smollm2-135m", "--max-steps", "20", "--train-data", "a.jsonl"])
    assert run.model == "models/smollm2-135m" and run.train.max_steps == 20
    assert run.task.train_data == ("a.jsonl",)
    assert run.train.output == "output/SGPT-125M-weightedmean-nli-bitfit"  # the default output folder
    assert run.train.batch_size == 128  # untouched recipe values stay


def test_every_error_is_reported_at_once_with_file_line_and_the_nearest_key(tmp_path):
    bad = RECIPE.replace("lr: 32e-5", "lrr: 32e-5").replace("batch_size: 128", "batch_size: -3")
    bad = bad.replace("pooling: weightedmean", "pooling: weighted")
    path = write(tmp_path, bad)
    with pytest.raises(RecipeError) as e:
        recipe_run(load_recipe(path), [])
    lines = str(e.value).splitlines()
    assert f"{path}:7: --pooling must be one of mean, weightedmean" in "\n".join(lines)
    assert any(line.startswith(f"{path}:7: the name") and "promises pooling: 'weightedmean'" in line for line in lines)
    assert f"{path}:8: --batch-size: must be >= 1, got -3" in lines
    assert f"{path}:9: unknown flag 'lrr' of `sgpt train nli`; did you mean 'lr'?" in lines


def test_top_level_keys_are_checked_with_the_nearest_valid_one(tmp_path):
    path = write(tmp_path, RECIPE.replace("model:", "modle:").replace("processes: 8", "processes: eight"))
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    text = str(e.value)
    assert f"{path}:4: unknown key 'modle'; did you mean 'model'?" in text
    assert f"{path}: missing key 'model'" in text
    assert f"{path}:5: processes must be a int, got 'eight'" in text


def test_the_name_is_a_contract():
    from sgpt.recipes.registry import Recipe

    def recipe(name: str, **flags):
        return Recipe(name=name, task="nli", description="", model="m", processes=1, flags=flags)

    assert name_errors(recipe("SGPT-125M-weightedmean-nli-bitfit", pooling="weightedmean", freezenonbias=True)) == []
    assert len(name_errors(recipe("SGPT-125M-weightedmean-nli-bitfit", pooling="mean"))) == 2
    assert (
        name_errors(recipe("SGPT-125M-mean-nli-linearthenpool5", pooling="mean", addxlinear=5, linearthenpool=True))
        == []
    )
    assert (
        len(name_errors(recipe("SGPT-125M-mean-nli-linear5", pooling="mean", addxlinear=5, linearthenpool=True))) == 1
    )
    assert len(name_errors(recipe("SGPT-125M-lasttoken-msmarco-specb-bitfit", pooling="lasttoken"))) == 3


def test_unknown_recipe_names_the_nearest(capsys):
    with pytest.raises(RecipeError, match="no recipe named 'nope'"):
        find_recipe("nope")
    assert main(["train", "--recipe", "no-such-recipe", "--dry-run"]) == 2
    assert "sgpt: error: --recipe: no recipe named 'no-such-recipe'" in capsys.readouterr().err


def test_resolve_refuses_missing_required_flags():
    with pytest.raises(ValueError) as e:
        resolve("nli", {"pooling": "mean"})
    assert str(e.value).splitlines() == ["--model is required", "--output is required", "--train-data is required"]
