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
    checksums.json       size and sha256 of each file above (manifest included), written last
                         (:mod:`sgpt.utils.checksums`)

``Index.load`` opens such a folder; ``Index.search`` embeds queries with
``model.encode_queries(..., normalize=True)`` and refuses a query model whose ``signature()``
differs from the one recorded in the manifest, and one whose weights differ from the indexed
documents' model (the manifest's weights fingerprint) unless ``allow_model_change=True``.

Integrity: the checksums live in their own file rather than in the manifest, so that they cover
the manifest too and so that their presence marks a finished build (the build writes them after
everything else, inside its atomic folder). :meth:`Index.load` checks every file's size and
sha256 before reading any of them, and names the first damaged file in one line (``INDEX/index.faiss:
damaged or changed since the index was built (size 1234 bytes, expected 5678); rebuild it with sgpt
index build``). Hashing costs about 0.08 s per 100 MB from the page cache (0.33 s from a cold
disk), measured; FAISS reads the whole ``index.faiss`` anyway. An index built before checksums
(no ``checksums.json``) still loads, with a warning that it is unverified; its remaining read
errors (a FAISS read failure, a ``docs.jsonl`` line that is not JSON) are one line naming the file too.
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
from sgpt.utils.checksums import damaged_files, has_checksums
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
INDEX_FILES = (MANIFEST, INDEX_FILE, DOCS_FILE, OFFSETS_FILE)  # what checksums.json covers
REBUILD = "rebuild it with sgpt index build"


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
        allow_model_change: accept query models whose weights differ from the documents' model
            (same signature); see :meth:`check_model`.
    """

    def __init__(
        self,
        path: Path,
        manifest: dict,
        faiss_index: faiss.Index,
        offsets: np.ndarray,
        model: BiEncoder | None = None,
        *,
        allow_model_change: bool = False,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.faiss_index = faiss_index
        self.allow_model_change = allow_model_change
        self._offsets = offsets
        self._model = model
        self._ids: list[str] | None = None

    @classmethod
    def load(
        cls, path: str | Path, model: BiEncoder | str | Path | None = None, *, allow_model_change: bool = False
    ) -> Index:
        """Open an index folder written by :func:`build_index`, after verifying its checksums.

        Args:
            path: the folder.
            model: the query model (a ``BiEncoder`` or a path for ``sgpt.load``); default: the
                model recorded in the manifest, loaded at the first text search.
            allow_model_change: accept a query model (given or recorded) whose weights differ from
                those the documents were embedded with (same signature); logged as a warning.
                Default: refuse it, since its vectors do not match the index's.

        Raises:
            FileNotFoundError: no such folder, or a file of the index is missing (named).
            NotADirectoryError: ``path`` is a file.
            ValueError: a file damaged or changed since the build (its size or sha256 differs from
                ``checksums.json``; named, one line), an unreadable file (FAISS or JSON error; named),
                not an sgpt index, an unknown format version, files that disagree with the
                manifest, or a ``model`` whose signature (or, unless allowed, weights) differs
                from the index's.
        """

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
        verified = _verify(path)
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
        index, offsets = _read_arrays(path, verified)
        if index.ntotal != manifest["n_docs"] or len(offsets) != manifest["n_docs"] + 1 or index.d != manifest["dim"]:
            raise ValueError(
                f"{where}: n_docs={manifest['n_docs']}, dim={manifest['dim']} but {INDEX_FILE} holds "
                f"{index.ntotal} x {index.d} and {DOCS_FILE} {len(offsets) - 1} documents"
            )
        out = cls(path, manifest, index, offsets, allow_model_change=allow_model_change)
        if model is not None:
            out._model = out.check_model(*resolve_model(model))
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
            with open(self.path / DOCS_FILE, "rb") as f:
                self._ids = [self._parse_row(line, lineno)[0] for lineno, line in enumerate(f, 1)]
        return self._ids

    def doc(self, row: int) -> tuple[str, str]:
        """``(id, text)`` of index row ``row``, read from ``docs.jsonl`` at its offset."""
        with open(self.path / DOCS_FILE, "rb") as f:
            return self._read_row(f, row)

    def _read_row(self, f, row: int) -> tuple[str, str]:
        f.seek(int(self._offsets[row]))
        return self._parse_row(f.read(int(self._offsets[row + 1] - self._offsets[row])), row + 1)

    def _parse_row(self, raw: bytes, lineno: int) -> tuple[str, str]:
        """``(id, text)`` of one ``docs.jsonl`` line; a line that is not such a row is one error naming it."""
        try:
            obj = json.loads(raw.decode("utf-8", "surrogatepass"))
            doc_id, text = obj["id"], obj["text"]
        except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            what = "missing field " + str(e) if isinstance(e, KeyError) else _first_line(e)
            raise ValueError(f"{self.path / DOCS_FILE}:{lineno}: not a document row ({what}); {REBUILD}") from None
        if not isinstance(doc_id, str) or not isinstance(text, str):
            raise ValueError(
                f"{self.path / DOCS_FILE}:{lineno}: not a document row (id and text must be strings); {REBUILD}"
            )
        return doc_id, text

    # ------------------------------------------------------------------ models
    def check_model(self, model: BiEncoder, name: str | Path | None = None) -> BiEncoder:
        """Return ``model`` if it embeds queries compatibly with the indexed documents.

        Args:
            model: the query model.
            name: where it was loaded from, for messages (default: its backbone's ``_name_or_path``).

        Raises:
            ValueError: its ``signature()`` differs from the manifest's (each differing field is
                named with both values), or its weights differ from those the index was built with
                (weights fingerprint) and :attr:`allow_model_change` is false (then only a warning
                is logged).
        """
        got = json_normal(model.signature())
        diffs = differences(self.signature, got)
        if diffs:
            raise ValueError(
                f"{self.path / MANIFEST}: the query model does not match the index (index vs query model: "
                f"{'; '.join(diffs)}); embed queries with the model the index was built with "
                f"({self.manifest['model']['name_or_path'] or 'see manifest.json'})"
            )
        record = self.manifest["model"]
        if weights_fingerprint(model) != record.get("weights_sha256"):
            if name is None:
                name = getattr(getattr(model.backbone, "config", None), "_name_or_path", "") or "the given model"
            built = record.get("name_or_path") or ""
            if built and Path(str(name)).resolve() == Path(built).resolve():
                what = f"the model at {name} has changed since the index was built (same settings, other weights)"
            else:
                what = (
                    f"the query model {name} has other weights than the model the index was built with "
                    f"({built or 'see manifest.json'})"
                )
            if not self.allow_model_change:
                raise ValueError(
                    f"{self.path}: {what}, so rankings would change; rebuild the index with this model, or pass "
                    "--allow-model-change (allow_model_change=True) to search with it anyway"
                )
            logger.warning("%s: %s; searching anyway (allow_model_change)", self.path, what)
        return model

    @property
    def model(self) -> BiEncoder:
        """The query model: the one given to :meth:`load`, else the manifest's (loaded once).

        Raises:
            ValueError: the recorded model loads with a different signature, or with different
                weights than the index was built with (it has changed since) unless
                :attr:`allow_model_change`.
            OSError: the recorded model cannot be found.
        """
        if self._model is None:
            self._model = self.recorded_model()
        return self._model

    def recorded_model(self, spec: ModelSpec | None = None, **choices: Any) -> BiEncoder:
        """Load the model recorded in the manifest with its recorded ``sgpt.load`` arguments, updated
        by the choices given in ``spec`` or as keyword arguments (e.g. ``dtype="bf16"``,
        ``pooling="cls"``), and check it (:meth:`check_model`).

        Raises:
            ValueError: no model location recorded, or the loaded model's signature differs from the
                index's (an override of pooling or length does that; each difference is named), or
                its weights do (see :meth:`check_model`).
            OSError: the recorded model cannot be found.
        """
        from sgpt.model.loader import load

        record = self.manifest["model"]
        if not record.get("name_or_path"):
            raise ValueError(f"{self.path / MANIFEST}: no model location recorded; pass the query model")
        kwargs = {**record.get("load_kwargs", {}), **(spec.given() if spec else {}), **choices}
        return self.check_model(load(record["name_or_path"], **kwargs), record["name_or_path"])

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
    index_dir: str | Path,
    queries: str | Sequence[str],
    k: int = 10,
    model: BiEncoder | str | Path | None = None,
    *,
    allow_model_change: bool = False,
) -> list[list[Hit]]:
    """``Index.load(index_dir, model, allow_model_change=...).search(queries, k)`` in one call."""
    return Index.load(index_dir, model, allow_model_change=allow_model_change).search(queries, k)


def _first_line(err: BaseException) -> str:
    """The first non-blank line of ``str(err)`` (FAISS errors span several lines)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _verify(path: Path) -> bool:
    """Check the files of the index at ``path`` against its ``checksums.json`` (size, then sha256).

    Returns:
        ``True`` when verified; ``False`` for an index built before checksums (logged as unverified).

    Raises:
        ValueError: a file differs or is missing (the first one named, the others listed), or the
            checksums file itself is unreadable.
    """
    if not has_checksums(path):
        logger.warning(
            "%s: built before sgpt recorded checksums, so its files are not verified (%s to add them)", path, REBUILD
        )
        return False
    try:
        damaged = damaged_files(path)
    except ValueError as e:
        raise ValueError(f"{_first_line(e)}; the checksums of {path} are unreadable: {REBUILD}") from e
    if damaged:
        name, reason = next(iter(damaged.items()))
        also = [n for n in damaged if n != name]
        more = f" (also damaged: {', '.join(also)})" if also else ""
        raise ValueError(f"{path / name}: damaged or changed since the index was built ({reason}){more}; {REBUILD}")
    return True


