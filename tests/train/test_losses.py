"""MultipleNegativesRankingLoss against hand-computed values and sentence-transformers (SPEC 1.9, 7)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sgpt.train.losses import cosine_matrix, mnrl_from_columns, mnrl_loss, split_columns


@pytest.mark.parametrize("b", [1, 3, 8])
def test_identical_embeddings_give_log_2b(b):
    emb = torch.ones(b, 5)
    loss = mnrl_from_columns([emb, emb, emb])
    assert loss.item() == pytest.approx(math.log(2 * b), rel=1e-6)


def test_hand_computed_two_anchors():
    # anchors a1=(1,0), a2=(0,1); positives p1=(1,0), p2=(1,1); no hard negatives.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    c = 1 / math.sqrt(2)
    # logits row 1: 20*(1, c), target 0; row 2: 20*(0, c), target 1
    l1 = -20 * 1 + math.log(math.exp(20) + math.exp(20 * c))
    l2 = -20 * c + math.log(math.exp(0) + math.exp(20 * c))
    assert mnrl_from_columns([a, p]).item() == pytest.approx((l1 + l2) / 2, rel=1e-4)  # float32 cosines


def test_matches_sentence_transformers_formula():
    torch.manual_seed(0)
    a, p, n = torch.randn(6, 16), torch.randn(6, 16), torch.randn(6, 16)
    # sentence-transformers: scores = cos_sim(a, cat(p, n)) * 20, CE with labels arange
    st_util = pytest.importorskip("sentence_transformers.util")
    scores = st_util.cos_sim(a, torch.cat([p, n])) * 20.0
    expected = F.cross_entropy(scores, torch.arange(6))
    assert mnrl_from_columns([a, p, n]).item() == pytest.approx(expected.item(), rel=1e-6)


def test_label_offset_selects_the_right_positives():
    torch.manual_seed(1)
    a = torch.randn(2, 4)
    cand = torch.randn(6, 4)
    loss = mnrl_loss(a, cand, label_offset=2)
    scores = cosine_matrix(a, cand) * 20
    expected = F.cross_entropy(scores, torch.tensor([2, 3]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_zero_vector_gives_finite_loss():
    a = torch.zeros(2, 4)
    loss = mnrl_from_columns([a, torch.randn(2, 4)])
    assert torch.isfinite(loss)


def test_errors():
    with pytest.raises(ValueError, match="at least"):
        mnrl_from_columns([torch.ones(2, 3)])
    with pytest.raises(ValueError, match="candidates"):
        mnrl_loss(torch.ones(4, 3), torch.ones(3, 3))


def test_split_columns_undoes_column_major_flattening():
    emb = torch.arange(12.0).view(6, 2)
    a, p, n = split_columns(emb, 3)
    assert a.tolist() == [[0, 1], [2, 3]] and n.tolist() == [[8, 9], [10, 11]]
