"""Search over embedded corpora: exact dense search (``sgpt.search.exact``), dense FAISS indexes
(``sgpt.search.build``, ``sgpt.search.index``) and, alongside, lexical baselines.
Importing this package is cheap: the submodules (FAISS, torch) load on first use.

    from sgpt.search import Index, build_index
    build_index("corpus.jsonl.gz", "models/my-model", "runs/my-index")
    hits = Index.load("runs/my-index").search(["a query"], k=10)   # [[Hit(id, score, text), ...]]
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Hit": "sgpt.search.index",
    "Index": "sgpt.search.index",
    "build_index": "sgpt.search.build",
    "BM25Retriever": "sgpt.search.bm25",
    "mine_negatives": "sgpt.search.mining",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sgpt.search' has no attribute {name!r}")


__all__ = ["BM25Retriever", "Hit", "Index", "build_index", "mine_negatives"]
