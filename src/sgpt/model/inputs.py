"""What :class:`~sgpt.model.biencoder.BiEncoder` checks and prepares of its inputs, as plain functions:
the truncation length, the document tower, distinct token sequences, right-padded batches."""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from sgpt.model.backbone import max_length_of, position_limit

logger = logging.getLogger("sgpt.model")


def checked_max_seq_length(value: int | None, backbone: nn.Module, tokenizer: PreTrainedTokenizerBase) -> int:
    """``value`` (default: the model's limit), checked: an integer, at least 1, and at most the
    model's learned positions (``max_position_embeddings``); a longer value is cut to that limit
    with a warning, since longer inputs would fail inside the model. The default (the
    tokenizer's ``model_max_length``, else the positions) is cut to the positions too, silently,
    as sentence-transformers does (``min(max_position_embeddings, model_max_length)``).

    The formatting's own minimum (room for one content token) is checked by
    :meth:`Formatter.check_length`, which :class:`BiEncoder` calls on every assignment.

    Raises:
        TypeError: ``value`` is not an integer.
        ValueError: ``value < 1``.
    """
    limit = position_limit(backbone)
    if value is None:
        default = int(max_length_of(backbone, tokenizer))
        return min(default, limit) if limit is not None else default
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"max_seq_length must be an integer, got {type(value).__name__} {value!r}")
    if int(value) < 1:
        raise ValueError(f"max_seq_length must be >= 1, got {value}")
    if limit is not None and int(value) > limit:
        logger.warning("max_seq_length %d is longer than the model's %d positions; using %d", value, limit, limit)
        return limit
    return int(value)


def check_document_tower(backbone: nn.Module, document: nn.Module) -> None:
    """Refuse a document tower that cannot stand next to ``backbone`` (shared pooling and heads).

    Raises:
        ValueError: it is ``backbone`` itself (towers would be tied, and come back untied after a
            save), or its hidden size differs.
    """
    if document is backbone:
        raise ValueError(
            "BiEncoder: document_backbone is the query backbone itself; pass a copy "
            "(BiEncoder.make_asymmetric) or leave it None for a symmetric model"
        )
    sizes = [getattr(getattr(m, "config", None), "hidden_size", None) for m in (backbone, document)]
    if sizes[0] != sizes[1]:
        raise ValueError(
            f"BiEncoder: the query tower has hidden size {sizes[0]} but the document tower "
            f"{sizes[1]}; both towers feed one pooling and must match"
        )


def distinct_sequences(ids: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[int]]:
    """The distinct token sequences of ``ids`` in a canonical order (longest first, then by
    their ids), and for each input row the index of its sequence there.

    The order depends only on the set of sequences, so the batches :meth:`BiEncoder.encode` cuts
    from it, and with them every vector's float rounding, do not depend on where a text sits in
    the input.
    """
    keys = sorted({tuple(x) for x in ids}, key=lambda k: (-len(k), k))
    index = {k: i for i, k in enumerate(keys)}
    return [list(k) for k in keys], [index[tuple(x)] for x in ids]


def right_pad(ids: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> dict[str, Tensor]:
    """Right-pad token ids into ``input_ids [b, s]`` and ``attention_mask [b, s]`` (1 = real token) on ``device``.

    Right padding keeps positions 0..n-1 for every row, so a text gets the same hidden states
    alone and inside a batch of longer texts; pooling itself works for either side.
    """
    longest = max((len(x) for x in ids), default=0)
    input_ids = torch.full((len(ids), max(longest, 1)), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), max(longest, 1)), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}
