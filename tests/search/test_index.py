"""Dense index: exact search equals brute-force cosine, ANN finds the easy top-1, shards resume after a
crash and are never mixed across corpora or models, query models are checked, bad input is one clear error."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

import sgpt
from sgpt.data import document_text, read_corpus
from sgpt.search.build import build_index
from sgpt.search.faiss_params import index_params
from sgpt.search.index import Hit, Index
from sgpt.search.shards import ShardStore

DOCS = [
    ("d-cat", "Cats", "Cats sleep for most of the day and purr when they are content."),
    ("d-volcano", "Volcanoes", "A volcano erupts when magma rises through the crust and spills out as lava."),
    ("d-bread", "Baking", "Bread dough rises because yeast ferments the sugars and releases carbon dioxide."),
    ("d-moon", "The Moon", "The Moon orbits the Earth about once every twenty-seven days."),
    ("d-python", "Python", "Python is a programming language with dynamic typing and garbage collection."),
    ("d-rain", "Rain", "Rain forms when water vapour condenses into droplets heavy enough to fall."),
    ("d-chess", "Chess", "In chess, the bishop moves diagonally across any number of free squares."),
    ("d-heart", "The heart", "The heart pumps blood through the arteries to every organ of the body."),
    ("d-piano", "Piano", "A piano makes sound when felt hammers strike its tightened steel strings."),
    ("d-tax", "Taxes", "Income tax is levied on wages, salaries and other earnings of individuals."),
    ("d-bees", "Bees", "Honey bees collect nectar from flowers and store it as honey in the hive."),
    (101, "", "Glaciers carve valleys as the ice slowly flows downhill over thousands of years."),
]
QUERIES = ["why does bread dough rise", "how do glaciers shape the land", "which way does a bishop move in chess"]
EXPECTED_TOP1 = ["d-bread", "101", "d-chess"]


def write_corpus(path: Path, docs=DOCS) -> Path:
    path.write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs))
    return path


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return sgpt.load(minilm_path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.jsonl")


@pytest.fixture(scope="module")
def flat_dir(minilm, corpus, tmp_path_factory) -> Path:
    return build_index(corpus, minilm, tmp_path_factory.mktemp("idx") / "flat", shard_size=5)


def brute_force(model, corpus: Path, queries: list[str], k: int) -> tuple[list[list[str]], np.ndarray]:
    docs = read_corpus(corpus)
    ids = list(docs)
    d = model.encode_documents([document_text(docs[i]) for i in ids], normalize=True)  # [n, 384]
    q = model.encode_queries(queries, normalize=True)  # [q, 384]
    scores = q @ d.T
    order = np.argsort(-scores, axis=1)[:, :k]
    return [[ids[j] for j in row] for row in order], np.take_along_axis(scores, order, axis=1)


def test_flat_search_equals_brute_force_cosine(minilm, corpus, flat_dir):
    index = Index.load(flat_dir, minilm)
    hits = index.search(QUERIES, k=5)
    want_ids, want_scores = brute_force(minilm, corpus, QUERIES, 5)
    assert [[h.id for h in row] for row in hits] == want_ids
    np.testing.assert_allclose([[h.score for h in row] for row in hits], want_scores, atol=1e-5)
    assert [row[0].id for row in hits] == EXPECTED_TOP1
    assert hits[0][0].text == "Baking Bread dough rises because yeast ferments the sugars and releases carbon dioxide."
    assert hits[1][0].text.startswith("Glaciers carve valleys")  # no title: the text alone
    assert 0.5 < hits[0][0].score <= 1.0 and hits[0][0].score > hits[0][1].score


def test_manifest_and_files(minilm, flat_dir):
    manifest = json.loads((flat_dir / "manifest.json").read_text())
    assert manifest["n_docs"] == 12 and manifest["dim"] == 384 and manifest["index"]["type"] == "flat"
    assert manifest["signature"] == json.loads(json.dumps(minilm.signature()))
    assert manifest["signature"]["pooling"] == "mean" and manifest["sgpt_version"] == sgpt.__version__
    assert sorted(p.name for p in flat_dir.iterdir()) == [
        "checksums.json",
        "docs.jsonl",
        "docs.offsets.npy",
        "index.faiss",
        "manifest.json",
    ]
    assert not flat_dir.with_name("flat.partial").exists()  # the work folder is gone
    index = Index.load(flat_dir)
    assert index.ids == [
        "d-cat",
        "d-volcano",
        "d-bread",
        "d-moon",
        "d-python",
        "d-rain",
        "d-chess",
        "d-heart",
        "d-piano",
        "d-tax",
        "d-bees",
        "101",
    ]
    assert index.doc(3) == ("d-moon", "The Moon The Moon orbits the Earth about once every twenty-seven days.")


def test_recorded_model_is_reloaded_for_search(minilm, flat_dir):
    with_given = Index.load(flat_dir, minilm).search(QUERIES[:1], k=3)
    recorded = Index.load(flat_dir)  # loads the manifest's model (the MiniLM folder) at the first search
    assert recorded.search(QUERIES[:1], k=3) == with_given


def test_search_vectors_and_k(minilm, flat_dir):
    index = Index.load(flat_dir, minilm)
    q = minilm.encode_queries(QUERIES, normalize=True)
    assert index.search_vectors(q, k=2) == [row[:2] for row in index.search(QUERIES, k=2)]
    everything = index.search_vectors(q[:1], k=50)[0]  # k above n_docs: all 12, best first
    assert len(everything) == 12 and [h.score for h in everything] == sorted(
        (h.score for h in everything), reverse=True
    )
    assert isinstance(everything[0], Hit) and everything[0].to_dict().keys() == {"id", "score", "text"}
    with pytest.raises(ValueError, match=r"query vectors must be \[q, 384\], got shape \[3, 64\]"):
        index.search_vectors(np.zeros((3, 64), np.float32), k=1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        index.search_vectors(q, k=0)


@pytest.mark.parametrize("kind,opts", [("ivf", {"nlist": 3, "nprobe": 1}), ("hnsw", {"m": 4})])
def test_ann_indexes_find_the_exact_top1(minilm, corpus, tmp_path, kind, opts):
    out = build_index(corpus, minilm, tmp_path / kind, index_type=kind, **opts)
    index = Index.load(out, minilm)
    assert index.manifest["index"]["type"] == kind
    texts = [document_text(d) for d in read_corpus(corpus).values()]
    hits = index.search_vectors(minilm.encode_documents(texts, normalize=True), k=1)  # each document as a query
    assert [row[0].id for row in hits] == index.ids
    np.testing.assert_allclose([row[0].score for row in hits], 1.0, atol=1e-5)
    assert [row[0].id for row in index.search(QUERIES, k=1)] == EXPECTED_TOP1


def _crash_on_call(model, monkeypatch, n: int, calls: list):
    """Make ``model.encode_documents`` record its inputs and raise on call number ``n`` (1-based)."""
    real = model.encode_documents

    def fake(texts, *args, **kwargs):
        calls.append(list(texts))
        if len(calls) == n:
            raise RuntimeError("simulated crash")
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(model, "encode_documents", fake)


def test_crash_then_resume_reencodes_only_the_missing_shards(minilm, corpus, flat_dir, tmp_path, monkeypatch):
    out = tmp_path / "idx"
    calls: list = []
    _crash_on_call(minilm, monkeypatch, 3, calls)  # shards of 5 docs: the crash hits shard 2 (docs 10-11)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_index(corpus, minilm, out, shard_size=5)
    assert not out.exists()  # the index appears complete or not at all
    shards = sorted(p.name for p in (tmp_path / "idx.partial" / "shards").iterdir())
    assert shards == [
        "00000.checksums.json",
        "00000.ids.json",
        "00000.npy",
        "00001.checksums.json",
        "00001.ids.json",
        "00001.npy",
    ]

    monkeypatch.undo()
    calls.clear()
    _crash_on_call(minilm, monkeypatch, 0, calls)  # never raises
    build_index(corpus, minilm, out, shard_size=5)
    assert calls == [
        [
            "Bees Honey bees collect nectar from flowers and store it as honey in the hive.",
            "Glaciers carve valleys as the ice slowly flows downhill over thousands of years.",
        ]
    ]
    assert not (tmp_path / "idx.partial").exists()
    resumed, clean = Index.load(out), Index.load(flat_dir)
    # bit for bit: the resumed index holds the very vectors of a clean build. flat_dir is built by a
    # module-scoped fixture; conftest pins one torch thread before it too (another thread count rounds
    # the last bits differently, ~1e-7), so both builds encode the same shards under the same setting.
    np.testing.assert_array_equal(resumed.faiss_index.reconstruct_n(0, 12), clean.faiss_index.reconstruct_n(0, 12))
    assert (out / "docs.jsonl").read_bytes() == (flat_dir / "docs.jsonl").read_bytes()
    assert resumed.manifest == clean.manifest


def test_a_different_corpus_or_model_refuses_the_old_shards(minilm, corpus, tiny_gpt_dir, tmp_path, monkeypatch):
    out = tmp_path / "idx"
    _crash_on_call(minilm, monkeypatch, 2, [])
    with pytest.raises(RuntimeError):
        build_index(corpus, minilm, out, shard_size=5)
    monkeypatch.undo()
    build_file = tmp_path / "idx.partial" / "build.json"

    changed = write_corpus(tmp_path / "other.jsonl", [*DOCS[:-1], (101, "", "Glaciers melt in summer.")])
    with pytest.raises(ValueError, match="belong to a different build") as err:
        build_index(changed, minilm, out, shard_size=5)
    assert str(build_file) in str(err.value) and "corpus_sha256" in str(err.value)
    assert "--no-resume" in str(err.value)

    with pytest.raises(ValueError, match="belong to a different build") as err:
        build_index(corpus, tiny_gpt_dir, out, shard_size=5)
    assert "weights_sha256" in str(err.value) and "signature.embedding_dim: 384 vs 64" in str(err.value)

    with pytest.raises(ValueError, match=r"shard_size: 5 vs 4"):
        build_index(corpus, minilm, out, shard_size=4)

    build_index(changed, minilm, out, shard_size=5, resume=False)  # starting over is allowed
    assert Index.load(out, minilm).doc(11) == ("101", "Glaciers melt in summer.")


def test_a_crash_before_any_finished_shard_does_not_block_another_build(minilm, corpus, tmp_path, monkeypatch):
    out = tmp_path / "idx"
    _crash_on_call(minilm, monkeypatch, 1, [])
    with pytest.raises(RuntimeError):
        build_index(corpus, minilm, out, shard_size=5)
    monkeypatch.undo()
    assert not (tmp_path / "idx.partial").exists()  # stopped before a shard was done: nothing left behind
    ShardStore(tmp_path / "idx.partial", {"corpus_sha256": "another build"})  # as a kill -9 would leave it
    assert (tmp_path / "idx.partial" / "build.json").exists()
    other = write_corpus(tmp_path / "other.jsonl", DOCS[:3])
    build_index(other, minilm, out, shard_size=5)  # nothing finished to mix: starts afresh
    assert Index.load(out).ids == ["d-cat", "d-volcano", "d-bread"]


def test_a_query_model_with_another_signature_is_refused(minilm_path, tiny_gpt_dir, flat_dir):
    cls_pooled = sgpt.load(minilm_path, pooling="cls")  # same weights, different pooling
    with pytest.raises(ValueError, match=r"query model does not match the index .*pooling: 'mean' vs 'cls'") as err:
        Index.load(flat_dir, cls_pooled)
    assert str(flat_dir / "manifest.json") in str(err.value)
    index = Index.load(flat_dir)
    with pytest.raises(ValueError, match=r"embedding_dim: 384 vs 64"):
        index.search(["a query"], k=1, model=sgpt.load(tiny_gpt_dir))
    specb = sgpt.load(minilm_path, special_tokens="specb")
    with pytest.raises(ValueError, match=r"text_format.special_tokens: None vs 'specb'"):
        index.search(["a query"], k=1, model=specb)


def test_bad_input_is_one_clear_error(minilm, tmp_path):
    out = tmp_path / "idx"
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'missing.jsonl'}: no such corpus file"):
        build_index(tmp_path / "missing.jsonl", minilm, out)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match=f"{empty}: file is empty"):
        build_index(empty, minilm, out)
    blank = tmp_path / "blank.jsonl"
    blank.write_text('{"_id": "a", "title": "", "text": "  "}\n')
    with pytest.raises(ValueError, match=f"{blank}: the corpus has no documents"):
        build_index(blank, minilm, out)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": "broken\n')
    with pytest.raises(ValueError, match=f"{bad}:2: invalid JSON"):
        build_index(bad, minilm, out)
    with pytest.raises(ValueError, match="index_type must be one of flat, ivf, hnsw"):
        build_index(write_corpus(tmp_path / "good.jsonl"), minilm, out, index_type="lsh")
    assert not out.exists() and not (tmp_path / "idx.partial").exists()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=f"{occupied}: exists and is not an sgpt index; refusing to replace it"):
        build_index(tmp_path / "good.jsonl", minilm, occupied)
    assert (occupied / "notes.txt").read_text() == "mine"
    with pytest.raises(FileNotFoundError, match="no such index folder"):
        Index.load(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(FileNotFoundError, match=r"manifest.json: missing; .* is not a complete sgpt index"):
        Index.load(tmp_path / "half")


def test_a_damaged_manifest_is_named(flat_dir, tmp_path):
    broken = shutil.copytree(flat_dir, tmp_path / "broken")
    (broken / "checksums.json").unlink()  # as built before checksums: an edited manifest is read as it is
    manifest = json.loads((broken / "manifest.json").read_text())
    del manifest["signature"]
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=f'{broken / "manifest.json"}: field "signature": missing'):
        Index.load(broken)
    manifest["signature"], manifest["n_docs"] = {}, 13
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"n_docs=13, dim=384 but index.faiss holds 12 x 384"):
        Index.load(broken)


def test_default_nlist_gives_faiss_39_documents_per_list():
    assert index_params("ivf", 12)["nlist"] == 1  # fewer than 39 documents: one list
    assert index_params("ivf", 100)["nlist"] == 2  # 4 * sqrt(100) = 40 lists would hold 2.5 documents each
    assert index_params("ivf", 1000)["nlist"] == 25
    assert index_params("ivf", 100_000)["nlist"] == 1265  # 4 * sqrt(n) when n is large enough
    assert index_params("ivf", 1000, nlist=100)["nlist"] == 100  # an explicit nlist is kept


def test_small_ivf_builds_without_faiss_warnings(minilm, corpus, tmp_path, capfd, caplog):
    capfd.readouterr()
    out = build_index(corpus, minilm, tmp_path / "ivf", index_type="ivf")
    assert Index.load(out).manifest["index"] == {"type": "ivf", "metric": "inner_product", "nlist": 1, "nprobe": 1}
    assert "please provide at least" not in capfd.readouterr().err
    with caplog.at_level(logging.WARNING, logger="sgpt.search"):
        build_index(corpus, minilm, tmp_path / "ivf3", index_type="ivf", nlist=3)
    assert "please provide at least" not in capfd.readouterr().err  # said once, by sgpt:
    assert (
        "ivf: 12 documents for nlist=3 lists is fewer than the 39 per list faiss's k-means wants; a smaller "
        "nlist (at most 1) clusters better"
    ) in caplog.text


def test_search_parameters_are_checked(minilm, corpus, flat_dir, tmp_path, caplog):
    ivf = Index.load(build_index(corpus, minilm, tmp_path / "ivf", index_type="ivf", nlist=3, nprobe=1), minilm)
    hnsw = Index.load(build_index(corpus, minilm, tmp_path / "hnsw", index_type="hnsw", m=4), minilm)
    q = minilm.encode_queries(QUERIES[:1], normalize=True)
    for bad in (0, -5, 4):
        with pytest.raises(ValueError, match=re.escape(f"nprobe must be in [1, nlist=3] for {ivf.path}, got {bad}")):
            ivf.search_vectors(q, k=3, nprobe=bad)
    for bad in (0, -1):
        with pytest.raises(
            ValueError, match=re.escape(f"ef_search must be >= 1 (and >= k=3 to find k hits), got {bad}")
        ):
            hnsw.search(QUERIES[:1], k=3, ef_search=bad)
    with pytest.raises(ValueError, match="nprobe \\(lists visited\\) only applies to ivf indexes; .* is of type flat"):
        Index.load(flat_dir).search_vectors(q, nprobe=2)
    with pytest.raises(ValueError, match="ef_search \\(candidates\\) only applies to hnsw indexes; .* is of type ivf"):
        ivf.search_vectors(q, ef_search=8)
    for empty in ("", "  \n"):
        with pytest.raises(ValueError, match="^the query is empty: give some text to search for$"):
            Index.load(flat_dir).search(empty)  # checked before the recorded model is loaded
    with pytest.raises(ValueError, match="^query 1 is empty"):
        hnsw.search(["fine", ""])
    assert hnsw.search([], k=3) == []

    with caplog.at_level(logging.WARNING, logger="sgpt.search"):
        hits = ivf.search_vectors(q, k=12, nprobe=1)[0]
    assert len(hits) < 12
    assert (
        f"{ivf.path}: the ivf index returned fewer than k=12 hits for 1 of 1 queries (fewest: {len(hits)}); "
        "search more lists with a larger nprobe (--nprobe; now 1 of nlist=3)"
    ) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sgpt.search"):
        assert len(ivf.search_vectors(q, k=12, nprobe=3)[0]) == 12  # every list: every document, no warning
        assert len(hnsw.search_vectors(q, k=12, ef_search=12)[0]) == 12
    assert "fewer than" not in caplog.text


def test_recorded_model_with_overrides_is_checked(flat_dir):
    index = Index.load(flat_dir)
    with pytest.raises(ValueError, match="query model does not match the index .*pooling: 'mean' vs 'cls'"):
        index.recorded_model(pooling="cls")
    assert index.recorded_model(pooling="mean").signature() == index.model.signature()


def test_files_instead_of_folders_are_named(minilm, corpus, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    with pytest.raises(ValueError, match=f"^{taken}: exists and is not a folder"):
        build_index(corpus, minilm, taken)
    assert taken.read_text() == "mine"
    with pytest.raises(NotADirectoryError, match=f"^{taken}: is a file, not an index folder"):
        Index.load(taken)


def test_index_files_get_ordinary_permissions(minilm, corpus, tmp_path, monkeypatch):
    old = os.umask(0o027)
    try:
        calls: list = []
        _crash_on_call(minilm, monkeypatch, 2, calls)
        with pytest.raises(RuntimeError):
            build_index(corpus, minilm, tmp_path / "idx", shard_size=5)
        shard = tmp_path / "idx.partial" / "shards" / "00000.npy"
        assert stat.S_IMODE(shard.stat().st_mode) == 0o640  # not mkstemp's 0o600
        monkeypatch.undo()
        out = build_index(corpus, minilm, tmp_path / "idx", shard_size=5)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750  # not mkdtemp's 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {
        "checksums.json": 0o640,
        "docs.jsonl": 0o640,
        "docs.offsets.npy": 0o640,
        "index.faiss": 0o640,
        "manifest.json": 0o640,
    }
