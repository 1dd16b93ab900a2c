"""Read retrieval data: BEIR folders, MS MARCO files, hard negatives and generic training jsonl.

* BEIR (SPEC 3.3): ``corpus.jsonl(.gz)`` (``_id``, optional ``title``, ``text``), ``queries.jsonl(.gz)``
  (``_id``, ``text``), ``qrels/<split>.tsv`` (``query-id corpus-id score``, header line optional).
  Documents are embedded as :func:`document_text` = ``(title + " " + text).strip()``.
* MS MARCO (SPEC 2.2): ``collection.tsv`` (``pid<TAB>text``), ``queries.*.tsv`` (``qid<TAB>text``),
  qrels as TREC 4-column (``qid 0 pid rel``) or 3-column tsv (read by :func:`read_qrels`), and the
  sentence-transformers hard-negatives jsonl (``{"qid", "pos": [pids], "neg": {system: [pids]}}``)
  filtered with cross-encoder scores by :func:`read_hard_negatives`.
* Training examples: generic jsonl ``{"query": str, "pos": [str, ...], "neg": [str, ...]}``
  (:func:`read_retrieval_examples`) or a BEIR split plus a mined-negatives file
  (``{"query_id", "pos": [ids], "neg": [ids]}``, written by ``sgpt mine-negatives``;
  :func:`beir_examples`).

Ids are strings everywhere (a JSON integer id is turned into its decimal string, so ``"qid": 5``
and qrels ``5`` meet). Errors name the file, line and field; row-level errors can be skipped and
counted with ``skip_bad_rows``, never dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sgpt.data.readers_io import BadRows, DataFormatError, check_utf8, clean_text, iter_nonblank, parse_json_object

logger = logging.getLogger("sgpt.data")

__all__ = [
    "HardNegatives",
    "RetrievalData",
    "RetrievalExample",
    "beir_examples",
    "document_text",
    "load_beir",
    "read_collection",
    "read_corpus",
    "read_hard_negatives",
    "read_mined_negatives",
    "read_qrels",
    "read_queries",
    "read_retrieval_examples",
    "read_tsv_queries",
]

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


@dataclass(frozen=True)
class RetrievalExample:
    """One training query with its positive texts and (possibly no) hard-negative texts."""

    query: str
    positives: list[str]
    negatives: list[str] = field(default_factory=list)
    query_id: str | None = None


@dataclass(frozen=True)
class HardNegatives:
    """Ids of one query's positives and kept hard negatives (MS MARCO hard-negative file, SPEC 2.2)."""

    query_id: str
    positives: list[str]
    negatives: list[str]


def document_text(doc: Mapping) -> str:
    """The text embedded for a BEIR document: ``(title + " " + text).strip()``, just ``text`` without title.

    This is BEIR's ``SentenceBERT.encode_corpus`` convention used by SGPT (SPEC 3.1 step 2). A missing
    or ``None`` title (Robust04) counts as no title.

    Args:
        doc: A corpus entry with ``text`` and optionally ``title``.

    Returns:
        The stripped concatenation.
    """
    title = doc.get("title") or ""
    return f"{title} {doc['text']}".strip() if title else str(doc["text"]).strip()