def _read_arrays(path: Path, verified: bool) -> tuple[faiss.Index, np.ndarray]:
    """``index.faiss`` and ``docs.offsets.npy``; a read failure is one line naming the file.

    For an index without checksums (``verified`` false) the offsets' end is checked against the
    size of ``docs.jsonl``, which catches a truncated one.
    """
    import faiss

    try:
        index = faiss.read_index(str(path / INDEX_FILE))
    except RuntimeError as e:  # faiss raises RuntimeError with a multi-line C++ message
        raise ValueError(f"{path / INDEX_FILE}: not a readable FAISS index ({_first_line(e)}); {REBUILD}") from e
    try:
        offsets = np.load(path / OFFSETS_FILE)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path / OFFSETS_FILE}: not a readable .npy file ({_first_line(e)}); {REBUILD}") from e
    if offsets.ndim != 1 or not np.issubdtype(offsets.dtype, np.integer):
        raise ValueError(f"{path / OFFSETS_FILE}: expected int64 [n_docs + 1] offsets; {REBUILD}")
    if not verified and len(offsets) and int(offsets[-1]) != (size := (path / DOCS_FILE).stat().st_size):
        raise ValueError(
            f"{path / DOCS_FILE}: damaged or changed since the index was built (size {size} bytes, "
            f"expected {int(offsets[-1])}); {REBUILD}"
        )
    return index, offsets
