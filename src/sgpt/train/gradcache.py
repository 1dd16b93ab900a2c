"""GradCache: the gradient of a large contrastive batch in the memory of one chunk (SPEC 1.10).

Source: Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup" (arXiv 2101.06983). For groups of texts (say anchors, positives, negatives; or, for a
symmetric model, all of them in one group), each group embedded by its own tower:

1. :func:`embed_no_grad` embeds every group chunk by chunk without a graph, recording the
   random state before each chunk;
2. :func:`cache_grads` computes the loss on the full embedding matrices (detached float32
   leaves) and caches d(loss)/d(embedding);
3. :func:`replay_backward` re-embeds each chunk with a graph under its recorded random state
   (same dropout masks) and back-propagates the cached gradient slice into the parameters.

:func:`cached_loss` wires these so that the caller just calls ``loss.backward()``: the returned
scalar holds the loss, and its backward runs step 3, scaled by the incoming gradient (the
caller's loss scaling, e.g. ``1 / grad_accum``). The loss function is any ``groups -> scalar``
function, the very one the plain path uses (``sgpt.train.losses``); the embedding function
is a parameter, so asymmetric models (query tower for one group, document tower for the
others) plug in.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

EmbedFn = Callable[[Sequence[str], int], Tensor]  # (texts of one chunk, group index) -> [n, d]
LossFn = Callable[[list[Tensor]], Tensor]  # one tensor [n_g, d] per group -> scalar
OrderFn = Callable[[Sequence[str], int], Sequence[int]]  # (texts, group) -> permutation that defines the chunks


class RngState:
    """The CPU (and current CUDA device's) random state at construction; :meth:`replay` runs a block from it."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        self.devices = [torch.cuda.current_device()] if cuda else []
        self.cuda = [torch.cuda.get_rng_state(d) for d in self.devices]

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        """Run the block from the recorded state; the state outside the block is left as it was."""
        with torch.random.fork_rng(devices=self.devices):
            torch.set_rng_state(self.cpu)
            for device, state in zip(self.devices, self.cuda, strict=False):
                torch.cuda.set_rng_state(state, device)
            yield


@dataclass(frozen=True)
class Chunk:
    """Rows ``rows`` of group ``group``, embedded from random state ``rng``."""

    group: int
    rows: list[int]
    rng: RngState


def split(n: int, chunk_size: int, order: Sequence[int] | None = None) -> list[list[int]]:
    """Row indices ``0..n-1`` (in ``order`` if given) cut into chunks of ``chunk_size``; the last may be smaller.

    Raises:
        ValueError: ``chunk_size < 1``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    rows = list(order) if order is not None else list(range(n))
    return [rows[s : s + chunk_size] for s in range(0, n, chunk_size)]


def embed_no_grad(
    embed: EmbedFn, groups: Sequence[Sequence[str]], chunk_size: int, order: OrderFn | None = None
) -> tuple[list[Tensor], list[Chunk]]:
    """Step 1: every group embedded chunk by chunk without a graph -> (one tensor ``[n_g, d]`` per
    group in input order, the chunks with the random state each started from)."""
    reps, chunks = [], []
    for c, texts in enumerate(groups):
        parts, seen = [], []
        for rows in split(len(texts), chunk_size, order(texts, c) if order is not None else None):
            chunks.append(Chunk(c, rows, RngState()))  # before the forward: replay starts from here
            with torch.no_grad():  # not inference_mode: its tensors cannot become autograd leaves
                parts.append(embed([texts[i] for i in rows], c))
            seen.extend(rows)
        emb = torch.cat(parts)  # [n_g, d] in chunk order
        positions = torch.as_tensor(seen, device=emb.device)
        reps.append(torch.empty_like(emb).index_copy_(0, positions, emb))  # [n_g, d] in input order
    return reps, chunks


def cache_grads(loss_fn: LossFn, reps: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """Step 2: loss on detached float32 copies of the embeddings and d(loss)/d(embedding) of each group.

    A collective inside ``loss_fn`` (all-gather with gradient across processes) runs its
    backward here, once per step, on every process.
    """
    leaves = [r.detach().float().requires_grad_() for r in reps]  # the graph of step 1 ends here
    loss = loss_fn(leaves)
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return loss.detach(), [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads, strict=False)]


def replay_backward(
    embed: EmbedFn,
    groups: Sequence[Sequence[str]],
    chunks: Sequence[Chunk],
    grads: Sequence[Tensor],
    grad_output: Tensor | float = 1.0,
    *,
    replay_rng: bool = True,
) -> None:
    """Step 3: re-embed each chunk with a graph from its recorded random state and back-propagate
    ``grad_output * cached gradient``; parameter gradients accumulate in ``.grad``.

    ``replay_rng=False`` skips the replay (for tests: with dropout the gradient is then wrong).
    """
    for chunk in chunks:
        # enable_grad: called from a backward hook, where autograd runs with grad mode off.
        with chunk.rng.replay() if replay_rng else contextlib.nullcontext(), torch.enable_grad():
            rep = embed([groups[chunk.group][i] for i in chunk.rows], chunk.group)  # [n, d]
        grad = grads[chunk.group][torch.as_tensor(chunk.rows, device=rep.device)] * grad_output
        rep.backward(gradient=grad.to(rep.dtype))  # frees this chunk's graph before the next one


def cached_loss(
    embed: EmbedFn,
    groups: Sequence[Sequence[str]],
    loss_fn: LossFn,
    chunk_size: int,
    *,
    order: OrderFn | None = None,
    replay_rng: bool = True,
) -> Tensor:
    """GradCache forward: the loss of the whole batch, whose ``backward()`` fills the parameter gradients.

    Args:
        embed: ``(texts, group index) -> [n, d]`` with gradient (enters autocast itself if wanted:
            it also runs during ``backward()``).
        groups: lists of texts, each embedded by ``embed`` with its index (e.g. anchors,
            positives, negatives; or all texts of a batch for a symmetric model).
        loss_fn: one tensor ``[n_g, d]`` (float32) per group -> scalar; the plain path's loss function.
        chunk_size: texts per chunk (any value >= 1; the last chunk of a group may be smaller).
        order: (texts, group index) -> permutation defining the chunks (default: input order). Length order
            groups texts of similar length, so chunks carry little padding.
        replay_rng: see :func:`replay_backward`.

    Returns:
        Scalar float32 loss equal to ``loss_fn`` of the plain embeddings. Its gradient w.r.t. the
        parameters equals the plain one exactly when the plain path embeds each group in the
        same chunks (``BiEncoder.embed`` with ``micro_batch_size=chunk_size`` and length order),
        dropout included; else up to float rounding (and different dropout masks).
    """
    reps, chunks = embed_no_grad(embed, groups, chunk_size, order)
    loss, grads = cache_grads(loss_fn, reps)
    out = loss.requires_grad_()  # a fresh leaf: backward stops here and calls the hook
    out.register_hook(partial(_replay_hook, embed, groups, chunks, grads, replay_rng))
    return out


def _replay_hook(embed: EmbedFn, groups, chunks, grads, replay_rng: bool, grad_output: Tensor) -> None:
    replay_backward(embed, groups, chunks, grads, grad_output, replay_rng=replay_rng)


# ---------------------------------------------------------------------- choosing the chunk size
def saved_bytes(embed: EmbedFn, texts: Sequence[str]) -> int:
    """Bytes of the tensors autograd keeps for backward while ``embed`` runs with a graph on ``texts``.

    This is the activation memory a GradCache chunk holds between its forward and backward,
    measured the same way on every device (a process's peak RSS is a high-water mark, so a
    small probe after loading a model would read as zero). The random state is left as it was.
    """
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()  # views share a storage
        return t

    with RngState().replay(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        embed(list(texts), 0)
    return sum(storages.values())


def auto_chunk_size(
    embed: EmbedFn, probe_text: str, *, budget_bytes: float, max_chunk: int, headroom: float = 1.5
) -> int:
    """The largest chunk (<= ``max_chunk``) whose activations fit ``budget_bytes``.

    Two probe chunks of 2 and 4 copies of ``probe_text`` (a text of the maximum length) give
    the bytes per text by difference, which cancels what does not grow with the chunk (weights
    saved for backward); ``headroom`` covers backward's transient tensors.

    Raises:
        ValueError: not even one text fits.
    """
    small, large = saved_bytes(embed, [probe_text] * 2), saved_bytes(embed, [probe_text] * 4)
    per_text = max(large - small, 1) / 2 * headroom
    if budget_bytes < per_text:
        raise ValueError(
            f"chunk_size='auto': {budget_bytes / 2**20:.0f} MiB of memory left for activations, "
            f"but one text needs about {per_text / 2**20:.0f} MiB; raise max_memory or shorten "
            "max_seq_length"
        )
    return int(min(max_chunk, budget_bytes // per_text))


def free_memory(device: torch.device) -> int:
    """Bytes the device can still give: CUDA free memory, or the host's ``MemAvailable`` on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def memory_in_use(device: torch.device) -> int:
    """Bytes this process holds now: CUDA tensors on ``device``, or the resident set size on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
