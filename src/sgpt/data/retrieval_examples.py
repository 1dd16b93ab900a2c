"""Retrieval training examples: generic ``{query, pos, neg}`` jsonl, and a BEIR split with mined negatives.

* :func:`read_retrieval_examples`: ``{"query": str, "pos": [str, ...], "neg": [str, ...]}`` per line.
* :func:`beir_examples`: a BEIR split (:func:`sgpt.data.beir.load_beir`) plus a mined-negatives file
  (``{"query_id", "pos": [ids], "neg": [ids]}``, written by ``sgpt mine-negatives``,
  read by :func:`read_mined_negatives`); documents become :func:`sgpt.data.documents.document_text`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sgpt.data.beir import RetrievalData, load_beir
from sgpt.data.documents import document_text
from sgpt.data.rows import BadRows, DataFormatError, claim_id, clean_text, few, id_list, json_rows, text_list

logger = logging.getLogger("sgpt.data")

__all__ = ["RetrievalExample", "beir_examples", "read_mined_negatives", "read_retrieval_examples"]


@dataclass(frozen=True)
class RetrievalExample:
    """One training query with its positive texts and (possibly no) hard-negative texts."""

    query: str
    positives: list[str]
    negatives: list[str] = field(default_factory=list)
    query_id: str | None = None


def read_retrieval_examples(path: str | Path, *, skip_bad_rows: bool = False) -> list[RetrievalExample]:
    """Read generic retrieval training jsonl: ``{"query": str, "pos": [str, ...], "neg": [str, ...]}``.

    ``neg`` is optional; ``pos``/``neg`` may also be a single string (the triplet files of
    :func:`~sgpt.data.training_files.read_triplets` use that form). Texts are stripped.

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

    def parse(lineno: int, obj: dict) -> RetrievalExample:
        for key in ("query", "pos"):
            if key not in obj:
                raise DataFormatError(path, lineno, key, "missing field (expected query, pos[, neg])")
        query = clean_text(obj["query"], path, lineno, "query")
        positives = text_list(obj["pos"], path, lineno, "pos")
        if not positives:
            raise DataFormatError(path, lineno, "pos", "no positives")
        return RetrievalExample(query, positives, text_list(obj.get("neg", []), path, lineno, "neg"))

    examples.extend(example for _, example in bad.each(json_rows(path, bad), parse))
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
    mined = dict(row for _, row in _mined_rows(path, bad))
    bad.report()
    return mined


def _mined_rows(path: Path, bad: BadRows) -> Iterator[tuple[int, tuple[str, list[str]]]]:
    """``(line, (query id, negative ids))`` of a mined-negatives file; bad rows go through ``bad``."""
    lines: dict[str, int] = {}

    def parse(lineno: int, obj: dict) -> tuple[str, list[str]]:
        qid = claim_id(obj, "query_id", path, lineno, lines)
        if "neg" not in obj:
            raise DataFormatError(path, lineno, "neg", "missing field")
        id_list(obj.get("pos", []), path, lineno, "pos")
        return qid, id_list(obj["neg"], path, lineno, "neg")

    return bad.each(json_rows(path, bad), parse)


def beir_examples(
    folder: str | Path,
    split: str = "train",
    negatives: str | Path | None = None,
    *,
    num_negatives: int | None = None,
    skip_bad_rows: bool = False,
) -> list[RetrievalExample]:
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
        examples.append(
            RetrievalExample(data.queries[qid], positives, [document_text(data.corpus[d]) for d in neg_ids], qid)
        )
    if no_positive:
        logger.warning(
            "%s [%s]: %d queries without a positive judgment (or whose positives were dropped for empty text) left out",
            folder,
            split,
            no_positive,
        )
    if no_negatives:
        logger.warning("%s: %d of %d queries have no mined negatives", negatives, no_negatives, len(examples))
    return examples


def _checked_negatives(path: Path, data: RetrievalData, skip: bool) -> dict[str, list[str]]:
    """Read mined negatives and check every id against the split (errors name the file line)."""
    bad = BadRows(path, skip)

    def check(lineno: int, row: tuple[str, list[str]]) -> tuple[str, list[str]]:
        _check_mined_ids(*row, data, path, lineno)
        return row

    checked = dict(row for _, row in bad.each(_mined_rows(path, bad), check))
    bad.report()
    return checked


def _check_mined_ids(qid: str, neg: list[str], data: RetrievalData, path: Path, lineno: int) -> None:
    if qid not in data.queries:
        raise DataFormatError(
            path, lineno, "query_id", f"query {qid!r} is not judged in this split (wrong split or file?)"
        )
    unknown = [d for d in neg if d not in data.corpus]
    if unknown:
        raise DataFormatError(path, lineno, "neg", f"doc ids not in the corpus: {few(unknown)}")
