"""MultipleNegativesRankingLoss (in-batch negatives + hard negatives), SPEC 1.9.

Source: Henderson et al. 2017 ("Efficient Natural Language Response Suggestion for Smart
Reply", section 4.4) as used by sentence-transformers and SGPT (arXiv 2202.08904, section 3.2):
for anchors ``a_i`` and candidates ``c_j = [positives; hard negatives]``,
``loss = mean_i CE(scale * cos(a_i, c_.), target = i)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sgpt.train.distributed import gather_with_grad, is_distributed, local_sizes, rank


def cosine_matrix(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarities ``[n, d] x [m, d] -> [n, m]`` (a zero row gives 0, never NaN)."""
    return F.normalize(a, p=2, dim=-1, eps=1e-12) @ F.normalize(b, p=2, dim=-1, eps=1e-12).T


def mnrl_loss(
    anchors: Tensor,
    candidates: Tensor,
    *,
    scale: float = 20.0,
    label_offset: int = 0,
) -> Tensor:
    """MultipleNegativesRankingLoss for one (local) batch.

    Args:
        anchors: ``[b, d]`` anchor (query) embeddings.
        candidates: ``[m, d]`` candidate embeddings; row ``label_offset + i`` is the positive of
            anchor ``i`` and every other row is a negative (other anchors' positives = in-batch
            negatives, plus hard negatives). Single process: ``[positives (b); negatives (b*k)]``.
        scale: inverse temperature (SGPT and sentence-transformers: 20, i.e. temperature 0.05).
        label_offset: index of the first local positive inside ``candidates`` (the summed batch
            sizes of earlier ranks when candidates are gathered across processes).

    Returns:
        Scalar mean cross-entropy, computed in float32. With identical embeddings it equals
        ``log(m)`` (``log(2b)`` with one hard negative each).

    Raises:
        ValueError: fewer candidates than ``label_offset + b``.
    """
    b = anchors.shape[0]
    if candidates.shape[0] < label_offset + b:
        raise ValueError(
            f"mnrl_loss: {candidates.shape[0]} candidates cannot hold the {b} positives starting at row {label_offset}"
        )
    scores = cosine_matrix(anchors.float(), candidates.float()) * scale  # [b, m]
    labels = torch.arange(label_offset, label_offset + b, device=scores.device)
    return F.cross_entropy(scores, labels)


def split_columns(embeddings: Tensor, n_columns: int) -> list[Tensor]:
    """Split embeddings of a column-major flattened batch ``[(k*b), d]`` into ``k`` tensors ``[b, d]``.

    The trainer embeds all texts of a batch of ``b`` examples with ``k`` columns (anchor,
    positive, negatives...) in one call, column by column; this undoes that flattening.
    """
    b = embeddings.shape[0] // n_columns
    return [embeddings[i * b : (i + 1) * b] for i in range(n_columns)]


def mnrl_from_columns(columns: list[Tensor], *, scale: float = 20.0) -> Tensor:
    """MNRL for ``[anchors, positives, negatives_1, ...]`` on one process (SPEC 1.9).

    Args:
        columns: ``k >= 2`` tensors ``[b, d]``.
        scale: see ``mnrl_loss``.

    Returns:
        Scalar loss; candidates are ``[positives; negatives_1; ...]`` (``[(k-1)*b, d]``).
    """
    if len(columns) < 2:
        raise ValueError("MultipleNegativesRankingLoss needs at least (anchor, positive) columns")
    return mnrl_loss(columns[0], torch.cat(columns[1:]), scale=scale)


def mnrl_global(columns: list[Tensor], *, scale: float = 20.0) -> Tensor:
    """This process's share of the MNRL of the global batch (SPEC 1.9, distributed branch).

    Anchors stay local; positives and each negatives column are all-gathered with gradient and
    concatenated as ``[all positives (rank order); all negatives_1 (rank order); ...]``; the
    positive of local anchor ``i`` is row ``i + (local batch sizes of earlier ranks)``, correct
    for unequal local batches (SPEC 5 item 9).

    Args:
        columns: ``k >= 2`` local tensors ``[b_r, d]`` (anchors, positives, negatives...).
        scale: see ``mnrl_loss``.

    Returns:
        Scalar ``(b_r / B) * mean_i CE_i`` with ``B = sum_r b_r``: the shares of all processes
        sum to the mean loss of the global batch, so gradients summed over processes equal the
        single-process gradient of that batch. In a single process: ``mnrl_from_columns``.
    """
    if not is_distributed():
        return mnrl_from_columns(columns, scale=scale)
    if len(columns) < 2:
        raise ValueError("MultipleNegativesRankingLoss needs at least (anchor, positive) columns")
    columns = [c.float() for c in columns]  # gloo has no bf16 collectives; the loss is float32 anyway
    sizes = local_sizes(columns[0].shape[0], columns[0].device)
    candidates = torch.cat([gather_with_grad(c, sizes) for c in columns[1:]])  # [(k-1)*B, d]
    loss = mnrl_loss(columns[0], candidates, scale=scale, label_offset=sum(sizes[: rank()]))
    # The one place where the global batch is scaled: this rank holds b_r of the B anchors.
    return loss * (sizes[rank()] / sum(sizes))
