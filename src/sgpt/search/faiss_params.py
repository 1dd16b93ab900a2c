"""FAISS index types and their parameters: defaults, checks, and building the FAISS index itself.

Every index is inner product over L2-normalised vectors (= cosine): ``flat`` is exact
``IndexFlatIP``; ``ivf`` is ``IndexIVFFlat`` (k-means lists, ``nprobe`` visited per query);
``hnsw`` is ``IndexHNSWFlat`` (``m`` links per node, ``ef_construction`` / ``ef_search``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import faiss

logger = logging.getLogger("sgpt.search")

__all__ = ["INDEX_TYPES", "index_params", "make_faiss_index"]

INDEX_TYPES = ("flat", "ivf", "hnsw")
TRAIN_POINTS_PER_LIST = 256  # IVF k-means sample: at most this many vectors per list
MIN_POINTS_PER_LIST = 39  # faiss's k-means wants at least this many training vectors per list


def index_params(
    index_type: str,
    n: int,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    m: int = 32,
    ef_construction: int = 200,
    ef_search: int = 128,
) -> dict:
    """The manifest's ``index`` entry, defaults filled in and checked (see :func:`build_index`).

    Args:
        index_type: ``flat``, ``ivf`` or ``hnsw``.
        n: number of documents.

    Returns:
        ``{"type", "metric": "inner_product"}`` plus ``nlist, nprobe`` (ivf) or
        ``m, ef_construction, ef_search`` (hnsw).

    Raises:
        ValueError: unknown type or out-of-range parameters.
    """
    if index_type not in INDEX_TYPES:
        raise ValueError(f"index_type must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}")
    params: dict[str, Any] = {"type": index_type, "metric": "inner_product"}
    if index_type == "ivf":
        nlist = max(1, min(round(4 * math.sqrt(n)), n // MIN_POINTS_PER_LIST)) if nlist is None else nlist
        if not 1 <= nlist <= n:
            raise ValueError(f"ivf: nlist must be in [1, n_docs={n}], got {nlist}")
        nprobe = max(1, math.ceil(nlist / 16)) if nprobe is None else nprobe
        if not 1 <= nprobe <= nlist:
            raise ValueError(f"ivf: nprobe must be in [1, nlist={nlist}], got {nprobe}")
        params.update(nlist=nlist, nprobe=nprobe)
    elif index_type == "hnsw":
        if m < 2 or ef_construction < 1 or ef_search < 1:
            raise ValueError(
                f"hnsw: need m >= 2, ef_construction >= 1, ef_search >= 1; got {m}, {ef_construction}, {ef_search}"
            )
        params.update(m=m, ef_construction=ef_construction, ef_search=ef_search)
    return params


def make_faiss_index(params: Mapping[str, Any], shards: Sequence[np.ndarray], dim: int) -> faiss.Index:
    """A FAISS inner-product index over the rows of ``shards`` (each ``[n_i, dim]`` float32), in order.

    ``flat``: exact ``IndexFlatIP``. ``ivf``: ``IndexIVFFlat`` with ``nlist`` lists, its k-means
    trained on at most ``256 * nlist`` rows drawn uniformly (seed 0); fewer than 39 rows per list
    (faiss's minimum) is logged once as a warning here instead of faiss's own stderr line.
    ``hnsw``: ``IndexHNSWFlat`` with ``m`` links per node, ``METRIC_INNER_PRODUCT``.
    """
    import faiss

    kind = params["type"]
    index: faiss.Index
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        nlist = int(params["nlist"])
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = _training_sample(shards, nlist * TRAIN_POINTS_PER_LIST)
        if len(sample) < nlist * MIN_POINTS_PER_LIST:
            if nlist > 1:
                logger.warning(
                    "ivf: %d documents for nlist=%d lists is fewer than the %d per list faiss's k-means "
                    "wants; a smaller nlist (at most %d) clusters better",
                    len(sample),
                    nlist,
                    MIN_POINTS_PER_LIST,
                    max(1, len(sample) // MIN_POINTS_PER_LIST),
                )
            ivf.cp.min_points_per_centroid = 1  # said above (or nothing to say for one list): no faiss warning
        ivf.train(sample)
        ivf.nprobe = int(params["nprobe"])
        index = ivf
    else:
        hnsw = faiss.IndexHNSWFlat(dim, int(params["m"]), faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = int(params["ef_construction"])
        hnsw.hnsw.efSearch = int(params["ef_search"])
        index = hnsw
    for emb in shards:
        index.add(np.ascontiguousarray(emb, dtype=np.float32))
    return index


def _training_sample(shards: Sequence[np.ndarray], limit: int) -> np.ndarray:
    """At most ``limit`` rows of the concatenated shards, drawn without replacement (seed 0), in row order."""
    sizes = [len(s) for s in shards]
    n = sum(sizes)
    rows = np.sort(np.random.default_rng(0).choice(n, size=min(n, limit), replace=False))
    starts = np.cumsum([0, *sizes])
    parts = [
        np.asarray(s[rows[(rows >= a) & (rows < b)] - a])
        for s, a, b in zip(shards, starts[:-1], starts[1:], strict=False)
    ]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
