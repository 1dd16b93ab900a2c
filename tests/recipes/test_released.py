"""The released recipes (SPEC 2.3): every one checks, resolves and dry-runs without weights; a few
run for real on the offline models."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import need_data

from sgpt.cli import main
from sgpt.cli.recipe import recipe_run
from sgpt.recipes.registry import name_errors, released_recipes

RECIPES = released_recipes()


def test_there_is_a_recipe_for_every_released_model_of_spec_2_3():
    names = set(RECIPES)
    assert len(names) >= 35
    for name in (
        "SBERT-base-nli-v2",
        "SBERT-large-nli-v2",
        "SGPT-125M-mean-nli-linear5",
        "SGPT-125M-mean-nli-linearthenpool5",
        "SGPT-1.3B-weightedmean-nli-bitfit-bs48",
        "SGPT-5.8B-weightedmean-nli-bitfit",
        "SBERT-base-msmarco-bitfit-asym",
        "SGPT-125M-lasttoken-msmarco-specb-bitfit",
        "SGPT-125M-weightedmean-msmarco-speca-bitfit",
        "SGPT-5.8B-weightedmean-msmarco-specb-bitfit-bs16",
        "SGPT-5.8B-weightedmean-msmarco-specb-bitfit",
        "sgpt-bloom-7b1-msmarco",
    ):
        assert name in names


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_checks_and_resolves(name):
    recipe = RECIPES[name]
    assert name_errors(recipe) == []
    run = recipe_run(recipe, [])
    assert run.recipe == name and run.processes == recipe.processes
    assert run.model == recipe.model and run.train.output == f"output/{name}"


def _dry_run(name: str, capsys, *extra: str) -> str:
    assert main(["train", "--recipe", name, "--dry-run", *extra]) == 0
    return capsys.readouterr().out


def _trainable(out: str) -> tuple[int, int]:
    m = re.search(r"parameters: ([\d,]+) trainable of ([\d,]+)", out)
    assert m, out
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


# hand-counted bias tensors (SPEC 1.6): GPT-J has none in attention, GPT-Neo one (out_proj)
@pytest.mark.parametrize(
    ("name", "trainable"),
    [
        # 28 layers x (ln_1 4096 + fc_in 16384 + fc_out 4096) + ln_f 4096
        ("SGPT-5.8B-weightedmean-nli-bitfit", 28 * (4096 + 16384 + 4096) + 4096),
        # 12 layers x (ln_1, out_proj, ln_2, c_proj: 768 each + c_fc 3072) + ln_f 768
        ("SGPT-125M-weightedmean-nli-bitfit", 12 * (4 * 768 + 3072) + 768),
        # frozen transformer, 5 dense 768x768 layers with bias (no --freezenonbias)
        ("SGPT-125M-mean-nli-linearthenpool5", 5 * (768 * 768 + 768)),
    ],
)
def test_dry_run_counts_the_trainable_parameters_without_weights(name, trainable, capsys):
    out = _dry_run(name, capsys)
    assert _trainable(out)[0] == trainable
    assert "without GradCache:" in out and "with GradCache" in out
    assert "the recipe's architecture figures" in out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_dry_runs(name, capsys):
    out = _dry_run(name, capsys)
    trainable, total = _trainable(out)
    assert 0 < trainable <= total
    assert "configuration:" in out and f"recipe {name}" in out


def test_dry_run_reads_a_local_models_config(minilm_path, capsys):
    out = _dry_run("SGPT-125M-weightedmean-nli-bitfit", capsys, "--model", str(minilm_path))
    assert _trainable(out) == (26_112, 22_713_216)  # MiniLM's biases of its 22.7M parameters
    assert str(minilm_path / "config.json") in out


def test_sgpt_recipes_lists_name_model_task_and_global_batch(capsys):
    assert main(["recipes", "--json"]) == 0
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == set(RECIPES)
    assert rows["SGPT-5.8B-weightedmean-nli-bitfit"]["global_batch"] == 1024  # 8 x 128, GradCache
    assert rows["SGPT-5.8B-weightedmean-msmarco-specb-bitfit"]["global_batch"] == 256  # 8 x 32
    assert rows["SGPT-1.3B-weightedmean-nli-bitfit-bs48"]["global_batch"] == 48  # 8 x 6
    assert rows["SGPT-125M-weightedmean-msmarco-specb-bitfit"]["model"] == "EleutherAI/gpt-neo-125m"
    assert main(["recipes"]) == 0
    table = capsys.readouterr().out
    assert "SGPT-5.8B-weightedmean-nli-bitfit" in table and f"{len(RECIPES)} recipes" in table


def small_stsb(tmp_path):
    """The first 40 pairs of STS-B dev and test (real text, quick to score) in an STS-B folder."""
    import gzip

    stsb = need_data("stsb")
    folder = tmp_path / "stsb-small"
    folder.mkdir()
    for split in ("dev", "test"):
        with gzip.open(stsb / f"sts-{split}.csv.gz", "rt", encoding="utf-8") as f:
            lines = [next(f) for _ in range(40)]
        with gzip.open(folder / f"sts-{split}.csv.gz", "wt", encoding="utf-8") as f:
            f.writelines(lines)
    return folder


def test_a_bitfit_recipe_trains_minilm_for_real(minilm_path, tmp_path, capsys):
    """The paper's 125M BitFit recipe (GradCache, lr 32e-5) on MiniLM, 3 steps of real SNLI
    triplets: only bias tensors change, and the STS-B test score is printed."""
    from safetensors.numpy import load_file

    snli, stsb = need_data("snli-senteval"), small_stsb(tmp_path)
    out = tmp_path / "run"
    argv = ["train", "--recipe", "SGPT-125M-weightedmean-nli-bitfit", "--model", str(minilm_path)]
    argv += ["--train-data", str(snli), "--dev-data", str(stsb), "--max-steps", "3", "--batch-size", "8"]
    argv += ["--chunksize", "4", "--max-seq-length", "32", "--output", str(out), "--no-checkpoints"]
    argv += ["--eval-steps", "3"]  # dev-scored once, at the end (step 1 runs at lr 0: the warm-up's start)
    assert main(argv) == 0
    assert "test_after: spearman_cosine = 0." in capsys.readouterr().out
    before, after = load_file(str(minilm_path / "model.safetensors")), load_file(str(out / "model.safetensors"))
    changed = {k for k in after if not np.array_equal(before[k], after[k])}
    assert changed and all("bias" in k for k in changed)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["config"]["lr"] == pytest.approx(3.2e-4) and summary["config"]["gradcache"] is True
    assert summary["config"]["chunk_size"] == 4 and summary["steps"] == 3


def test_a_linearthenpool5_recipe_loads_in_stock_sentence_transformers(minilm_path, tmp_path):
    """SGPT-125M-mean-nli-linearthenpool5 (frozen transformer, 5 GELU dense layers on every token
    before pooling) for 2 steps on MiniLM and real SNLI triplets: stock sentence-transformers
    loads the folder and gives sgpt's vectors."""
    from sentence_transformers import SentenceTransformer

    import sgpt

    snli, stsb = need_data("snli-senteval"), small_stsb(tmp_path)
    out = tmp_path / "run"
    argv = ["train", "--recipe", "SGPT-125M-mean-nli-linearthenpool5", "--model", str(minilm_path)]
    argv += ["--train-data", str(snli), "--dev-data", str(stsb), "--max-steps", "2", "--batch-size", "8"]
    argv += ["--max-seq-length", "32", "--output", str(out), "--no-checkpoints"]
    assert main(argv) == 0
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", *["Dense"] * 5, "Pooling", "Normalize"]
    texts = ["A man is playing a guitar.", "Two dogs run through a field of tall grass.", "Nobody is outside."]
    ours = sgpt.load(str(out)).encode(texts)
    theirs = SentenceTransformer(str(out), device="cpu").encode(texts)
    assert ours.shape == (3, 384)
    assert np.abs(ours - theirs).max() <= 1e-5
