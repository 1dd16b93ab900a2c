"""Read BEIR data set folders (SPEC 3.3): corpus, queries and qrels of one split.

``corpus.jsonl(.gz)`` (``_id``, optional ``title``, ``text``), ``queries.jsonl(.gz)`` (``_id``,
``text``), ``qrels/<split>.tsv`` (``query-id corpus-id score``, header line optional; TREC 4-column
qrels are read too). Documents are embedded as :func:`sgpt.data.documents.document_text`.

Ids are strings everywhere (a JSON integer id is turned into its decimal string, so ``"qid": 5``
and qrels ``5`` meet). Errors name the file, line and field; row-level errors can be skipped and
counted with ``skip_bad_rows``, never dropped silently.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sgpt.data.rows import (
    BadRows,
    DataFormatError,
    check_utf8,
    claim_id,
    few,
    is_int,
    iter_nonblank,
    json_rows,
    split_columns,
    text_field,
)

logger = logging.getLogger("sgpt.data")

__all__ = ["RetrievalData", "load_beir", "read_corpus", "read_qrels", "read_queries"]

_QRELS_HEADER_HINT = "query-id, corpus-id, score"


@dataclass(frozen=True)
class RetrievalData:
    """One retrieval test set: documents, queries and graded relevance judgments.

    Attributes:
        corpus: doc id → ``{"title": str, "text": str}`` (stripped; title ``""`` when absent), file order.
        queries: query id → stripped query text; only queries that have judgments in ``qrels``.
        qrels: query id → {doc id → graded relevance (int; 0 = judged not relevant)}.
        name: Label for results, e.g. ``scifact``.
    """

    corpus: dict[str, dict]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    name: str = ""


def read_corpus(path: str | Path, *, skip_bad_rows: bool = False) -> dict[str, dict]:
    """Read a BEIR ``corpus.jsonl`` or ``corpus.jsonl.gz``.

    Documents whose text is empty (or whitespace only) are dropped, as BEIR does (SPEC 3.3); their
    number is logged as a warning on the ``sgpt.data`` logger. Other keys (``metadata``) are ignored.

    Args:
        path: The file.
        skip_bad_rows: Skip (and log the count of) bad rows instead of raising on the first one.

    Returns:
        doc id → ``{"title": str, "text": str}``, both stripped (``title`` ``""`` if absent or null),
        in file order.

    Raises:
        DataFormatError: Invalid JSON, missing ``_id``/``text``, an id that is not a non-empty string
            or integer, a non-string title/text, bad bytes, a duplicate id (naming both lines), an
            empty file or corrupt gzip.
        FileNotFoundError: ``path`` does not exist.
    """
    return _read_corpus(Path(path), skip_bad_rows)[0]


def _read_corpus(path: Path, skip_bad_rows: bool) -> tuple[dict[str, dict], set[str]]:
    """:func:`read_corpus` plus the ids of the documents dropped for empty text."""
    bad = BadRows(path, skip_bad_rows)
    corpus: dict[str, dict] = {}
    dropped: set[str] = set()
    lines: dict[str, int] = {}

    def parse(lineno: int, obj: dict) -> tuple[str, str, str]:
        doc_id = claim_id(obj, "_id", path, lineno, lines)
        text = text_field(obj, "text", path, lineno, allow_empty=True)
        title = "" if obj.get("title") is None else text_field(obj, "title", path, lineno, allow_empty=True)
        return doc_id, title, text

    for _, (doc_id, title, text) in bad.each(json_rows(path, bad), parse):
        if text:
            corpus[doc_id] = {"title": title, "text": text}
        else:
            dropped.add(doc_id)
    bad.report()
    if dropped:
        logger.warning("dropped %d documents with empty text in %s (as BEIR does)", len(dropped), path)
    return corpus, dropped


def read_queries(path: str | Path, *, skip_bad_rows: bool = False) -> dict[str, str]:
    """Read a BEIR ``queries.jsonl`` or ``queries.jsonl.gz`` (``_id``, ``text``; other keys ignored).

    Args:
        path: The file.
        skip_bad_rows: Skip (and log the count of) bad rows instead of raising on the first one.

    Returns:
        query id → stripped text, in file order.

    Raises:
        DataFormatError: Invalid JSON, missing ``_id``/``text``, bad id, empty or non-string text
            (BEIR asserts on empty queries, SPEC 3.3), bad bytes, a duplicate id (naming both lines),
            an empty file or corrupt gzip.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    bad = BadRows(path, skip_bad_rows)
    queries: dict[str, str] = {}
    lines: dict[str, int] = {}

    def parse(lineno: int, obj: dict) -> tuple[str, str]:
        return claim_id(obj, "_id", path, lineno, lines), text_field(obj, "text", path, lineno, allow_empty=False)

    queries.update(row for _, row in bad.each(json_rows(path, bad), parse))
    bad.report()
    return queries


