"""docs/architecture.md stays true: every module it names exists, and every module of the package is named."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def _named_modules() -> set[str]:
    return set(re.findall(r"`(sgpt/[\w/]+\.py)`", DOC.read_text(encoding="utf-8")))


def test_every_module_the_doc_names_exists():
    named = _named_modules()
    assert len(named) > 30
    missing = sorted(m for m in named if not (ROOT / "src" / m).is_file())
    assert missing == []


def test_every_module_of_the_package_is_named_in_the_doc():
    package = ROOT / "src" / "sgpt"
    modules = {
        p.relative_to(ROOT / "src").as_posix()
        for p in package.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }
    assert "sgpt/train/trainer.py" in modules
    assert sorted(modules - _named_modules()) == []
