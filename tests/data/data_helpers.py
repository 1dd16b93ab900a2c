"""Helpers shared by the data tests: write (optionally gzipped) fixture files.

The real data sets are found through ``conftest.need_data`` (skip, or fail under ``CI=true``)."""

from __future__ import annotations

import gzip
from pathlib import Path


def write(path: Path, content: str | bytes) -> Path:
    """Write text or bytes; gzip-compress when the name ends with .gz."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path
