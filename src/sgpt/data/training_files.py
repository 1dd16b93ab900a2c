"""Training files of the NLI task: generic triplet files, Hugging Face Hub datasets, and the
dispatcher that turns any ``--train-data`` value into NLI pairs or ready examples.

NLI pair files are read by :mod:`sgpt.data.nli_pairs`, rows and errors by :mod:`sgpt.data.rows`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import cast

from sgpt.data.nli_pairs import LABELS, NLIPair, detect_nli_layout, normalise_label, read_nli_pairs
from sgpt.data.rows import BadRows, DataFormatError, clean_text, iter_lines, iter_nonblank, parse_json_object

__all__ = ["load_hub_dataset", "read_training_data", "read_triplets"]

_KEY_SETS = (("anchor", "positive", "negative"), ("query", "pos", "neg"))
_PATH_SUFFIXES = (".jsonl", ".json", ".tsv", ".csv", ".txt", ".gz")


def read_triplets(path: str | Path, *, skip_bad_rows: bool = False) -> list[tuple[str, ...]]:
    """Read (anchor, positive[, negative]) training examples from a jsonl, csv or tsv file.

    jsonl: keys anchor/positive[/negative] or query/pos[/neg], string values. csv/tsv: a header row
    naming those columns, else 2 or 3 columns by position (csv quoting follows the csv module; tsv
    is split on tabs, no quoting). The format comes from the suffix (``.jsonl``, ``.csv``, ``.tsv``,
    before an optional ``.gz``), else from the first line. Every row must have the same arity.

    Args:
        path: The file.
        skip_bad_rows: Skip (and log the count of) bad rows instead of raising on the first one.

    Returns:
        Tuples of stripped texts, all of length 2 or all of length 3, in file order.

    Raises:
        DataFormatError: Missing key or column, wrong number of fields, arity differing from the
            first row, non-string or empty text, bad bytes, empty file, corrupt gzip.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    kind = _triplet_format(path)
    bad = BadRows(path, skip_bad_rows)
    rows = _jsonl_triplets(path, bad) if kind == "jsonl" else _table_triplets(path, bad, kind == "tsv")
    result: list[tuple[str, ...]] = []

    def same_arity(lineno: int, row: tuple[str, ...]) -> tuple[str, ...]:
        if result and len(row) != len(result[0]):
            message = f"row has {len(row)} texts but earlier rows have {len(result[0])} (all rows need the same)"
            raise DataFormatError(path, lineno, None, message)
        return row

    result.extend(row for _, row in bad.each(rows, same_arity))
    bad.report()
    if not result and not bad.count:
        raise DataFormatError(path, None, None, "no data rows")
    return result


def _triplet_format(path: Path) -> str:
    suffix = Path(path.name.removesuffix(".gz")).suffix.lower()
    if suffix in (".jsonl", ".csv", ".tsv"):
        return suffix[1:]
    first = next(iter_nonblank(path))[1]
    if first.lstrip().startswith("{"):
        return "jsonl"
    return "tsv" if "\t" in first else "csv"


def _table_row(
    fields: list[str], columns: list[int], names: list[str], width: int, path: Path, lineno: int
) -> tuple[str, ...]:
    if len(fields) != width:
        raise DataFormatError(path, lineno, None, f"expected {width} fields, got {len(fields)}")
    return tuple(
        clean_text(fields[c], path, lineno, names[i] if names else f"column {c + 1}") for i, c in enumerate(columns)
    )


def _jsonl_triplets(path: Path, bad: BadRows) -> Iterator[tuple[int, tuple[str, ...]]]:
    return bad.each(iter_nonblank(path), lambda lineno, line: _parse_json_triplet(line, path, lineno))


