"""Shared-prefix forward: a causal decoder computes the tokens every row starts with once per batch.

A chat template puts the same head in front of every text (24 tokens of system message and
``user`` header for SmolLM2, more than an STS sentence itself), and instruction prompts do the
same. In a causal decoder a token's hidden state depends only on the tokens before it, and with
right padding (``BiEncoder.collate``) every row has its first ``P`` tokens at positions
``0..P-1``, so those ``P`` hidden states are the same in every row. :func:`transformer_states`
runs them once, as a batch of one, and runs the rest of the batch on top of their keys and
values (the transformers attention cache, repeated over the rows); the prefix's hidden states
are repeated into the output, so pooling sees exactly the tensor a plain forward gives, up to
float rounding. With autograd, gradients from every row flow back into the one prefix pass
(summed), so training gets the same gradients for less compute.

The shortcut is taken only where it is exact: the tower is causal (every attention module says
``is_causal``), no sliding-window attention could reach past the window, no dropout is active
(a shared prefix would share its dropout masks across rows), the batch has at least two rows and
a shared prefix of at least :data:`MIN_PREFIX` real tokens, and each row keeps at least one
token after it. Everything else takes the plain forward.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn

MIN_PREFIX = 4  # shorter common heads (a BOS token, one bracket) do not pay for a second forward call


def shared_prefix_length(input_ids: Tensor, attention_mask: Tensor) -> int:
    """Length ``P`` of the longest run of leading tokens that every row has, as real tokens,
    leaving every row at least one real token after it; 0 for fewer than two rows.

    Args:
        input_ids: ``[b, s]`` token ids.
        attention_mask: ``[b, s]`` in {0, 1}.
    """
    if input_ids.shape[0] < 2:
        return 0
    limit = int(attention_mask.sum(dim=1).min()) - 1
    if limit < 1:
        return 0
    same = (input_ids[:, :limit] == input_ids[:1, :limit]).all(dim=0) & attention_mask[:, :limit].bool().all(dim=0)
    return limit if bool(same.all()) else int(same.int().argmin())


def _window(config) -> int | None:
    """The smallest attention window of a model with sliding-window or local attention, else None."""
    windows = []
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True) is not False:
        windows.append(int(config.sliding_window))
    layers = getattr(config, "attention_layers", None) or getattr(config, "layer_types", None) or []
    if any(kind in ("local", "sliding_attention") for kind in layers) and getattr(config, "window_size", None):
        windows.append(int(config.window_size))
    return min(windows) if windows else None


def _dropout_active(tower: nn.Module) -> bool:
    """True in training mode when any dropout is above zero: a ``Dropout`` module, or an
    attention module's functional rate (``attention_dropout``, as Llama passes to SDPA)."""
    if not tower.training:
        return False
    for m in tower.modules():
        if isinstance(m, nn.Dropout) and m.p > 0:
            return True
        rate = getattr(m, "attention_dropout", None)
        if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0:
            return True
    return False


def _cache_argument(tower: nn.Module) -> str:
    """The forward argument that takes an attention cache: ``cache`` (transformers >= 5.2x) or
    ``past_key_values`` (earlier)."""
    params = inspect.signature(tower.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def can_share_prefix(tower: nn.Module, seq_len: int) -> bool:
    """Whether :func:`transformer_states` may compute a shared prefix once for ``tower`` on
    sequences of ``seq_len`` tokens (see module doc for the conditions)."""
    flags = [m.is_causal for m in tower.modules() if isinstance(getattr(m, "is_causal", None), bool)]
    if not flags or not all(flags):
        return False
    window = _window(getattr(tower, "config", None))
    if window is not None and seq_len > window:
        return False
    return not _dropout_active(tower)


def transformer_states(tower: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """The tower's last hidden states ``[b, s, h]`` for a right-padded batch, computing a prefix
    shared by all rows once when that is exact (see module doc), else in one plain forward.

    Args:
        tower: a transformers base model (``last_hidden_state`` output).
        input_ids: ``[b, s]`` token ids, right-padded.
        attention_mask: ``[b, s]`` in {0, 1}.
    """
    n = shared_prefix_length(input_ids, attention_mask)
    if n < MIN_PREFIX or not can_share_prefix(tower, input_ids.shape[1]):
        return tower(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    head = tower(input_ids=input_ids[:1, :n], attention_mask=attention_mask[:1, :n], use_cache=True)
    name = _cache_argument(tower)
    cache = head[name]
    cache.batch_repeat_interleave(input_ids.shape[0])  # [1, heads, n, d] -> [b, heads, n, d], differentiable
    rest = tower(
        input_ids=input_ids[:, n:], attention_mask=attention_mask, use_cache=False, **{name: cache}
    ).last_hidden_state  # [b, s - n, h]
    shared = head.last_hidden_state.expand(input_ids.shape[0], -1, -1)  # [b, n, h]
    return torch.cat([shared, rest], dim=1)
