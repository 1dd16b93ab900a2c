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
from sgpt.model.spec import ModelSpec
from sgpt.search.faiss_params import make_faiss_index
from sgpt.search.index import (
    DOCS_FILE,
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILE,
    INDEX_FILES,
    MANIFEST,
    OFFSETS_FILE,
    resolve_model,
)
from sgpt.search.settings import IndexSettings
from sgpt.search.shards import ShardStore, corpus_fingerprint, json_normal, weights_fingerprint
from sgpt.utils.checksums import write_checksums
from sgpt.utils.io import atomic_dir, write_json
from sgpt.version import __version__

if TYPE_CHECKING:
    import faiss

    from sgpt.model.biencoder import BiEncoder

logger = logging.getLogger("sgpt.search")

__all__ = ["IndexSettings", "build_index", "check_index_output"]  # IndexSettings: sgpt.search.settings


def _model_record(model: BiEncoder, name_or_path: str | Path | None, spec: ModelSpec) -> dict:
    """The manifest's ``model`` entry: where to reload it from and with which ``sgpt.load`` arguments.

    The choices given in ``spec`` win; pooling, length and formatting default to the model's
    signature, so ``sgpt.load(name_or_path, **load_kwargs)`` rebuilds the same model.
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
    kwargs.update(spec.given())
    return {"name_or_path": str(name_or_path), "load_kwargs": kwargs, "weights_sha256": weights_fingerprint(model)}


def _read_documents(corpus_path: Path) -> tuple[list[str], list[str]]:
    """Ids and embedded texts (``document_text``: title and text) of a BEIR corpus, in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: bad lines (from the reader, naming file, line and field), or no documents.
    """
    if not corpus_path.is_file():
        gz = corpus_path.with_name(corpus_path.name + ".gz")
        hint = f" (there is {gz.name} beside it)" if gz.is_file() else ""
        raise FileNotFoundError(f"{corpus_path}: no such corpus file{hint}")
    corpus = read_corpus(corpus_path)
    if not corpus:
        raise ValueError(f"{corpus_path}: the corpus has no documents")
    ids = [str(doc_id) for doc_id in corpus]
    return ids, [document_text(corpus[doc_id]) for doc_id in corpus]


def _write_docs(folder: Path, ids: Sequence[str], texts: Sequence[str]) -> None:
    """``docs.jsonl`` (one ``{"id", "text"}`` per row) and its int64 byte offsets ``[n + 1]``."""
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    with open(folder / DOCS_FILE, "wb") as f:
        for row, (doc_id, text) in enumerate(zip(ids, texts, strict=False)):
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
    settings: IndexSettings | None = None,
    *,
    spec: ModelSpec | None = None,
    show_progress: bool = False,
    overwrite: bool = False,
    **fields: Any,
) -> Path:
    """Embed a BEIR corpus and write a searchable index folder (layout: :mod:`sgpt.search.index`).

    Documents (``title text``) are embedded with ``model.encode_documents(..., normalize=True)``
    in shards of ``shard_size`` documents under ``<out_dir>.partial/``; a rerun after a crash
    skips the finished shards, after checking that they were made from the same corpus, model
    weights, signature, precision and shard size. The final folder is written atomically and
    the work folder removed.

    Args:
        corpus_path: BEIR ``corpus.jsonl`` or ``corpus.jsonl.gz`` (``_id``, ``title``, ``text``).
        model: a ``BiEncoder``, or a path / hub id loaded with ``sgpt.load(model, spec)``.
        out_dir: the index folder to write (an earlier index there is replaced once the new one is complete).
        settings: index type, FAISS parameters, shard size, batch size, precision, resume
            (:class:`IndexSettings`); or give its fields as keyword arguments (``fields``).
        spec: loading choices for a ``model`` given as a path, recorded for reloading the query model.
        show_progress: a tqdm bar over documents.

    Returns:
        ``Path(out_dir)``.

    Raises:
        FileNotFoundError: no corpus file.
        ValueError: a bad corpus line (file, line and field named), an empty corpus, bad index
            parameters, shards of a different build in ``<out_dir>.partial`` (what differs is
            named), or an ``out_dir`` that is a file or holds something other than an sgpt index.
        TypeError: both ``settings`` and keyword fields.
    """
    if settings is not None and fields:
        raise TypeError("pass IndexSettings or its fields as keyword arguments, not both")
    settings = settings if settings is not None else IndexSettings(**fields)
    spec = spec or ModelSpec()
    corpus_path, out_dir = Path(corpus_path), Path(out_dir)
    check_index_output(out_dir, overwrite)
    ids, texts = _read_documents(corpus_path)
    params = settings.faiss_params(len(ids))  # bad index parameters are refused before the model loads
    model, given_name = resolve_model(model, spec)
    manifest = _manifest(model, _model_record(model, given_name, spec), corpus_path, ids, texts, settings, params)
    work = out_dir.resolve()
    store = ShardStore(work.with_name(work.name + ".partial"), _shard_key(manifest), resume=settings.resume)
    try:
        shards = _embed_shards(model, ids, texts, store, settings, show_progress)
    except BaseException:
        if not store.finished():  # stopped before a shard was done: nothing to resume from, leave nothing
            store.remove()
        raise
    _write_index(out_dir, make_faiss_index(params, shards, manifest["dim"]), ids, texts, manifest)
    store.remove()
    logger.debug("indexed %d documents (d=%d, %s) in %s", len(ids), model.embedding_dim, params["type"], out_dir)
    return out_dir


def _manifest(
    model: BiEncoder,
    record: dict,
    corpus_path: Path,
    ids: Sequence[str],
    texts: Sequence[str],
    settings: IndexSettings,
    params: dict,
) -> dict:
    """The index's ``manifest.json`` (layout: :mod:`sgpt.search.index`)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sgpt_version": __version__,
        "model": record,
        "signature": json_normal(model.signature()),
        "precision": settings.precision or "fp32",
        "index": params,
        "n_docs": len(ids),
        "dim": int(model.embedding_dim),
        "corpus": {
            "path": str(corpus_path.resolve()),
            "size_bytes": corpus_path.stat().st_size,
            "sha256": corpus_fingerprint(ids, texts),
        },
        "shard_size": settings.shard_size,
    }