def _parse_json_triplet(line: str, path: Path, lineno: int) -> tuple[str, ...]:
    obj = parse_json_object(line, path, lineno)
    keys = next((k for k in _KEY_SETS if k[0] in obj), _KEY_SETS[0])
    for key in keys[:2]:
        if key not in obj:
            raise DataFormatError(
                path, lineno, key, "missing field (expected anchor/positive[/negative] or query/pos[/neg])"
            )
    present = keys if keys[2] in obj else keys[:2]
    return tuple(clean_text(obj[k], path, lineno, k) for k in present)


def _table_triplets(path: Path, bad: BadRows, tsv: bool) -> Iterator[tuple[int, tuple[str, ...]]]:
    # The csv module needs the line endings back to keep newlines inside quoted fields.
    lines = (line + "\n" for _, line in iter_lines(path))
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.reader(lines)
    columns: list[int] = []
    names: list[str] = []
    width = 0

    def data_rows() -> Iterator[tuple[int, list[str]]]:
        nonlocal columns, names, width
        for fields in reader:
            lineno = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if not width:
                columns, names, width = _table_columns(fields, path, lineno)
                if names:
                    continue  # header row
            yield lineno, fields
        if not width:
            raise DataFormatError(path, None, None, "file is empty")

    return bad.each(data_rows(), lambda lineno, fields: _table_row(fields, columns, names, width, path, lineno))


def _table_columns(first: list[str], path: Path, lineno: int) -> tuple[list[int], list[str], int]:
    """Columns to read from the first row: (indices, header names or [] if positional, row width)."""
    lowered = [f.strip().lower() for f in first]
    for keys in _KEY_SETS:
        if keys[0] in lowered and keys[1] in lowered:
            present = [k for k in keys if k in lowered]
            return [lowered.index(k) for k in present], present, len(first)
    if len(first) not in (2, 3):
        message = (
            f"{len(first)} columns and no header naming anchor/positive[/negative]; "
            "positional files need 2 or 3 columns"
        )
        raise DataFormatError(path, lineno, None, message)
    return list(range(len(first))), [], len(first)


def load_hub_dataset(
    name: str, *, split: str = "train", config: str | None = None, skip_bad_rows: bool = False
) -> list[NLIPair] | list[tuple[str, ...]]:
    """Load NLI pairs or triplets from a Hugging Face Hub dataset (needs the optional ``datasets``).

    Args:
        name: Hub dataset id, e.g. ``snli`` or ``sentence-transformers/all-nli``.
        split: Dataset split.
        config: Dataset configuration (e.g. ``triplet`` or ``pair-class`` for all-nli).
        skip_bad_rows: Skip (and log the count of) bad rows instead of raising.

    Returns:
        NLIPair list if the columns include premise/hypothesis/label (label -1 skipped); tuples
        if they include anchor/positive[/negative].

    Raises:
        ImportError: ``datasets`` is not installed.
        DataFormatError: Neither column set is present, or a bad row (unless skipped).
    """
    try:
        import datasets  # optional dependency, imported only when a hub dataset is asked for
    except ImportError as err:
        raise ImportError(
            "reading a Hub dataset needs the optional package 'datasets': "
            "pip install datasets (or pip install 'sgpt[hub]')"
        ) from err
    ds = datasets.load_dataset(name, config, split=split)
    source = f"hub:{name}" + (f":{config}" if config else "") + f"[{split}]"
    feature = getattr(ds, "features", {}).get("label") if "label" in ds.column_names else None
    label_names = list(getattr(feature, "names", None) or LABELS)
    return hub_rows_to_examples(ds.column_names, ds, source, label_names=label_names, skip_bad_rows=skip_bad_rows)


