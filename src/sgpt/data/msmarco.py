"""Read MS MARCO's own files (SPEC 2.2): passages, queries and the mined hard negatives.

``collection.tsv`` (``pid<TAB>text``), ``queries.*.tsv`` (``qid<TAB>text``), qrels as TREC 4-column
(``qid 0 pid rel``) or 3-column tsv (:func:`sgpt.data.beir.read_qrels`), and the
sentence-transformers hard-negatives jsonl (``{"qid", "pos": [pids], "neg": {system: [pids]}}``)
filtered with cross-encoder scores (:func:`load_ce_scores`) by :func:`read_hard_negatives`, and the
dev split (:func:`read_dev_split`). Training reads the passages by offset instead
(:class:`sgpt.data.passages.PassageStore`): :func:`read_collection` holds them all as text.
"""

from __future__ import annotations

import gzip
import logging
import pickle
import sys
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sgpt.data.beir import RetrievalData, read_qrels
from sgpt.data.rows import BadRows, DataFormatError, check_utf8, claim_id, id_string, iter_nonblank, parse_json_object

if TYPE_CHECKING:  # only a type here: importing sgpt.data needs no NumPy
    from sgpt.data.passages import PassageStore

logger = logging.getLogger("sgpt.data")

__all__ = [
    "CE_SCORES",
    "COLLECTION",
    "DEV_QRELS",
    "DEV_QUERIES",
    "HARD_NEGATIVES",
    "TRAIN_QUERIES",
    "HardNegatives",
    "dev_corpus",
    "load_ce_scores",
    "read_collection",
    "read_dev_judgments",
    "read_dev_split",
    "read_hard_negatives",
    "read_tsv_queries",
]

# The files of an MS MARCO folder (SPEC 2.2), as MS MARCO and sentence-transformers name them
COLLECTION = "collection.tsv"
TRAIN_QUERIES = "queries.train.tsv"
HARD_NEGATIVES = "msmarco-hard-negatives.jsonl.gz"
CE_SCORES = "cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz"
DEV_QUERIES = "queries.dev.small.tsv"
DEV_QRELS = "qrels.dev.tsv"


@dataclass(frozen=True)
class HardNegatives:
    """Ids of one query's positives and kept hard negatives (MS MARCO hard-negative file, SPEC 2.2)."""

    query_id: str
    positives: list[str]
    negatives: list[str]


def read_collection(path: str | Path, *, skip_bad_rows: bool = False) -> dict[str, dict]:
    """Read an MS MARCO ``collection.tsv`` (``pid<TAB>text``) in the corpus format of
    :func:`sgpt.data.beir.read_corpus`.

    Passages with empty text are dropped and counted in a logged warning, as BEIR corpora are.

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


def read_tsv_queries(
    path: str | Path, *, skip_bad_rows: bool = False, keep: Container[str] | None = None
) -> dict[str, str]:
    """Read MS MARCO queries (``queries.train.tsv``, ``queries.dev.small.tsv``: ``qid<TAB>text``).

    Args:
        path: The file.
        skip_bad_rows: Skip (and count) bad rows instead of stopping.
        keep: Only these qids are returned (every line is still checked).

    Returns:
        qid → stripped text, in file order.

    Raises:
        DataFormatError: A line without exactly 2 tab-separated fields, an empty qid or text, a
            duplicate qid (naming both lines), bad bytes, an empty file or corrupt gzip.
        FileNotFoundError: ``path`` does not exist.
    """
    pairs = _tsv_pairs(Path(path), "qid", skip_bad_rows, allow_empty=False)
    return {qid: text for qid, text in pairs if keep is None or qid in keep}


def _tsv_pairs(path: Path, id_name: str, skip: bool, *, allow_empty: bool) -> Iterator[tuple[str, str]]:
    bad = BadRows(path, skip)
    lines: dict[str, int] = {}

    def parse(lineno: int, line: str) -> tuple[str, str]:
        fields = check_utf8(line, path, lineno).split("\t")
        if len(fields) != 2:
            raise DataFormatError(
                path, lineno, None, f"expected 2 tab-separated fields ({id_name}, text), got {len(fields)}"
            )
        key = claim_id({id_name: fields[0].strip()}, id_name, path, lineno, lines)
        text = fields[1].strip()
        if not text and not allow_empty:
            raise DataFormatError(path, lineno, "text", "empty text")
        return key, text

    for _, pair in bad.each(iter_nonblank(path), parse):
        yield pair
    bad.report()


@dataclass(frozen=True)
class MarginFilter:
    """SGPT's hard-negative filter (SPEC 2.2): per system, up to ``per_system`` negatives whose
    cross-encoder score is at most the lowest positive's score minus ``margin``."""

    margin: float = 3.0
    per_system: int = 5


