"""One training micro-step: embed a batch (plain or GradCache), MultipleNegativesRankingLoss, backward.

Chosen once per run by :func:`make_step`; the trainer (:mod:`sgpt.train.trainer`) only calls it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sgpt.data.sampling import length_sorted_batches
from sgpt.model.biencoder import BiEncoder
from sgpt.model.formatting import Role
from sgpt.train.config import TrainConfig, parse_bytes
from sgpt.train.distributed import is_main_process
from sgpt.train.gradcache import EmbedFn, auto_chunk_size, cached_loss, free_memory, memory_in_use
from sgpt.train.losses import mnrl_global, split_columns

logger = logging.getLogger("sgpt.train")

Example = tuple[str, ...]
StepFn = Callable[[Sequence[Example], float], float]  # (micro-batch, loss scale) -> loss value

__all__ = ["QUERY_DOCUMENT", "SYMMETRIC", "StepFn", "make_step", "mnrl_step", "text_embedder"]


def flatten_columns(batch: Sequence[Example]) -> list[str]:
    """``b`` examples of ``k`` texts -> ``k*b`` texts, column by column (anchors, positives, ...).

    Raises:
        ValueError: examples of different lengths in one batch.
    """
    k = len(batch[0])
    if any(len(ex) != k for ex in batch):
        raise ValueError("all examples of a batch must have the same number of texts")
    return [ex[c] for c in range(k) for ex in batch]


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on a CUDA device that supports it, else ``fp32``; others unchanged."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


SYMMETRIC: tuple[Role | None, ...] = (None,)  # one group: every text embedded alike (NLI)
QUERY_DOCUMENT: tuple[Role | None, ...] = ("query", "document")  # column 0 queries, the rest documents


def text_embedder(
    model: BiEncoder, micro_batch_size: int | None, precision: str, roles: Sequence[Role | None] = SYMMETRIC
) -> EmbedFn:
    """``(texts, group) -> [n, d]`` with gradient, under bf16 autocast if asked; group ``g`` is
    embedded in role ``roles[g]`` (its formatting and, for an asymmetric model, its tower); groups
    past the last role take the last one (e.g. one group per column: positives and negatives are
    all documents)."""
    device_type = model.device.type

    def embed(texts: Sequence[str], group: int) -> Tensor:
        autocast = (
            torch.autocast(device_type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        )
        with autocast:
            return model.embed(texts, micro_batch_size=micro_batch_size, role=roles[min(group, len(roles) - 1)])

    return embed


def length_order(model: BiEncoder, texts: Sequence[str], role: Role | None = None) -> list[int]:
    """Longest first, ties in input order: the order in which ``BiEncoder.embed`` cuts micro-batches."""
    lengths = [len(x) for x in model.token_ids(texts, role)]
    return [i for batch in length_sorted_batches(lengths, max(len(texts), 1)) for i in batch]


def column_groups(batch: Sequence[Example], roles: Sequence[Role | None]) -> list[list[str]]:
    """The texts of a batch grouped for embedding: one group of all ``k*b`` texts (symmetric), or
    the ``b`` queries and the ``(k-1)*b`` documents (positives, then negatives, column by column)."""
    texts = flatten_columns(batch)
    if len(roles) == 1:
        return [texts]
    return [texts[: len(batch)], texts[len(batch) :]]


def choose_chunk_size(model: BiEncoder, embed: EmbedFn, cfg: TrainConfig) -> int:
    """``chunk_size="auto"``: the largest chunk whose activations fit the memory left on the model's device.

    Budget = ``max_memory`` minus what the process holds now (default: the device's free
    memory), minus what the optimizer step has yet to allocate (gradients and AdamW's two
    moments of every trainable parameter).
    """
    device = model.device
    if cfg.max_memory is None:
        budget = free_memory(device)
    else:
        budget = parse_bytes(cfg.max_memory) - memory_in_use(device)
    budget -= sum(3 * p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    if budget <= 0:
        have = f"max_memory={cfg.max_memory}" if cfg.max_memory is not None else "the free memory"
        raise ValueError(
            f"chunk_size='auto': {have} does not even hold the model's gradients and optimizer "
            "state; raise max_memory or set an integer chunk_size"
        )
    probe = " ".join(["a"] * (model.max_seq_length + 8))  # truncated to max_seq_length tokens
    return auto_chunk_size(embed, probe, budget_bytes=budget, max_chunk=cfg.batch_size)


def make_step(model: BiEncoder, cfg: TrainConfig, roles: Sequence[Role | None] = SYMMETRIC) -> StepFn:
    """The micro-step of a run, chosen once: plain MNRL or GradCache (``cfg.gradcache``).

    The step embeds a batch, computes this process's MNRL (``sgpt.train.losses.mnrl_global``:
    the plain MNRL in a single process), back-propagates ``loss * loss_scale`` and returns the
    loss value. One tower embeds every column, so all ``k*b`` texts of a batch form one group,
    cut in length order into forward passes (plain: ``micro_batch_size`` texts; GradCache:
    ``chunk_size``), which keeps padding low. Both paths call the same embedding and loss
    functions; GradCache's loss only differs in what its backward does
    (``sgpt.train.gradcache.cached_loss``), and with ``micro_batch_size == chunk_size`` both
    run the very same forward passes (dropout masks included). With ``chunk_size="auto"`` the
    chunk is chosen here (printed on the main process).

    ``roles=QUERY_DOCUMENT`` (retrieval): column 0 holds queries, embedded as queries, and the
    other columns documents, embedded as documents (``BiEncoder.embed(role=...)``): two groups.
    """
    embed = text_embedder(model, cfg.micro_batch_size, resolve_precision(cfg.precision, model.device), roles)
    if cfg.gradcache:
        chunk = cfg.chunk_size if cfg.chunk_size != "auto" else choose_chunk_size(model, embed, cfg)
        if cfg.chunk_size == "auto" and is_main_process():
            print(f"--chunksize auto: chunks of {chunk} texts", flush=True)
        logger.info("GradCache with chunks of %d texts", chunk)

    def step(batch: Sequence[Example], loss_scale: float = 1.0) -> float:
        k = len(batch[0])

        def loss_fn(groups: list[Tensor]) -> Tensor:  # groups -> k columns [b, d]
            if len(groups) == 1:  # [k*b, d]
                return mnrl_global(split_columns(groups[0], k), scale=cfg.scale)
            return mnrl_global([groups[0], *split_columns(groups[1], k - 1)], scale=cfg.scale)

        groups = column_groups(batch, roles)
        if cfg.gradcache:
            loss = cached_loss(
                embed, groups, loss_fn, chunk, order=lambda texts, g: length_order(model, texts, roles[g])
            )
        else:
            loss = loss_fn([embed(texts, g) for g, texts in enumerate(groups)])
        (loss * loss_scale).backward()  # GradCache: this backward re-embeds the chunks (gradcache.cached_loss)
        return float(loss.detach())

    return step


def mnrl_step(model: BiEncoder, batch: Sequence[Example], cfg: TrainConfig, loss_scale: float = 1.0) -> float:
    """Forward, MultipleNegativesRankingLoss and backward for one micro-batch; returns the loss.

    All texts of the batch are embedded in one call, grouped by length into forward passes of
    ``cfg.micro_batch_size`` texts (little padding). Builds the step each call: a loop should
    call :func:`make_step` once.
    """
    return make_step(model, cfg)(batch, loss_scale)