# --------------------------------------------------------------------------------------------- BEIR


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
    for lineno, obj in _json_rows(path, bad):
        try:
            doc_id = _claim_id(obj, "_id", path, lineno, lines)
            text = _text_field(obj, "text", path, lineno, allow_empty=True)
            title = obj.get("title")
            title = "" if title is None else _text_field(obj, "title", path, lineno, allow_empty=True)
        except DataFormatError as err:
            bad.add(err)
            continue
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
    for lineno, obj in _json_rows(path, bad):
        try:
            qid = _claim_id(obj, "_id", path, lineno, lines)
            queries[qid] = _text_field(obj, "text", path, lineno, allow_empty=False)
        except DataFormatError as err:
            bad.add(err)
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
    first = True
    for lineno, line in iter_nonblank(path):
        fields = _split_columns(line)
        if first:
            first = False
            if fields and not _is_int(fields[-1]):
                continue  # header line
        try:
            check_utf8(line, path, lineno)
            if len(fields) not in (3, 4) or (width and len(fields) != width):
                expected = width or "3 (query-id corpus-id score) or 4 (query-id 0 corpus-id score)"
                raise DataFormatError(path, lineno, None, f"expected {expected} columns, got {len(fields)}")
            width = len(fields)
            qid, doc_id, raw = fields[0], fields[-2], fields[-1]
            if not _is_int(raw):
                raise DataFormatError(path, lineno, "score", f"not an integer: {raw!r}")
            previous = seen.get((qid, doc_id))
            if previous is not None:
                raise DataFormatError(path, lineno, "corpus-id",
                                      f"query {qid!r} judges doc {doc_id!r} again (first on line {previous})")
        except DataFormatError as err:
            bad.add(err)
            continue
        seen[(qid, doc_id)] = lineno
        qrels.setdefault(qid, {})[doc_id] = int(raw)
    bad.report()
    if not qrels and not bad.count:
        raise DataFormatError(path, None, None, f"no judgments (expected columns {_QRELS_HEADER_HINT})")
    return qrels, seen


def load_beir(folder: str | Path, split: str = "test", *, skip_bad_rows: bool = False,
              name: str | None = None) -> RetrievalData:
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
        present = sorted(p.name.removesuffix(".gz").removesuffix(".tsv") for p in folder.glob("*.tsv*")) \
            if folder.is_dir() else []
        message += f" for {what} (splits present: {', '.join(present) or 'none'})"
    raise FileNotFoundError(message)


def _check_qrels(qrels: dict[str, dict[str, int]], lines: Mapping[tuple[str, str], int],
                 queries: Mapping[str, str], corpus: Mapping[str, dict], dropped: set[str], path: Path,
                 skip: bool) -> dict[str, dict[str, int]]:
    """Remove or report judgments whose query or document id is unknown (see :func:`load_beir`).

    The error names the line of the first such judgment; with ``skip`` the warning counts them.
    """
    bad_queries = [qid for qid in qrels if qid not in queries]
    bad_docs = [(qid, d) for qid, docs in qrels.items() if qid in queries for d in docs
                if d not in corpus and d not in dropped]
    to_dropped = sum(d in dropped for docs in qrels.values() for d in docs)
    if to_dropped:
        logger.warning("%s: %d %s dropped for empty text (kept, as BEIR does: they cannot be retrieved)", path,
                       to_dropped, "judgment names a document" if to_dropped == 1 else "judgments name documents")
    if not bad_queries and not bad_docs:
        return qrels
    by_query = [(q, d) for q in bad_queries for d in qrels[q]]
    parts = []
    if by_query:
        parts.append(_judgments(len(by_query), "query id", "not in the queries file", _few(bad_queries), skip))
    if bad_docs:
        parts.append(_judgments(len(bad_docs), "doc id", "not in the corpus", _few(d for _, d in bad_docs), skip))
    if not skip:
        first = min([*by_query, *bad_docs], key=lambda pair: lines.get(pair, 0))
        field = "query-id" if first[0] in bad_queries else "corpus-id"
        raise DataFormatError(path, lines.get(first), field, "; ".join(parts))
    logger.warning("%s: removed %s", path, "; ".join(parts))
    bad_doc_set = set(bad_docs)
    cleaned = {qid: {d: s for d, s in docs.items() if (qid, d) not in bad_doc_set}
               for qid, docs in qrels.items() if qid in queries}
    return {qid: docs for qid, docs in cleaned.items() if docs}


def _judgments(n: int, kind: str, where: str, examples: str, removed: bool) -> str:
    """``1 judgment names a doc id not in the corpus (e.g. 'x')`` / ``3 judgments naming doc ids ...``."""
    noun = "judgment" if n == 1 else "judgments"
    verb = "naming" if removed else ("names" if n == 1 else "name")
    ids = f"a {kind}" if n == 1 else f"{kind}s"
    return f"{n} {noun} {verb} {ids} {where} (e.g. {examples})"


def _few(ids: Iterable[str], n: int = 5) -> str:
    items = list(ids)
    shown = ", ".join(repr(i) for i in items[:n])
    return shown + (", ..." if len(items) > n else "")


