"""Helpers shared by the data tests: write (optionally gzipped) fixture files, find real data."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT.parent / "shared" / "data"


def write(path: Path, content: str | bytes) -> Path:
    """Write text or bytes; gzip-compress when the name ends with .gz."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def need_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test when it is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path
