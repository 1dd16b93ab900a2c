"""Readable differences between two records (run settings, index builds, model signatures)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def differences(expected: Mapping[str, Any], got: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON-like dicts: ``["pooling: 'mean' vs 'cls'", ...]``.

    Nested dicts are compared key by key (``text_format.query_prompt: ...``); a key present on
    one side only shows as ``<absent>`` on the other.
    """
    out = []
    for key in sorted(set(expected) | set(got), key=str):
        a, b = expected.get(key, "<absent>"), got.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(differences(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} vs {b!r}")
    return out
