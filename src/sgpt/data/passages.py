"""MS MARCO's ``collection.tsv`` (8.8M passages) without holding the passages in memory.

:class:`PassageStore` reads the file once to build an index (where each passage's text starts and
how many bytes it has, in NumPy arrays: 12 bytes per passage when the pids are ``0..n-1`` in file
order, as in MS MARCO; 20 with other increasing integer pids, 28 with integer pids in any order; a
dict with other ids) and reads a passage
from disk (``os.pread``) when it is asked for. :class:`PassageTexts` puts the texts into
training examples that hold passage ids, at the moment a batch needs them.
"""

from __future__ import annotations

import logging
import os
from array import array
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sgpt.data.rows import BadRows, DataFormatError

logger = logging.getLogger("sgpt.data")

__all__ = ["PassageStore", "PassageTexts"]


class PassageStore(Mapping[str, str]):
    """The passages of a ``pid<TAB>text`` file, read from disk on access.

    Texts are stripped, as :func:`sgpt.data.msmarco.read_collection` gives them; passages with an
    empty text are left out (counted in a logged warning). Not for gzip files (they cannot be
    read by offset). The file must not change while the store is in use.

    Args:
        path: the ``collection.tsv``.
        skip_bad_rows: skip (and count) lines without exactly two tab-separated fields or with an
            empty pid, instead of stopping.

    Raises:
        DataFormatError: a bad line (file and line named), a duplicate pid (both lines named), a
            file without any passage, or a gzip file.
        FileNotFoundError: ``path`` does not exist.
    """

    def __init__(self, path: str | Path, *, skip_bad_rows: bool = False) -> None:
        self.path = Path(path)
        if self.path.name.endswith(".gz"):
            raise DataFormatError(self.path, None, None, "a gzip collection cannot be read by offset; gunzip it first")
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file: {self.path}") from None
        ids, starts, lengths = _scan(self.path, skip_bad_rows)
        self.starts = np.frombuffer(starts, dtype=np.longlong)  # [n] byte offset of each text
        self.lengths = np.frombuffer(lengths, dtype=np.uintc)  # [n] its length in bytes
        self._ids: list[str] | np.ndarray | None = None  # pid of each row; None: pid == row
        self._order: np.ndarray | None = None  # rows sorted by pid, when the int pids are not increasing
        self._rows: dict[str, int] | None = None  # pid -> row, for pids that are not all integers
        if isinstance(ids, list):
            self._ids, self._rows = ids, _row_dict(ids, self.path)
            return
        pids = np.frombuffer(ids, dtype=np.longlong)
        if np.array_equal(pids, np.arange(len(pids))):
            return  # MS MARCO: pids 0..n-1 in file order
        self._ids = pids
        if not np.all(pids[1:] > pids[:-1]):
            self._order = np.argsort(pids, kind="stable")
            _check_unique(pids, self._order, self.path)

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self) -> Iterator[str]:
        """The pids in file order."""
        return (self.pid_at(row) for row in range(len(self)))

    def __getitem__(self, pid: str) -> str:
        row = self.row_of(pid)
        if row is None:
            raise KeyError(pid)
        return self.text_at(row)

    def __contains__(self, pid: object) -> bool:
        return isinstance(pid, str) and self.row_of(pid) is not None

    def __getstate__(self) -> dict[str, Any]:  # a copy in another process opens the file itself
        return {k: v for k, v in self.__dict__.items() if k != "_fd"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fd = os.open(self.path, os.O_RDONLY)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def row_of(self, pid: str) -> int | None:
        """The row (file-order position) of ``pid``, or None when it is not in the collection."""
        if self._rows is not None:
            return self._rows.get(pid)
        if not _plain_int(pid):
            return None  # "007" is not pid 7: ids are compared as the strings they are
        value = int(pid)
        if self._ids is None:
            return value if 0 <= value < len(self) else None
        assert isinstance(self._ids, np.ndarray)
        at = int(np.searchsorted(self._ids, value, sorter=self._order))
        row = at if self._order is None or at >= len(self) else int(self._order[at])
        return row if at < len(self) and self._ids[row] == value else None

    def pid_at(self, row: int) -> str:
        """The pid of row ``row``."""
        if self._ids is None:
            return str(row)
        return self._ids[row] if isinstance(self._ids, list) else str(int(self._ids[row]))

    def text_at(self, row: int) -> str:
        """The stripped text of row ``row``, read from disk.

        Raises:
            DataFormatError: the passage is not valid UTF-8 (its pid named).
        """
        raw = os.pread(self._fd, int(self.lengths[row]), int(self.starts[row]))
        try:
            return raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            raise DataFormatError(
                self.path, None, "text", f"passage {self.pid_at(row)!r}: invalid UTF-8 ({e})"
            ) from None

    @property
    def index_bytes(self) -> int:
        """Memory held by the index (the NumPy arrays; a dict of ids is not counted)."""
        arrays = [self.starts, self.lengths, self._ids, self._order]
        return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


def _scan(path: Path, skip: bool) -> tuple[array | list[str], array, array]:
    """One pass over the file: ``(pids, text starts, text lengths)`` of the non-empty passages.

    The pids stay integers (an ``array('q')``) while every pid is a plain decimal integer, else a list.
    """
    bad = BadRows(path, skip)
    int_ids: array | None = array("q")
    str_ids: list[str] = []
    starts, lengths = array("q"), array("I")  # 8 and 4 bytes an item
    empty = 0
    offset = 0
    with open(path, "rb", buffering=1 << 20) as f:
        for lineno, line in enumerate(f, start=1):
            at, offset = offset, offset + len(line)
            body = line.rstrip(b"\r\n")
            tab = body.find(b"\t")
            raw = body[:tab]
            # the common line, decided without copying its text: "123<TAB>text" with a plain integer pid
            plain = 0 < tab < 19 and raw.isdigit() and (tab == 1 or raw[0] != 48) and body.count(b"\t") == 1
            pid = "" if plain else _odd_line(body, path, lineno, bad)
            if pid is None:
                continue
            if tab + 1 == len(body) or (body[tab + 1] in _SPACE and not body[tab + 1 :].strip()):
                empty += 1
                continue
            if int_ids is not None and not plain and (not _plain_int(pid) or abs(int(pid)) >= 2**63):
                str_ids, int_ids = [str(i) for i in int_ids], None
            if int_ids is not None:
                int_ids.append(int(raw) if plain else int(pid))
            else:
                str_ids.append(raw.decode() if plain else pid)
            starts.append(at + tab + 1)
            lengths.append(len(body) - tab - 1)
    bad.report()
    if empty:
        logger.warning("dropped %d passages with empty text in %s", empty, path)
    if not starts:
        raise DataFormatError(path, None, None, "no passages (expected pid<TAB>text lines)")
    return (int_ids if int_ids is not None else str_ids), starts, lengths


_SPACE = b" \t\x0b\x0c\r\n"


def _odd_line(body: bytes, path: Path, lineno: int, bad: BadRows) -> str | None:
    """The pid of a line that is not ``<plain int><TAB>text``; None for a blank or bad (counted) line."""
    if not body.strip():
        return None
    fields = body.split(b"\t")
    pid = fields[0].decode("utf-8", errors="replace").removeprefix("\ufeff").strip()
    if len(fields) != 2 or not pid:
        got = f"got {len(fields)}" if len(fields) != 2 else "the pid is empty"
        bad.add(DataFormatError(path, lineno, None, f"expected 2 tab-separated fields (pid, text), {got}"))
        return None
    return pid


def _plain_int(text: str) -> bool:
    """A decimal integer written as Python writes it (``"7"``, ``"-3"``; not ``"007"``, ``"+7"``, ``"٧"``)."""
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit() and text == str(int(text))


def _row_dict(ids: list[str], path: Path) -> dict[str, int]:
    rows: dict[str, int] = {}
    for row, pid in enumerate(ids):
        if rows.setdefault(pid, row) != row:
            _duplicate(path, pid)
    return rows


def _check_unique(pids: np.ndarray, order: np.ndarray, path: Path) -> None:
    ranked = pids[order]
    same = np.flatnonzero(ranked[1:] == ranked[:-1])
    if len(same):
        _duplicate(path, str(int(ranked[same[0]])))


def _duplicate(path: Path, pid: str) -> None:
    """Raise the duplicate-pid error with both line numbers (found by a second pass: errors only)."""
    lines = []
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if line.split(b"\t", 1)[0].strip().decode("utf-8", errors="replace") == pid:
                lines.append(lineno)
                if len(lines) == 2:
                    break
    raise DataFormatError(path, lines[-1], "pid", f"duplicate id {pid!r} (first on line {lines[0]})")


class PassageTexts(Sequence[tuple[str, ...]]):
    """Training examples ``(query, pid, pid, ...)`` seen as ``(query, text, text, ...)``.

    The texts come from ``passages`` when an example is read, so only the examples of the batches
    being built are ever held as text. ``set_epoch`` is passed on to ``examples`` (e.g.
    :class:`sgpt.data.RoundRobinExamples`, whose positives and negatives are passage ids here).
    """

    def __init__(self, examples: Sequence[tuple[str, ...]], passages: Mapping[str, str]) -> None:
        self.examples = examples
        self.passages = passages

    def set_epoch(self, epoch: int) -> None:
        """Select the examples of ``epoch`` (when ``examples`` change per epoch)."""
        if hasattr(self.examples, "set_epoch"):
            self.examples.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.examples)

    # int indices only (all the trainer's sampler uses): Sequence's slice overload is not implemented
    def __getitem__(self, i: int) -> tuple[str, ...]:  # type: ignore[override]
        query, *pids = self.examples[i]
        return (query, *(self.passages[p] for p in pids))
