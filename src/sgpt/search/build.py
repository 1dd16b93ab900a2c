"""Build a dense-retrieval index: embed a BEIR corpus in resumable shards, then write the FAISS
index, the documents and a manifest into one folder, atomically (layout: :mod:`sgpt.search.index`).

Documents are embedded into ``<index>.partial/`` first (see :mod:`sgpt.search.shards`): a crash
loses at most the shard in progress, and a rerun continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from sgpt.data.beir import read_corpus
from sgpt.data.documents import document_text
from sgpt.search.faiss_params import index_params, make_faiss_index
from sgpt.search.index import DOCS_FILE, FORMAT, FORMAT_VERSION, INDEX_FILE, MANIFEST, OFFSETS_FILE, resolve_model
from sgpt.search.shards import ShardStore, corpus_fingerprint, json_normal, weights_fingerprint
from sgpt.utils.io import atomic_dir, write_json
from sgpt.version import __version__

if TYPE_CHECKING:
    from sgpt.model.biencoder import BiEncoder

logger = logging.getLogger("sgpt.search")

__all__ = ["build_index"]


def _model_record(model: BiEncoder, name_or_path: str | Path | None, load_kwargs: Mapping[str, Any]) -> dict:
    """The manifest's ``model`` entry: where to reload it from and with which arguments.

    ``load_kwargs`` given by the caller win; pooling, length and formatting default to the
    model's signature, so ``sgpt.load(name_or_path, **load_kwargs)`` rebuilds the same model.
    """
    if name_or_path is None:
        name_or_path = getattr(model.backbone.config, "_name_or_path", "") or ""
    if name_or_path and Path(name_or_path).exists():
        name_or_path = Path(name_or_path).resolve()
    sig = model.signature()
    kwargs: dict[str, Any] = {"pooling": sig["pooling"], "max_seq_length": sig["max_seq_length"]}
    fmt = sig.get("text_format")
    if isinstance(fmt, Mapping):
        kwargs.update(fmt)
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    if dtype != "float32":
        kwargs["dtype"] = dtype
    kwargs.update({k: v for k, v in load_kwargs.items() if v is not None})
    return {"name_or_path": str(name_or_path), "load_kwargs": kwargs, "weights_sha256": weights_fingerprint(model)}


def _read_documents(corpus_path: Path) -> tuple[list[str], list[str]]:
    """Ids and embedded texts (``document_text``: title and text) of a BEIR corpus, in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: bad lines (from the reader, naming file, line and field), or no documents.
    """
    if not corpus_path.is_file():
        raise FileNotFoundError(f"{corpus_path}: no such corpus file")
    corpus = read_corpus(corpus_path)
    if not corpus:
        raise ValueError(f"{corpus_path}: the corpus has no documents")
    ids = [str(doc_id) for doc_id in corpus]
    return ids, [document_text(corpus[doc_id]) for doc_id in corpus]


def _write_docs(folder: Path, ids: Sequence[str], texts: Sequence[str]) -> None:
    """``docs.jsonl`` (one ``{"id", "text"}`` per row) and its int64 byte offsets ``[n + 1]``."""
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    with open(folder / DOCS_FILE, "wb") as f:
        for row, (doc_id, text) in enumerate(zip(ids, texts)):
            line = (json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n").encode(
                "utf-8", "surrogatepass"
            )
            f.write(line)
            offsets[row + 1] = offsets[row] + len(line)
    np.save(folder / OFFSETS_FILE, offsets)


def build_index(
    corpus_path: str | Path,
    model: BiEncoder | str | Path,
    out_dir: str | Path,
    *,
    shard_size: int = 10_000,
    batch_size: int = 32,
    index_type: str = "flat",
    nlist: int | None = None,
    nprobe: int | None = None,
    m: int = 32,
    ef_construction: int = 200,
    ef_search: int = 128,
    precision: str | None = None,
    show_progress: bool = False,
    resume: bool = True,
    model_name: str | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Embed a BEIR corpus and write a searchable index folder (layout: module doc).

    Documents (``title text``) are embedded with ``model.encode_documents(..., normalize=True)``
    in shards of ``shard_size`` documents under ``<out_dir>.partial/``; a rerun after a crash
    skips the finished shards, after checking that they were made from the same corpus, model
    weights, signature, precision and shard size. The final folder is written atomically and
    the work folder removed.

    Args:
        corpus_path: BEIR ``corpus.jsonl`` or ``corpus.jsonl.gz`` (``_id``, ``title``, ``text``).
        model: a ``BiEncoder``, or a path / hub id loaded with ``sgpt.load(model, **load_kwargs)``.
        out_dir: the index folder to write (replaced if it exists).
        shard_size: documents per shard (the most a crash can lose).
        batch_size: texts per forward pass.
        index_type: ``flat`` (exact), ``ivf`` or ``hnsw``.
        nlist: IVF lists (default ``round(4 * sqrt(n_docs))``, at most ``n_docs // 39`` so that faiss's
            k-means gets 39 documents per list, at least 1).
        nprobe: IVF lists visited per query (default ``ceil(nlist / 16)``; overridable per search).
        m: HNSW links per node.
        ef_construction: HNSW candidate list size while building.
        ef_search: HNSW candidate list size while searching (overridable per search).
        precision: ``None``/``"float32"``, or ``"bfloat16"`` autocast (also used for queries).
        show_progress: a tqdm bar over documents.
        resume: reuse finished shards of an interrupted build; ``False`` starts over.
        model_name: what the manifest records as the model's location (default: the path given,
            else the backbone's ``name_or_path``); ``Index.load`` reloads the query model from it.
        load_kwargs: arguments of ``sgpt.load`` (pooling, max_seq_length, dtype, ...), used to load
            ``model`` when it is a path and recorded for reloading.

    Returns:
        ``Path(out_dir)``.

    Raises:
        FileNotFoundError: no corpus file.
        ValueError: a bad corpus line (file, line and field named), an empty corpus, bad index
            parameters, shards of a different build in ``<out_dir>.partial`` (what differs is
            named), or an ``out_dir`` that is a file or holds something other than an sgpt index.
    """
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size and batch_size must be >= 1, got {shard_size} and {batch_size}")
    corpus_path, out_dir = Path(corpus_path), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder (choose another --out)")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise ValueError(f"{out_dir}: exists and is not an sgpt index; refusing to replace it (choose another --out)")
    ids, texts = _read_documents(corpus_path)
    n = len(ids)
    params = index_params(
        index_type, n, nlist=nlist, nprobe=nprobe, m=m, ef_construction=ef_construction, ef_search=ef_search
    )
    load_kwargs = dict(load_kwargs or {})
    model, given_name = resolve_model(model, load_kwargs)
    record = _model_record(model, model_name or given_name, load_kwargs)
    signature = json_normal(model.signature())
    dim = int(model.embedding_dim)
    corpus = {
        "path": str(corpus_path.resolve()),
        "size_bytes": corpus_path.stat().st_size,
        "sha256": corpus_fingerprint(ids, texts),
    }
    key = {
        "corpus_sha256": corpus["sha256"],
        "n_docs": n,
        "weights_sha256": record["weights_sha256"],
        "signature": signature,
        "precision": precision or "float32",
        "shard_size": shard_size,
    }
    work = out_dir.resolve()
    store = ShardStore(work.with_name(work.name + ".partial"), key, resume=resume)

    n_shards = math.ceil(n / shard_size)
    chunk = batch_size * 32  # progress granularity inside a shard; each chunk is still length-sorted
    reused = 0
    with tqdm(total=n, desc="embed documents", unit="doc", disable=not show_progress) as bar:
        for shard in range(n_shards):
            lo, hi = shard * shard_size, min(n, (shard + 1) * shard_size)
            if store.is_done(shard, ids[lo:hi], dim):
                reused += 1
                bar.update(hi - lo)
                continue
            emb = np.empty((hi - lo, dim), dtype=np.float32)
            for a in range(lo, hi, chunk):
                b = min(hi, a + chunk)
                emb[a - lo : b - lo] = model.encode_documents(
                    texts[a:b], batch_size=batch_size, normalize=True, precision=precision
                )
                bar.update(b - a)
            store.write(shard, ids[lo:hi], emb)
    if reused:
        logger.info("reused %d of %d finished shards from %s", reused, n_shards, store.folder)

    index = make_faiss_index(params, [store.load(s) for s in range(n_shards)], dim)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sgpt_version": __version__,
        "model": record,
        "signature": signature,
        "precision": precision or "float32",
        "index": params,
        "n_docs": n,
        "dim": dim,
        "corpus": corpus,
        "shard_size": shard_size,
    }
    import faiss

    with atomic_dir(out_dir) as tmp:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        _write_docs(tmp, ids, texts)
        write_json(tmp / MANIFEST, manifest)
    store.remove()
    logger.debug("indexed %d documents (d=%d, %s) in %s", n, dim, index_type, out_dir)
    return out_dir
