"""Read MS MARCO's own files (SPEC 2.2): passages, queries and the mined hard negatives.

``collection.tsv`` (``pid<TAB>text``), ``queries.*.tsv`` (``qid<TAB>text``), qrels as TREC 4-column
(``qid 0 pid rel``) or 3-column tsv (:func:`sgpt.data.beir.read_qrels`), and the
sentence-transformers hard-negatives jsonl (``{"qid", "pos": [pids], "neg": {system: [pids]}}``)
filtered with cross-encoder scores by :func:`read_hard_negatives`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sgpt.data.rows import BadRows, DataFormatError, check_utf8, claim_id, id_string, iter_nonblank, parse_json_object

logger = logging.getLogger("sgpt.data")

__all__ = ["HardNegatives", "read_collection", "read_hard_negatives", "read_tsv_queries"]


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
    rule = MarginFilter(ce_score_margin, num_negs_per_system)
    systems = list(negs_to_use) if negs_to_use is not None else None
    kept: list[HardNegatives] = []
    for lineno, line in iter_nonblank(path):
        if max_queries is not None and len(kept) >= max_queries:
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
            positives = [id_string(p, path, lineno, "pos") for p in pos]
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
            key = id_string(pid, path, lineno, "neg")
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
