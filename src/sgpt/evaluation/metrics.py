"""Pure metric functions for embedding evaluation (NumPy/SciPy only, no model code).

Notation: ``n`` = number of sentence pairs, ``d`` = embedding dimension.

Conventions follow sentence-transformers' ``EmbeddingSimilarityEvaluator`` (ST 2.1 as used by SGPT, and
ST 6.2's ``util.pairwise_*`` functions): four pair scores (cosine, dot product, negated Euclidean
distance, negated Manhattan distance), each correlated with the gold scores by Pearson's r and by
Spearman's rho.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["pearson", "spearman", "paired_scores"]

# Same floor as torch.nn.functional.normalize (used by ST's pairwise_cos_sim): a vector whose norm is
# below it is divided by the floor instead, so a zero vector has cosine 0 with anything, never NaN.
_NORM_EPS = 1e-12


def _as_paired_vectors(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two score vectors of equal length and return float64 copies.

    Raises:
        ValueError: if either input is not 1-D, the lengths differ, there are fewer than 2 values, or a
            value is NaN/inf.
    """
    x64 = np.asarray(x, dtype=np.float64)
    y64 = np.asarray(y, dtype=np.float64)
    if x64.ndim != 1 or y64.ndim != 1:
        raise ValueError(f"expected two 1-D arrays, got shapes {x64.shape} and {y64.shape}")
    if x64.shape != y64.shape:
        raise ValueError(f"length mismatch: x has {x64.shape[0]} values, y has {y64.shape[0]}")
    if x64.shape[0] < 2:
        raise ValueError(f"a correlation needs at least 2 pairs, got {x64.shape[0]}")
    if not (np.isfinite(x64).all() and np.isfinite(y64).all()):
        raise ValueError("x and y must be finite; found NaN or inf")
    return x64, y64


def _pearson_f64(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r of two validated float64 vectors; NaN if either is constant."""
    xc = x - x.mean()
    yc = y - y.mean()
    denom = np.sqrt(np.dot(xc, xc) * np.dot(yc, yc))
    if denom == 0.0:
        # Undefined for a constant input (scipy returns NaN with a ConstantInputWarning too).
        return float("nan")
    r = float(np.dot(xc, yc) / denom)
    return max(-1.0, min(1.0, r))  # clip rounding overshoot, as scipy.stats.pearsonr does


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson product-moment correlation coefficient.

    ``r = sum((x - mean x)(y - mean y)) / sqrt(sum((x - mean x)^2) * sum((y - mean y)^2))``, computed in
    float64. Same value as ``scipy.stats.pearsonr(x, y)[0]`` (what ST's evaluator calls).

    Args:
        x: scores, shape [n], any real dtype.
        y: scores, shape [n], any real dtype.

    Returns:
        r in [-1, 1]; NaN if ``x`` or ``y`` is constant (the coefficient is undefined).

    Raises:
        ValueError: if the inputs are not 1-D, differ in length, have fewer than 2 values, or contain
            NaN/inf.
    """
    x64, y64 = _as_paired_vectors(x, y)
    return _pearson_f64(x64, y64)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation coefficient.

    Pearson's r of the ranks, with tied values given the average of the ranks they span
    (``scipy.stats.rankdata(method="average")``). This is the definition ``scipy.stats.spearmanr`` uses,
    and it differs from the shortcut ``1 - 6 sum d^2 / (n (n^2 - 1))`` whenever there are ties (STS gold
    scores have many).

    Args:
        x: scores, shape [n], any real dtype.
        y: scores, shape [n], any real dtype.

    Returns:
        rho in [-1, 1]; NaN if ``x`` or ``y`` is constant.

    Raises:
        ValueError: if the inputs are not 1-D, differ in length, have fewer than 2 values, or contain
            NaN/inf.
    """
    x64, y64 = _as_paired_vectors(x, y)
    return _pearson_f64(rankdata(x64, method="average"), rankdata(y64, method="average"))


def paired_scores(emb1: np.ndarray, emb2: np.ndarray) -> dict[str, np.ndarray]:
    """Row-wise similarity of two embedding matrices, ST ``EmbeddingSimilarityEvaluator`` conventions.

    For each row i (a = emb1[i], b = emb2[i]), all in float64 computed from the given embeddings:

    * ``cosine``    = a.b / (max(|a|, 1e-12) * max(|b|, 1e-12))  (a zero vector gives 0, never NaN)
    * ``dot``       = a.b
    * ``euclidean`` = -|a - b|_2   (negated distance: higher = more similar)
    * ``manhattan`` = -|a - b|_1   (negated distance: higher = more similar)

    Source: sentence-transformers ``util.pairwise_cos_sim`` / ``pairwise_dot_score`` /
    ``pairwise_euclidean_sim`` / ``pairwise_manhattan_sim`` (which compute the same in float32).

    Args:
        emb1: embeddings of the first sentences, shape [n, d], float (typically float32).
        emb2: embeddings of the second sentences, shape [n, d], float.

    Returns:
        Dict with keys ``"cosine"``, ``"dot"``, ``"euclidean"``, ``"manhattan"``; each value has shape
        [n], dtype float64. The inputs are not modified.

    Raises:
        ValueError: if the inputs are not 2-D with equal shapes, or contain NaN/inf.
    """
    a = np.asarray(emb1, dtype=np.float64)
    b = np.asarray(emb2, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected two [n, d] arrays of equal shape, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        bad = int((~np.isfinite(a)).any(axis=1).sum() + (~np.isfinite(b)).any(axis=1).sum())
        raise ValueError(f"embeddings contain NaN/inf in {bad} row(s); the model output is broken")

    dot = np.einsum("nd,nd->n", a, b)  # [n]
    norm_a = np.maximum(np.linalg.norm(a, axis=1), _NORM_EPS)  # [n]
    norm_b = np.maximum(np.linalg.norm(b, axis=1), _NORM_EPS)  # [n]
    diff = a - b  # [n, d]
    return {
        "cosine": dot / (norm_a * norm_b),
        "dot": dot,
        "euclidean": -np.linalg.norm(diff, axis=1),
        "manhattan": -np.abs(diff).sum(axis=1),
    }
