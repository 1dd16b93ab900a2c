"""Read NLI sentence pairs (SNLI/MultiNLI jsonl, AllNLI.tsv, SentEval s1/s2/labels, SICK) into NLIPair.

Layouts are auto-detected from file names (folders) or from the first line (files); see
:func:`detect_nli_layout`. Pairs without a gold label (``-`` or ``-1``, no annotator consensus) are
skipped and counted at INFO level, as the official SNLI/MultiNLI readers do; they are not bad rows.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sgpt.data.rows import (
    BadRows,
    DataFormatError,
    check_utf8,
    clean_text,
    first_nonblank_line,
    iter_nonblank,
    parse_json_object,
    read_all_lines,
    split_header,
)

logger = logging.getLogger("sgpt.data")

LABELS: tuple[str, str, str] = ("entailment", "neutral", "contradiction")
"""Normalised label names; position = HF snli/multi_nli integer label."""

_SENTEVAL = re.compile(r"^(s1|s2|labels)\.([^.]+)(\.gz)?$")
_SICK = re.compile(r"^SICK_(\w+)\.txt(\.gz)?$")
_ALLNLI = re.compile(r"^AllNLI\.tsv(\.gz)?$")
_JSONL = re.compile(r"^.+\.jsonl(\.gz)?$")
_SICK_COLUMNS = ("sentence_A", "sentence_B", "entailment_judgment")
_ALLNLI_COLUMNS = ("split", "sentence1", "sentence2", "label")
_SICK_SPLIT_ALIASES = {"test": "test_annotated"}


@dataclass(frozen=True)
class NLIPair:
    """One labelled sentence pair; texts are stripped, ``label`` is one of :data:`LABELS`."""

    premise: str
    hypothesis: str
    label: str


def normalise_label(raw: object, path: str | Path, line: int | None, field: str) -> str | None:
    """Map a raw NLI label to one of :data:`LABELS`, or None for "no gold label".

    Accepts names in any case (``ENTAILMENT``), and 0/1/2 as int or digit string (HF snli
    convention: entailment, neutral, contradiction). ``-``, ``-1`` and ``-1`` as int mean no consensus.

    Raises:
        DataFormatError: Anything else, e.g. ``unknown label 'entailed' (expected one of ...)``.
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw == -1:
            return None
        if 0 <= raw < len(LABELS):
            return LABELS[raw]
    elif isinstance(raw, str):
        text = check_utf8(raw, path, line, field).strip()
        if text in ("-", "-1"):
            return None
        if text in ("0", "1", "2"):
            return LABELS[int(text)]
        if text.lower() in LABELS:
            return text.lower()
        if not text:
            raise DataFormatError(path, line, field, "empty label")
    expected = ", ".join(LABELS)
    raise DataFormatError(path, line, field, f"unknown label {raw!r} (expected one of {expected})")


def detect_nli_layout(path: str | Path) -> str | None:
    """Name the NLI layout of a file or folder, or return None if it is not one.

    Args:
        path: File or folder.

    Returns:
        ``"senteval"`` (s1/s2/labels files), ``"sick"``, ``"allnli"`` (AllNLI.tsv header) or
        ``"jsonl"`` (SNLI/MultiNLI keys sentence1/sentence2/gold_label, or premise/hypothesis/label);
        None for anything else (e.g. a triplet file).

    Raises:
        DataFormatError: A file to sniff is empty or its gzip stream is corrupt.
    """
    path = Path(path)
    return _detect_folder(path) if path.is_dir() else _detect_file(path)


def _detect_folder(path: Path) -> str | None:
    files = sorted(p for p in path.iterdir() if p.is_file())
    for layout, pattern in (("senteval", _SENTEVAL), ("sick", _SICK), ("allnli", _ALLNLI)):
        if any(pattern.match(p.name) for p in files):
            return layout
    # jsonl files may hold triplets instead: the folder is NLI only if one of them sniffs as NLI
    if any(_JSONL.match(p.name) and detect_nli_layout(p) == "jsonl" for p in files):
        return "jsonl"
    return None


def _detect_file(path: Path) -> str | None:
    if _SENTEVAL.match(path.name):
        return "senteval"
    first = first_nonblank_line(path)
    if first.lstrip().startswith("{"):
        try:
            keys = set(json.loads(first))
        except (ValueError, TypeError):
            return None
        nli = {"sentence1", "sentence2"} <= keys or {"premise", "hypothesis", "label"} <= keys
        return "jsonl" if nli else None
    columns = {name.strip() for name in first.split("\t")}
    if set(_SICK_COLUMNS) <= columns:
        return "sick"
    if set(_ALLNLI_COLUMNS) <= columns:
        return "allnli"
    return None


