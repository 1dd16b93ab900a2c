"""How to load a model: the loading choices of ``sgpt.load``, every CLI command and both recipes, in one
frozen dataclass.

Every field left ``None`` keeps what the saved folder says (a plain backbone: its defaults). The one
field where "nothing" is a real choice spells it out: ``special_tokens="none"`` turns brackets off,
``None`` keeps the saved choice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

SPECIAL_TOKEN_CHOICES = ("specb", "speca", "none")

__all__ = ["SPECIAL_TOKEN_CHOICES", "ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """Loading choices on top of what a folder saved (``None`` = keep the saved value).

    Attributes:
        pooling: ``mean | weightedmean | lasttoken | cls | max``, or ``lasttoken_legacy`` (SGPT's last-token
            bug, only to reproduce the released ``*-lasttoken-*`` models; SPEC 1.3).
        max_seq_length: truncation length in tokens (brackets and special tokens included).
        dtype: weight dtype, ``float32`` / ``bfloat16`` (also ``fp32`` / ``bf16``).
        special_tokens: SGPT brackets ``"specb"`` / ``"speca"``, or ``"none"`` for no brackets (SPEC 1.4).
        query_prompt, document_prompt: string prefixes of queries / documents (``""``: no prompt).
        chat_template: render texts with the tokenizer's chat template; ``False``: raw text.
        asym: separate query and document towers (SPEC 1.8); an asymmetric folder loads asymmetric anyway.

    Raises:
        ValueError: an unknown ``special_tokens`` value or a ``max_seq_length`` below 1.
    """

    pooling: str | None = None
    max_seq_length: int | None = None
    dtype: str | None = None
    special_tokens: Literal["specb", "speca", "none"] | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None
    chat_template: bool | None = None
    asym: bool = False

    def __post_init__(self) -> None:
        if self.special_tokens is not None and self.special_tokens not in SPECIAL_TOKEN_CHOICES:
            raise ValueError(
                f"special_tokens must be one of {', '.join(SPECIAL_TOKEN_CHOICES)}, got {self.special_tokens!r}"
            )
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise ValueError(f"max_seq_length must be >= 1, got {self.max_seq_length}")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ModelSpec:
        """The spec of ``sgpt.load`` keyword arguments; there ``special_tokens=None`` means no brackets.

        Raises:
            TypeError: an argument that is not a field.
        """
        unknown = set(kwargs) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown model argument(s): {', '.join(sorted(unknown))}")
        if "special_tokens" in kwargs and kwargs["special_tokens"] is None:
            kwargs["special_tokens"] = "none"
        return cls(**kwargs)

    @property
    def brackets(self) -> str | None:
        """The ``TextFormat.special_tokens`` asked for: ``"specb"``, ``"speca"`` or ``None`` (none or not given)."""
        return None if self.special_tokens in (None, "none") else self.special_tokens

    def given(self) -> dict[str, Any]:
        """The fields that were set (not ``None``; ``asym`` only when true), for records and messages."""
        return {k: v for k, v in asdict(self).items() if v is not None and v is not False}

    def with_defaults(self, **defaults: Any) -> ModelSpec:
        """A copy whose unset fields take ``defaults`` (e.g. a recipe's ``max_seq_length``)."""
        values = asdict(self)
        values.update({k: v for k, v in defaults.items() if values.get(k) is None})
        return type(self)(**values)