# ------------------------------------------------------------------------------------------ MS MARCO


def read_collection(path: str | Path, *, skip_bad_rows: bool = False) -> dict[str, dict]:
    """Read an MS MARCO ``collection.tsv`` (``pid<TAB>text``) in the corpus format of :func:`read_corpus`.

    Passages with empty text are dropped and counted in a logged warning, as in :func:`read_corpus`.

    Returns:
        pid → ``{"title": "", "text": str}`` in file order.

    Raises:
        DataFormatError: A line without exactly 2 tab-separated fields, an empty pid, a duplicate pid
            (naming both lines), bad bytes, an empty file or corrupt gzip.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    corpus: dict[str, dict] = {}
    empty = 0
    for pid, text in _tsv_pairs(path, "pid", skip_bad_rows, allow_empty=True):
        if text:
            corpus[pid] = {"title": "", "text": text}
        else:
            empty += 1
    if empty:
        logger.warning("dropped %d passages with empty text in %s", empty, path)
    return corpus


def read_tsv_queries(path: str | Path, *, skip_bad_rows: bool = False) -> dict[str, str]:
    """Read MS MARCO queries (``queries.train.tsv``, ``queries.dev.small.tsv``: ``qid<TAB>text``).

    Returns:
        qid → stripped text, in file order.

    Raises:
        DataFormatError: A line without exactly 2 tab-separated fields, an empty qid or text, a
            duplicate qid (naming both lines), bad bytes, an empty file or corrupt gzip.
        FileNotFoundError: ``path`` does not exist.
    """
    return dict(_tsv_pairs(Path(path), "qid", skip_bad_rows, allow_empty=False))


def _tsv_pairs(path: Path, id_name: str, skip: bool, *, allow_empty: bool) -> Iterator[tuple[str, str]]:
    bad = BadRows(path, skip)
    lines: dict[str, int] = {}
    for lineno, line in iter_nonblank(path):
        try:
            check_utf8(line, path, lineno)
            fields = line.split("\t")
            if len(fields) != 2:
                raise DataFormatError(path, lineno, None, f"expected 2 tab-separated fields ({id_name}, text), "
                                      f"got {len(fields)}")
            key = _claim_id({id_name: fields[0].strip()}, id_name, path, lineno, lines)
            text = fields[1].strip()
            if not text and not allow_empty:
                raise DataFormatError(path, lineno, "text", "empty text")
        except DataFormatError as err:
            bad.add(err)
            continue
        yield key, text
    bad.report()


def read_hard_negatives(
    path: str | Path,
    ce_scores: Mapping,
    *,
    ce_score_margin: float = 3.0,
    num_negs_per_system: int = 5,
    negs_to_use: Sequence[str] | None = None,
    use_all_queries: bool = False,
    max_queries: int | None = None,
) -> list[HardNegatives]:
    """Read the sentence-transformers MS MARCO hard-negatives jsonl(.gz) and apply SGPT's margin filter.

    Exactly SPEC 2.2 (``train_bi-encoder_mnrl.py``), per line ``{"qid", "pos": [pids], "neg": {system:
    [pids]}}``: lines without positives are skipped; threshold = min CE score over the positives −
    ``ce_score_margin``; the systems are ``negs_to_use`` or else the ``neg`` keys of the first line
    that has positives (a system missing there is never used; a listed system missing from a later line
    is skipped for that line); per system, in file order, up to ``num_negs_per_system`` negatives not
    already added (by an earlier system) whose CE score is ≤ the threshold. A query is kept when it has
    ≥ 1 positive and ≥ 1 negative, or always with ``use_all_queries``. Negatives keep insertion
    order (the original used a set; its order carries no meaning).

    Args:
        path: ``msmarco-hard-negatives.jsonl(.gz)``.
        ce_scores: ``ce_scores[qid][pid]`` cross-encoder scores (the unpickled
            ``cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz``); keys may be ints or strings.
        ce_score_margin: The margin (SPEC default 3.0).
        num_negs_per_system: Negatives taken per system (default 5).
        negs_to_use: Systems to use, in order; default all systems of the first line with positives.
        use_all_queries: Keep queries without negatives too.
        max_queries: Stop once this many queries are kept (the original ``--train_dataset_max_size``).

    Returns:
        Kept queries in file order; ids as strings.

    Raises:
        DataFormatError: Invalid JSON, missing ``qid``/``pos``/``neg``, wrong types, or an id without
            a CE score (field ``pos`` or ``neg``, naming the ids), an empty file or corrupt gzip.
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``num_negs_per_system < 1`` or ``max_queries < 1``.
    """
    if num_negs_per_system < 1:
        raise ValueError(f"num_negs_per_system must be >= 1, got {num_negs_per_system}")
    if max_queries is not None and max_queries < 1:
        raise ValueError(f"max_queries must be >= 1, got {max_queries}")
    path = Path(path)
    systems = list(negs_to_use) if negs_to_use is not None else None
    kept: list[HardNegatives] = []
    for lineno, line in iter_nonblank(path):
        if max_queries is not None and len(kept) >= max_queries:
            break
        obj = parse_json_object(line, path, lineno)
        for key in ("qid", "pos", "neg"):
            if key not in obj:
                raise DataFormatError(path, lineno, key, "missing field")
        qid, pos, neg = obj["qid"], obj["pos"], obj["neg"]
        _id_string(qid, path, lineno, "qid")
        if not isinstance(pos, list):
            raise DataFormatError(path, lineno, "pos", f"expected a list of ids, got {type(pos).__name__}")
        if not isinstance(neg, dict) or not all(isinstance(v, list) for v in neg.values()):
            raise DataFormatError(path, lineno, "neg", "expected an object {system: [ids]}")
        if not pos:
            continue
        scores = _ce_row(ce_scores, qid, path, lineno)
        threshold = min(_ce(scores, pid, path, lineno, "pos", qid) for pid in pos) - ce_score_margin
        if systems is None:
            systems = list(neg)
            logger.info("hard negatives from the systems %s (keys of %s:%d)", ", ".join(systems), path, lineno)
        negatives: dict[str, None] = {}
        for system in systems:
            added = 0
            for pid in neg.get(system, ()):
                if _ce(scores, pid, path, lineno, "neg", qid) > threshold:
                    continue
                key = _id_string(pid, path, lineno, "neg")
                if key not in negatives:
                    negatives[key] = None
                    added += 1
                    if added >= num_negs_per_system:
                        break
        if negatives or use_all_queries:
            positives = [_id_string(p, path, lineno, "pos") for p in pos]
            kept.append(HardNegatives(_id_string(qid, path, lineno, "qid"), positives, list(negatives)))
    return kept


def _ce_row(ce_scores: Mapping, qid: object, path: Path, lineno: int) -> Mapping:
    for key in _key_variants(qid):
        if key in ce_scores:
            return ce_scores[key]
    raise DataFormatError(path, lineno, "qid", f"no cross-encoder scores for query {qid!r}")


def _ce(scores: Mapping, pid: object, path: Path, lineno: int, role: str, qid: object) -> float:
    for key in _key_variants(pid):
        if key in scores:
            return float(scores[key])
    raise DataFormatError(path, lineno, role, f"no cross-encoder score for query {qid!r}, passage {pid!r}")


def _key_variants(value: object) -> tuple:
    """The id as given, then as str/int (pickled CE scores use int keys, JSON may hold either)."""
    if isinstance(value, bool):
        return (value,)
    if isinstance(value, int):
        return (value, str(value))
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return (value, int(value))
    return (value,)


# ------------------------------------------------------------------------------- training examples


def read_retrieval_examples(path: str | Path, *, skip_bad_rows: bool = False) -> list[RetrievalExample]:
    """Read generic retrieval training jsonl: ``{"query": str, "pos": [str, ...], "neg": [str, ...]}``.

    ``neg`` is optional; ``pos``/``neg`` may also be a single string (the triplet files of
    :func:`~sgpt.data.readers.read_triplets` use that form). Texts are stripped.

    Returns:
        Examples in file order.

    Raises:
        DataFormatError: Invalid JSON, missing ``query``/``pos``, an empty ``pos`` list, an empty or
            non-string text (field ``pos[2]`` etc.), bad bytes, an empty file, corrupt gzip, or no rows.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    bad = BadRows(path, skip_bad_rows)
    examples: list[RetrievalExample] = []
    for lineno, obj in _json_rows(path, bad):
        try:
            for key in ("query", "pos"):
                if key not in obj:
                    raise DataFormatError(path, lineno, key, "missing field (expected query, pos[, neg])")
            query = clean_text(obj["query"], path, lineno, "query")
            positives = _text_list(obj["pos"], path, lineno, "pos")
            if not positives:
                raise DataFormatError(path, lineno, "pos", "no positives")
            negatives = _text_list(obj.get("neg", []), path, lineno, "neg")
        except DataFormatError as err:
            bad.add(err)
            continue
        examples.append(RetrievalExample(query, positives, negatives))
    bad.report()
    if not examples and not bad.count:
        raise DataFormatError(path, None, None, "no data rows")
    return examples


