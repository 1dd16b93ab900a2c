"""``sgpt index build`` and ``sgpt search`` end to end: the --json rows, the table, and one clear line per bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from sgpt.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

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
    assert main(["index", "build", str(corpus), "--model", str(minilm_path), "--out", str(out),
                 "--shard-size", "3", "--batch-size", "2"]) == 0
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


def test_search_table_and_build_summary(index_dir, minilm_path, tmp_path, capsys):
    assert main(["search", str(index_dir), "how does yeast make dough rise", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "score", "id", "text"]
    assert lines[1].split()[0] == "1" and lines[1].split()[2] == "bread" and len(lines) == 3
    assert "Bread Yeast makes bread dough rise" in lines[1]

    corpus = tmp_path / "c.jsonl.gz"
    corpus.write_bytes(gzip.compress("".join(json.dumps(d) + "\n" for d in CORPUS[:2]).encode()))
    assert main(["index", "build", str(corpus), "--model", str(minilm_path), "--out", str(tmp_path / "i"),
                 "--index-type", "hnsw", "--hnsw-m", "4"]) == 0
    assert capsys.readouterr().out.strip() == f"indexed 2 documents (d=384, hnsw) in {tmp_path / 'i'}"


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
