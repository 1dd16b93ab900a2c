"""Issue 10, index integrity: an index carries checksums written last; a damaged file of it is one
line naming it (exit 2, no traceback); an index built before checksums still searches; and a model
folder whose weights changed since the build is refused unless ``--allow-model-change``."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import sgpt
from sgpt.cli import main
from sgpt.search.build import build_index
from sgpt.search.index import Index
from sgpt.utils.checksums import file_digest, has_checksums, verify_checksums, write_checksums

CORPUS = [
    {"_id": "ocean", "title": "Oceans", "text": "Salt water covers about seventy percent of the Earth's surface."},
    {"_id": "guitar", "title": "Guitar", "text": "A guitar usually has six strings that are plucked or strummed."},
    {"_id": "bread", "title": "Bread", "text": "Yeast makes bread dough rise by producing carbon dioxide gas."},
    {"_id": "mars", "text": "Mars is the fourth planet from the Sun and looks red because of iron oxide."},
]
FILES = ["index.faiss", "docs.jsonl", "docs.offsets.npy", "manifest.json", "checksums.json"]
QUERY = "why is the red planet red"


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return sgpt.load(minilm_path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in CORPUS))
    return path


@pytest.fixture(scope="module")
def index_dir(minilm, corpus, tmp_path_factory) -> Path:
    return build_index(corpus, minilm, tmp_path_factory.mktemp("idx") / "idx", shard_size=3)


def _search(index: Path, *flags: str) -> int:
    return main(["search", str(index), QUERY, "-k", "2", "--json", *flags])


def _error(capsys) -> str:
    """The error line of stderr (transformers' "Loading weights" bars left out); asserts it is the only one."""
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "Loading weights" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_checksums_module(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"x" * 3_000_000)  # more than one 1 MiB chunk
    (tmp_path / "sub" / "b.txt").write_text("hello")
    assert not has_checksums(tmp_path)
    write_checksums(tmp_path, ["a.bin", "sub/b.txt"])
    assert has_checksums(tmp_path) and verify_checksums(tmp_path) == []
    assert file_digest(tmp_path / "sub" / "b.txt") == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    recorded = json.loads((tmp_path / "checksums.json").read_text())["files"]
    assert recorded["a.bin"]["size"] == 3_000_000 and recorded["sub/b.txt"]["size"] == 5
    (tmp_path / "sub" / "b.txt").write_text("jello")  # same size, other bytes
    assert verify_checksums(tmp_path) == ["sub/b.txt"]
    (tmp_path / "a.bin").unlink()
    assert verify_checksums(tmp_path) == ["a.bin", "sub/b.txt"]


def test_the_index_carries_checksums_of_every_file(index_dir):
    recorded = json.loads((index_dir / "checksums.json").read_text())["files"]
    assert sorted(recorded) == sorted(FILES[:-1])
    for name, entry in recorded.items():
        assert entry == {"size": (index_dir / name).stat().st_size, "sha256": file_digest(index_dir / name)}


@pytest.mark.parametrize("name", FILES)
def test_a_truncated_file_is_named_in_one_line(index_dir, tmp_path, capsys, name):
    broken = shutil.copytree(index_dir, tmp_path / "broken")
    full = (broken / name).stat().st_size
    with open(broken / name, "r+b") as f:
        f.truncate(full // 2)
    with pytest.raises(ValueError) as info:
        Index.load(broken)
    if name == "checksums.json":
        assert re.match(rf"{re.escape(str(broken / name))}:\d+: invalid JSON \(", str(info.value))
        assert "rebuild it with sgpt index build" in str(info.value)
    else:
        assert str(info.value) == (
            f"{broken / name}: damaged or changed since the index was built (size {full // 2} bytes, "
            f"expected {full}); rebuild it with sgpt index build"
        )
    assert _search(broken) == 2
    assert _error(capsys) == f"sgpt: error: {info.value}"


def test_a_changed_byte_is_found_by_sha256(index_dir, tmp_path, capsys):
    broken = shutil.copytree(index_dir, tmp_path / "broken")
    data = bytearray((broken / "index.faiss").read_bytes())
    data[-5] ^= 0xFF  # a bit flip in the last vector: same size
    (broken / "index.faiss").write_bytes(bytes(data))
    assert _search(broken) == 2
    assert _error(capsys) == (
        f"sgpt: error: {broken / 'index.faiss'}: damaged or changed since the index was built "
        f"(sha256 differs (size {len(data)} bytes as expected)); rebuild it with sgpt index build"
    )


def test_an_index_without_checksums_still_searches(index_dir, tmp_path, capsys, caplog):
    assert _search(index_dir) == 0
    expected = json.loads(capsys.readouterr().out)
    assert [h["id"] for h in expected] == ["mars", "ocean"]
    old = shutil.copytree(index_dir, tmp_path / "old")
    (old / "checksums.json").unlink()  # as built before checksums existed
    with caplog.at_level(logging.WARNING, logger="sgpt.search"):
        assert _search(old) == 0
    assert json.loads(capsys.readouterr().out) == expected
    assert any("files are not verified" in r.getMessage() and str(old) in r.getMessage() for r in caplog.records)


def test_an_index_without_checksums_names_its_damaged_files(index_dir, tmp_path, capsys):
    old = shutil.copytree(index_dir, tmp_path / "old")
    (old / "checksums.json").unlink()
    docs = (old / "docs.jsonl").read_bytes()
    (old / "docs.jsonl").write_bytes(docs[:-10])
    assert _search(old) == 2
    assert _error(capsys) == (
        f"sgpt: error: {old / 'docs.jsonl'}: damaged or changed since the index was built "
        f"(size {len(docs) - 10} bytes, expected {len(docs)}); rebuild it with sgpt index build"
    )
    (old / "docs.jsonl").write_bytes(docs.replace(b'{"id": "mars"', b'{"id"; "mars"'))  # same size
    assert _search(old) == 2
    err = _error(capsys)
    assert err.startswith(f"sgpt: error: {old / 'docs.jsonl'}:4: not a document row (")
    assert err.endswith("); rebuild it with sgpt index build")

    (old / "docs.jsonl").write_bytes(docs)
    faiss_bytes = (old / "index.faiss").read_bytes()
    (old / "index.faiss").write_bytes(faiss_bytes[:100])
    assert _search(old) == 2
    err = _error(capsys)
    assert err.startswith(f"sgpt: error: {old / 'index.faiss'}: not a readable FAISS index (")


def test_a_damaged_shard_is_embedded_again(minilm, corpus, index_dir, tmp_path, monkeypatch, caplog):
    real, calls = minilm.encode_documents, []

    def crash_on_second(texts, *args, **kwargs):
        calls.append(list(texts))
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(minilm, "encode_documents", crash_on_second)
    out = tmp_path / "idx"
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_index(corpus, minilm, out, shard_size=3)
    monkeypatch.undo()
    shard = tmp_path / "idx.partial" / "shards" / "00000.npy"
    data = bytearray(shard.read_bytes())
    data[-4:] = np.float32(9.0).tobytes()  # a wrong vector value, same size: loading would not notice
    shard.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="sgpt.search"):
        build_index(corpus, minilm, out, shard_size=3)
    assert any(str(shard) in r.getMessage() and "embedding it again" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(
        Index.load(out).faiss_index.reconstruct_n(0, 4), Index.load(index_dir).faiss_index.reconstruct_n(0, 4)
    )


@pytest.fixture
def changed_model_index(tiny_gpt_dir, corpus, tmp_path) -> tuple[Path, Path]:
    """An index built with a copy of the tiny model, whose weights are then replaced (same settings)."""
    model_dir = shutil.copytree(tiny_gpt_dir, tmp_path / "model")
    out = build_index(corpus, model_dir, tmp_path / "idx", shard_size=4)
    weights = load_file(model_dir / "model.safetensors")
    torch.manual_seed(1)
    save_file({k: v + 0.05 * torch.randn_like(v) for k, v in weights.items()}, model_dir / "model.safetensors")
    return model_dir, out


def test_a_changed_model_folder_is_refused_unless_allowed(changed_model_index, tiny_gpt_dir, tmp_path, capsys):
    model_dir, out = changed_model_index
    with pytest.raises(ValueError) as info:
        Index.load(out).search(QUERY, k=2)
    message = str(info.value)
    assert message == (
        f"{out}: the model at {model_dir.resolve()} has changed since the index was built (same settings, "
        "other weights), so rankings would change; rebuild the index with this model, or pass "
        "--allow-model-change (allow_model_change=True) to search with it anyway"
    )
    assert _search(out) == 2
    assert _error(capsys) == f"sgpt: error: {message}"

    original = Index.load(out, tiny_gpt_dir).search(QUERY, k=4)[0]  # the weights the documents were embedded with
    allowed = Index.load(out, allow_model_change=True).search(QUERY, k=4)[0]
    assert _search(out, "--allow-model-change") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(h["id"], pytest.approx(h["score"], abs=1e-5)) for h in rows] == [(h.id, h.score) for h in allowed[:2]]
    assert [h.score for h in allowed] != pytest.approx([h.score for h in original], abs=1e-4)  # another model


def test_another_query_model_with_other_weights_names_both(changed_model_index, tmp_path, capsys):
    model_dir, out = changed_model_index
    other = shutil.copytree(model_dir, tmp_path / "fine-tuned")
    assert _search(out, "--model", str(other)) == 2
    assert _error(capsys) == (
        f"sgpt: error: {out}: the query model {other} has other weights than the model the index was built "
        f"with ({model_dir.resolve()}), so rankings would change; rebuild the index with this model, or pass "
        "--allow-model-change (allow_model_change=True) to search with it anyway"
    )
    assert _search(out, "--model", str(other), "--allow-model-change") == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
