"""Rows of data files, for every reader: the error type, line iteration, field and id checks, bad-row policy.

Every reader in ``sgpt.data`` goes through :func:`iter_lines`, so gzip handling, UTF-8 checking and
error locations (``file:line: field "x": message``) behave the same for every layout.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from sgpt.utils.io import json_error_text

logger = logging.getLogger("sgpt.data")

T = TypeVar("T")
U = TypeVar("U")

_GZIP_MAGIC = b"\x1f\x8b"
# Bytes that are not valid UTF-8 are decoded with errors="surrogateescape" and show up as lone
# surrogates U+DC80..U+DCFF; check_utf8 turns them into an error that names the line.
_SURROGATE = re.compile("[\udc80-\udcff]")


class DataFormatError(ValueError):
    """Bad input data, located as precisely as the reader can.

    ``str(e)`` looks like ``'data/nli.tsv:418: field "label": unknown label 'entailed' (expected one
    of entailment, neutral, contradiction)'``; the line and field parts are left out when unknown.

    Attributes:
        path: The file (or folder, or ``hub:<name>`` source) that holds the bad data.
        line: 1-based line number (row number for hub datasets), or None for file-level problems.
        field: Column, JSON key or file role that is bad, or None.
        message: The problem and, where there is one, the valid set.
    """

    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        location = self.path if line is None else f"{self.path}:{line}"
        where = f' field "{field}":' if field is not None else ""
        super().__init__(f"{location}:{where} {message}")

    def __reduce__(self):  # keep the exception picklable (DataLoader workers, multiprocessing)
        return (type(self), (self.path, self.line, self.field, self.message))


class BadRows:
    """Apply the ``skip_bad_rows`` policy to the row-level errors of one source.

    Row-level errors (bad field, unknown label, empty text, bad bytes on one line) go through
    :meth:`add`: raised at once by default, counted when skipping. :meth:`report` logs
    ``skipped N bad rows in SOURCE`` on the ``sgpt.data`` logger. File-level errors never pass here.
    """

    def __init__(self, source: str | Path, skip: bool) -> None:
        self.source = str(source)
        self.skip = skip
        self.count = 0
        self.first: DataFormatError | None = None

    def add(self, err: DataFormatError) -> None:
        """Raise ``err`` unless skipping; otherwise count it."""
        if not self.skip:
            raise err
        self.count += 1
        if self.first is None:
            self.first = err

    def report(self) -> int:
        """Log the number of skipped rows (if any) and return it."""
        if self.count:
            logger.warning("skipped %d bad rows in %s (first: %s)", self.count, self.source, self.first)
        return self.count

    def each(self, rows: Iterable[tuple[int, T]], parse: Callable[[int, T], U]) -> Iterator[tuple[int, U]]:
        """``(line, parse(line, row))`` for every row; a row whose ``parse`` raises
        :class:`DataFormatError` goes through :meth:`add` (raised, or counted and left out)."""
        for lineno, row in rows:
            try:
                value = parse(lineno, row)
            except DataFormatError as err:
                self.add(err)
                continue
            yield lineno, value


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every line of a plain or gzip file.

    Gzip is recognised by the ``.gz`` suffix or the magic bytes. Only ``\\n`` ends a line; a
    trailing ``\\r`` and a leading BOM are removed. Bytes that are not UTF-8 are kept as lone
    surrogates so that the caller can report the line (see :func:`check_utf8`).

    Args:
        path: File to read.

    Yields:
        1-based line number and the line without its line ending.

    Raises:
        FileNotFoundError: The file does not exist (``no such file: PATH``).
        DataFormatError: The gzip stream is corrupt or truncated.
    """
    lineno = 0
    with contextlib.ExitStack() as stack:
        try:
            raw = stack.enter_context(open(path, "rb"))
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file: {path}") from None
        is_gzip = path.name.endswith(".gz") or raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        binary = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")) if is_gzip else raw
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="\n")
        try:
            for lineno, line in enumerate(text, start=1):
                line = line.rstrip("\n").rstrip("\r")
                yield lineno, line.removeprefix("\ufeff") if lineno == 1 else line
        except (OSError, EOFError, zlib.error) as err:
            raise DataFormatError(path, lineno + 1, None, f"unreadable gzip data ({err})") from err


def iter_nonblank(path: Path) -> Iterator[tuple[int, str]]:
    """Like :func:`iter_lines` but skip blank lines, and raise if the file has no other line.

    Raises:
        DataFormatError: The file is empty (or blank), or its gzip stream is corrupt.
    """
    seen = False
    for lineno, line in iter_lines(path):
        if line.strip():
            seen = True
            yield lineno, line
    if not seen:
        raise DataFormatError(path, None, None, "file is empty")