def read_nli_pairs(path: str | Path, *, split: str | None = None, skip_bad_rows: bool = False) -> list[NLIPair]:
    """Read labelled NLI pairs from any supported layout (gzip or plain).

    Args:
        path: One of: SNLI/MultiNLI jsonl file; AllNLI.tsv(.gz); SentEval folder (s1.<split>,
            s2.<split>, labels.<split>) or one of its files; SICK file; or a folder holding one of these.
        split: Folder layouts: which file (jsonl: name ending ``_<split>``, default ``train`` when
            several; SICK: train/trial/test_annotated, ``test`` accepted, default ``train``;
            SentEval: None = every split present, in sorted order). AllNLI: rows whose ``split``
            column equals it (default ``train``). Ignored for a single-split file (jsonl, SICK).
        skip_bad_rows: Skip (and log the count of) bad rows instead of raising on the first one.

    Returns:
        Pairs in file order, texts stripped, labels lower-case names from :data:`LABELS`.

    Raises:
        DataFormatError: Unknown layout, bad row (unless skipped), empty file, corrupt gzip,
            mismatched SentEval line counts, or a split that the data does not hold.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    layout = detect_nli_layout(path)
    if layout == "senteval":
        folder = path if path.is_dir() else path.parent
        if split is None and not path.is_dir():
            m = _SENTEVAL.match(path.name)
            assert m is not None  # a file is "senteval" only when its name matches _SENTEVAL
            split = m.group(2)
        return _read_senteval(folder, split, skip_bad_rows)
    if layout is None:
        raise DataFormatError(
            path,
            None,
            None,
            "no NLI layout recognised (expected SNLI/MultiNLI jsonl, "
            "AllNLI.tsv, SentEval s1/s2/labels files or a SICK file)",
        )
    file = _pick_file(path, layout, split) if path.is_dir() else path
    if layout == "jsonl":
        return _read_jsonl(file, skip_bad_rows)
    if layout == "sick":
        return _read_tsv(file, _SICK_COLUMNS, None, skip_bad_rows)
    return _read_tsv(file, ("sentence1", "sentence2", "label"), split or "train", skip_bad_rows)


def _pick_file(folder: Path, layout: str, split: str | None) -> Path:
    """Choose the data file of ``layout`` inside ``folder`` for ``split``."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if layout == "allnli":
        return next(p for p in files if _ALLNLI.match(p.name))
    if layout == "sick":
        by_split = {m.group(1): p for p in files if (m := _SICK.match(p.name))}
        split = split or "train"
        wanted = _SICK_SPLIT_ALIASES.get(split, split)
        if wanted not in by_split:
            raise DataFormatError(
                folder, None, None, f"no SICK file for split {split!r} (found: {', '.join(sorted(by_split))})"
            )
        return by_split[wanted]
    candidates = [p for p in files if _JSONL.match(p.name) and detect_nli_layout(p) == "jsonl"]
    if split is None and len(candidates) == 1:
        return candidates[0]
    wanted = split or "train"
    suffixes = ("_" + wanted, "." + wanted, "-" + wanted)
    matches = [p for p in candidates if _jsonl_stem(p) == wanted or _jsonl_stem(p).endswith(suffixes)]
    if len(matches) != 1:
        found = ", ".join(p.name for p in candidates)
        raise DataFormatError(folder, None, None, f"{len(matches)} jsonl files match split {wanted!r} (found: {found})")
    return matches[0]


def _jsonl_stem(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".jsonl")


def _log_no_gold(count: int, source: str | Path) -> None:
    if count:
        logger.info("skipped %d pairs without gold label in %s", count, source)


def _read_jsonl(path: Path, skip_bad_rows: bool) -> list[NLIPair]:
    """SNLI/MultiNLI jsonl: keys sentence1/sentence2/gold_label (or premise/hypothesis/label)."""
    pairs: list[NLIPair] = []
    bad = BadRows(path, skip_bad_rows)
    no_gold = 0
    for _, pair in bad.each(iter_nonblank(path), lambda lineno, line: _parse_json_pair(line, path, lineno)):
        if pair is None:
            no_gold += 1
        else:
            pairs.append(pair)
    bad.report()
    _log_no_gold(no_gold, path)
    return pairs


def _parse_json_pair(line: str, path: Path, lineno: int) -> NLIPair | None:
    """Parse one jsonl line; None when the pair has no gold label."""
    obj = parse_json_object(line, path, lineno)
    keys = ("sentence1", "sentence2", "gold_label") if "sentence1" in obj else ("premise", "hypothesis", "label")
    if keys[2] not in obj and "label" in obj:
        keys = (keys[0], keys[1], "label")
    for key in keys:
        if key not in obj:
            raise DataFormatError(path, lineno, key, "missing field")
    label = normalise_label(obj[keys[2]], path, lineno, keys[2])
    if label is None:
        return None
    premise = clean_text(obj[keys[0]], path, lineno, keys[0])
    return NLIPair(premise, clean_text(obj[keys[1]], path, lineno, keys[1]), label)