def read_mined_negatives(path: str | Path, *, skip_bad_rows: bool = False) -> dict[str, list[str]]:
    """Read a mined-negatives jsonl (``{"query_id", "pos": [ids], "neg": [ids in rank order]}``).

    Returns:
        query id → negative doc ids in rank order (``pos``, optional, is checked to be a list of ids but
        not returned: positives come from the qrels).

    Raises:
        DataFormatError: Invalid JSON, missing ``query_id``/``neg``, ids that are not non-empty
            strings or integers, a query id repeated (naming both lines), an empty file, corrupt gzip.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    bad = BadRows(path, skip_bad_rows)
    mined = {qid: neg for _, qid, neg in _mined_rows(path, bad)}
    bad.report()
    return mined


def _mined_rows(path: Path, bad: BadRows) -> Iterator[tuple[int, str, list[str]]]:
    """``(line, query id, negative ids)`` of a mined-negatives file; bad rows go through ``bad``."""
    lines: dict[str, int] = {}
    for lineno, obj in _json_rows(path, bad):
        try:
            qid = _claim_id(obj, "query_id", path, lineno, lines)
            if "neg" not in obj:
                raise DataFormatError(path, lineno, "neg", "missing field")
            _id_list(obj.get("pos", []), path, lineno, "pos")
            neg = _id_list(obj["neg"], path, lineno, "neg")
        except DataFormatError as err:
            bad.add(err)
            continue
        yield lineno, qid, neg


def beir_examples(folder: str | Path, split: str = "train", negatives: str | Path | None = None, *,
                  num_negatives: int | None = None, skip_bad_rows: bool = False) -> list[RetrievalExample]:
    """Training examples from a BEIR split and (optionally) a mined-negatives file, by id.

    Every query of the split with at least one judgment > 0 gives one example: positives are its docs
    with score > 0 (qrels order), negatives the first ``num_negatives`` mined ids (all if None), as
    :func:`document_text`. Queries with only 0-judgments are left out (logged count); queries absent
    from the negatives file get no negatives (logged count).

    Args:
        folder: BEIR folder (see :func:`load_beir`).
        split: The qrels split (``train``).
        negatives: A file written by ``sgpt mine-negatives``, or None.
        num_negatives: Negatives kept per query (``None``: all).
        skip_bad_rows: As for :func:`load_beir`; also skips negatives lines with unknown ids.

    Returns:
        Examples in qrels order, with ``query_id`` set.

    Raises:
        DataFormatError: As for :func:`load_beir`; a negatives line whose query is not in the split or
            whose doc id is not in the corpus (naming file, line, field).
        FileNotFoundError: A file is missing.
        ValueError: ``num_negatives < 0``.
    """
    if num_negatives is not None and num_negatives < 0:
        raise ValueError(f"num_negatives must be >= 0, got {num_negatives}")
    data = load_beir(folder, split, skip_bad_rows=skip_bad_rows)
    mined = _checked_negatives(Path(negatives), data, skip_bad_rows) if negatives is not None else {}
    examples: list[RetrievalExample] = []
    no_positive = no_negatives = 0
    for qid, judged in data.qrels.items():
        positives = [document_text(data.corpus[d]) for d, s in judged.items() if s > 0 and d in data.corpus]
        if not positives:
            no_positive += 1
            continue
        neg_ids = mined.get(qid)
        if negatives is not None and neg_ids is None:
            no_negatives += 1
        neg_ids = (neg_ids or [])[:num_negatives]
        examples.append(RetrievalExample(data.queries[qid], positives,
                                         [document_text(data.corpus[d]) for d in neg_ids], qid))
    if no_positive:
        logger.warning("%s [%s]: %d queries without a positive judgment (or whose positives were dropped "
                       "for empty text) left out", folder, split, no_positive)
    if no_negatives:
        logger.warning("%s: %d of %d queries have no mined negatives", negatives, no_negatives, len(examples))
    return examples


def _checked_negatives(path: Path, data: RetrievalData, skip: bool) -> dict[str, list[str]]:
    """Read mined negatives and check every id against the split (errors name the file line)."""
    bad = BadRows(path, skip)
    checked: dict[str, list[str]] = {}
    for lineno, qid, neg in _mined_rows(path, bad):
        try:
            if qid not in data.queries:
                raise DataFormatError(path, lineno, "query_id",
                                      f"query {qid!r} is not judged in this split (wrong split or file?)")
            unknown = [d for d in neg if d not in data.corpus]
            if unknown:
                raise DataFormatError(path, lineno, "neg", f"doc ids not in the corpus: {_few(unknown)}")
        except DataFormatError as err:
            bad.add(err)
            continue
        checked[qid] = neg
    bad.report()
    return checked


# --------------------------------------------------------------------------------------- plumbing


def _json_rows(path: Path, bad: BadRows) -> Iterator[tuple[int, dict]]:
    """Non-blank jsonl lines parsed as objects; a bad line goes through ``bad``."""
    for lineno, line in iter_nonblank(path):
        try:
            obj = parse_json_object(line, path, lineno)
        except DataFormatError as err:
            bad.add(err)
            continue
        yield lineno, obj


def _id_string(value: object, path: Path, lineno: int, name: str) -> str:
    """An id as a string: a non-empty string (stripped) or an integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataFormatError(path, lineno, name, f"expected a string or integer id, got {type(value).__name__}")
    return clean_text(value, path, lineno, name)


