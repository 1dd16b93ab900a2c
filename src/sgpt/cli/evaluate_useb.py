"""``sgpt eval useb``: USEB (SPEC 3.4)."""

from __future__ import annotations


def add_eval_useb(sub) -> None:
    """Register ``sgpt eval useb`` (being built)."""