def _read_tsv(path: Path, columns: tuple[str, str, str], split: str | None, skip_bad_rows: bool) -> list[NLIPair]:
    """Tab-separated file with a header (SICK, AllNLI); ``split`` filters on the ``split`` column."""
    pairs: list[NLIPair] = []
    bad = BadRows(path, skip_bad_rows)
    no_gold = 0
    splits_seen: set[str] = set()
    lines = iter_nonblank(path)
    header_line, header = next(lines)
    index = split_header(header, path, header_line, columns + (("split",) if split else ()))
    rows = 0

    def parse(lineno: int, line: str) -> NLIPair | None:
        nonlocal rows, no_gold
        fields = line.split("\t")
        rows += 1
        if len(fields) != len(index):
            raise DataFormatError(path, lineno, None, f"expected {len(index)} tab-separated fields, got {len(fields)}")
        if split is not None:
            row_split = check_utf8(fields[index["split"]], path, lineno, "split").strip()
            splits_seen.add(row_split)
            if row_split != split:
                return None
        label = normalise_label(fields[index[columns[2]]], path, lineno, columns[2])
        if label is None:
            no_gold += 1
            return None
        texts = [clean_text(fields[index[c]], path, lineno, c) for c in columns[:2]]
        return NLIPair(texts[0], texts[1], label)

    pairs.extend(pair for _, pair in bad.each(lines, parse) if pair is not None)
    bad.report()
    _log_no_gold(no_gold, path)
    if not rows:
        raise DataFormatError(path, None, None, "no data rows after the header")
    if split is not None and split not in splits_seen and not pairs:
        found = ", ".join(sorted(splits_seen)) or "none"
        raise DataFormatError(path, None, "split", f"no rows with split {split!r} (found: {found})")
    return pairs


def _senteval_files(folder: Path) -> dict[str, dict[str, Path]]:
    """``{split: {"s1": path, "s2": path, "labels": path}}`` for the SentEval files in ``folder``."""
    found: dict[str, dict[str, Path]] = {}
    for p in sorted(folder.iterdir()):
        m = _SENTEVAL.match(p.name)
        if m and p.is_file():
            role, split = m.group(1), m.group(2)
            if role in found.get(split, {}):
                raise DataFormatError(p, None, None, f"both {found[split][role].name} and {p.name} exist; keep one")
            found.setdefault(split, {})[role] = p
    return found


def _read_senteval(folder: Path, split: str | None, skip_bad_rows: bool) -> list[NLIPair]:
    """SentEval NLI folder: s1.<split>, s2.<split>, labels.<split>, one item per line, line-aligned."""
    files = _senteval_files(folder)
    splits = sorted(files) if split is None else [split]
    pairs: list[NLIPair] = []
    for name in splits:
        roles = files.get(name, {})
        missing = [r for r in ("s1", "s2", "labels") if r not in roles]
        if missing:
            lacking = ", ".join(f"{role}.{name}" for role in missing)
            complete = ", ".join(s for s in sorted(files) if len(files[s]) == 3) or "none"
            message = f"split {name!r} lacks file(s) {lacking} (complete splits: {complete})"
            raise DataFormatError(folder, None, None, message)
        pairs.extend(_read_senteval_split(roles, folder / f"{{s1,s2,labels}}.{name}", skip_bad_rows))
    return pairs


def _read_senteval_split(roles: dict[str, Path], source: Path, skip_bad_rows: bool) -> list[NLIPair]:
    """Read one split of line-aligned s1/s2/labels files."""
    lines = {role: read_all_lines(path) for role, path in roles.items()}
    counts = {role: len(rows) for role, rows in lines.items()}
    if not any(counts.values()):
        raise DataFormatError(roles["s1"], None, None, "file is empty")
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{roles[r].name} has {n}" for r, n in counts.items())
        raise DataFormatError(source, None, None, f"line counts differ ({detail}); the files must be line-aligned")
    pairs: list[NLIPair] = []
    bad = BadRows(source, skip_bad_rows)
    no_gold = 0

    def parse(i: int, row: tuple[str, str, str]) -> NLIPair | None:
        nonlocal no_gold
        s1, s2, raw_label = row
        label = normalise_label(raw_label, roles["labels"], i, "label")
        if label is None:
            no_gold += 1
            return None
        return NLIPair(clean_text(s1, roles["s1"], i, "s1"), clean_text(s2, roles["s2"], i, "s2"), label)

    rows = enumerate(zip(lines["s1"], lines["s2"], lines["labels"], strict=False), start=1)
    pairs.extend(pair for _, pair in bad.each(rows, parse) if pair is not None)
    bad.report()
    _log_no_gold(no_gold, source)
    return pairs