def _claim_id(obj: Mapping, name: str, path: Path, lineno: int, lines: dict[str, int]) -> str:
    """Read ``obj[name]`` as an id and record its line; a repeated id raises naming both lines."""
    if name not in obj:
        raise DataFormatError(path, lineno, name, "missing field")
    key = _id_string(obj[name], path, lineno, name)
    if key in lines:
        raise DataFormatError(path, lineno, name, f"duplicate id {key!r} (first on line {lines[key]})")
    lines[key] = lineno
    return key


def _text_field(obj: Mapping, name: str, path: Path, lineno: int, *, allow_empty: bool) -> str:
    if name not in obj:
        raise DataFormatError(path, lineno, name, "missing field")
    value = obj[name]
    if allow_empty and isinstance(value, str) and not value.strip():
        return ""
    return clean_text(value, path, lineno, name)


def _id_list(value: object, path: Path, lineno: int, name: str) -> list[str]:
    if not isinstance(value, list):
        raise DataFormatError(path, lineno, name, f"expected a list of ids, got {type(value).__name__}")
    return [_id_string(v, path, lineno, f"{name}[{i}]") for i, v in enumerate(value)]


def _text_list(value: object, path: Path, lineno: int, name: str) -> list[str]:
    if isinstance(value, str):
        return [clean_text(value, path, lineno, name)]
    if not isinstance(value, list):
        raise DataFormatError(path, lineno, name, f"expected a list of strings, got {type(value).__name__}")
    return [clean_text(v, path, lineno, f"{name}[{i}]") for i, v in enumerate(value)]


def _split_columns(line: str) -> list[str]:
    return [f.strip() for f in line.split("\t")] if "\t" in line else line.split()


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
