"""Batch samplers: duplicate-free batches for in-batch negatives, and length-sorted batches for encoding."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence


class NoDuplicatesBatchSampler:
    """Yield lists of example indices such that no text appears twice in one batch.

    With in-batch negatives (MNRL) a text repeated in a batch would be its own negative; SBERT's
    ``NoDuplicatesDataLoader`` (SPEC 2.1) therefore skips such examples. Texts are compared stripped
    and lower-cased. Each epoch shuffles the indices with ``random.Random(seed + epoch)``, then fills
    batches by scanning the remaining pool in order; an example skipped because of a duplicate
    stays in the pool for later batches of the same epoch (as sentence-transformers'
    ``NoDuplicatesBatchSampler``). A batch that cannot be filled (the rest of the pool clashes) is
    dropped when ``drop_last`` (its examples are used up), so an epoch may hold fewer than
    ``len(self)`` batches when there are very many duplicates.

    Usable as ``torch.utils.data.DataLoader(dataset, batch_sampler=sampler)``.

    Args:
        examples: Text tuples, e.g. (anchor, positive, negative); only their texts are read.
        batch_size: Examples per batch (>= 1).
        seed: Base seed of the shuffles.
        drop_last: Drop incomplete batches (default, as the reference); else yield them too.

    Raises:
        ValueError: ``batch_size < 1``.
    """

    def __init__(
        self, examples: Sequence[tuple[str, ...]], batch_size: int, *, seed: int = 0, drop_last: bool = True
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.examples = examples
        self._keys = self._text_keys()

    def _text_keys(self) -> list[frozenset[str]]:
        # Normalised texts, computed once per epoch: sampling is then set arithmetic only.
        return [frozenset(text.strip().lower() for text in example) for example in self.examples]

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of ``epoch`` (seed + epoch) for the next iteration. Examples that
        change per epoch (``set_epoch`` of their own, e.g. ``RoundRobinExamples``) follow."""
        self.epoch = epoch
        if hasattr(self.examples, "set_epoch"):
            self.examples.set_epoch(epoch)
            self._keys = self._text_keys()

    def __len__(self) -> int:
        """Batches per epoch: ``floor(N / batch_size)`` (``ceil`` when not ``drop_last``)."""
        n = len(self._keys)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self._keys)))
        random.Random(self.seed + self.epoch).shuffle(order)
        pool = dict.fromkeys(order)  # insertion-ordered set: skipped indices keep their place
        while pool:
            batch: list[int] = []
            seen: set[str] = set()
            for index in pool:
                if self._keys[index] & seen:
                    continue
                batch.append(index)
                seen |= self._keys[index]
                if len(batch) == self.batch_size:
                    break
            for index in batch:
                del pool[index]
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Cut indices into batches of similar length, longest first, to limit padding when encoding.

    Args:
        lengths: Length of each item (tokens or characters).
        batch_size: Items per batch (>= 1); the last batch may be smaller.

    Returns:
        Batches of indices into ``lengths``, sorted by length descending (ties keep input order).

    Raises:
        ValueError: ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
