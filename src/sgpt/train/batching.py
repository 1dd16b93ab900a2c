"""Which examples each process trains on, step after step (SPEC 1.12): endless, seeded, duplicate-free batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sgpt.data.sampling import NoDuplicatesBatchSampler
from sgpt.train.config import TrainConfig
from sgpt.train.distributed import rank, world_size
from sgpt.train.step import Example

# ``replicate``: process r shuffles with seed + r * stride (+ epoch), distinct for any run < stride epochs.
REPLICA_SEED_STRIDE = 100_003


def batches_forever(sampler: NoDuplicatesBatchSampler) -> Iterator[list[int]]:
    """Yield index batches epoch after epoch (reshuffled per epoch, deterministic by seed).

    Raises:
        ValueError: an epoch yields no batch (too many duplicate texts to fill one), which
            would otherwise loop forever.
    """
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        n = 0
        for batch in sampler:
            n += 1
            yield batch
        if n == 0:
            raise ValueError(
                f"no batch of {sampler.batch_size} examples without duplicate texts can be formed; "
                "lower the batch size or add examples"
            )
        epoch += 1


def total_steps(n_batches_per_epoch: int, cfg: TrainConfig) -> int:
    """Optimizer steps of the run: ``max_steps``, else ``epochs * floor(batches / grad_accum)``.

    Raises:
        ValueError: the data holds fewer examples than one batch.
    """
    if n_batches_per_epoch < 1:
        raise ValueError(f"not enough training examples for one batch of {cfg.batch_size}")
    return cfg.max_steps or max(1, cfg.epochs * (n_batches_per_epoch // cfg.grad_accum))


def rank_batches(examples: Sequence[Example], cfg: TrainConfig) -> tuple[int, Iterator[list[int]]]:
    """(batches per epoch, endless stream of this process's index batches) for ``cfg.data_parallel``.

    ``shard``: every process draws the same global batches of ``processes * batch_size``
    examples (duplicate-free across the whole global batch) and takes its own slice.
    ``replicate``: every process walks the whole data set with its own shuffle (SPEC 1.12).
    One process: both are the plain sampler.
    """
    world, me, b = world_size(), rank(), cfg.batch_size
    if cfg.data_parallel == "shard":
        sampler = NoDuplicatesBatchSampler(examples, b * world, seed=cfg.seed, drop_last=True)
        return len(sampler), (batch[me * b : (me + 1) * b] for batch in batches_forever(sampler))
    # The sampler shuffles with seed + epoch: space the processes' seeds so no epochs coincide.
    sampler = NoDuplicatesBatchSampler(examples, b, seed=cfg.seed + REPLICA_SEED_STRIDE * me, drop_last=True)
    return len(sampler), batches_forever(sampler)