def read_hard_negatives(
    path: str | Path,
    ce_scores: Mapping,
    *,
    ce_score_margin: float = 3.0,
    num_negs_per_system: int = 5,
    negs_to_use: Sequence[str] | None = None,
    use_all_queries: bool = False,
    max_queries: int | None = None,
    max_lines: int | None = None,
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
        max_queries: Stop once this many queries are kept.
        max_lines: Read at most this many (non-blank) lines, kept or not (SGPT's ``--train_dataset_max_size``).

    Returns:
        Kept queries in file order; ids as strings.

    Raises:
        DataFormatError: Invalid JSON, missing ``qid``/``pos``/``neg``, wrong types, or an id without
            a CE score (field ``pos`` or ``neg``, naming the ids), an empty file or corrupt gzip.
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``num_negs_per_system``, ``max_queries`` or ``max_lines`` < 1.
    """
    for name, value in (
        ("num_negs_per_system", num_negs_per_system),
        ("max_queries", max_queries),
        ("max_lines", max_lines),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    path = Path(path)
    rule = MarginFilter(ce_score_margin, num_negs_per_system)
    systems = list(negs_to_use) if negs_to_use is not None else None
    kept: list[HardNegatives] = []
    for n_read, (lineno, line) in enumerate(iter_nonblank(path)):
        if (max_queries is not None and len(kept) >= max_queries) or (max_lines is not None and n_read >= max_lines):
            break
        qid, pos, neg = _hard_negative_row(parse_json_object(line, path, lineno), path, lineno)
        if not pos:
            continue
        if systems is None:
            systems = list(neg)
            logger.info("hard negatives from the systems %s (keys of %s:%d)", ", ".join(systems), path, lineno)
        where = (path, lineno, qid)
        negatives = _filtered_negatives(_ce_row(ce_scores, qid, path, lineno), pos, neg, systems, rule, where)
        if negatives or use_all_queries:
            positives = [sys.intern(id_string(p, path, lineno, "pos")) for p in pos]
            kept.append(HardNegatives(id_string(qid, path, lineno, "qid"), positives, negatives))
    return kept


def _hard_negative_row(obj: dict, path: Path, lineno: int) -> tuple[object, list, dict[str, list]]:
    """``(qid, pos, neg)`` of one hard-negatives line, with their types checked."""
    for key in ("qid", "pos", "neg"):
        if key not in obj:
            raise DataFormatError(path, lineno, key, "missing field")
    qid, pos, neg = obj["qid"], obj["pos"], obj["neg"]
    id_string(qid, path, lineno, "qid")
    if not isinstance(pos, list):
        raise DataFormatError(path, lineno, "pos", f"expected a list of ids, got {type(pos).__name__}")
    if not isinstance(neg, dict) or not all(isinstance(v, list) for v in neg.values()):
        raise DataFormatError(path, lineno, "neg", "expected an object {system: [ids]}")
    return qid, pos, neg


def _filtered_negatives(
    scores: Mapping,
    pos: list,
    neg: Mapping[str, list],
    systems: Sequence[str],
    rule: MarginFilter,
    where: tuple[Path, int, object],
) -> list[str]:
    """The negatives of one query that pass ``rule`` (see :func:`read_hard_negatives`), in insertion order."""
    path, lineno, qid = where
    threshold = min(_ce(scores, pid, path, lineno, "pos", qid) for pid in pos) - rule.margin
    negatives: dict[str, None] = {}
    for system in systems:
        added = 0
        for pid in neg.get(system, ()):
            if _ce(scores, pid, path, lineno, "neg", qid) > threshold:
                continue
            key = sys.intern(id_string(pid, path, lineno, "neg"))  # one str per passage, however many queries use it
            if key not in negatives:
                negatives[key] = None
                added += 1
                if added >= rule.per_system:
                    break
    return list(negatives)


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


# What a pickle of cross-encoder scores may name: the plain types, and NumPy scalars (a score kept as
# numpy.float32 pickles as numpy's ``scalar(dtype, bytes)``).
_ALLOWED_GLOBALS = (
    {("builtins", name) for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "str")}
    | {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("scalar",)}
    | {("numpy", "dtype")}
)


class _ScoresUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only dicts of ids and scores are read)")
        return super().find_class(module, name)


def load_ce_scores(path: str | Path) -> dict:
    """Read ``cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz``: the pickled dict qid → {pid: score}.

    SGPT calls ``pickle.load`` on it. Here a restricted unpickler reads it: only dicts, lists,
    tuples, sets, ints, floats, strings and NumPy scalars can be built, so a tampered file cannot
    run code; anything else is refused.

    Raises:
        DataFormatError: not a gzip pickle of such a dict, or one naming other Python objects.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            scores = _ScoresUnpickler(f).load()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise DataFormatError(path, None, None, f"not a pickled dict of cross-encoder scores ({e})") from None
    if not isinstance(scores, dict) or not all(isinstance(v, dict) for v in scores.values()):
        raise DataFormatError(path, None, None, "expected a dict qid -> {pid: score}")
    return scores


def read_dev_split(
    queries_path: str | Path,
    qrels_path: str | Path,
    passages: PassageStore,
    *,
    corpus_max_size: int | None = None,
    skip_bad_rows: bool = False,
) -> RetrievalData:
    """MS MARCO's dev split as a retrieval test set (SPEC 2.2's post-training evaluation):
    :func:`read_dev_judgments` plus :func:`dev_corpus`.

    Raises:
        DataFormatError: a bad line; no dev query with a judgment.
        ValueError: ``corpus_max_size < 1``.
    """
    queries, qrels = read_dev_judgments(queries_path, qrels_path, skip_bad_rows=skip_bad_rows)
    return RetrievalData(dev_corpus(passages, qrels, corpus_max_size), queries, qrels, name="msmarco-dev")


def read_dev_judgments(
    queries_path: str | Path, qrels_path: str | Path, *, skip_bad_rows: bool = False
) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The dev queries (``queries.dev.small.tsv``) that have judgments in ``qrels.dev.tsv`` (TREC 4
    columns), and their judgments; judgments of other queries are ignored.

    Raises:
        DataFormatError: a bad line; no dev query with a judgment.
    """
    judged = read_qrels(qrels_path, skip_bad_rows=skip_bad_rows)
    queries = read_tsv_queries(queries_path, skip_bad_rows=skip_bad_rows, keep=judged)
    if not queries:
        raise DataFormatError(queries_path, None, None, f"no query with a judgment in {qrels_path}")
    return queries, {qid: judged[qid] for qid in queries}


def dev_corpus(
    passages: PassageStore, qrels: Mapping[str, Mapping[str, int]], corpus_max_size: int | None = None
) -> dict[str, dict]:
    """The dev corpus: every passage, or with ``corpus_max_size = K`` the first ``K`` passages of
    the collection plus the judged ones (SGPT's ``--dev_corpus_max_size``), in collection order.
    It is held in memory as text (the whole collection: GBs).

    Returns:
        pid → ``{"title": "", "text": str}``.

    Raises:
        ValueError: ``corpus_max_size < 1``.
    """
    if corpus_max_size is not None and corpus_max_size < 1:
        raise ValueError(f"corpus_max_size must be >= 1, got {corpus_max_size}")
    if corpus_max_size is None:
        logger.warning(
            "dev corpus: all %d passages (a corpus_max_size K keeps the first K + the judged)", len(passages)
        )
        rows: Iterable[int] = range(len(passages))
    else:
        found = (passages.row_of(pid) for docs in qrels.values() for pid in docs)
        first = min(corpus_max_size, len(passages))
        rows = [*range(first), *sorted({row for row in found if row is not None and row >= first})]
    return {passages.pid_at(r): {"title": "", "text": passages.text_at(r)} for r in rows}