def _shard_key(manifest: dict) -> dict:
    """What finished shards must share with a build to be reused: corpus, model weights and
    signature, precision and shard size (all read from its manifest)."""
    return {
        "corpus_sha256": manifest["corpus"]["sha256"],
        "n_docs": manifest["n_docs"],
        "weights_sha256": manifest["model"]["weights_sha256"],
        "signature": manifest["signature"],
        "precision": manifest["precision"],
        "shard_size": manifest["shard_size"],
    }


def check_index_output(out_dir: Path, overwrite: bool = False) -> None:
    """Refuse an ``out_dir`` that is a file, a non-empty folder other than an sgpt index, or (without
    ``overwrite``) an existing index; say when an existing index will be replaced.

    Raises:
        ValueError: naming the folder.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder (choose another --output)")
    if out_dir.exists() and any(out_dir.iterdir()) and not is_index(out_dir):
        raise ValueError(
            f"{out_dir}: exists and is not an sgpt index; refusing to replace it (choose another --output)"
        )
    if is_index(out_dir) and not overwrite:
        raise ValueError(
            f"{out_dir}: holds an index; pass --overwrite to rebuild and replace it, or choose another --output"
        )
    if is_index(out_dir):
        logger.warning("%s holds an index; it is rebuilt and replaced once the new one is complete", out_dir)


def is_index(folder: Path) -> bool:
    """Whether ``folder`` holds an sgpt index (its manifest)."""
    return (Path(folder) / MANIFEST).is_file()


def _embed_shards(
    model: BiEncoder,
    ids: Sequence[str],
    texts: Sequence[str],
    store: ShardStore,
    settings: IndexSettings,
    show_progress: bool,
) -> list[np.ndarray]:
    """Embed every shard not finished in ``store`` (normalised document vectors) and return all
    shards' ``[n_i, d]`` float32 arrays in order."""
    n, dim, size = len(ids), int(model.embedding_dim), settings.shard_size
    n_shards = math.ceil(n / size)
    chunk = settings.batch_size * 32  # progress granularity inside a shard; each chunk is still length-sorted
    reused = 0
    with tqdm(total=n, desc="embed documents", unit="doc", disable=not show_progress) as bar:
        for shard in range(n_shards):
            lo, hi = shard * size, min(n, (shard + 1) * size)
            if store.is_done(shard, ids[lo:hi], dim):
                reused += 1
                bar.update(hi - lo)
                continue
            emb = np.empty((hi - lo, dim), dtype=np.float32)
            for a in range(lo, hi, chunk):
                b = min(hi, a + chunk)
                emb[a - lo : b - lo] = model.encode_documents(
                    texts[a:b], batch_size=settings.batch_size, normalize=True, precision=settings.precision
                )
                bar.update(b - a)
            store.write(shard, ids[lo:hi], emb)
    if reused:
        logger.info("reused %d of %d finished shards from %s", reused, n_shards, store.folder)
    return [store.load(s) for s in range(n_shards)]


def _write_index(out_dir: Path, index: faiss.Index, ids: Sequence[str], texts: Sequence[str], manifest: dict) -> None:
    """The index folder, atomically: ``index.faiss``, ``docs.jsonl`` + offsets, ``manifest.json``,
    and last ``checksums.json`` (size and sha256 of the four, verified by ``Index.load``)."""
    import faiss

    with atomic_dir(out_dir, overwrite=True) as tmp:  # check_index_output allowed replacing it
        faiss.write_index(index, str(tmp / INDEX_FILE))
        _write_docs(tmp, ids, texts)
        write_json(tmp / MANIFEST, manifest)
        write_checksums(tmp, INDEX_FILES)  # last: covers the manifest and marks the folder complete
