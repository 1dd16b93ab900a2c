"""``sgpt train msmarco``: MS MARCO's own files (SPEC 2.2) -> the MS MARCO recipe."""

from __future__ import annotations


def add_train_msmarco(sub) -> None:
    """Register ``sgpt train msmarco`` (being built)."""
