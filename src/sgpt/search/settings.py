"""Settings of an index build, in one frozen dataclass (free of numpy, torch and faiss, so the CLI
reads its defaults for the help text without loading them)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IndexSettings"]


@dataclass(frozen=True)
class IndexSettings:
    """How :func:`build_index` embeds and indexes a corpus.

    Attributes:
        index_type: ``flat`` (exact), ``ivf`` or ``hnsw`` (see :mod:`sgpt.search.faiss_params`).
        nlist: IVF lists (default ``round(4 * sqrt(n_docs))``, at most ``n_docs // 39`` so that faiss's
            k-means gets 39 documents per list, at least 1).
        nprobe: IVF lists visited per query (default ``ceil(nlist / 16)``; overridable per search).
        m: HNSW links per node.
        ef_construction: HNSW candidate list size while building.
        ef_search: HNSW candidate list size while searching (overridable per search).
        shard_size: documents per shard (the most a crash can lose).
        batch_size: texts per forward pass.
        precision: ``None``/``"fp32"``, or ``"bf16"`` autocast (also used for queries).
        resume: reuse finished shards of an interrupted build; ``False`` starts over.

    Raises:
        ValueError: ``shard_size`` or ``batch_size`` below 1.
    """

    index_type: str = "flat"
    nlist: int | None = None
    nprobe: int | None = None
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    shard_size: int = 10_000
    batch_size: int = 32
    precision: str | None = None
    resume: bool = True

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.batch_size < 1:
            raise ValueError(f"shard_size and batch_size must be >= 1, got {self.shard_size} and {self.batch_size}")

    def faiss_params(self, n: int) -> dict:
        """The manifest's ``index`` entry for ``n`` documents (:func:`~sgpt.search.faiss_params.index_params`)."""
        from sgpt.search.faiss_params import index_params

        return index_params(
            self.index_type,
            n,
            nlist=self.nlist,
            nprobe=self.nprobe,
            m=self.m,
            ef_construction=self.ef_construction,
            ef_search=self.ef_search,
        )
