"""The ``sgpt`` command end to end: outputs on real data, and every bad input gives one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import need_data

import sgpt
from sgpt.cli import main


def test_eval_sts_writes_json_equal_to_the_library(minilm_path, tmp_path, capsys):
    stsb = need_data("stsb")
    out = tmp_path / "r.json"
    assert main(["eval", "sts", str(minilm_path), "--data", str(stsb), "--split", "test", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_pairs"] == 1379
    # all-MiniLM-L6-v2 on STS-B test, measured with sentence-transformers' evaluator: 0.8203
    assert result["spearman_cosine"] == pytest.approx(0.8203, abs=1e-4)


def test_train_nli_tiny_run_saves_a_loadable_model(tiny_gpt_dir, tmp_path):
    data = tmp_path / "triplets.jsonl"
    rows = [
        {
            "anchor": f"the cat number {i} sleeps",
            "positive": f"a cat {i} is sleeping",
            "negative": f"the dog {i} runs fast",
        }
        for i in range(12)
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "model"
    assert (
        main(
            [
                "train",
                "nli",
                "--model",
                str(tiny_gpt_dir),
                "--pooling",
                "lasttoken",
                "--train-data",
                str(data),
                "--output",
                str(out),
                "--max-steps",
                "2",
                "--batch-size",
                "4",
                "--lr",
                "1e-3",
                "--max-seq-length",
                "16",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    model = sgpt.load(out)
    assert model.pooling == "lasttoken" and model.max_seq_length == 16
    assert (out / "train_log.csv").exists() and (out / "train_summary.json").exists()


def _error(capsys) -> str:
    return capsys.readouterr().err.strip()


def test_bad_training_row_names_file_line_and_field(tiny_gpt_dir, tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"anchor": "a", "positive": "b"}\n{"anchor": "c"}\n')
    code = main(
        [
            "train",
            "nli",
            "--model",
            str(tiny_gpt_dir),
            "--train-data",
            str(data),
            "--output",
            str(tmp_path / "o"),
            "--max-steps",
            "1",
            "--batch-size",
            "1",
        ]
    )
    assert code == 2
    err = _error(capsys)
    assert f"{data}:2" in err and "positive" in err
    assert not (tmp_path / "o").exists()


def test_bitfit_on_a_model_without_biases_is_refused(tmp_path, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    folder = tmp_path / "llama"
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    )
    LlamaModel(cfg).save_pretrained(folder)
    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "<unk>": 2, "</s>": 3}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>").save_pretrained(folder)
    data = tmp_path / "t.jsonl"
    data.write_text('{"anchor": "a", "positive": "b"}\n' * 4)
    code = main(
        [
            "train",
            "nli",
            "--model",
            str(folder),
            "--train-data",
            str(data),
            "--output",
            str(tmp_path / "o"),
            "--max-steps",
            "1",
            "--batch-size",
            "2",
            "--freezenonbias",
        ]
    )
    assert code == 2
    err = _error(capsys)
    assert "llama backbone has none" in err and "Alternatives" in err


def test_missing_sts_data_is_a_clear_error(minilm_path, tmp_path, capsys):
    assert main(["eval", "sts", str(minilm_path), "--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in _error(capsys)


def test_eval_sts_refuses_an_unwritable_output_before_scoring(tmp_path, capsys):
    code = main(
        [
            "eval",
            "sts",
            str(tmp_path / "no-model"),
            "--data",
            str(tmp_path / "no-data"),
            "--output",
            str(tmp_path / "missing-folder" / "r.json"),
        ]
    )
    assert code == 2
    assert "--output" in _error(capsys)  # named before the missing data or model are even looked at


def test_eval_sts_per_subset_on_sts12(minilm_path, tmp_path):
    sts12_16 = need_data("sts12-16", "STS12").parent
    from sgpt.data import read_sts_subsets

    out = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                "sts",
                str(minilm_path),
                "--data",
                str(sts12_16),
                "--split",
                "sts12",
                "--per-subset",
                "--max-seq-length",
                "16",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    subsets = read_sts_subsets(sts12_16, split="sts12")
    assert sorted(result["subsets"]) == sorted(s.name for s in subsets) and len(subsets) == 5
    assert result["n_pairs"] == sum(len(s) for s in subsets)
    per = [result["subsets"][s.name]["spearman_cosine"] for s in subsets]
    assert result["mean"]["spearman_cosine"] == pytest.approx(sum(per) / len(per))


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"sgpt {sgpt.__version__}"


def test_encode_jsonl_to_npy_in_input_order(minilm_path, minilm_st, tmp_path):
    texts = ["a much longer sentence about the weather in the mountains today", "short", "medium length one"]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = tmp_path / "e.npy"
    assert main(["encode", str(minilm_path), "--input", str(src), "--output", str(out)]) == 0
    emb = np.load(out)
    assert emb.dtype == np.float32 and emb.shape == (3, 384)
    assert abs(emb - minilm_st.encode(texts)).max() < 1e-5


def test_encode_bad_jsonl_line(minilm_path, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "ok"}\n{"txt": "no"}\n')
    assert main(["encode", str(minilm_path), "--input", str(src), "--output", str(tmp_path / "e.npy")]) == 2
    err = _error(capsys)
    assert f"{src}:2" in err and "'text'" in err


def test_convert_gguf_rejects_a_non_gguf_file(tmp_path, capsys):
    f = tmp_path / "model.bin"
    f.write_text("x")
    assert main(["convert-gguf", str(f), str(tmp_path / "out")]) == 2
    assert "not a .gguf file" in _error(capsys)


def test_help_for_every_command(capsys):
    for argv in (
        ["--help"],
        ["train", "nli", "--help"],
        ["eval", "sts", "--help"],
        ["encode", "--help"],
        ["convert-gguf", "--help"],
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    assert "convert-gguf" in capsys.readouterr().out


def test_missing_local_model_is_not_looked_up_on_the_hub(tmp_path, capsys):
    code = main(["encode", str(tmp_path / "no-such-model"), "--text", "a", "--output", str(tmp_path / "e.npy")])
    assert code == 2
    assert f"no such model file or folder: {tmp_path / 'no-such-model'}" in _error(capsys)


def test_precision_flags_take_both_spellings():
    from sgpt.cli import build_parser

    parser = build_parser()
    for given, want in (("fp32", "fp32"), ("float32", "fp32"), ("bf16", "bf16"), ("bfloat16", "bf16")):
        assert (
            parser.parse_args(["encode", "m", "--text", "a", "--output", "e.npy", "--precision", given]).precision
            == want
        )
    for given, want in (("float32", "fp32"), ("bfloat16", "bf16"), ("bf16", "bf16"), ("auto", "auto")):
        args = parser.parse_args(
            ["train", "nli", "--model", "m", "--train-data", "d", "--output", "o", "--precision", given]
        )
        assert args.precision == want
    with pytest.raises(SystemExit):
        parser.parse_args(["encode", "m", "--text", "a", "--output", "e.npy", "--precision", "fp8"])
