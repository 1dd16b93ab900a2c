"""``sgpt index build`` and ``sgpt search`` end to end: the --json rows, the table, and one clear line per bad input."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from sgpt.cli import main

CORPUS = [
    {"_id": "ocean", "title": "Oceans", "text": "Salt water covers about seventy percent of the Earth's surface."},
    {"_id": "guitar", "title": "Guitar", "text": "A guitar usually has six strings that are plucked or strummed."},
    {"_id": "bread", "title": "Bread", "text": "Yeast makes bread dough rise by producing carbon dioxide gas."},
    {"_id": "mars", "text": "Mars is the fourth planet from the Sun and looks red because of iron oxide."},
]


@pytest.fixture(scope="module")
def index_dir(minilm_path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli_index")
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in CORPUS))
    out = folder / "idx"
    assert (
        main(
            [
                "index",
                "build",
                str(corpus),
                "--model",
                str(minilm_path),
                "--out",
                str(out),
                "--shard-size",
                "3",
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    return out


def test_search_json_rows(index_dir, capsys):
    capsys.readouterr()
    assert main(["search", str(index_dir), "why is the red planet red", "-k", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and all(list(r) == ["id", "score", "text"] for r in rows)
    assert rows[0]["id"] == "mars"
    assert rows[0]["text"] == "Mars is the fourth planet from the Sun and looks red because of iron oxide."
    assert rows[0]["score"] > 0.5 and rows[0]["score"] > rows[1]["score"] >= rows[2]["score"]
    assert json.loads((index_dir / "manifest.json").read_text())["shard_size"] == 3


def test_search_table_and_build_summary(index_dir, minilm_path, tmp_path, capsys, caplog):
    assert main(["search", str(index_dir), "how does yeast make dough rise", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "score", "id", "text"]
    assert lines[1].split()[0] == "1" and lines[1].split()[2] == "bread" and len(lines) == 3
    assert "Bread Yeast makes bread dough rise" in lines[1]

    corpus = tmp_path / "c.jsonl.gz"
    corpus.write_bytes(gzip.compress("".join(json.dumps(d) + "\n" for d in CORPUS[:2]).encode()))
    with caplog.at_level(logging.INFO):
        assert (
            main(
                [
                    "index",
                    "build",
                    str(corpus),
                    "--model",
                    str(minilm_path),
                    "--out",
                    str(tmp_path / "i"),
                    "--index-type",
                    "hnsw",
                    "--hnsw-m",
                    "4",
                ]
            )
            == 0
        )
    captured = capsys.readouterr()
    assert captured.out.strip() == f"indexed 2 documents (d=384, hnsw) in {tmp_path / 'i'}"
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] + captured.err.splitlines()
    assert not [line for line in said if "indexed 2 documents" in line]  # said once, on stdout


def _error(capsys) -> str:
    return capsys.readouterr().err.strip()


def test_bad_input_gives_one_clear_line(index_dir, minilm_path, tiny_gpt_dir, tmp_path, capsys):
    model = ["--model", str(minilm_path), "--out", str(tmp_path / "o")]
    assert main(["index", "build", str(tmp_path / "nope.jsonl"), *model]) == 2
    assert _error(capsys) == f"sgpt: error: {tmp_path / 'nope.jsonl'}: no such corpus file"

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["index", "build", str(empty), *model]) == 2
    assert _error(capsys) == f"sgpt: error: {empty}: file is empty"

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a", "text": "ok"}\n{"_id": "b"}\n')
    assert main(["index", "build", str(bad), *model]) == 2
    err = _error(capsys)
    assert f"{bad}:2" in err and '"text"' in err and "\n" not in err
    assert not (tmp_path / "o").exists()

    assert main(["search", str(tmp_path / "o"), "q"]) == 2
    assert _error(capsys) == f"sgpt: error: {tmp_path / 'o'}: no such index folder"

    assert main(["search", str(index_dir), "q", "--model", str(tiny_gpt_dir), "--json"]) == 2
    err = _error(capsys)
    assert "query model does not match the index" in err and "embedding_dim: 384 vs 64" in err


@pytest.fixture(scope="module")
def ann_dirs(minilm_path, index_dir) -> dict[str, Path]:
    """An ivf index (nlist=2, nprobe=1) and an hnsw index over the same 4 documents."""
    corpus = index_dir.parent / "corpus.jsonl"
    out = {}
    for kind, opts in (("ivf", ["--nlist", "2", "--nprobe", "1"]), ("hnsw", ["--hnsw-m", "4"])):
        out[kind] = index_dir.parent / kind
        assert (
            main(
                [
                    "index",
                    "build",
                    str(corpus),
                    "--model",
                    str(minilm_path),
                    "--out",
                    str(out[kind]),
                    "--index-type",
                    kind,
                    *opts,
                ]
            )
            == 0
        )
    return out


def test_search_parameters_are_checked_with_one_line(index_dir, ann_dirs, capsys):
    ivf, hnsw = ann_dirs["ivf"], ann_dirs["hnsw"]
    capsys.readouterr()
    for bad in ("-5", "0", "3"):
        assert main(["search", str(ivf), "red planet", "--nprobe", bad]) == 2
        assert _error(capsys) == f"sgpt: error: nprobe must be in [1, nlist=2] for {ivf}, got {bad}"
    for bad in ("-1", "0"):
        assert main(["search", str(hnsw), "red planet", "--ef-search", bad]) == 2
        assert _error(capsys) == f"sgpt: error: ef_search must be >= 1 (and >= k=10 to find k hits), got {bad}"
    assert main(["search", str(index_dir), "red planet", "--nprobe", "2"]) == 2
    assert _error(capsys) == (
        f"sgpt: error: nprobe (lists visited) only applies to ivf indexes; {index_dir} is of type flat"
    )
    assert main(["search", str(ivf), "red planet", "--ef-search", "64"]) == 2
    assert "ef_search (candidates) only applies to hnsw indexes" in _error(capsys)
    assert main(["search", str(index_dir), ""]) == 2
    assert _error(capsys) == "sgpt: error: the query is empty: give some text to search for"
    assert main(["search", str(index_dir), "   "]) == 2
    assert _error(capsys) == "sgpt: error: the query is empty: give some text to search for"
    with pytest.raises(SystemExit) as info:
        main(["search", str(index_dir), "q", "-k", "0"])
    assert info.value.code == 2 and _error(capsys).splitlines()[-1].endswith("argument -k/--k: must be >= 1, got 0")


def test_fewer_hits_than_k_are_reported(ann_dirs, capsys, caplog):
    ivf = ann_dirs["ivf"]
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="sgpt.search"):
        assert main(["search", str(ivf), "red planet", "-k", "4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert 1 <= len(rows) < 4  # one list of two visited
    assert (
        f"{ivf}: the ivf index returned fewer than k=4 hits for 1 of 1 queries (fewest: {len(rows)}); "
        "search more lists with a larger nprobe (--nprobe; now 1 of nlist=2)"
    ) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sgpt.search"):
        assert main(["search", str(ivf), "red planet", "-k", "4", "--json", "--nprobe", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4 and "fewer than" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="sgpt.search"):
        assert main(["search", str(ann_dirs["hnsw"]), "red planet", "-k", "4", "--json", "--ef-search", "4"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4


def test_model_flags_without_model_apply_to_the_recorded_model(index_dir, capsys):
    recorded = json.loads((index_dir / "manifest.json").read_text())["model"]["load_kwargs"]
    capsys.readouterr()
    assert main(["search", str(index_dir), "red planet", "--pooling", "cls", "--json"]) == 2
    err = _error(capsys)
    assert "query model does not match the index" in err and "pooling: 'mean' vs 'cls'" in err
    assert main(["search", str(index_dir), "red planet", "--max-seq-length", "16", "--json"]) == 2
    assert f"max_seq_length: {recorded['max_seq_length']} vs 16" in _error(capsys)
    assert (
        main(
            [
                "search",
                str(index_dir),
                "why is the red planet red",
                "-k",
                "1",
                "--json",
                "--pooling",
                "mean",
                "--max-seq-length",
                str(recorded["max_seq_length"]),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)[0]["id"] == "mars"  # the recorded settings: accepted


def test_output_paths_are_checked_before_any_work(index_dir, minilm_path, tmp_path, capsys, monkeypatch):
    import sgpt

    monkeypatch.setattr(sgpt, "load", lambda *a, **k: pytest.fail("a model was loaded"))
    corpus = index_dir.parent / "corpus.jsonl"
    taken = tmp_path / "taken"
    taken.write_text("mine")
    assert main(["index", "build", str(corpus), "--model", "m", "--out", str(taken)]) == 2
    assert _error(capsys) == f"sgpt: error: --output {taken}: exists and is not a folder (choose another --output)"
    assert taken.read_text() == "mine"
    nowhere = tmp_path / "missing" / "idx"
    assert main(["index", "build", str(corpus), "--model", "m", "--out", str(nowhere)]) == 2
    assert _error(capsys) == f"sgpt: error: --output {nowhere}: no such folder {tmp_path / 'missing'} (create it first)"
    assert main(["search", str(taken), "q"]) == 2
    assert _error(capsys) == (
        f"sgpt: error: {taken}: is a file, not an index folder (give the folder written by `sgpt index build`)"
    )


def test_ctrl_c_during_index_build_says_how_to_resume(minilm_path, tmp_path, capsys, monkeypatch):
    import sgpt.search.build as index_module

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in CORPUS))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module, "make_faiss_index", interrupted)  # after the shards are written
    build = [
        "index",
        "build",
        str(corpus),
        "--model",
        str(minilm_path),
        "--out",
        str(tmp_path / "idx"),
        "--shard-size",
        "2",
    ]
    assert main(build) == 130
    assert (
        _error(capsys).splitlines()[-1]
        == f"sgpt: interrupted; the finished shards are kept in {tmp_path / 'idx'}.partial; rerun the same "
        "command to resume from them"
    )
    assert sorted(p.name for p in (tmp_path / "idx.partial" / "shards").glob("*.npy")) == ["00000.npy", "00001.npy"]
    assert main([*build, "--no-resume"]) == 130
    assert (
        _error(capsys).splitlines()[-1]
        == "sgpt: interrupted; rerun without --no-resume to resume from the finished shards"
    )
    monkeypatch.undo()
    assert main(build) == 0 and not (tmp_path / "idx.partial").exists()
