"""Read STS evaluation sets (STS-B, STS12-16, SICK-R) into STSData with gold scores scaled to [0, 1].

Layouts are detected from file names: ``sts-<split>.csv(.gz)`` (STS-B), ``stsbenchmark.tsv(.gz)`` (STS-B as
sbert.net ships it: one file with a header and a ``split`` column), ``STS*.input.<subset>.txt``
plus ``STS*.gs.<subset>.txt`` (SemEval STS12-16 year folders; STS16 uses the ``STS2016.`` prefix),
``SICK_<split>.txt(.gz)`` (SICK), or a parent folder of ``STS12``..``STS16`` year folders. Gold scores
are divided by 5 (STS 0-5, SICK relatedness 1-5). Evaluation data is read strictly: any bad row raises.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sgpt.data.rows import (
    DataFormatError,
    base_name,
    clean_text,
    first_nonblank_line,
    iter_nonblank,
    parse_score,
    read_all_lines,
    split_header,
)

logger = logging.getLogger("sgpt.data")

_STSB = re.compile(r"^sts-(\w+)\.csv(\.gz)?$")
_STS_INPUT = re.compile(r"^(STS\d*)\.input\.(.+)\.txt(\.gz)?$")
_SICK = re.compile(r"^SICK_(\w+)\.txt(\.gz)?$")
_STSB_TSV = re.compile(r"^stsbenchmark\.tsv(\.gz)?$")
_STSB_TSV_COLUMNS = ("split", "score", "sentence1", "sentence2")  # of split, genre, dataset, year, sid, score, ...
_YEAR = re.compile(r"^STS\d\d$", re.IGNORECASE)
_SICK_SPLIT_ALIASES = {"test": "test_annotated"}
_STSB_FIELDS = "genre, file, year, id, score, sentence1, sentence2"
MAX_SCORE = 5.0
"""Gold scores are divided by this (STS 0-5 and SICK relatedness 1-5 alike)."""


@dataclass(frozen=True)
class STSData:
    """Sentence pairs with gold similarity in [0, 1] (gold / 5); ``name`` labels results (``sts-test``)."""

    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]
    name: str

    def __post_init__(self) -> None:
        if not len(self.sentences1) == len(self.sentences2) == len(self.scores):
            raise ValueError(
                f"STSData {self.name!r}: lengths differ (sentences1 {len(self.sentences1)}, "
                f"sentences2 {len(self.sentences2)}, scores {len(self.scores)})"
            )

    def __len__(self) -> int:
        return len(self.scores)


def read_sts(path: str | Path, *, split: str = "test") -> STSData:
    """Read one STS evaluation set; a STS12-16 year folder is returned as one concatenated set.

    Args:
        path: STS-B folder or ``sts-*.csv(.gz)`` file; sbert.net's ``stsbenchmark.tsv(.gz)`` (or a
            file with its header) or a folder holding it; STS12-16 year folder (e.g. ``.../STS12``) or
            one ``STS*.input.<subset>.txt(.gz)`` file; SICK folder or file; or the parent folder of
            the year folders.
        split: STS-B: train/dev/test (``stsbenchmark.tsv``: the rows whose ``split`` column is it).
            SICK: train/trial/test_annotated (``test`` = test_annotated). Parent of year folders: the
            year (``STS12``). Ignored for year folders and other single files.

    Returns:
        The pairs in file order (year folders: subsets in sorted name order, name = folder name,
        e.g. ``STS12``); unscored STS12-16 pairs (empty gold line) are left out.

    Raises:
        DataFormatError: Unknown layout, bad row, empty file, corrupt gzip, missing gold file,
            input/gold line counts that differ, or a split that is not there.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if path.is_dir():
        layout = _layout(path)
        if layout == "year":
            return _concat(read_sts_subsets(path), path.name)
        if layout == "parent":
            year = _year_folder(path, split)
            return _concat(read_sts_subsets(year), year.name)
        if layout == "stsb-tsv":
            return _read_stsb_tsv(next(p for p in sorted(path.iterdir()) if _STSB_TSV.match(p.name)), split)
        return _read_folder_split(path, layout, split)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if _STS_INPUT.match(path.name):
        return _read_sts_subset(path)
    header = first_nonblank_line(path)
    columns = {name.strip() for name in header.split("\t")}
    if "sentence_A" in columns:
        return _read_sick(path, base_name(path))
    if set(_STSB_TSV_COLUMNS) <= columns:
        return _read_stsb_tsv(path, split)
    return _read_stsb(path, base_name(path))