def read_qrels(path: str | Path, *, skip_bad_rows: bool = False) -> dict[str, dict[str, int]]:
    """Read relevance judgments: BEIR tsv (3 columns) or TREC qrels (4 columns).

    3 columns: ``query-id corpus-id score``; 4 columns: ``query-id iteration corpus-id score`` (the
    iteration column, ``0`` in MS MARCO, is ignored). Columns are split on tabs when the line has a
    tab, else on whitespace. The first line is a header (and skipped) when its last column is not an
    integer; a header is optional. Scores must be integers (graded; 0 = judged not relevant).

    Args:
        path: The file (``.gz`` accepted).
        skip_bad_rows: Skip (and log the count of) bad rows instead of raising on the first one.

    Returns:
        query id → {doc id → score}, in file order.

    Raises:
        DataFormatError: Wrong number of columns (or a different count than the first row), an
            empty id, a non-integer score, a (query, doc) pair judged twice (naming both lines),
            bad bytes, an empty file (or a header only) or corrupt gzip.
        FileNotFoundError: ``path`` does not exist.
    """
    return _read_qrels(Path(path), skip_bad_rows)[0]


def _read_qrels(path: Path, skip_bad_rows: bool) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str], int]]:
    """:func:`read_qrels` plus the line of every kept judgment: ``(query id, doc id) -> line``."""
    bad = BadRows(path, skip_bad_rows)
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    width = 0
    rows = iter_nonblank(path)
    first: tuple[int, str] | None = next(rows)
    head = split_columns(first[1]) if first else []
    if head and not is_int(head[-1]):
        first = None  # a header line: its last column is not a score

    def parse(lineno: int, line: str) -> tuple[str, str, int]:
        nonlocal width
        fields = split_columns(check_utf8(line, path, lineno))
        if len(fields) not in (3, 4) or (width and len(fields) != width):
            expected = width or "3 (query-id corpus-id score) or 4 (query-id 0 corpus-id score)"
            raise DataFormatError(path, lineno, None, f"expected {expected} columns, got {len(fields)}")
        width = len(fields)
        qid, doc_id, raw = fields[0], fields[-2], fields[-1]
        if not is_int(raw):
            raise DataFormatError(path, lineno, "score", f"not an integer: {raw!r}")
        previous = seen.get((qid, doc_id))
        if previous is not None:
            raise DataFormatError(
                path, lineno, "corpus-id", f"query {qid!r} judges doc {doc_id!r} again (first on line {previous})"
            )
        seen[(qid, doc_id)] = lineno
        return qid, doc_id, int(raw)

    for _, (qid, doc_id, score) in bad.each(itertools.chain([first] if first else [], rows), parse):
        qrels.setdefault(qid, {})[doc_id] = score
    bad.report()
    if not qrels and not bad.count:
        raise DataFormatError(path, None, None, f"no judgments (expected columns {_QRELS_HEADER_HINT})")
    return qrels, seen