def read_all_lines(path: Path) -> list[str]:
    """Return every line of ``path`` (line ``i`` at index ``i - 1``), blank lines included."""
    return [line for _, line in iter_lines(path)]


def first_nonblank_line(path: Path) -> str:
    """Return the first non-blank line of ``path``.

    Raises:
        DataFormatError: The file is empty or its gzip stream is corrupt.
    """
    for _, line in iter_nonblank(path):
        return line
    raise AssertionError("unreachable: iter_nonblank raises on an empty file")


def check_utf8(text: str, path: str | Path, line: int | None, field: str | None = None) -> str:
    """Return ``text`` unchanged, or raise if it holds bytes that were not valid UTF-8.

    Raises:
        DataFormatError: ``FILE:LINE: not valid UTF-8 (byte 0xe9 at column 4)``: the first bad byte
            and its 1-based column (in characters).
    """
    bad = _SURROGATE.search(text)
    if bad is not None:
        byte = ord(bad.group()) - 0xDC00
        raise DataFormatError(path, line, field, f"not valid UTF-8 (byte 0x{byte:02x} at column {bad.start() + 1})")
    return text


def clean_text(value: object, path: str | Path, line: int | None, field: str | None) -> str:
    """Return ``value.strip()`` after checking that it is a non-empty, valid UTF-8 string.

    Raises:
        DataFormatError: ``value`` is not a string, holds bad bytes, or is empty after stripping.
    """
    if not isinstance(value, str):
        raise DataFormatError(path, line, field, f"expected a string, got {type(value).__name__}")
    text = check_utf8(value, path, line, field).strip()
    if not text:
        raise DataFormatError(path, line, field, "empty text")
    return text