def read_sts_subsets(path: str | Path, *, split: str = "test") -> list[STSData]:
    """Read every subset of a STS12-16 year folder separately (other layouts: one-element list).

    Args:
        path: As for :func:`read_sts`.
        split: As for :func:`read_sts`.

    Returns:
        One STSData per ``STS*.input.<subset>.txt`` file, sorted by subset name, each named
        ``<year>.<subset>`` (e.g. ``STS12.MSRpar``); for other layouts ``[read_sts(path, split=split)]``.

    Raises:
        DataFormatError: As for :func:`read_sts`.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    layout = _layout(path) if path.is_dir() else None
    if layout == "parent":
        path = _year_folder(path, split)
    elif layout != "year":
        return [read_sts(path, split=split)]
    inputs = sorted((m.group(2), p) for p in path.iterdir() if (m := _STS_INPUT.match(p.name)))
    return [_read_sts_subset(p) for _, p in inputs]


def _layout(folder: Path) -> str | None:
    names = [p.name for p in folder.iterdir()]
    if any(_STSB.match(n) for n in names):
        return "stsb"
    if any(_STSB_TSV.match(n) for n in names):
        return "stsb-tsv"
    if any(_STS_INPUT.match(n) for n in names):
        return "year"
    if any(_SICK.match(n) for n in names):
        return "sick"
    if any(_YEAR.match(p.name) and p.is_dir() for p in folder.iterdir()):
        return "parent"
    return None


def _year_folder(parent: Path, split: str) -> Path:
    years = {p.name.upper(): p for p in parent.iterdir() if p.is_dir() and _YEAR.match(p.name)}
    if split.upper() not in years:
        found = ", ".join(sorted(years))
        raise DataFormatError(
            parent, None, None, f"no year folder {split!r} (found: {found}); choose a year as the split (--split STS12)"
        )
    return years[split.upper()]


def _read_folder_split(folder: Path, layout: str | None, split: str) -> STSData:
    """STS-B or SICK folder: pick the file of ``split``."""
    if layout not in ("stsb", "sick"):
        raise DataFormatError(
            folder,
            None,
            None,
            "no STS layout recognised (expected sts-<split>.csv, "
            "STS.input.<subset>.txt + STS.gs.<subset>.txt, SICK_<split>.txt or STS12..STS16 folders)",
        )
    pattern = _STSB if layout == "stsb" else _SICK
    by_split = {m.group(1): p for p in sorted(folder.iterdir()) if (m := pattern.match(p.name))}
    wanted = _SICK_SPLIT_ALIASES.get(split, split) if layout == "sick" else split
    if wanted not in by_split:
        found = ", ".join(sorted(by_split))
        raise DataFormatError(folder, None, None, f"no {layout} file for split {split!r} (found: {found})")
    if layout == "sick":
        return _read_sick(by_split[wanted], f"sick-{split}")
    return _read_stsb(by_split[wanted], f"sts-{split}")


def _read_stsb(path: Path, name: str) -> STSData:
    """STS-B csv: tab-separated, no header, no quoting (sentences hold bare quote characters)."""
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    for lineno, line in iter_nonblank(path):
        fields = line.split("\t")
        if len(fields) < 7:
            message = f"expected at least 7 tab-separated fields ({_STSB_FIELDS}), got {len(fields)}"
            raise DataFormatError(path, lineno, None, message)
        scores.append(parse_score(fields[4], path, lineno, "score", 0.0, MAX_SCORE) / MAX_SCORE)
        s1.append(clean_text(fields[5], path, lineno, "sentence1"))
        s2.append(clean_text(fields[6], path, lineno, "sentence2"))
    return STSData(s1, s2, scores, name)


def _read_stsb_tsv(path: Path, split: str) -> STSData:
    """sbert.net's ``stsbenchmark.tsv(.gz)``: a header (split, genre, dataset, year, sid, score,
    sentence1, sentence2), tab-separated, no quoting; the rows of ``split`` (train/dev/test)."""
    lines = iter_nonblank(path)
    header_line, header = next(lines)
    index = split_header(header, path, header_line, _STSB_TSV_COLUMNS)
    width = max(index.values()) + 1
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    splits: set[str] = set()
    for lineno, line in lines:
        fields = line.split("\t")
        if len(fields) < width:
            raise DataFormatError(path, lineno, None, f"expected {len(index)} tab-separated fields, got {len(fields)}")
        row_split = fields[index["split"]].strip()
        splits.add(row_split)
        if row_split != split:
            continue
        scores.append(parse_score(fields[index["score"]], path, lineno, "score", 0.0, MAX_SCORE) / MAX_SCORE)
        s1.append(clean_text(fields[index["sentence1"]], path, lineno, "sentence1"))
        s2.append(clean_text(fields[index["sentence2"]], path, lineno, "sentence2"))
    if not scores:
        found = ", ".join(sorted(splits)) or "none"
        raise DataFormatError(path, None, "split", f"no rows with split {split!r} (found: {found})")
    return STSData(s1, s2, scores, f"sts-{split}")


def _read_sick(path: Path, name: str) -> STSData:
    """SICK file: header with sentence_A, sentence_B, relatedness_score (1-5)."""
    lines = iter_nonblank(path)
    header_line, header = next(lines)
    index = split_header(header, path, header_line, ("sentence_A", "sentence_B", "relatedness_score"))
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    for lineno, line in lines:
        fields = line.split("\t")
        if len(fields) != len(index):
            raise DataFormatError(path, lineno, None, f"expected {len(index)} tab-separated fields, got {len(fields)}")
        score = parse_score(fields[index["relatedness_score"]], path, lineno, "relatedness_score", 1.0, MAX_SCORE)
        scores.append(score / MAX_SCORE)
        s1.append(clean_text(fields[index["sentence_A"]], path, lineno, "sentence_A"))
        s2.append(clean_text(fields[index["sentence_B"]], path, lineno, "sentence_B"))
    if not scores:
        raise DataFormatError(path, None, None, "no data rows after the header")
    return STSData(s1, s2, scores, name)


def _read_sts_subset(input_path: Path) -> STSData:
    """One SemEval subset: ``<prefix>.input.<subset>.txt`` (s1 TAB s2 [TAB ...]) + matching gold file."""
    m = _STS_INPUT.match(input_path.name)
    assert m is not None  # callers pass only names that match _STS_INPUT
    prefix, subset = m.group(1), m.group(2)
    gold_path = _find_gold(input_path, prefix, subset)
    inputs = read_all_lines(input_path)
    golds = read_all_lines(gold_path)
    if not inputs:
        raise DataFormatError(input_path, None, None, "file is empty")
    if len(inputs) != len(golds):
        message = f"{len(inputs)} lines but {gold_path.name} has {len(golds)}; the files must be line-aligned"
        raise DataFormatError(input_path, None, None, message)
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    for lineno, (line, gold) in enumerate(zip(inputs, golds, strict=False), start=1):
        if not gold.strip():
            continue  # empty gold line = pair not scored by the organisers
        scores.append(parse_score(gold, gold_path, lineno, "score", 0.0, MAX_SCORE) / MAX_SCORE)
        fields = line.split("\t")
        if len(fields) < 2:
            message = f"expected at least 2 tab-separated fields, got {len(fields)}"
            raise DataFormatError(input_path, lineno, None, message)
        s1.append(clean_text(fields[0], input_path, lineno, "sentence1"))
        s2.append(clean_text(fields[1], input_path, lineno, "sentence2"))
    logger.debug("%s: %d of %d pairs scored", input_path, len(scores), len(inputs))
    return STSData(s1, s2, scores, f"{input_path.parent.name}.{subset}")


def _find_gold(input_path: Path, prefix: str, subset: str) -> Path:
    for suffix in (".txt", ".txt.gz"):
        candidate = input_path.with_name(f"{prefix}.gs.{subset}{suffix}")
        if candidate.is_file():
            return candidate
    raise DataFormatError(input_path, None, None, f"no gold file {prefix}.gs.{subset}.txt(.gz) next to it")


def _concat(parts: list[STSData], name: str) -> STSData:
    if not parts:
        raise AssertionError("a year folder has at least one STS*.input file")
    return STSData(
        [s for p in parts for s in p.sentences1],
        [s for p in parts for s in p.sentences2],
        [x for p in parts for x in p.scores],
        name,
    )
