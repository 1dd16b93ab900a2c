"""sgpt.legacy: the original scripts' flags and defaults, their surprises (one warning each), their
errors, their data files, and one real short run of examples/training/nli/training_nli_v2.py.

Oracle: the originals' argparse and code (SGPT 37c8bf0, ``training_nli_v2.py`` and
``train_bi-encoder_mnrl.py``; SPEC 2.1/2.2).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from sgpt.legacy import common, train_bi_encoder_mnrl, training_nli_v2
from sgpt.legacy.commands import parse_command, split_command

ROOT = Path(__file__).resolve().parents[2]
NLI_EXAMPLE = ROOT / "examples" / "training" / "nli" / "training_nli_v2.py"


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees every warning once (they are printed once per process)."""
    monkeypatch.setattr(common, "_warned", set())
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if ": warning: " in line]


# ------------------------------------------------------------------------------------------- NLI


def test_nli_defaults_follow_the_original(capsys):
    task, flags = training_nli_v2.parse(["--model_name", "EleutherAI/gpt-neo-125m"])
    assert task == "nli"
    output = flags.pop("output")
    assert re.fullmatch(r"output/training_nli_v2_EleutherAI-gpt-neo-125m-\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", output)
    assert flags == {
        "model": "EleutherAI/gpt-neo-125m",
        "train_data": ["data/AllNLI.tsv.gz"],
        "dev_data": "data/stsbenchmark.tsv.gz",
        "pooling": "mean",  # the original's default
        "max_seq_length": 75,  # hard-coded
        "batch_size": 64,
        "eval_batch_size": 64,  # STS-B scored with the train batch size
        "lr": 2e-5,
        "epochs": 1,
        "warmup_ratio": 0.1,
        "seed": 0,  # the original was unseeded
        "data_parallel": "replicate",  # every process walks the whole data set
        "precision": "fp32",
    }
    said = warnings(capsys)
    assert len(said) == 2
    assert any("--pooling defaults to mean" in w for w in said) and any("--seed 0" in w for w in said)
    training_nli_v2.parse(["--model_name", "m"])
    assert warnings(capsys) == []  # once per process


def test_nli_flags_map_onto_sgpt_dests(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "8")
    argv = ["--model_name", "m", "--pooling", "weightedmean", "--freeze", "--freezenonbias", "--train_batch_size", "6"]
    argv += ["--lr", "1e-4", "--gradient_accumulation", "2", "--chunksize", "4", "--seed", "3", "--max_steps", "5"]
    argv += ["--wandb", "--wandbwatchlog", "gradients", "--model_save_path", "out/x"]
    _, flags = training_nli_v2.parse(argv)
    assert flags["freezenonbias"] is True and "freeze" not in flags  # both together = BitFit (SPEC 1.6)
    assert (flags["batch_size"], flags["eval_batch_size"], flags["lr"]) == (6, 6, 1e-4)
    assert (flags["grad_accum"], flags["seed"], flags["max_steps"], flags["output"]) == (2, 3, 5, "out/x")
    assert (flags["wandb"], flags["wandb_watch"]) == (True, "gradients")
    assert "gradcache" not in flags and "chunksize" not in flags  # --chunksize alone: ignored, as in the original
    said = " | ".join(warnings(capsys))
    for text in ("--gradient_accumulation 2", "--chunksize 4 without --gradcache", "--data_parallel shard", "entity"):
        assert text in said
    _, flags = training_nli_v2.parse(["--model_name", "m", "--gradcache", "--data_parallel", "shard"])
    assert (flags["gradcache"], flags["chunksize"], flags["data_parallel"]) == (True, 1, "shard")
    _, flags = training_nli_v2.parse(["--model_name", "m", "--addxlinear", "1", "--outfeats", "128", "--learntmean"])
    assert (flags["addxlinear"], flags["outfeats"], flags["learntmean"]) == (1, 128, True)
    _, flags = training_nli_v2.parse(["--model_name", "m", "--freeze", "--addxlinear", "5", "--linearthenpool"])
    assert (flags["freeze"], flags["addxlinear"], flags["linearthenpool"]) == (True, 5, True)


