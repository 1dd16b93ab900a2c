"""Dense retrieval index: a BEIR corpus embedded in resumable shards, searched with FAISS.

``build_index`` writes one folder, atomically (it appears complete or not at all):

    manifest.json        format version, sgpt version, model (path, load arguments, signature,
                         weights fingerprint), precision, index type and parameters, corpus
                         (path, size, fingerprint), n_docs, dim
    index.faiss          FAISS index over the L2-normalised document vectors, inner product
                         (= cosine): IndexFlatIP (exact), IndexIVFFlat or IndexHNSWFlat
    docs.jsonl           one ``{"id", "text"}`` per index row (the text that was embedded)
    docs.offsets.npy     int64 ``[n_docs + 1]`` byte offsets of those lines, so a search reads
                         only the lines of its hits

Documents are embedded into ``<index>.partial/`` first (see ``sgpt.search.shards``): a crash
loses at most the shard in progress, and a rerun continues where it stopped.

``Index.load`` opens such a folder; ``Index.search`` embeds queries with
``model.encode_queries(..., normalize=True)`` and refuses a query model whose ``signature()``
differs from the one recorded in the manifest.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from sgpt.search.shards import (
    ShardStore,
    corpus_fingerprint,
    json_normal,
    weights_fingerprint,
)
from sgpt.utils.diff import differences
from sgpt.utils.io import atomic_dir, read_json, write_json

if TYPE_CHECKING:
    import faiss

    from sgpt.model.biencoder import BiEncoder

logger = logging.getLogger("sgpt.search")

__all__ = ["INDEX_TYPES", "Hit", "Index", "build_index", "index_params", "make_faiss_index", "search"]

FORMAT = "sgpt-index"
FORMAT_VERSION = 1
INDEX_TYPES = ("flat", "ivf", "hnsw")
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
DOCS_FILE = "docs.jsonl"
OFFSETS_FILE = "docs.offsets.npy"
TRAIN_POINTS_PER_LIST = 256  # IVF k-means sample: at most this many vectors per list
MIN_POINTS_PER_LIST = 39  # faiss's k-means wants at least this many training vectors per list


@dataclass(frozen=True)
class Hit:
    """One search result: document id, inner product of the normalised vectors (cosine), and
    the document text that was embedded (title and text)."""

    id: str
    score: float
    text: str

    def to_dict(self) -> dict:
        """``{"id", "score", "text"}`` (the ``sgpt search --json`` row)."""
        return {"id": self.id, "score": self.score, "text": self.text}


# ---------------------------------------------------------------------------------------- models
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


def _resolve_model(model: BiEncoder | str | Path, load_kwargs: Mapping[str, Any]) -> tuple[BiEncoder, str | None]:
    """``model`` itself, or the model loaded from a path/hub id (returned with that name)."""
    if isinstance(model, (str, Path)):
        import sgpt

        return sgpt.load(model, **{k: v for k, v in load_kwargs.items() if v is not None}), str(model)
    return model, None


# ---------------------------------------------------------------------------------------- build
def _read_documents(corpus_path: Path) -> tuple[list[str], list[str]]:
    """Ids and embedded texts (``document_text``: title and text) of a BEIR corpus, in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: bad lines (from the reader, naming file, line and field), or no documents.
    """
    from sgpt.data.readers_retrieval import document_text, read_corpus

    if not corpus_path.is_file():
        raise FileNotFoundError(f"{corpus_path}: no such corpus file")
    corpus = read_corpus(corpus_path)
    if not corpus:
        raise ValueError(f"{corpus_path}: the corpus has no documents")
    ids = [str(doc_id) for doc_id in corpus]
    return ids, [document_text(corpus[doc_id]) for doc_id in corpus]


def index_params(index_type: str, n: int, *, nlist: int | None = None, nprobe: int | None = None, m: int = 32,
                 ef_construction: int = 200, ef_search: int = 128) -> dict:
    """The manifest's ``index`` entry, defaults filled in and checked (see :func:`build_index`).

    Args:
        index_type: ``flat``, ``ivf`` or ``hnsw``.
        n: number of documents.

    Returns:
        ``{"type", "metric": "inner_product"}`` plus ``nlist, nprobe`` (ivf) or
        ``m, ef_construction, ef_search`` (hnsw).

    Raises:
        ValueError: unknown type or out-of-range parameters.
    """
    if index_type not in INDEX_TYPES:
        raise ValueError(f"index_type must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}")
    params: dict[str, Any] = {"type": index_type, "metric": "inner_product"}
    if index_type == "ivf":
        nlist = max(1, min(round(4 * math.sqrt(n)), n // MIN_POINTS_PER_LIST)) if nlist is None else nlist
        if not 1 <= nlist <= n:
            raise ValueError(f"ivf: nlist must be in [1, n_docs={n}], got {nlist}")
        nprobe = max(1, math.ceil(nlist / 16)) if nprobe is None else nprobe
        if not 1 <= nprobe <= nlist:
            raise ValueError(f"ivf: nprobe must be in [1, nlist={nlist}], got {nprobe}")
        params.update(nlist=nlist, nprobe=nprobe)
    elif index_type == "hnsw":
        if m < 2 or ef_construction < 1 or ef_search < 1:
            raise ValueError(f"hnsw: need m >= 2, ef_construction >= 1, ef_search >= 1; got {m}, "
                             f"{ef_construction}, {ef_search}")
        params.update(m=m, ef_construction=ef_construction, ef_search=ef_search)
    return params


def make_faiss_index(params: Mapping[str, Any], shards: Sequence[np.ndarray], dim: int) -> faiss.Index:
    """A FAISS inner-product index over the rows of ``shards`` (each ``[n_i, dim]`` float32), in order.

    ``flat``: exact ``IndexFlatIP``. ``ivf``: ``IndexIVFFlat`` with ``nlist`` lists, its k-means
    trained on at most ``256 * nlist`` rows drawn uniformly (seed 0); fewer than 39 rows per list
    (faiss's minimum) is logged once as a warning here instead of faiss's own stderr line.
    ``hnsw``: ``IndexHNSWFlat`` with ``m`` links per node, ``METRIC_INNER_PRODUCT``.
    """
    import faiss

    kind = params["type"]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        nlist = int(params["nlist"])
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = _training_sample(shards, nlist * TRAIN_POINTS_PER_LIST)
        if len(sample) < nlist * MIN_POINTS_PER_LIST:
            if nlist > 1:
                logger.warning("ivf: %d documents for nlist=%d lists is fewer than the %d per list faiss's k-means "
                               "wants; a smaller nlist (at most %d) clusters better", len(sample), nlist,
                               MIN_POINTS_PER_LIST, max(1, len(sample) // MIN_POINTS_PER_LIST))
            index.cp.min_points_per_centroid = 1  # said above (or nothing to say for one list): no faiss warning
        index.train(sample)
        index.nprobe = int(params["nprobe"])
    else:
        index = faiss.IndexHNSWFlat(dim, int(params["m"]), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(params["ef_construction"])
        index.hnsw.efSearch = int(params["ef_search"])
    for emb in shards:
        index.add(np.ascontiguousarray(emb, dtype=np.float32))
    return index


def _training_sample(shards: Sequence[np.ndarray], limit: int) -> np.ndarray:
    """At most ``limit`` rows of the concatenated shards, drawn without replacement (seed 0), in row order."""
    sizes = [len(s) for s in shards]
    n = sum(sizes)
    rows = np.sort(np.random.default_rng(0).choice(n, size=min(n, limit), replace=False))
    starts = np.cumsum([0, *sizes])
    parts = [np.asarray(s[rows[(rows >= a) & (rows < b)] - a]) for s, a, b in zip(shards, starts[:-1], starts[1:])]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _write_docs(folder: Path, ids: Sequence[str], texts: Sequence[str]) -> None:
    """``docs.jsonl`` (one ``{"id", "text"}`` per row) and its int64 byte offsets ``[n + 1]``."""
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    with open(folder / DOCS_FILE, "wb") as f:
        for row, (doc_id, text) in enumerate(zip(ids, texts)):
            line = (json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
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
    import sgpt

    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size and batch_size must be >= 1, got {shard_size} and {batch_size}")
    corpus_path, out_dir = Path(corpus_path), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder (choose another --out)")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise ValueError(f"{out_dir}: exists and is not an sgpt index; refusing to replace it (choose another --out)")
    ids, texts = _read_documents(corpus_path)
    n = len(ids)
    params = index_params(index_type, n, nlist=nlist, nprobe=nprobe, m=m, ef_construction=ef_construction,
                          ef_search=ef_search)
    load_kwargs = dict(load_kwargs or {})
    model, given_name = _resolve_model(model, load_kwargs)
    record = _model_record(model, model_name or given_name, load_kwargs)
    signature = json_normal(model.signature())
    dim = int(model.embedding_dim)
    corpus = {"path": str(corpus_path.resolve()), "size_bytes": corpus_path.stat().st_size,
              "sha256": corpus_fingerprint(ids, texts)}
    key = {"corpus_sha256": corpus["sha256"], "n_docs": n, "weights_sha256": record["weights_sha256"],
           "signature": signature, "precision": precision or "float32", "shard_size": shard_size}
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
                emb[a - lo:b - lo] = model.encode_documents(texts[a:b], batch_size=batch_size, normalize=True,
                                                            precision=precision)
                bar.update(b - a)
            store.write(shard, ids[lo:hi], emb)
    if reused:
        logger.info("reused %d of %d finished shards from %s", reused, n_shards, store.folder)

    index = make_faiss_index(params, [store.load(s) for s in range(n_shards)], dim)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "sgpt_version": sgpt.__version__,
        "model": record, "signature": signature, "precision": precision or "float32",
        "index": params, "n_docs": n, "dim": dim, "corpus": corpus, "shard_size": shard_size,
    }
    import faiss

    with atomic_dir(out_dir) as tmp:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        _write_docs(tmp, ids, texts)
        write_json(tmp / MANIFEST, manifest)
    store.remove()
    logger.debug("indexed %d documents (d=%d, %s) in %s", n, dim, index_type, out_dir)
    return out_dir


# ---------------------------------------------------------------------------------------- search
class Index:
    """A built index folder, opened for search. Use :meth:`load`.

    Attributes:
        path: the folder.
        manifest: its ``manifest.json``.
        faiss_index: the FAISS index (rows = ``docs.jsonl`` lines).
    """

    def __init__(self, path: Path, manifest: dict, faiss_index: faiss.Index, offsets: np.ndarray,
                 model: BiEncoder | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self.faiss_index = faiss_index
        self._offsets = offsets
        self._model = model
        self._ids: list[str] | None = None

    @classmethod
    def load(cls, path: str | Path, model: BiEncoder | str | Path | None = None) -> Index:
        """Open an index folder written by :func:`build_index`.

        Args:
            path: the folder.
            model: the query model (a ``BiEncoder`` or a path for ``sgpt.load``); default: the
                model recorded in the manifest, loaded at the first text search.

        Raises:
            FileNotFoundError: no such folder, or a file of the index is missing (named).
            NotADirectoryError: ``path`` is a file.
            ValueError: not an sgpt index, an unknown format version, files that disagree with
                the manifest, or a ``model`` whose signature differs from the index's.
        """
        import faiss

        path = Path(path)
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"{path}: is a file, not an index folder (give the folder written by "
                                     "`sgpt index build`)")
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such index folder")
        for name in (MANIFEST, INDEX_FILE, DOCS_FILE, OFFSETS_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path / name}: missing; {path} is not a complete sgpt index "
                                        "(build it with `sgpt index build`)")
        manifest = read_json(path / MANIFEST)
        where = path / MANIFEST
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError(f"{where}: field \"format\": expected {FORMAT!r}, got "
                             f"{manifest.get('format') if isinstance(manifest, dict) else manifest!r}")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{where}: field \"format_version\": this sgpt reads version {FORMAT_VERSION}, "
                             f"got {manifest.get('format_version')!r}")
        for field in ("model", "signature", "precision", "index", "n_docs", "dim"):
            if field not in manifest:
                raise ValueError(f"{where}: field \"{field}\": missing")
        index = faiss.read_index(str(path / INDEX_FILE))
        offsets = np.load(path / OFFSETS_FILE)
        if index.ntotal != manifest["n_docs"] or len(offsets) != manifest["n_docs"] + 1 or index.d != manifest["dim"]:
            raise ValueError(f"{where}: n_docs={manifest['n_docs']}, dim={manifest['dim']} but {INDEX_FILE} holds "
                             f"{index.ntotal} x {index.d} and {DOCS_FILE} {len(offsets) - 1} documents")
        out = cls(path, manifest, index, offsets)
        if model is not None:
            out._model = out.check_model(_resolve_model(model, {})[0])
        return out

    # ------------------------------------------------------------------ properties
    @property
    def n_docs(self) -> int:
        """Number of indexed documents."""
        return int(self.manifest["n_docs"])

    @property
    def dim(self) -> int:
        """Vector size ``d``."""
        return int(self.manifest["dim"])

    @property
    def signature(self) -> dict:
        """The document model's ``signature()``, as recorded."""
        return self.manifest["signature"]

    @property
    def ids(self) -> list[str]:
        """Document ids in index-row order (read from ``docs.jsonl`` on first use)."""
        if self._ids is None:
            with open(self.path / DOCS_FILE, encoding="utf-8") as f:
                self._ids = [json.loads(line)["id"] for line in f]
        return self._ids

    def doc(self, row: int) -> tuple[str, str]:
        """``(id, text)`` of index row ``row``, read from ``docs.jsonl`` at its offset."""
        with open(self.path / DOCS_FILE, "rb") as f:
            return self._read_row(f, row)

    def _read_row(self, f, row: int) -> tuple[str, str]:
        f.seek(int(self._offsets[row]))
        obj = json.loads(f.read(int(self._offsets[row + 1] - self._offsets[row])).decode("utf-8", "surrogatepass"))
        return obj["id"], obj["text"]

    # ------------------------------------------------------------------ models
    def check_model(self, model: BiEncoder) -> BiEncoder:
        """Return ``model`` if it embeds queries compatibly with the indexed documents.

        Raises:
            ValueError: its ``signature()`` differs from the manifest's (each differing field is
                named with both values). Different weights with the same signature only log a warning.
        """
        got = json_normal(model.signature())
        diffs = differences(self.signature, got)
        if diffs:
            raise ValueError(
                f"{self.path / MANIFEST}: the query model does not match the index (index vs query model: "
                f"{'; '.join(diffs)}); embed queries with the model the index was built with "
                f"({self.manifest['model']['name_or_path'] or 'see manifest.json'})")
        if weights_fingerprint(model) != self.manifest["model"]["weights_sha256"]:
            logger.warning("%s: the query model's weights differ from the document model's", self.path)
        return model

    @property
    def model(self) -> BiEncoder:
        """The query model: the one given to :meth:`load`, else the manifest's (loaded once).

        Raises:
            ValueError: the recorded model loads with a different signature or different
                weights than the index was built with (it has changed since).
            OSError: the recorded model cannot be found.
        """
        if self._model is None:
            model = self.recorded_model()
            record = self.manifest["model"]
            if weights_fingerprint(model) != record["weights_sha256"]:
                raise ValueError(f"{self.path / MANIFEST}: the model at {record['name_or_path']} has changed since "
                                 "the index was built (weights differ); pass the model the index was built with")
            self._model = model
        return self._model

    def recorded_model(self, **overrides: Any) -> BiEncoder:
        """Load the model recorded in the manifest with its recorded ``sgpt.load`` arguments, updated
        by ``overrides`` (e.g. ``dtype="bfloat16"``, ``pooling="cls"``), and check it (:meth:`check_model`).

        Raises:
            ValueError: no model location recorded, or the loaded model's signature differs from the
                index's (an override of pooling or length does that; each difference is named).
            OSError: the recorded model cannot be found.
        """
        import sgpt

        record = self.manifest["model"]
        if not record.get("name_or_path"):
            raise ValueError(f"{self.path / MANIFEST}: no model location recorded; pass the query model")
        kwargs = {**record.get("load_kwargs", {}), **{k: v for k, v in overrides.items() if v is not None}}
        return self.check_model(sgpt.load(record["name_or_path"], **kwargs))

    # ------------------------------------------------------------------ search
    def search(self, queries: str | Sequence[str], k: int = 10, model: BiEncoder | None = None, *,
               batch_size: int = 32, nprobe: int | None = None, ef_search: int | None = None) -> list[list[Hit]]:
        """The ``k`` best documents for each query.

        Queries are embedded with ``model.encode_queries(..., normalize=True)`` at the index's
        precision; scores are cosine similarities.

        Args:
            queries: ``q`` query texts (a single string counts as one query).
            k: hits per query (fewer when the index holds fewer documents).
            model: the query model (default: :attr:`model`); checked against the manifest.
            batch_size: queries per forward pass.
            nprobe, ef_search: override the IVF / HNSW search parameters for this call.

        Returns:
            ``q`` lists of at most ``k`` hits, best first.

        Raises:
            ValueError: ``k < 1``, an empty query, ``nprobe`` / ``ef_search`` out of range or given
                for another index type (see :meth:`search_vectors`), or a query model whose
                signature differs from the index's. All but the last are checked before any model
                is loaded.
        """
        items = [queries] if isinstance(queries, str) else list(queries)
        self.check_search_args(k, nprobe=nprobe, ef_search=ef_search, queries=items)
        if not items:
            return []
        model = self.model if model is None or model is self._model else self.check_model(model)
        precision = self.manifest.get("precision")
        q = model.encode_queries(items, batch_size=batch_size, normalize=True,
                                 precision=None if precision == "float32" else precision)
        return self.search_vectors(q.reshape(len(items), -1), k, nprobe=nprobe, ef_search=ef_search)

    def search_vectors(self, q_emb: np.ndarray, k: int = 10, *, nprobe: int | None = None,
                       ef_search: int | None = None) -> list[list[Hit]]:
        """The ``k`` best documents for each query vector (scores: inner products).

        Args:
            q_emb: ``[q, d]`` query vectors (normalise them for cosine scores).
            k: hits per query.
            nprobe: IVF lists visited for this call, in ``[1, nlist]`` (default: the manifest's).
            ef_search: HNSW candidate list size for this call, ``>= 1`` (default: the manifest's);
                below ``k`` it finds fewer than ``k`` hits.

        Returns:
            ``q`` lists of at most ``k`` hits, best first. An IVF or HNSW index can return fewer
            than ``min(k, n_docs)``; that is logged as a warning naming the parameter to raise.

        Raises:
            ValueError: ``k < 1``, ``q_emb`` not ``[q, d]`` with this index's ``d``, ``nprobe``
                outside ``[1, nlist]`` or ``ef_search < 1``, or either given for an index of
                another type.
        """
        self.check_search_args(k, nprobe=nprobe, ef_search=ef_search)
        q_emb = np.asarray(q_emb)
        if q_emb.ndim != 2 or q_emb.shape[1] != self.dim:
            raise ValueError(f"query vectors must be [q, {self.dim}], got shape {list(q_emb.shape)}")
        self._set_search_params(nprobe, ef_search)
        scores, rows = self.faiss_index.search(np.ascontiguousarray(q_emb, dtype=np.float32), min(k, self.n_docs))
        out = []
        with open(self.path / DOCS_FILE, "rb") as f:
            for score_row, id_row in zip(scores, rows):
                hits = []
                for score, row in zip(score_row, id_row):
                    if row < 0:  # IVF/HNSW found fewer than k
                        break
                    doc_id, text = self._read_row(f, int(row))
                    hits.append(Hit(doc_id, float(score), text))
                out.append(hits)
        self._warn_if_short(out, k, nprobe, ef_search)
        return out

    def check_search_args(self, k: int, *, nprobe: int | None = None, ef_search: int | None = None,
                          queries: Sequence[str] = ()) -> None:
        """Check search arguments without searching (callers can fail fast, before loading a model).

        Raises:
            ValueError: ``k < 1``; an empty (or blank) query; ``nprobe`` outside ``[1, nlist]`` or
                given for a non-ivf index; ``ef_search < 1`` or given for a non-hnsw index.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        for i, text in enumerate(queries):
            if not isinstance(text, str) or not text.strip():
                where = "the query" if len(queries) == 1 else f"query {i}"
                raise ValueError(f"{where} is empty: give some text to search for")
        params = self.manifest["index"]
        kind = params["type"]
        if nprobe is not None:
            if kind != "ivf":
                raise ValueError(f"nprobe (lists visited) only applies to ivf indexes; {self.path} is of type {kind}")
            if not 1 <= nprobe <= int(params["nlist"]):
                raise ValueError(f"nprobe must be in [1, nlist={params['nlist']}] for {self.path}, got {nprobe}")
        if ef_search is not None:
            if kind != "hnsw":
                raise ValueError(f"ef_search (candidates) only applies to hnsw indexes; {self.path} is of type {kind}")
            if ef_search < 1:
                raise ValueError(f"ef_search must be >= 1 (and >= k={k} to find k hits), got {ef_search}")

    def _set_search_params(self, nprobe: int | None, ef_search: int | None) -> None:
        params = self.manifest["index"]
        if params["type"] == "ivf":
            self.faiss_index.nprobe = int(params["nprobe"] if nprobe is None else nprobe)
        elif params["type"] == "hnsw":
            self.faiss_index.hnsw.efSearch = int(params["ef_search"] if ef_search is None else ef_search)

    def _warn_if_short(self, out: list[list[Hit]], k: int, nprobe: int | None, ef_search: int | None) -> None:
        """Log a warning when an approximate index returned fewer than ``min(k, n_docs)`` hits for a query."""
        want = min(k, self.n_docs)
        short = [len(hits) for hits in out if len(hits) < want]
        if not short:
            return
        params = self.manifest["index"]
        if params["type"] == "flat":  # cannot happen: exact search returns min(k, n_docs)
            return
        if params["type"] == "ivf":
            used = params["nprobe"] if nprobe is None else nprobe
            advice = f"search more lists with a larger nprobe (--nprobe; now {used} of nlist={params['nlist']})"
        else:
            used = params["ef_search"] if ef_search is None else ef_search
            advice = f"use a larger ef_search (--ef-search; now {used}, at least k={k})"
        logger.warning("%s: the %s index returned fewer than k=%d hits for %d of %d queries (fewest: %d); %s",
                       self.path, params["type"], k, len(short), len(out), min(short), advice)


def search(index_dir: str | Path, queries: str | Sequence[str], k: int = 10,
           model: BiEncoder | str | Path | None = None) -> list[list[Hit]]:
    """``Index.load(index_dir, model).search(queries, k)`` in one call."""
    return Index.load(index_dir, model).search(queries, k)
