"""STS evaluation: correlate embedding similarities with gold similarity scores (SPEC 2.1, 3.2).

Thin glue around :mod:`sgpt.evaluation.metrics`: encode, score, correlate, write. Reproduces what SGPT's
training scripts got from sentence-transformers' ``EmbeddingSimilarityEvaluator`` (ST 2.1: all four
similarity functions, ``main_similarity=None``), so the dev-selection score is ``spearman_max`` and the
published STS-B number is ``spearman_cosine``.

Key naming differs from ST 6.2 on purpose: ST 6.2 prefixes every key with the evaluator name
(``"{name}_spearman_cosine"``) when one is given, reports only the model's own similarity function
(usually cosine, and then no ``*_max`` keys) unless ``similarity_fn_names`` lists all four, and adds
``pearson_max`` next to ``spearman_max``. Here keys are never prefixed and all four functions are
always computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from sgpt.evaluation.metrics import paired_scores, pearson, spearman

__all__ = ["SIMILARITIES", "Encoder", "evaluate_sts", "evaluate_sts_subsets", "sts_scores"]

SIMILARITIES = ("cosine", "dot", "euclidean", "manhattan")


class Encoder(Protocol):
    """Anything that embeds a list of texts (e.g. ``sgpt``'s bi-encoder, or an adapter around ST)."""

    def encode(
        self, texts: list[str], batch_size: int = ..., normalize: bool = ..., *, show_progress: bool = ...
    ) -> np.ndarray:
        """Embed ``texts`` → float32 array of shape [len(texts), d], in input order."""
        ...


def sts_scores(emb1: np.ndarray, emb2: np.ndarray, gold: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation of four pair similarities with gold scores.

    For each similarity s in (cosine, dot, euclidean, manhattan) — see
    :func:`~sgpt.evaluation.metrics.paired_scores`; distances are negated — computes
    ``pearson_{s} = pearson(s(emb1, emb2), gold)`` and ``spearman_{s}`` likewise (rank correlation,
    average ranks for ties), as ST's ``EmbeddingSimilarityEvaluator`` does. Gold scale does not matter
    (correlations are invariant to positive affine maps; SGPT divides STS-B gold by 5).

    Args:
        emb1: embeddings of the first sentences, shape [n, d], float32 or float64.
        emb2: embeddings of the second sentences, shape [n, d].
        gold: gold similarity of each pair, length n.

    Returns:
        ``{pearson_cosine, spearman_cosine, pearson_dot, spearman_dot, pearson_euclidean,
        spearman_euclidean, pearson_manhattan, spearman_manhattan}`` as Python floats, plus
        ``spearman_max`` (the largest of the four Spearman values ignoring NaN, SGPT's dev-selection score,
        SPEC 2.1; NaN only if all four are NaN) and ``n_pairs`` (int). A correlation is NaN when the
        similarity is constant over all pairs.

    Raises:
        ValueError: on shape mismatch, fewer than 2 pairs, or NaN/inf in embeddings or gold.
    """
    gold_arr = np.asarray(gold, dtype=np.float64)
    n = np.shape(emb1)[0] if np.ndim(emb1) >= 1 else 0
    if gold_arr.ndim != 1 or gold_arr.shape[0] != n:
        raise ValueError(f"gold must have one score per pair: got shape {gold_arr.shape} for {n} pairs")
    sims = paired_scores(emb1, emb2)
    results: dict[str, float] = {}
    for name in SIMILARITIES:
        results[f"pearson_{name}"] = pearson(sims[name], gold_arr)
        results[f"spearman_{name}"] = spearman(sims[name], gold_arr)
    spearmans = [results[f"spearman_{name}"] for name in SIMILARITIES]
    finite = [v for v in spearmans if not math.isnan(v)]
    # Plain max() over NaNs depends on order; a constant similarity (e.g. all-equal dot) must not win.
    results["spearman_max"] = max(finite) if finite else float("nan")
    results["n_pairs"] = n
    return results


def evaluate_sts(
    model: Encoder,
    sentences1: Sequence[str],
    sentences2: Sequence[str],
    gold: Sequence[float],
    *,
    batch_size: int = 32,
    show_progress: bool = False,
) -> dict[str, float]:
    """Encode sentence pairs with ``model`` and score them with :func:`sts_scores`.

    Every distinct sentence of both sides is encoded once (first-occurrence order), without
    normalisation (dot/Euclidean/Manhattan depend on the raw norms, as in ST's evaluator), then
    gathered back into the two [n, d] sides.

    Args:
        model: object with ``encode(texts, batch_size=, normalize=, show_progress=)`` returning a float
            array of shape [len(texts), d].
        sentences1: first sentence of each pair, length n.
        sentences2: second sentence of each pair, length n.
        gold: gold similarity of each pair, length n (any scale).
        batch_size: passed to ``model.encode``.
        show_progress: passed to ``model.encode``.

    Returns:
        The dict of :func:`sts_scores`.

    Raises:
        ValueError: if the three inputs differ in length, there are fewer than 2 pairs, or
            ``model.encode`` returns an array of the wrong shape.
    """
    n = len(sentences1)
    if len(sentences2) != n or len(gold) != n:
        raise ValueError(
            f"sentences1, sentences2 and gold must have equal length, got {n}, {len(sentences2)}, {len(gold)}"
        )
    if n < 2:
        raise ValueError(f"a correlation needs at least 2 pairs, got {n}")
    emb1, emb2 = _embed_pairs(model, sentences1, sentences2, batch_size, show_progress)
    return sts_scores(emb1, emb2, gold)


def _embed_pairs(
    model: Encoder, sentences1: Sequence[str], sentences2: Sequence[str], batch_size: int, show_progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Both sides ``[n, d]``, every distinct sentence encoded once (first-occurrence order).

    Raises:
        ValueError: ``model.encode`` returns an array of the wrong shape.
    """
    index = {text: i for i, text in enumerate(dict.fromkeys([*sentences1, *sentences2]))}
    unique = list(index)
    emb = np.asarray(model.encode(unique, batch_size=batch_size, normalize=False, show_progress=show_progress))
    if emb.ndim != 2 or emb.shape[0] != len(unique):
        raise ValueError(f"model.encode returned shape {emb.shape} for {len(unique)} texts; expected [n, d]")
    return emb[[index[s] for s in sentences1]], emb[[index[s] for s in sentences2]]


def evaluate_sts_subsets(
    model: Encoder, subsets: Sequence, *, batch_size: int = 32, show_progress: bool = False
) -> dict:
    """Score each subset of a set on its own (SentEval's STS12-16 protocol: one correlation per
    subset such as ``STS12.MSRpar``, then their mean and pair-weighted mean), and all pairs pooled.

    Every distinct sentence of all subsets is encoded once.

    Args:
        model: as for :func:`evaluate_sts`.
        subsets: ``STSData`` items (``sentences1``, ``sentences2``, ``scores``, ``name``), each
            with at least 2 pairs (``sgpt.data.read_sts_subsets``).

    Returns:
        The pooled :func:`sts_scores` dict, plus ``"subsets"`` (name -> scores), ``"mean"`` and
        ``"wmean"`` (each metric's mean over subsets, plain and weighted by their pair counts).

    Raises:
        ValueError: no subsets, a subset with fewer than 2 pairs, or a bad ``model.encode`` shape.
    """
    if not subsets:
        raise ValueError("no STS subsets to score")
    for sub in subsets:
        if len(sub.scores) < 2:
            raise ValueError(f"{sub.name}: a correlation needs at least 2 pairs, got {len(sub.scores)}")
    s1 = [t for sub in subsets for t in sub.sentences1]
    s2 = [t for sub in subsets for t in sub.sentences2]
    gold = [g for sub in subsets for g in sub.scores]
    emb1, emb2 = _embed_pairs(model, s1, s2, batch_size, show_progress)
    per, start = {}, 0
    for sub in subsets:
        end = start + len(sub.scores)
        per[sub.name] = sts_scores(emb1[start:end], emb2[start:end], sub.scores)
        start = end
    metrics = [k for k, v in next(iter(per.values())).items() if k != "n_pairs" and isinstance(v, float)]
    sizes = np.array([r["n_pairs"] for r in per.values()], dtype=np.float64)
    mean = {k: float(np.mean([r[k] for r in per.values()])) for k in metrics}
    wmean = {k: float(np.average([r[k] for r in per.values()], weights=sizes)) for k in metrics}
    return {**sts_scores(emb1, emb2, gold), "subsets": per, "mean": mean, "wmean": wmean}