def test_readme_typo_path_accepts_modelname():
    script, argv = split_command("accelerate launch examples/training/msmarco/training_nli_v2.py --modelname x")
    assert (script, argv) == ("examples/training/msmarco/training_nli_v2.py", ["--modelname", "x"])
    task, flags = parse_command(
        "accelerate launch examples/training/msmarco/training_nli_v2.py --modelname bert-large-uncased"
    )
    assert (task, flags["model"], flags["pooling"]) == ("nli", "bert-large-uncased", "mean")
    with pytest.raises(ValueError, match="no original SGPT training script"):
        split_command("python train.py --model_name x")


def test_nli_original_errors(capsys):
    assert training_nli_v2.main(["--model_name", "m", "--outfeats", "8"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "training_nli_v2.py: error: Outfeats currently only supported with 1 linear layer for rescaling"
    )
    with pytest.raises(SystemExit) as info:  # argparse: --model_name is required, as in the original
        training_nli_v2.build_parser().parse_args([])
    assert info.value.code == 2


# ------------------------------------------------------------------------------------------- MS MARCO


def test_msmarco_defaults_follow_the_original(capsys):
    task, flags = train_bi_encoder_mnrl.parse(["--model_name", "EleutherAI/gpt-neo-125m"])
    assert task == "msmarco"
    output = flags.pop("output")
    assert re.fullmatch(r"output/train_bi-encoder-mnrl-EleutherAI-gpt-neo-125m-margin_3.0-[\d_-]{19}", output)
    assert flags == {
        "model": "EleutherAI/gpt-neo-125m",
        "data": "msmarco-data",
        "pooling": "mean",  # the original's default (the paper's models pass weightedmean)
        "max_seq_length": 300,
        "batch_size": 64,
        "eval_batch_size": 64,
        "lr": 2e-5,
        "epochs": 10,
        "warmup_steps": 1000,
        "seed": 0,
        "precision": "fp32",
        "ce_score_margin": 3.0,
        "num_negs_per_system": 5,
        "eval_dev": True,
    }
    said = " | ".join(warnings(capsys))
    assert "--pooling defaults to mean" in said and "--dev_corpus_max_size" in said


def test_msmarco_flags_map_onto_sgpt_dests(capsys):
    argv = ["--model_name", "m", "--pooling", "lasttoken", "--speca", "--specb", "--use_amp", "--unfreezewte"]
    argv += ["--negs_to_use", "bm25,msmarco-MiniLM-L-6-v3", "--use_all_queries", "--train_dataset_max_size", "100"]
    argv += ["--dev_corpus_max_size", "1000", "--steps_per_epoch", "7", "--epochs", "2", "--local_rank", "0"]
    _, flags = train_bi_encoder_mnrl.parse(argv)
    assert flags["pooling"] == "lasttoken_legacy"  # the original's token-0 bug, reproduced (SPEC 5 row 1)
    assert flags["special_tokens"] == "speca" and flags["precision"] == "bf16"
    assert "unfreezewte" not in flags  # without --freeze/--freezenonbias it changed nothing
    assert flags["negs_to_use"] == "bm25,msmarco-MiniLM-L-6-v3" and flags["use_all_queries"] is True
    assert (flags["train_dataset_max_size"], flags["dev_corpus_max_size"], flags["max_steps"]) == (100, 1000, 14)
    said = " | ".join(warnings(capsys))
    for text in ("lasttoken_legacy", "--speca applies", "bf16 autocast", "--unfreezewte without", "--steps_per_epoch"):
        assert text in said
    _, flags = train_bi_encoder_mnrl.parse(["--model_name", "m", "--freezenonbias", "--unfreezewte", "--asym"])
    assert (flags["freezenonbias"], flags["unfreezewte"], flags["asym"]) == (True, True, True)
    _, flags = train_bi_encoder_mnrl.parse(["--model_name", "saved", "--use_pre_trained_model"])
    assert "pooling" not in flags  # a saved model keeps its own pooling


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--use_amp", "--gradcache"], "Amp is not yet compatible with GradCache, see MNRLGradCache docstring"),
        (["--asym", "--gradcache"], "Model input split not implemented for type <class 'list'>"),
        (["--asym", "--specb"], "--asym with --specb/--speca"),
        (["--add_special_token"], "--add_special_token ([QRY]/[DOC] prefix tokens) is not supported"),
        (["--no_training"], "--no_training (score a saved model on MS MARCO dev) is not supported"),
    ],
)
def test_msmarco_original_errors(argv, message, capsys):
    assert train_bi_encoder_mnrl.main(["--model_name", "m", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("train_bi-encoder_mnrl.py: error: ") and message in err[-1]


def test_every_process_of_a_launch_names_the_same_output(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # under a launcher: the launcher's start time, not each clock
    started = common._launcher_start()
    assert started is not None and common.timestamp() == started.strftime("%Y-%m-%d_%H-%M-%S")


# ------------------------------------------------------------------------------------------- data files


def test_missing_file_is_one_line_without_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SGPT_OFFLINE", "1")
    assert training_nli_v2.main(["--model_name", "bert-base-uncased", "--pooling", "mean"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "training_nli_v2.py: error: data/AllNLI.tsv.gz is missing (downloads are off: "
        "SGPT_OFFLINE/HF_HUB_OFFLINE/HF_DATASETS_OFFLINE); get it from https://sbert.net/datasets/AllNLI.tsv.gz"
    )
    assert not (tmp_path / "output").exists()  # nothing written before the data is there


def test_msmarco_missing_file_is_one_line(tmp_path, monkeypatch, capsys):
    from sgpt.cli import train_msmarco

    if not hasattr(train_msmarco, "msmarco_config"):
        pytest.skip("`sgpt train msmarco` cannot be resolved yet")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SGPT_OFFLINE", "1")
    assert train_bi_encoder_mnrl.main(["--model_name", "m", "--pooling", "weightedmean"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("train_bi-encoder_mnrl.py: error: msmarco-data/collection.tsv is missing (downloads are off")
    )


def test_missing_file_without_network(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in common.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def no_network(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(common.urllib.request, "urlopen", no_network)
    with pytest.raises(common.LegacyError, match=r"^data/stsbenchmark.tsv.gz is missing and https://sbert.net/\S+ "):
        common.ensure_files("t", [training_nli_v2.STS_FILE])


def test_missing_file_is_downloaded_where_a_network_is_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in common.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    urls = []

    def fake_urlopen(url, timeout):
        urls.append(url)
        return io.BytesIO(gzip.compress(b"split\tscore\tsentence1\tsentence2\n"))

    monkeypatch.setattr(common.urllib.request, "urlopen", fake_urlopen)
    common.ensure_files("t", [training_nli_v2.STS_FILE])
    assert urls == ["https://sbert.net/datasets/stsbenchmark.tsv.gz"]
    assert gzip.decompress((tmp_path / "data" / "stsbenchmark.tsv.gz").read_bytes()).startswith(b"split")
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["stsbenchmark.tsv.gz"]  # no partial file left


def test_missing_file_is_extracted_from_its_archive(tmp_path, monkeypatch):
    import tarfile

    monkeypatch.chdir(tmp_path)
    for name in common.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, text in (("queries.train.tsv", b"1\tq one\n"), ("queries.dev.tsv", b"2\tq two\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    monkeypatch.setattr(common.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(archive.getvalue()))
    common.ensure_files("t", [train_bi_encoder_mnrl.TRAIN_FILES[1]])  # queries.train.tsv from queries.tar.gz
    folder = tmp_path / "msmarco-data"
    assert sorted(p.name for p in folder.iterdir()) == ["queries.dev.tsv", "queries.tar.gz", "queries.train.tsv"]
    assert (folder / "queries.train.tsv").read_text() == "1\tq one\n"


# ------------------------------------------------------------------------------------------- a real run


def write_nli_data(folder: Path) -> None:
    """A small ``data/AllNLI.tsv.gz`` (16 premises with an entailment, a contradiction and a neutral
    hypothesis: 32 triplets) and ``data/stsbenchmark.tsv.gz`` (6 dev + 6 test pairs), in sbert.net's layouts."""
    (folder / "data").mkdir()
    rows = ["split\tdataset\tfilename\tsentence1\tsentence2\tlabel"]
    for i in range(16):
        premise = f"A person number {i} walks in the park."
        for hypothesis, label in ((f"Someone {i} is outside.", "entailment"), (f"Nobody {i} moves.", "contradiction")):
            rows.append(f"train\tSNLI\tsnli_1.0_train.txt\t{premise}\t{hypothesis}\t{label}")
        rows.append(f"train\tSNLI\tsnli_1.0_train.txt\t{premise}\tThe person {i} is happy.\tneutral")
    rows.append("dev\tSNLI\tsnli_1.0_dev.txt\tA dev premise.\tA dev hypothesis.\tentailment")
    pairs = [
        ("A man plays a guitar.", "A man plays an instrument.", 4.2),
        ("A cat sleeps.", "A dog barks loudly.", 0.4),
        ("Kids play football.", "Children are playing soccer.", 4.6),
        ("A woman cooks.", "The stock market fell.", 0.0),
        ("Two men talk.", "Two people are talking.", 3.8),
        ("A bird flies.", "A plane lands.", 1.2),
    ]
    sts = ["split\tgenre\tdataset\tyear\tsid\tscore\tsentence1\tsentence2"]
    sts += [
        f"{s}\tmain-captions\tMSRvid\t2012test\t{i:04d}\t{g}\t{a}\t{b}"
        for s in ("dev", "test")
        for i, (a, b, g) in enumerate(pairs)
    ]
    for name, lines in (("AllNLI.tsv.gz", rows), ("stsbenchmark.tsv.gz", sts)):
        (folder / "data" / name).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def test_example_script_trains_and_saves_under_output(minilm_path, tmp_path):
    """``python examples/training/nli/training_nli_v2.py`` as the README runs it, in a working
    directory holding only ``data/``; 2 steps (``--max_steps``, an sgpt extension)."""
    write_nli_data(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    argv = [sys.executable, str(NLI_EXAMPLE), "--model_name", str(minilm_path), "--pooling", "mean"]
    argv += ["--train_batch_size", "8", "--max_steps", "2"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = list((tmp_path / "output").iterdir())
    assert len(saved) == 1 and saved[0].name.startswith("training_nli_v2_" + str(minilm_path).replace("/", "-") + "-")
    for name in ("modules.json", "model.safetensors", "sentence_bert_config.json", "1_Pooling"):
        assert (saved[0] / name).exists(), name
    assert "test_after: spearman_cosine = " in done.stdout
    assert "--seed 0" in done.stderr  # the one surprise of this command line


def test_no_training_scores_the_saved_model_on_stsb_test(minilm_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_nli_data(tmp_path)
    assert training_nli_v2.main(["--model_name", "m", "--no_training"]) == 2  # no --model_save_path: no model
    assert "--no_training scores the model at --model_save_path" in capsys.readouterr().err
    argv = ["--model_name", "m", "--no_training", "--model_save_path", str(minilm_path), "--train_batch_size", "4"]
    assert training_nli_v2.main(argv) == 0
    assert re.search(r"^sts-test: spearman_cosine = 0\.\d{4}$", capsys.readouterr().out, re.M)


def test_dry_run_prints_the_resolved_configuration(capsys):
    argv = ["--model_name", "EleutherAI/gpt-neo-125m", "--pooling", "weightedmean", "--freezenonbias", "--dry_run"]
    assert training_nli_v2.main(argv) == 0
    out = capsys.readouterr().out
    assert '"freezenonbias": true' in out and '"data_parallel": "replicate"' in out and '"max_seq_length": 75' in out
