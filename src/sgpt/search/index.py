"""A built dense-retrieval index folder, opened for search (written by :mod:`sgpt.search.build`).

Layout of the folder:

    manifest.json        format version, sgpt version, model (path, load arguments, signature,
                         weights fingerprint), precision, index type and parameters, corpus
                         (path, size, fingerprint), n_docs, dim
    index.faiss          FAISS index over the L2-normalised document vectors, inner product
                         (= cosine): IndexFlatIP (exact), IndexIVFFlat or IndexHNSWFlat
    docs.jsonl           one ``{"id", "text"}`` per index row (the text that was embedded)
    docs.offsets.npy     int64 ``[n_docs + 1]`` byte offsets of those lines, so a search reads
                         only the lines of its hits

``Index.load`` opens such a folder; ``Index.search`` embeds queries with
``model.encode_queries(..., normalize=True)`` and refuses a query model whose ``signature()``
differs from the one recorded in the manifest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from sgpt.search.shards import (
    json_normal,
    weights_fingerprint,
)
from sgpt.utils.diff import differences
from sgpt.utils.io import read_json

if TYPE_CHECKING:
    import faiss

    from sgpt.model.biencoder import BiEncoder
    from sgpt.model.spec import ModelSpec

logger = logging.getLogger("sgpt.search")

__all__ = ["Hit", "Index", "resolve_model", "search"]

FORMAT = "sgpt-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
DOCS_FILE = "docs.jsonl"
OFFSETS_FILE = "docs.offsets.npy"


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


def resolve_model(model: BiEncoder | str | Path, spec: ModelSpec | None = None) -> tuple[BiEncoder, str | None]:
    """``model`` itself, or the model loaded from a path/hub id with ``spec`` (returned with that name)."""
    if isinstance(model, (str, Path)):
        from sgpt.model.loader import load

        return load(model, spec), str(model)
    return model, None


class Index:
    """A built index folder, opened for search. Use :meth:`load`.

    Attributes:
        path: the folder.
        manifest: its ``manifest.json``.
        faiss_index: the FAISS index (rows = ``docs.jsonl`` lines).
    """

    def __init__(
        self, path: Path, manifest: dict, faiss_index: faiss.Index, offsets: np.ndarray, model: BiEncoder | None = None
    ) -> None:
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
            raise NotADirectoryError(
                f"{path}: is a file, not an index folder (give the folder written by `sgpt index build`)"
            )
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such index folder")
        for name in (MANIFEST, INDEX_FILE, DOCS_FILE, OFFSETS_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(
                    f"{path / name}: missing; {path} is not a complete sgpt index (build it with `sgpt index build`)"
                )
        manifest = read_json(path / MANIFEST)
        where = path / MANIFEST
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError(
                f'{where}: field "format": expected {FORMAT!r}, got '
                f"{manifest.get('format') if isinstance(manifest, dict) else manifest!r}"
            )
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f'{where}: field "format_version": this sgpt reads version {FORMAT_VERSION}, '
                f"got {manifest.get('format_version')!r}"
            )
        for field in ("model", "signature", "precision", "index", "n_docs", "dim"):
            if field not in manifest:
                raise ValueError(f'{where}: field "{field}": missing')
        index = faiss.read_index(str(path / INDEX_FILE))
        offsets = np.load(path / OFFSETS_FILE)
        if index.ntotal != manifest["n_docs"] or len(offsets) != manifest["n_docs"] + 1 or index.d != manifest["dim"]:
            raise ValueError(
                f"{where}: n_docs={manifest['n_docs']}, dim={manifest['dim']} but {INDEX_FILE} holds "
                f"{index.ntotal} x {index.d} and {DOCS_FILE} {len(offsets) - 1} documents"
            )
        out = cls(path, manifest, index, offsets)
        if model is not None:
            out._model = out.check_model(resolve_model(model)[0])
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
                f"({self.manifest['model']['name_or_path'] or 'see manifest.json'})"
            )
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
                raise ValueError(
                    f"{self.path / MANIFEST}: the model at {record['name_or_path']} has changed since "
                    "the index was built (weights differ); pass the model the index was built with"
                )
            self._model = model
        return self._model

    def recorded_model(self, spec: ModelSpec | None = None, **choices: Any) -> BiEncoder:
        """Load the model recorded in the manifest with its recorded ``sgpt.load`` arguments, updated
        by the choices given in ``spec`` or as keyword arguments (e.g. ``dtype="bf16"``,
        ``pooling="cls"``), and check it (:meth:`check_model`).

        Raises:
            ValueError: no model location recorded, or the loaded model's signature differs from the
                index's (an override of pooling or length does that; each difference is named).
            OSError: the recorded model cannot be found.
        """
        from sgpt.model.loader import load

        record = self.manifest["model"]
        if not record.get("name_or_path"):
            raise ValueError(f"{self.path / MANIFEST}: no model location recorded; pass the query model")
        kwargs = {**record.get("load_kwargs", {}), **(spec.given() if spec else {}), **choices}
        return self.check_model(load(record["name_or_path"], **kwargs))

    # ------------------------------------------------------------------ search
    def search(
        self,
        queries: str | Sequence[str],
        k: int = 10,
        model: BiEncoder | None = None,
        *,
        batch_size: int = 32,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> list[list[Hit]]:
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
        q = model.encode(  # = encode_queries, typed as the numpy array it returns
            items, batch_size, normalize=True, precision=self.manifest.get("precision"), role="query"
        )
        return self.search_vectors(q.reshape(len(items), -1), k, nprobe=nprobe, ef_search=ef_search)

    def search_vectors(
        self, q_emb: np.ndarray, k: int = 10, *, nprobe: int | None = None, ef_search: int | None = None
    ) -> list[list[Hit]]:
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
            for score_row, id_row in zip(scores, rows, strict=False):
                hits = []
                for score, row in zip(score_row, id_row, strict=False):
                    if row < 0:  # IVF/HNSW found fewer than k
                        break
                    doc_id, text = self._read_row(f, int(row))
                    hits.append(Hit(doc_id, float(score), text))
                out.append(hits)
        self._warn_if_short(out, k, nprobe, ef_search)
        return out

    def check_search_args(
        self, k: int, *, nprobe: int | None = None, ef_search: int | None = None, queries: Sequence[str] = ()
    ) -> None:
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
            cast("faiss.IndexIVF", self.faiss_index).nprobe = int(params["nprobe"] if nprobe is None else nprobe)
        elif params["type"] == "hnsw":
            hnsw = cast("faiss.IndexHNSW", self.faiss_index).hnsw
            hnsw.efSearch = int(params["ef_search"] if ef_search is None else ef_search)

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
        logger.warning(
            "%s: the %s index returned fewer than k=%d hits for %d of %d queries (fewest: %d); %s",
            self.path,
            params["type"],
            k,
            len(short),
            len(out),
            min(short),
            advice,
        )


def search(
    index_dir: str | Path, queries: str | Sequence[str], k: int = 10, model: BiEncoder | str | Path | None = None
) -> list[list[Hit]]:
    """``Index.load(index_dir, model).search(queries, k)`` in one call."""
    return Index.load(index_dir, model).search(queries, k)
