"""The precision vocabulary, in one place: ``fp32`` and ``bf16`` (``float32`` / ``bfloat16`` accepted as aliases).

Used for weight dtypes (``--dtype``), inference autocast (``--precision`` of the commands that embed)
and training autocast (``--precision``, which also takes ``auto``). Importing this module is cheap
(no torch), so the CLI can parse flags without loading the library.
"""

from __future__ import annotations

PRECISIONS = ("fp32", "bf16")
ALIASES = {"fp32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16"}
TORCH_NAMES = {"fp32": "float32", "bf16": "bfloat16"}
PRECISION_METAVAR = "{fp32,bf16}"

__all__ = ["ALIASES", "PRECISIONS", "PRECISION_METAVAR", "TORCH_NAMES", "canonical_precision"]


def canonical_precision(text: str, *, allow_auto: bool = False) -> str:
    """``fp32`` / ``bf16`` for any accepted spelling (``auto`` stays ``auto`` when allowed).

    Raises:
        ValueError: any other value, listing the accepted ones.
    """
    if allow_auto and text == "auto":
        return text
    if text not in ALIASES:
        accepted = ("auto, " if allow_auto else "") + "fp32 (float32), bf16 (bfloat16)"
        raise ValueError(f"precision: expected {accepted}, got {text!r}")
    return ALIASES[text]
