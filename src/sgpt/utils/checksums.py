"""Checksums of the files of a folder: sha256 and size, written last, verified on load.

A folder's checksums live in one JSON file (``checksums.json`` by default) written atomically
after every file it names is complete, so its presence says "this folder was finished", and a
file whose size or sha256 no longer matches was damaged (truncated, half copied) or changed after
the folder was written::

    {"format": 1, "algorithm": "sha256",
     "files": {"index.faiss": {"size": 5678, "sha256": "..."}, ...}}

:func:`verify_checksums` compares sizes first (free) and hashes only files of the right size.
Hashing reads the file in 1 MiB chunks. Measured cost for a 100 MB file: 0.07-0.08 s from the
page cache (about 1.3 GB/s on one core), 0.33 s right after the cache was dropped (disk bound);
loading the same file into FAISS reads every byte anyway, so verifying costs little next to it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sgpt.utils.io import read_json, write_json

CHECKSUMS_FILE = "checksums.json"
FORMAT = 1
_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """The sha256 hex digest of the file at ``path``, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_checksums(folder: str | Path, names: Iterable[str], file_name: str = CHECKSUMS_FILE) -> None:
    """Write ``folder/file_name`` with the size and sha256 of each file ``names`` names.

    Call it last, once every named file is complete; the write is atomic
    (:func:`sgpt.utils.io.write_json`). ``names`` are paths relative to ``folder`` (``/``
    separated; sub-folders allowed).

    Raises:
        FileNotFoundError: a named file does not exist.
    """
    folder = Path(folder)
    files: dict[str, dict[str, Any]] = {}
    for name in sorted(set(names)):
        path = folder / name
        files[name] = {"size": os.path.getsize(path), "sha256": file_digest(path)}
    write_json(folder / file_name, {"format": FORMAT, "algorithm": "sha256", "files": files})


def has_checksums(folder: str | Path, file_name: str = CHECKSUMS_FILE) -> bool:
    """Whether ``folder`` holds a checksums file (folders written before checksums existed do not)."""
    return (Path(folder) / file_name).is_file()


def read_checksums(folder: str | Path, file_name: str = CHECKSUMS_FILE) -> dict[str, dict[str, Any]]:
    """``{name: {"size": int, "sha256": str}}`` from ``folder/file_name``.

    Raises:
        ValueError: the checksums file is not valid JSON or not in this format (names the file).
        FileNotFoundError: there is no checksums file.
    """
    path = Path(folder) / file_name
    data = read_json(path)
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
        for v in files.values()
    ):
        raise ValueError(f"{path}: not a checksums file (expected {{'files': {{name: {{'size', 'sha256'}}}}}})")
    return files


def check_file(folder: str | Path, name: str, expected: dict[str, Any], hash_it: bool = True) -> str | None:
    """Why ``folder/name`` does not match ``expected`` (``{"size", "sha256"}``), or ``None`` if it does.

    The reason is a short phrase: ``"missing"``, ``"size 1234 bytes, expected 5678"`` or
    ``"sha256 differs (size 5678 bytes as expected)"``. ``hash_it=False`` checks the size only.
    """
    path = Path(folder) / name
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return "missing"
    if size != expected["size"]:
        return f"size {size} bytes, expected {expected['size']}"
    if hash_it and file_digest(path) != expected["sha256"]:
        return f"sha256 differs (size {size} bytes as expected)"
    return None


def damaged_files(folder: str | Path, file_name: str = CHECKSUMS_FILE, hash_it: bool = True) -> dict[str, str]:
    """``{name: reason}`` for each file named in ``folder/file_name`` that is missing or differs.

    See :func:`check_file` for the reasons. Raises as :func:`read_checksums` does.
    """
    out: dict[str, str] = {}
    for name, expected in read_checksums(folder, file_name).items():
        reason = check_file(folder, name, expected, hash_it=hash_it)
        if reason is not None:
            out[name] = reason
    return out


def verify_checksums(folder: str | Path, file_name: str = CHECKSUMS_FILE) -> list[str]:
    """The names of the files listed in ``folder/file_name`` that are missing or differ (size or sha256).

    An empty list means every listed file is intact. A damaged file raises nothing: its name is
    returned. Raises as :func:`read_checksums` does when the checksums file itself is unreadable.
    """
    return sorted(damaged_files(folder, file_name))