def hub_rows_to_examples(
    columns: Sequence[str],
    rows: Iterable[dict],
    source: str,
    *,
    label_names: Sequence[str] = LABELS,
    skip_bad_rows: bool = False,
) -> list[NLIPair] | list[tuple[str, ...]]:
    """Turn rows of a Hub dataset into NLIPair or text tuples (see :func:`load_hub_dataset`).

    Args:
        columns: The dataset's column names.
        rows: Row dicts, in order; errors give the 1-based row number as line.
        source: Label used in errors, e.g. ``hub:snli[train]``.
        label_names: Names of integer labels (a ClassLabel's ``names``).
        skip_bad_rows: Skip (and log the count of) bad rows instead of raising.

    Raises:
        DataFormatError: Unknown column set, or a bad row (unless skipped).
    """
    bad = BadRows(source, skip_bad_rows)
    if {"premise", "hypothesis", "label"} <= set(columns):
        pairs: list[NLIPair] = []

        def pair(i: int, row: Mapping) -> NLIPair | None:
            raw = row["label"]
            raw = label_names[raw] if isinstance(raw, int) and 0 <= raw < len(label_names) else raw
            label = normalise_label(raw, source, i, "label")
            if label is None:
                return None
            return NLIPair(
                clean_text(row["premise"], source, i, "premise"),
                clean_text(row["hypothesis"], source, i, "hypothesis"),
                label,
            )

        pairs.extend(p for _, p in bad.each(enumerate(rows, start=1), pair) if p is not None)
        bad.report()
        return pairs
    keys = next((k for k in _KEY_SETS if k[0] in columns and k[1] in columns), None)
    if keys is None:
        raise DataFormatError(
            source,
            None,
            None,
            f"unknown columns {list(columns)}; expected premise/hypothesis/label or anchor/positive[/negative]",
        )
    present = [k for k in keys if k in columns]
    triplets: list[tuple[str, ...]] = []
    triplets.extend(
        t
        for _, t in bad.each(
            enumerate(rows, start=1), lambda i, row: tuple(clean_text(row[k], source, i, k) for k in present)
        )
    )
    bad.report()
    return triplets


def read_training_data(
    path_or_name: str | Path, *, split: str | None = None, skip_bad_rows: bool = False
) -> tuple[list[NLIPair], list[tuple[str, ...]]]:
    """Read training data for the CLI: a local NLI dataset, a local triplet file, or a Hub dataset.

    An existing path is read with :func:`read_nli_pairs` if :func:`detect_nli_layout` recognises
    it, else with :func:`read_triplets`. Anything else is a Hub id, optionally ``name:config``.

    Args:
        path_or_name: File, folder, or Hub dataset id.
        split: Passed to :func:`read_nli_pairs`; for the Hub, the split (default ``train``).
        skip_bad_rows: Skip (and log the count of) bad rows instead of raising.

    Returns:
        ``(pairs, triplets)``; exactly one of the two is non-empty for valid data.

    Raises:
        FileNotFoundError: ``path_or_name`` looks like a path (has a file suffix or starts with
            ``.``, ``/`` or ``~``) but does not exist.
        DataFormatError: As for the reader used; a folder that holds no NLI layout.
        ImportError: A Hub id was given and ``datasets`` is not installed.
    """
    text = str(path_or_name)
    path = Path(text).expanduser()
    if path.exists():
        if detect_nli_layout(path) is not None:
            return read_nli_pairs(path, split=split, skip_bad_rows=skip_bad_rows), []
        if path.is_dir():
            raise DataFormatError(
                path,
                None,
                None,
                "no NLI layout recognised in this folder (expected SNLI/MultiNLI "
                "jsonl, AllNLI.tsv, SentEval s1/s2/labels or SICK); pass a triplet file instead",
            )
        return [], read_triplets(path, skip_bad_rows=skip_bad_rows)
    if isinstance(path_or_name, Path) or text.startswith((".", "/", "~")) or text.lower().endswith(_PATH_SUFFIXES):
        raise FileNotFoundError(f"no such file or folder: {text}")
    name, _, config = text.partition(":")
    examples = load_hub_dataset(name, split=split or "train", config=config or None, skip_bad_rows=skip_bad_rows)
    if examples and isinstance(examples[0], NLIPair):
        return list(examples), []
    return [], list(cast("list[tuple[str, ...]]", examples))
