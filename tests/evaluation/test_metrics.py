"""Tests for sgpt.evaluation.metrics on hand-made arrays with hand-computed expected values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from sgpt.evaluation.metrics import paired_scores, pearson, spearman


def test_pearson_hand_value():
    # x - mean = [-1.5, -0.5, 0.5, 1.5]; y - mean = [-3, -1, 0, 4]
    # sum products = 4.5 + 0.5 + 0 + 6 = 11; sum x^2 = 5; sum y^2 = 26  =>  r = 11 / sqrt(130)
    x = np.array([1, 2, 3, 4])
    y = np.array([2.0, 4.0, 5.0, 9.0], dtype=np.float32)
    assert pearson(x, y) == pytest.approx(11 / math.sqrt(130), abs=1e-12)
    assert pearson(y, x) == pytest.approx(11 / math.sqrt(130), abs=1e-12)
    assert pearson(x, -y) == pytest.approx(-11 / math.sqrt(130), abs=1e-12)


def test_spearman_with_ties_uses_average_ranks():
    # ranks x = [1, 2.5, 2.5, 4] (tie -> average rank), ranks y = [1, 3, 2, 4]
    # centred: [-1.5, 0, 0, 1.5] and [-1.5, .5, -.5, 1.5]; products 4.5; squares 4.5 and 5
    # rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9). The no-ties shortcut 1 - 6*0.5/(4*15) = 0.95 is wrong here.
    x = [1.0, 2.0, 2.0, 3.0]
    y = [10.0, 30.0, 20.0, 40.0]
    rho = spearman(np.array(x), np.array(y))
    assert rho == pytest.approx(math.sqrt(0.9), abs=1e-12)
    assert rho != pytest.approx(0.95, abs=1e-3)


def test_spearman_is_rank_only():
    x = np.array([0.1, 0.5, 0.3, 0.9, 0.7])
    y = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    assert spearman(x, y) == pytest.approx(1.0, abs=1e-12)
    assert spearman(np.exp(10 * x), y) == pytest.approx(1.0, abs=1e-12)
    assert pearson(np.exp(10 * x), y) < 0.95  # while Pearson is not rank-invariant


def test_metrics_agree_with_scipy_on_tied_random_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, size=300).astype(np.float64)  # many ties, like STS gold scores
    y = x + rng.normal(size=300)
    assert pearson(x, y) == pytest.approx(pearsonr(x, y)[0], abs=1e-12)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y)[0], abs=1e-12)


def test_correlation_of_constant_input_is_nan():
    assert math.isnan(pearson(np.ones(4), np.arange(4.0)))
    assert math.isnan(spearman(np.arange(4.0), np.full(4, 2.5)))


@pytest.mark.parametrize("fn", [pearson, spearman])
def test_correlation_rejects_bad_input(fn):
    with pytest.raises(ValueError, match="length mismatch"):
        fn(np.arange(3.0), np.arange(4.0))
    with pytest.raises(ValueError, match="at least 2"):
        fn(np.array([1.0]), np.array([2.0]))
    with pytest.raises(ValueError, match="1-D"):
        fn(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="finite"):
        fn(np.array([1.0, np.nan, 3.0]), np.arange(3.0))


def test_paired_scores_hand_values():
    a = np.array([[3, 4], [0, 0], [1, 0]], dtype=np.float32)
    b = np.array([[4, 3], [1, 1], [1, 2]], dtype=np.float32)
    a_before, b_before = a.copy(), b.copy()
    s = paired_scores(a, b)
    assert set(s) == {"cosine", "dot", "euclidean", "manhattan"}
    np.testing.assert_allclose(s["cosine"], [24 / 25, 0.0, 1 / math.sqrt(5)], atol=1e-15)
    np.testing.assert_allclose(s["dot"], [24.0, 0.0, 1.0], atol=1e-15)
    # negated distances: higher = more similar
    np.testing.assert_allclose(s["euclidean"], [-math.sqrt(2), -math.sqrt(2), -2.0], atol=1e-15)
    np.testing.assert_allclose(s["manhattan"], [-2.0, -2.0, -2.0], atol=1e-15)
    for v in s.values():
        assert v.shape == (3,) and v.dtype == np.float64
    np.testing.assert_array_equal(a, a_before)  # inputs untouched
    np.testing.assert_array_equal(b, b_before)


def test_cosine_of_zero_vector_is_zero_not_nan():
    a = np.zeros((2, 5), dtype=np.float32)
    b = np.array([[0, 0, 0, 0, 0], [1, 2, 3, 4, 5]], dtype=np.float32)
    cos = paired_scores(a, b)["cosine"]
    assert not np.isnan(cos).any()
    np.testing.assert_array_equal(cos, [0.0, 0.0])


def test_cosine_is_computed_in_float64():
    # float32 embeddings; cosine of a vector with itself must be 1 to float64 precision. A float32
    # normalise-then-dot (ST's own path) is off by ~1e-7 here.
    rng = np.random.default_rng(1)
    v = (rng.normal(size=(8, 384)) * 10).astype(np.float32)
    cos = paired_scores(v, v)["cosine"]
    np.testing.assert_allclose(cos, 1.0, rtol=0, atol=1e-13)
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert np.abs((vn * vn).sum(axis=1) - 1.0).max() > 1e-13  # the float32 path really differs


def test_paired_scores_rejects_bad_input():
    with pytest.raises(ValueError, match="equal shape"):
        paired_scores(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="equal shape"):
        paired_scores(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="NaN/inf in 1 row"):
        paired_scores(np.array([[1.0, np.inf], [1.0, 1.0]]), np.ones((2, 2)))
