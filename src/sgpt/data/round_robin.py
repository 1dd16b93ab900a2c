"""Retrieval training examples that rotate through each query's positives and hard negatives (SPEC 2.2)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from sgpt.data.retrieval_examples import RetrievalExample


class RoundRobinExamples(Sequence[tuple[str, ...]]):
    """One ``(query, positive, negative_1..n)`` tuple per query per epoch, rotating round-robin.

    SGPT's MS MARCO dataset (SPEC 2.2) pops the front positive and negative of a query for each
    use and pushes them to the back, with the negatives shuffled once; so epoch ``e`` uses
    positive ``e mod P`` and negative ``e mod N``. With ``negatives_per_query = n`` epoch ``e``
    uses negatives ``e*n .. e*n+n-1`` (mod ``N``). Call :meth:`set_epoch` before an epoch (the
    trainer's sampler does).

    Args:
        queries: the training queries; each needs at least one positive and, when
            ``negatives_per_query > 0``, at least one negative.
        negatives_per_query: hard negatives per example (0 gives (query, positive) pairs).
            Negatives that are also positives of the query, and repeated ones, are dropped.
        seed: seeds the one-time shuffle of each query's negatives.

    Raises:
        ValueError: no queries, or a query without positives (or without negatives when needed),
            naming the query.
    """

    def __init__(self, queries: Sequence[RetrievalExample], *, negatives_per_query: int = 1, seed: int = 0) -> None:
        if not queries:
            raise ValueError("no training queries")
        if negatives_per_query < 0:
            raise ValueError(f"negatives_per_query must be >= 0, got {negatives_per_query}")
        rng = random.Random(seed)
        self.items: list[RetrievalExample] = []
        for q in queries:
            if not q.positives:
                raise ValueError(f"training query {q.query[:60]!r} has no positive passage")
            if negatives_per_query and not q.negatives:
                raise ValueError(
                    f"training query {q.query[:60]!r} has no hard negative; mine negatives first "
                    "or train with negatives_per_query=0"
                )
            positives = set(q.positives)
            negatives = [n for n in dict.fromkeys(q.negatives) if n not in positives]  # a positive is never a negative
            if negatives_per_query and not negatives:
                raise ValueError(f"training query {q.query[:60]!r}: every hard negative is also one of its positives")
            rng.shuffle(negatives)
            self.items.append(RetrievalExample(q.query, list(q.positives), negatives, q.query_id))
        self.negatives_per_query = negatives_per_query
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the positives and negatives of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    # int indices only (all the trainer's sampler uses): Sequence's slice overload is not implemented
    def __getitem__(self, i: int) -> tuple[str, ...]:  # type: ignore[override]
        q, e, n = self.items[i], self.epoch, self.negatives_per_query
        negatives = tuple(q.negatives[(e * n + j) % len(q.negatives)] for j in range(n))
        return (q.query, q.positives[e % len(q.positives)], *negatives)
