"""Pooling: token embeddings -> one sentence embedding.

Pure functions over hidden states and an attention mask; this module imports only torch.

Notation: ``b`` batch size, ``s`` padded sequence length, ``d`` hidden size.
Every function of :data:`POOLING_MODES` accepts either padding side (or no padding at all) and
gives the same result for a row whatever the padding side and whatever else is in the batch;
``lasttoken_legacy`` (:func:`lasttoken_legacy_pooling`) reproduces SGPT's buggy last token and
does neither.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

PoolingMode = Literal["mean", "weightedmean", "lasttoken", "cls", "max"]
POOLING_MODES: tuple[str, ...] = get_args(PoolingMode)
# Reproduction only (SPEC 5 row 1): chosen by name, never by a default or by reading a stock folder.
LegacyPoolingMode = Literal["lasttoken_legacy"]
LEGACY_POOLING_MODES: tuple[str, ...] = get_args(LegacyPoolingMode)
POOLING_CHOICES: tuple[str, ...] = POOLING_MODES + LEGACY_POOLING_MODES  # what --pooling / ModelSpec accept


def check_pooling_mode(mode: str) -> str:
    """Return ``mode`` if it is a supported pooling mode (one of :data:`POOLING_CHOICES`).

    Raises:
        ValueError: ``mode`` is not one of ``mean, weightedmean, lasttoken, cls, max, lasttoken_legacy``.
    """
    if mode not in POOLING_CHOICES:
        raise ValueError(f"pooling: unknown mode {mode!r}; expected one of {', '.join(POOLING_CHOICES)}")
    return mode


def mean_pooling(hidden: Tensor, mask: Tensor) -> Tensor:
    """Masked mean: ``v = sum_i m_i h_i / max(sum_i m_i, 1e-9)``.

    Args:
        hidden: token embeddings ``[b, s, d]``.
        mask: attention mask ``[b, s]`` in {0, 1}, either padding side.

    Returns:
        ``[b, d]`` in the dtype of ``hidden``; a row without real tokens gives the zero vector.
    """
    m = mask.to(hidden.dtype).unsqueeze(-1)  # [b, s, 1]
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def weightedmean_pooling(hidden: Tensor, mask: Tensor) -> Tensor:
    """Position-weighted mean, the SGPT pooling (arXiv 2202.08904, section 3.1, eq. 1).

    Token ``i`` among the ``S`` real tokens of a row (1-based rank) gets weight
    ``w_i = i / sum_{j=1..S} j``, so later tokens, which have attended to more of the text
    under causal attention, count more. The rank is taken among the real tokens
    (cumulative sum of the mask), so the result does not depend on the padding side; under
    right padding this equals SGPT's ``w_i = i`` over padded positions.

    Args:
        hidden: token embeddings ``[b, s, d]``.
        mask: attention mask ``[b, s]`` in {0, 1}, either padding side.

    Returns:
        ``[b, d]``; a row without real tokens gives the zero vector.
    """
    m = mask.to(hidden.dtype)
    weights = (torch.cumsum(m, dim=1) * m).unsqueeze(-1)  # [b, s, 1]: rank among real tokens, 0 on padding
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def _last_real_index(mask: Tensor) -> Tensor:
    """Index ``[b]`` of the last position with mask 1 (0 for a row without real tokens)."""
    s = mask.shape[1]
    positions = torch.arange(s, device=mask.device).expand_as(mask)  # [b, s]
    return torch.where(mask.bool(), positions, torch.zeros_like(positions)).max(dim=1).values


def _first_real_index(mask: Tensor) -> Tensor:
    """Index ``[b]`` of the first position with mask 1 (0 for a row without real tokens)."""
    return mask.to(torch.int32).argmax(dim=1)


def _gather_rows(hidden: Tensor, mask: Tensor, index: Tensor) -> Tensor:
    """``hidden[r, index[r]]`` for each row ``r``, zero for rows without real tokens -> ``[b, d]``."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    picked = hidden[rows, index]  # [b, d]
    has_tokens = mask.to(hidden.dtype).amax(dim=1, keepdim=True)  # [b, 1]
    return picked * has_tokens