def parse_score(raw: str, path: str | Path, line: int | None, field: str, low: float, high: float) -> float:
    """Parse a gold score and check that it lies in ``[low, high]``.

    Raises:
        DataFormatError: The value is not a finite number or is out of range.
    """
    text = check_utf8(raw, path, line, field).strip()
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(path, line, field, f"not a number: {text!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise DataFormatError(path, line, field, f"score {text} outside [{low:g}, {high:g}]")
    return value


def split_header(line: str, path: Path, lineno: int, required: tuple[str, ...]) -> dict[str, int]:
    """Map the tab-separated column names of a header line to their positions.

    Raises:
        DataFormatError: A required column is missing (the field is the missing column).
    """
    names = [name.strip() for name in check_utf8(line, path, lineno).split("\t")]
    columns = {name: i for i, name in enumerate(names)}
    for name in required:
        if name not in columns:
            found = ", ".join(names)
            raise DataFormatError(path, lineno, name, f"missing column in header (found: {found})")
    return columns


def base_name(path: Path) -> str:
    """File name without ``.gz`` and without its last extension: ``sts-test.csv.gz`` -> ``sts-test``."""
    name = path.name.removesuffix(".gz")
    stem, dot, _ = name.rpartition(".")
    return stem if dot else name


def parse_json_object(line: str, path: Path, lineno: int) -> dict:
    """One jsonl line as a dict.

    Raises:
        DataFormatError: non-UTF-8 bytes, invalid JSON, or a value that is not an object.
    """
    try:
        obj = json.loads(check_utf8(line, path, lineno))
    except json.JSONDecodeError as err:
        raise DataFormatError(path, lineno, None, f"invalid JSON ({json_error_text(err)})") from None
    if not isinstance(obj, dict):
        raise DataFormatError(path, lineno, None, f"expected a JSON object, got {type(obj).__name__}")
    return obj


_JSON_ARRAY = (
    "this is a JSON array, not JSON Lines: give one JSON object per line "
    "(convert it with: jq -c '.[]' FILE > FILE.jsonl)"
)


def check_not_json_array(line: str, path: Path, lineno: int) -> None:
    """Refuse a JSON array file given where JSON Lines are read, from its first non-blank line.

    Raises:
        DataFormatError: the line starts with ``[`` and is a JSON array or not valid JSON on its
            own (the opening line of a pretty-printed array).
    """
    if not line.lstrip().startswith("["):
        return
    try:
        is_array = isinstance(json.loads(line), list)
    except json.JSONDecodeError:
        is_array = True
    if is_array:
        raise DataFormatError(path, lineno, None, _JSON_ARRAY)


def json_rows(path: Path, bad: BadRows) -> Iterator[tuple[int, dict]]:
    """Non-blank jsonl lines parsed as objects; a bad line goes through ``bad``.

    A JSON array file (see :func:`check_not_json_array`) is refused at once, even when skipping bad rows.
    """

    def lines() -> Iterator[tuple[int, str]]:
        for i, (lineno, line) in enumerate(iter_nonblank(path)):
            if i == 0:
                check_not_json_array(line, path, lineno)
            yield lineno, line

    return bad.each(lines(), lambda lineno, line: parse_json_object(line, path, lineno))


def is_jsonl(path: Path) -> bool:
    """Whether ``path`` names a JSON Lines file: ``.jsonl`` or ``.json``, optionally ``.gz``."""
    return path.name.removesuffix(".gz").endswith((".jsonl", ".json"))


def read_texts(path: str | Path, field: str = "text") -> list[str]:
    """Texts to embed: every line of a text file, or ``field`` of every object of a JSON Lines file.

    A file is read as JSON Lines when :func:`is_jsonl` says so (``.jsonl``, ``.json``, either
    ``.gz``), else as text, one text per line (blank lines included, so row ``i`` of the output is
    line ``i + 1``). Both go through :func:`iter_lines`: gzip read transparently, a leading BOM
    removed, ``\\r\\n`` line ends accepted. Texts are returned as written (not stripped).

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: ``FILE:LINE: ...`` for bytes that are not UTF-8, invalid JSON, a JSON
            array file, a missing or non-string field, corrupt gzip, or an empty JSON Lines file.
    """
    path = Path(path)
    if not is_jsonl(path):
        return [check_utf8(line, path, lineno) for lineno, line in iter_lines(path)]
    texts = []
    for lineno, obj in json_rows(path, BadRows(path, skip=False)):
        if field not in obj:
            found = ", ".join(repr(k) for k in obj) or "none"
            raise DataFormatError(path, lineno, None, f"missing field {field!r} (fields of this row: {found})")
        value = obj[field]
        if not isinstance(value, str):
            raise DataFormatError(path, lineno, field, f"expected a string, got {type(value).__name__}")
        texts.append(value)
    return texts


def id_string(value: object, path: Path, lineno: int, name: str) -> str:
    """An id as a string: a non-empty string (stripped) or an integer (its decimal string).

    Raises:
        DataFormatError: any other type, or an empty string.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataFormatError(path, lineno, name, f"expected a string or integer id, got {type(value).__name__}")
    return clean_text(value, path, lineno, name)


def claim_id(obj: Mapping, name: str, path: Path, lineno: int, lines: dict[str, int]) -> str:
    """Read ``obj[name]`` as an id and record its line in ``lines``.

    Raises:
        DataFormatError: the field is missing or not an id, or the id was seen before (naming both lines).
    """
    if name not in obj:
        raise DataFormatError(path, lineno, name, "missing field")
    key = id_string(obj[name], path, lineno, name)
    if key in lines:
        raise DataFormatError(path, lineno, name, f"duplicate id {key!r} (first on line {lines[key]})")
    lines[key] = lineno
    return key


def text_field(obj: Mapping, name: str, path: Path, lineno: int, *, allow_empty: bool) -> str:
    """``obj[name]`` as stripped text (``""`` for a blank string when ``allow_empty``).

    Raises:
        DataFormatError: the field is missing, not a string, holds bad bytes, or is empty (unless allowed).
    """
    if name not in obj:
        raise DataFormatError(path, lineno, name, "missing field")
    value = obj[name]
    if allow_empty and isinstance(value, str) and not value.strip():
        return ""
    return clean_text(value, path, lineno, name)


def id_list(value: object, path: Path, lineno: int, name: str) -> list[str]:
    """A JSON list of ids as strings (see :func:`id_string`); errors name ``name[i]``."""
    if not isinstance(value, list):
        raise DataFormatError(path, lineno, name, f"expected a list of ids, got {type(value).__name__}")
    return [id_string(v, path, lineno, f"{name}[{i}]") for i, v in enumerate(value)]


def text_list(value: object, path: Path, lineno: int, name: str) -> list[str]:
    """A string or a JSON list of strings as stripped texts; errors name ``name[i]``."""
    if isinstance(value, str):
        return [clean_text(value, path, lineno, name)]
    if not isinstance(value, list):
        raise DataFormatError(path, lineno, name, f"expected a list of strings, got {type(value).__name__}")
    return [clean_text(v, path, lineno, f"{name}[{i}]") for i, v in enumerate(value)]


def split_columns(line: str) -> list[str]:
    """Tab-separated fields when the line has a tab, else whitespace-separated ones."""
    return [f.strip() for f in line.split("\t")] if "\t" in line else line.split()


def is_int(text: str) -> bool:
    """Whether ``int(text)`` succeeds."""
    try:
        int(text)
    except ValueError:
        return False
    return True


def few(ids: Iterable[str], n: int = 5) -> str:
    """The first ``n`` ids, quoted, with ``...`` when there are more (for error messages)."""
    items = list(ids)
    shown = ", ".join(repr(i) for i in items[:n])
    return shown + (", ..." if len(items) > n else "")
