"""Learned mean pooling: one trainable weight per token position (SGPT ``--learntmean``, SPEC 1.3 end).

SGPT's fork calls the module ``WeightedMeanPooling`` (``models/WeightedMeanPooling.py``); sgpt saves
it in the fork's layout so a folder trained here loads there and back:

    {idx}_WeightedMeanPooling/config.json        {word_embedding_dimension, position_start, num_positions}
    {idx}_WeightedMeanPooling/pytorch_model.bin  {"position_weights": [num_positions + 1 - position_start]}

modules.json names it ``sentence_transformers.models.WeightedMeanPooling``, a type that only the
SGPT fork of sentence-transformers has: **stock sentence-transformers cannot load such a folder**
(it fails on the unknown module type). :mod:`sgpt.model.loader` reads it back.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

ST_TYPE = "sentence_transformers.models.WeightedMeanPooling"  # SGPT fork's module type
WEIGHTS_FILE = "pytorch_model.bin"  # the fork reads only this name


class LearntMeanPooling(nn.Module):
    """``v = sum_i m_i w_{r(i)} h_i / max(sum_i m_i w_{r(i)}, 1e-9)`` with a learned ``w``.

    ``r(i)`` is the 0-based rank of token ``i`` among the real tokens of its row (cumulative sum
    of the mask), so the result does not depend on the padding side; under right padding
    ``r(i) = i`` and this is exactly the fork's ``position_weights[:s]`` times the mask. The
    weights start at 1 (plain mean pooling), have no positivity constraint, and the sum of masked
    weights is clamped at 1e-9 as in the fork (a row whose weights sum to a negative number is
    therefore divided by 1e-9, as there).

    Args:
        word_embedding_dimension: hidden size ``d`` of the token embeddings it pools.
        num_positions: longest row it pools, in tokens (SGPT: ``max_seq_length``, 75 for NLI);
            it holds ``num_positions + 1`` weights, as the fork does.
        position_start: kept for the fork's config; only 0 is supported.

    Raises:
        ValueError: ``num_positions < 1``, ``word_embedding_dimension < 1`` or ``position_start != 0``.
    """

    def __init__(self, word_embedding_dimension: int, num_positions: int, position_start: int = 0) -> None:
        super().__init__()
        if num_positions < 1 or word_embedding_dimension < 1:
            raise ValueError(
                f"learnt mean pooling: num_positions ({num_positions}) and word_embedding_dimension "
                f"({word_embedding_dimension}) must be >= 1"
            )
        if position_start != 0:
            raise ValueError(f"learnt mean pooling: position_start {position_start} is not supported; only 0")
        self.word_embedding_dimension = int(word_embedding_dimension)
        self.num_positions = int(num_positions)
        self.position_start = 0
        self.position_weights = nn.Parameter(torch.ones(self.num_positions + 1))  # the fork's name and size

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """Pool ``hidden [b, s, d]`` with ``mask [b, s]`` in {0, 1}, either padding side -> ``[b, d]``.

        Accumulates in float32 for half-precision ``hidden`` and returns its dtype; a row without
        real tokens gives the zero vector.

        Raises:
            ValueError: a row longer than ``num_positions + 1`` real tokens (no weight for it).
        """
        m = mask.to(torch.int64)
        rank = torch.cumsum(m, dim=1) * m - 1  # [b, s]: 0-based rank among real tokens, -1 on padding
        n = self.position_weights.shape[0]
        if rank.shape[1] > n and int(rank.max()) >= n:
            raise ValueError(
                f"learnt mean pooling has weights for {n} positions but a row has {int(rank.max()) + 1} "
                "tokens; lower max_seq_length"
            )
        dtype = torch.float32 if hidden.dtype in (torch.float16, torch.bfloat16) else hidden.dtype
        weights = self.position_weights.to(dtype)[rank.clamp(min=0)] * m.to(dtype)  # [b, s]; 0 on padding
        summed = (hidden.to(dtype) * weights.unsqueeze(-1)).sum(1)  # [b, d]
        return (summed / weights.sum(1, keepdim=True).clamp(min=1e-9)).to(hidden.dtype)

    def st_config(self) -> dict:
        """The fork's ``config.json`` of this module."""
        return {
            "word_embedding_dimension": self.word_embedding_dimension,
            "position_start": self.position_start,
            "num_positions": self.num_positions,
        }

    @classmethod
    def from_config(cls, config: dict, state: dict[str, Tensor], where: str) -> LearntMeanPooling:
        """The module of a saved ``config.json`` and weights ``state`` (``position_weights``).

        Raises:
            ValueError: missing config keys or weights of the wrong size, naming ``where``.
        """
        try:
            module = cls(int(config["word_embedding_dimension"]), int(config["num_positions"]))
            if int(config.get("position_start", 0)) != 0:
                raise ValueError(f"position_start {config['position_start']} is not supported; only 0")
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: not a WeightedMeanPooling config ({err})") from err
        weights = state.get("position_weights")
        if weights is None or tuple(weights.shape) != tuple(module.position_weights.shape):
            shape = None if weights is None else tuple(weights.shape)
            raise ValueError(
                f"{where}: position_weights of shape {shape}; expected ({module.num_positions + 1},) "
                f"for num_positions {module.num_positions}"
            )
        with torch.no_grad():
            module.position_weights.copy_(weights.float())
        return module
