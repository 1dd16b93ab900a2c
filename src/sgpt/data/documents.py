"""How a document is turned into the text that gets embedded: one rule for every corpus.

Every corpus reader (BEIR ``corpus.jsonl``, MS MARCO ``collection.tsv``, the ``sgpt index build``
corpus) yields documents as ``{"title": str, "text": str}``; training, evaluation, BM25, mining
and the FAISS index all embed or tokenise :func:`document_text` of them.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["document_text"]


def document_text(doc: Mapping) -> str:
    """The text embedded for a document: ``(title + " " + text).strip()``, just ``text`` without title.

    This is BEIR's ``SentenceBERT.encode_corpus`` convention used by SGPT (SPEC 3.1 step 2). A missing
    or ``None`` title (Robust04) counts as no title.

    Args:
        doc: A corpus entry with ``text`` and optionally ``title``.

    Returns:
        The stripped concatenation.

    Raises:
        KeyError: ``doc`` has no ``text``.
    """
    title = doc.get("title") or ""
    return f"{title} {doc['text']}".strip() if title else str(doc["text"]).strip()
