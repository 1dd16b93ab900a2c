"""Index builds that are stopped: what is left behind, and what the settings refuse."""

from __future__ import annotations

import json

import pytest

import sgpt
from sgpt.search.build import IndexSettings, build_index

DOCS = [{"_id": f"d{i}", "title": "", "text": f"document number {i} about topic {i % 3}"} for i in range(12)]


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return sgpt.load(minilm_path)


def _corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    return path


def _stop_after(model, monkeypatch, calls: int) -> None:
    real = type(model).encode_documents
    seen = []

    def stopping(self, *args, **kwargs):
        if len(seen) == calls:
            raise KeyboardInterrupt
        seen.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "encode_documents", stopping)


def test_stopped_before_any_shard_leaves_nothing(minilm, tmp_path, monkeypatch):
    _stop_after(minilm, monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        build_index(_corpus(tmp_path), minilm, tmp_path / "idx", shard_size=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


def test_stopped_after_a_shard_keeps_it_for_the_rerun(minilm, tmp_path, monkeypatch):
    _stop_after(minilm, monkeypatch, 1)  # the first shard of 4 documents is embedded in one call
    with pytest.raises(KeyboardInterrupt):
        build_index(_corpus(tmp_path), minilm, tmp_path / "idx", shard_size=4)
    assert [p.name for p in (tmp_path / "idx.partial" / "shards").glob("*.npy")] == ["00000.npy"]
    monkeypatch.undo()
    build_index(_corpus(tmp_path), minilm, tmp_path / "idx", shard_size=4)
    assert not (tmp_path / "idx.partial").exists()
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["n_docs"] == len(DOCS)


def test_settings_refuse_bad_sizes_and_mixed_arguments(minilm, tmp_path):
    with pytest.raises(ValueError, match="shard_size and batch_size must be >= 1, got 0 and 32"):
        IndexSettings(shard_size=0)
    with pytest.raises(TypeError, match="not both"):
        build_index(_corpus(tmp_path), minilm, tmp_path / "idx", IndexSettings(), shard_size=4)


def test_a_missing_corpus_names_the_gzipped_one_beside_it(minilm, tmp_path):
    gz = tmp_path / "corpus.jsonl.gz"
    gz.write_bytes(b"")
    with pytest.raises(
        FileNotFoundError, match=r"corpus.jsonl: no such corpus file \(there is corpus.jsonl.gz beside it\)"
    ):
        build_index(tmp_path / "corpus.jsonl", minilm, tmp_path / "idx")