def lasttoken_pooling(hidden: Tensor, mask: Tensor) -> Tensor:
    """Hidden state of the last real token of each row (SPEC 1.3, with SGPT's bug fixed).

    SGPT's fork returned the *first* token for rows without padding; this takes the last
    real token for every row and either padding side (as sentence-transformers >= 2.3).

    Args:
        hidden: ``[b, s, d]``; mask: ``[b, s]`` in {0, 1}.

    Returns:
        ``[b, d]``; a row without real tokens gives the zero vector.
    """
    return _gather_rows(hidden, mask, _last_real_index(mask))


def lasttoken_legacy_pooling(hidden: Tensor, mask: Tensor) -> Tensor:
    """SGPT's fork's last-token pooling, bug included, to reproduce the ``*-lasttoken-*`` checkpoints
    (SPEC 1.3 lasttoken, SPEC 5 row 1, SPEC 7 lasttoken check).

    ``index = argmin(mask) - 1`` clamped at 0, gather, multiply by the mask at that index. Right
    padding only gives the last real token for rows that have padding: a row without padding
    (the longest row of a batch, every row at batch size 1) gets its *first* token (masks
    ``(1,1,1), (1,1,0)`` -> indices ``0, 1``), and a left-padded row gets the zero vector
    (``(0,1,1)`` -> index 0, a pad, times mask 0). Depends on padding and on the batch: use
    ``lasttoken`` for anything but reproduction.

    Args:
        hidden: ``[b, s, d]``; mask: ``[b, s]`` in {0, 1}.

    Returns:
        ``[b, d]``.
    """
    m = mask.to(torch.int64)
    index = (torch.argmin(m, dim=1) - 1).clamp(min=0)  # [b]; argmin of an all-ones row is 0 -> index 0 (the bug)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    picked = hidden[rows, index]  # [b, d]
    return picked * m[rows, index].to(hidden.dtype).unsqueeze(-1)


def cls_pooling(hidden: Tensor, mask: Tensor) -> Tensor:
    """Hidden state of the first real token (``[CLS]`` for BERT) of each row.

    Args:
        hidden: ``[b, s, d]``; mask: ``[b, s]`` in {0, 1}, either padding side.

    Returns:
        ``[b, d]``; a row without real tokens gives the zero vector.
    """
    return _gather_rows(hidden, mask, _first_real_index(mask))


def max_pooling(hidden: Tensor, mask: Tensor) -> Tensor:
    """Element-wise maximum over real tokens; does not modify ``hidden`` (SPEC 5, item 11).

    Args:
        hidden: ``[b, s, d]``; mask: ``[b, s]`` in {0, 1}.

    Returns:
        ``[b, d]``; a row without real tokens gives the zero vector.
    """
    masked = hidden.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))  # new tensor
    out = masked.max(dim=1).values
    return torch.where(torch.isinf(out) & (out < 0), torch.zeros_like(out), out)


_POOLERS = {
    "mean": mean_pooling,
    "weightedmean": weightedmean_pooling,
    "lasttoken": lasttoken_pooling,
    "cls": cls_pooling,
    "max": max_pooling,
    "lasttoken_legacy": lasttoken_legacy_pooling,
}


def pool(hidden: Tensor, mask: Tensor, mode: str) -> Tensor:
    """Apply pooling ``mode`` to ``hidden [b, s, d]`` with ``mask [b, s]`` -> ``[b, d]``.

    Accumulates in float32 when ``hidden`` is a half-precision tensor and returns that dtype.

    Raises:
        ValueError: unknown ``mode``.
    """
    fn = _POOLERS[check_pooling_mode(mode)]
    if hidden.dtype in (torch.float16, torch.bfloat16):
        return fn(hidden.float(), mask).to(hidden.dtype)
    return fn(hidden, mask)