def load_beir(
    folder: str | Path, split: str = "test", *, skip_bad_rows: bool = False, name: str | None = None
) -> RetrievalData:
    """Load one split of a BEIR data set folder.

    Reads ``folder/corpus.jsonl(.gz)``, ``folder/queries.jsonl(.gz)`` and ``folder/qrels/<split>.tsv(.gz)``.
    Queries are restricted to those judged in the split (as BEIR's ``GenericDataLoader``). Judgments
    naming a document dropped for empty text are kept (as BEIR does: the document cannot be found,
    which lowers the score); the count is logged. Judgments naming an id that is in neither file
    raise, or with ``skip_bad_rows`` are removed with a logged count — never scored silently.

    Args:
        folder: The data set folder.
        split: Qrels split (``test``, ``dev``, ``train``).
        skip_bad_rows: Skip and count bad rows and dangling judgments instead of raising.
        name: Label for results; default the folder name.

    Returns:
        The split's :class:`RetrievalData`.

    Raises:
        FileNotFoundError: ``folder`` or one of the three files is missing (the message lists the
            names tried and, for qrels, the splits present).
        DataFormatError: A bad row in any file, a judged query missing from the queries file, or a
            judged document missing from the corpus (the message names the line of the first such
            judgment, counts them and lists up to 5 of the ids).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such BEIR folder: {folder}")
    corpus, dropped = _read_corpus(_find_file(folder, "corpus.jsonl"), skip_bad_rows)
    all_queries = read_queries(_find_file(folder, "queries.jsonl"), skip_bad_rows=skip_bad_rows)
    qrels_path = _find_file(folder / "qrels", f"{split}.tsv", what=f"split {split!r}")
    qrels, lines = _read_qrels(qrels_path, skip_bad_rows)
    qrels = _check_qrels(qrels, lines, all_queries, corpus, dropped, qrels_path, skip_bad_rows)
    queries = {qid: all_queries[qid] for qid in qrels}
    return RetrievalData(corpus, queries, qrels, name if name is not None else folder.name)


def _find_file(folder: Path, name: str, what: str | None = None) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    message = f"{folder}: no {name} or {name}.gz"
    if what is not None:
        present = (
            sorted(p.name.removesuffix(".gz").removesuffix(".tsv") for p in folder.glob("*.tsv*"))
            if folder.is_dir()
            else []
        )
        message += f" for {what} (splits present: {', '.join(present) or 'none'})"
    raise FileNotFoundError(message)


def _check_qrels(
    qrels: dict[str, dict[str, int]],
    lines: Mapping[tuple[str, str], int],
    queries: Mapping[str, str],
    corpus: Mapping[str, dict],
    dropped: set[str],
    path: Path,
    skip: bool,
) -> dict[str, dict[str, int]]:
    """Remove or report judgments whose query or document id is unknown (see :func:`load_beir`).

    The error names the line of the first such judgment; with ``skip`` the warning counts them.
    """
    bad_queries = [qid for qid in qrels if qid not in queries]
    bad_docs = [
        (qid, d) for qid, docs in qrels.items() if qid in queries for d in docs if d not in corpus and d not in dropped
    ]
    to_dropped = sum(d in dropped for docs in qrels.values() for d in docs)
    if to_dropped:
        logger.warning(
            "%s: %d %s dropped for empty text (kept, as BEIR does: they cannot be retrieved)",
            path,
            to_dropped,
            "judgment names a document" if to_dropped == 1 else "judgments name documents",
        )
    if not bad_queries and not bad_docs:
        return qrels
    by_query = [(q, d) for q in bad_queries for d in qrels[q]]
    parts = []
    if by_query:
        parts.append(_judgments(len(by_query), "query id", "not in the queries file", few(bad_queries), skip))
    if bad_docs:
        parts.append(_judgments(len(bad_docs), "doc id", "not in the corpus", few(d for _, d in bad_docs), skip))
    if not skip:
        first = min([*by_query, *bad_docs], key=lambda pair: lines.get(pair, 0))
        field = "query-id" if first[0] in bad_queries else "corpus-id"
        raise DataFormatError(path, lines.get(first), field, "; ".join(parts))
    logger.warning("%s: removed %s", path, "; ".join(parts))
    bad_doc_set = set(bad_docs)
    cleaned = {
        qid: {d: s for d, s in docs.items() if (qid, d) not in bad_doc_set}
        for qid, docs in qrels.items()
        if qid in queries
    }
    return {qid: docs for qid, docs in cleaned.items() if docs}


def _judgments(n: int, kind: str, where: str, examples: str, removed: bool) -> str:
    """``1 judgment names a doc id not in the corpus (e.g. 'x')`` / ``3 judgments naming doc ids ...``."""
    noun = "judgment" if n == 1 else "judgments"
    verb = "naming" if removed else ("names" if n == 1 else "name")
    ids = f"a {kind}" if n == 1 else f"{kind}s"
    return f"{n} {noun} {verb} {ids} {where} (e.g. {examples})"
