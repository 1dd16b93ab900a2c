"""BM25 baseline over a corpus with ``bm25s`` (Lucene BM25, English stop words, Snowball English stemming).

Documents are indexed as :func:`sgpt.data.document_text` (``title + " " + text``), the same text the
bi-encoder embeds, so BM25 and dense runs are scored on the same input by the same metric code
(:func:`sgpt.evaluation.beir.evaluate_retrieval`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import ModuleType

import numpy as np

from sgpt.data.documents import document_text

__all__ = ["BM25Retriever"]


def _bm25s() -> ModuleType:
    """``import bm25s`` without its import-time ``setLevel(DEBUG)`` on the ``bm25s`` logger: the level
    set before (e.g. WARNING by the ``sgpt`` command, or none) is put back, so its debug lines stay hidden."""
    log = logging.getLogger("bm25s")
    level = log.level
    import bm25s  # loaded on first use: sgpt.search stays import-light

    log.setLevel(level)
    return bm25s


class BM25Retriever:
    """Lexical retriever over a fixed corpus.

    Tokenisation is ``bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"))``:
    lower-cased, words of ≥ 2 word characters, English stop words removed, then stemmed; queries are
    tokenised the same way. Scoring is bm25s' ``method="lucene"`` with ``k1``/``b``.

    Args:
        corpus: doc id → document (``{"title", "text"}`` dict as from :func:`sgpt.data.read_corpus`,
            or a plain string).
        k1: Term-frequency saturation.
        b: Length normalisation.
        show_progress: bm25s' progress bars while indexing and searching (off by default).

    Raises:
        ValueError: ``corpus`` is empty.
    """

    def __init__(
        self, corpus: Mapping[str, Mapping | str], *, k1: float = 1.5, b: float = 0.75, show_progress: bool = False
    ) -> None:
        bm25s = _bm25s()
        if not corpus:
            raise ValueError("BM25Retriever: the corpus is empty")
        self.doc_ids = list(corpus)
        self.show_progress = show_progress
        texts = [doc if isinstance(doc, str) else document_text(doc) for doc in corpus.values()]
        self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        self._bm25.index(self._tokenize(texts), show_progress=show_progress)

    def _tokenize(self, texts: list[str]):
        import Stemmer

        return _bm25s().tokenize(
            texts,
            stopwords="en",
            stemmer=Stemmer.Stemmer("english"),
            return_ids=False,
            show_progress=self.show_progress,
        )

    def search(
        self, queries: Mapping[str, str], k: int, *, remove_self_hits: bool = True
    ) -> dict[str, dict[str, float]]:
        """Top-``k`` documents of every query by BM25 score.

        Only documents sharing at least one (stemmed, non-stop-word) term with the query are returned
        (score > 0), so a query without such a term gets ``{}``. Ties keep the corpus order of bm25s'
        top-k selection.

        Args:
            queries: query id → text.
            k: Hits per query (fewer when fewer documents match).
            remove_self_hits: Drop the document whose id equals the query id (BEIR convention);
                k+1 hits are fetched so that ``k`` remain.

        Returns:
            query id → {doc id → score (float)}, best first.

        Raises:
            ValueError: ``k < 1``.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        qids = list(queries)
        if not qids:
            return {}
        fetch = min(k + 1 if remove_self_hits else k, len(self.doc_ids))
        vocab = self._bm25.vocab_dict
        tokens = [[t for t in row if t in vocab] for row in self._tokenize([queries[q] for q in qids])]
        results: dict[str, dict[str, float]] = {qid: {} for qid in qids}  # no known term: no hits
        asked = [i for i, row in enumerate(tokens) if row]
        if not asked:
            return results
        idx, scores = self._bm25.retrieve(
            [tokens[i] for i in asked], k=fetch, show_progress=self.show_progress, n_threads=1
        )
        for row, row_i, row_s in zip(asked, np.asarray(idx), np.asarray(scores, dtype=np.float64), strict=False):
            qid = qids[row]
            hits = {
                self.doc_ids[i]: float(s)
                for i, s in zip(row_i.tolist(), row_s.tolist(), strict=False)
                if s > 0 and not (remove_self_hits and self.doc_ids[i] == qid)
            }
            results[qid] = dict(list(hits.items())[:k])
        return results
