"""Tests for sgpt.model.pooling: hand formulas (SPEC 7) and sentence-transformers' Pooling as oracle."""

from __future__ import annotations

import pytest
import torch

from sgpt.model.pooling import POOLING_MODES, pool

try:
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling as STPooling
except ImportError:  # sentence-transformers < 6
    try:
        from sentence_transformers.models import Pooling as STPooling
    except ImportError:
        STPooling = None

needs_st = pytest.mark.skipif(STPooling is None, reason="sentence-transformers is not installed")


D = 5


def st_pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """sentence-transformers' Pooling forward on one padded batch (the oracle)."""
    layer = STPooling(hidden.shape[-1], pooling_mode=mode)
    return layer({"token_embeddings": hidden.clone(), "attention_mask": mask.clone()})["sentence_embedding"]


def left_pad(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each right-padded row's real tokens to the end (same tokens, left padding)."""
    h, m = torch.zeros_like(hidden), torch.zeros_like(mask)
    s = mask.shape[1]
    for r in range(mask.shape[0]):
        n = int(mask[r].sum())
        h[r, s - n :] = hidden[r, :n]
        m[r, s - n :] = 1
    return h, m


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded batch [3, 4, D]: lengths 3, 4 (no padding) and 1; padded positions hold junk."""
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 4, D, generator=g, dtype=torch.float64) * 3
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    hidden[0, 3] = 1e3  # junk under padding must never leak into the result
    hidden[2, 1:] = 1e3
    return hidden, mask


# ---------------------------------------------------------------------------------------------- weightedmean


def test_weightedmean_right_padding_hand_formula(batch):
    hidden, mask = batch
    out = pool(hidden, mask, "weightedmean")
    h = hidden[0]
    torch.testing.assert_close(out[0], (h[0] + 2 * h[1] + 3 * h[2]) / 6)  # SPEC 7: weights (1,2,3,0)
    h = hidden[1]
    torch.testing.assert_close(out[1], (h[0] + 2 * h[1] + 3 * h[2] + 4 * h[3]) / 10)
    torch.testing.assert_close(out[2], hidden[2, 0])


def test_weightedmean_left_padding_equals_right_padding(batch):
    hidden, mask = batch
    lh, lm = left_pad(hidden, mask)
    assert lm[0].tolist() == [0, 1, 1, 1]
    torch.testing.assert_close(pool(lh, lm, "weightedmean"), pool(hidden, mask, "weightedmean"))
    h = hidden[0]  # the clean version, not SGPT's (0,2,3,4) weights
    torch.testing.assert_close(pool(lh, lm, "weightedmean")[0], (h[0] + 2 * h[1] + 3 * h[2]) / 6)


@needs_st
@pytest.mark.parametrize("side", ["right", "left"])
def test_weightedmean_matches_sentence_transformers(batch, side):
    hidden, mask = batch if side == "right" else left_pad(*batch)
    torch.testing.assert_close(pool(hidden, mask, "weightedmean"), st_pool(hidden, mask, "weightedmean"))


# ---------------------------------------------------------------------------------------------- lasttoken


def test_lasttoken_indices_spec7():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2) + 1
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    out = pool(hidden, mask, "lasttoken")
    # correct indices (2, 1); SGPT's fork gave (0, 1)
    torch.testing.assert_close(out, torch.stack([hidden[0, 2], hidden[1, 1]]))


def test_lasttoken_left_padded_row():
    hidden = torch.arange(3 * 2, dtype=torch.float32).reshape(1, 3, 2) + 1
    out = pool(hidden, torch.tensor([[0, 1, 1]]), "lasttoken")
    torch.testing.assert_close(out, hidden[:, 2])  # not the pad at 0, not a zero vector


@needs_st
@pytest.mark.parametrize("side", ["right", "left"])
def test_lasttoken_matches_sentence_transformers(batch, side):
    hidden, mask = batch if side == "right" else left_pad(*batch)
    torch.testing.assert_close(pool(hidden, mask, "lasttoken"), st_pool(hidden, mask, "lasttoken"))


# ---------------------------------------------------------------------------------------------- mean, cls, max


def test_mean_hand_values(batch):
    hidden, mask = batch
    out = pool(hidden, mask, "mean")
    torch.testing.assert_close(out[0], hidden[0, :3].mean(0))
    torch.testing.assert_close(out[1], hidden[1].mean(0))
    torch.testing.assert_close(out[2], hidden[2, 0])


def test_cls_is_first_real_token_either_side(batch):
    hidden, mask = batch
    expected = hidden[:, 0]
    torch.testing.assert_close(pool(hidden, mask, "cls"), expected)
    lh, lm = left_pad(hidden, mask)
    torch.testing.assert_close(pool(lh, lm, "cls"), expected)


def test_max_hand_values_and_hidden_not_mutated(batch):
    hidden, mask = batch
    before = hidden.clone()
    out = pool(hidden, mask, "max")
    torch.testing.assert_close(out[0], hidden[0, :3].amax(0))  # the 1e3 junk at position 3 is ignored
    torch.testing.assert_close(out[1], hidden[1].amax(0))
    torch.testing.assert_close(out[2], hidden[2, 0])
    assert torch.equal(hidden, before)  # SGPT's fork wrote -1e9 into token_embeddings in place


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_no_mode_mutates_inputs(batch, mode):
    hidden, mask = batch
    h0, m0 = hidden.clone(), mask.clone()
    pool(hidden, mask, mode)
    assert torch.equal(hidden, h0) and torch.equal(mask, m0)


@pytest.mark.parametrize("mode", ["mean", "cls", "max"])
@pytest.mark.parametrize("side", ["right", "left"])
@needs_st
def test_mean_cls_max_match_sentence_transformers(batch, mode, side):
    hidden, mask = batch if side == "right" else left_pad(*batch)
    torch.testing.assert_close(pool(hidden, mask, mode), st_pool(hidden, mask, mode))


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_every_mode_is_padding_side_invariant(batch, mode):
    hidden, mask = batch
    lh, lm = left_pad(hidden, mask)
    torch.testing.assert_close(pool(lh, lm, mode), pool(hidden, mask, mode))


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_row_with_extra_padding_is_unchanged(batch, mode):
    """A row gives the same vector whatever else is in the batch (more padding appended)."""
    hidden, mask = batch
    wide_h = torch.cat([hidden, torch.full((3, 5, D), 7.0, dtype=hidden.dtype)], dim=1)
    wide_m = torch.cat([mask, torch.zeros(3, 5, dtype=mask.dtype)], dim=1)
    torch.testing.assert_close(pool(wide_h, wide_m, mode), pool(hidden, mask, mode))


# ---------------------------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_row_without_real_tokens_gives_zeros(mode):
    hidden = torch.randn(2, 3, D) * 10
    mask = torch.tensor([[0, 0, 0], [1, 1, 0]])
    out = pool(hidden, mask, mode)
    assert out.shape == (2, D)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0], torch.zeros(D))
    assert out[1].abs().sum() > 0


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_bfloat16_in_bfloat16_out(batch, mode):
    hidden, mask = batch
    hidden = hidden.clone()
    hidden[0, 3], hidden[2, 1:] = 0.5, -0.5  # keep junk in bf16's comfortable range
    out = pool(hidden.to(torch.bfloat16), mask, mode)
    assert out.dtype == torch.bfloat16
    ref = pool(hidden.to(torch.bfloat16).double(), mask, mode).to(torch.bfloat16)
    torch.testing.assert_close(out, ref)  # bf16 tolerance: one final rounding, fp32 accumulation


def test_output_dtype_float32(batch):
    hidden, mask = batch
    assert pool(hidden.float(), mask, "weightedmean").dtype == torch.float32


def test_mask_may_be_bool_or_float(batch):
    hidden, mask = batch
    for mode in POOLING_MODES:
        ref = pool(hidden, mask, mode)
        torch.testing.assert_close(pool(hidden, mask.bool(), mode), ref)
        torch.testing.assert_close(pool(hidden, mask.float(), mode), ref)


def test_gradients_flow_only_through_real_tokens(batch):
    hidden, mask = batch
    for mode in POOLING_MODES:
        h = hidden.clone().requires_grad_(True)
        pool(h, mask, mode).sum().backward()
        assert h.grad is not None
        assert torch.equal(h.grad[0, 3], torch.zeros(D, dtype=h.dtype)), mode  # padding gets no gradient
        assert torch.equal(h.grad[2, 1:], torch.zeros(3, D, dtype=h.dtype)), mode


def test_unknown_mode_lists_valid_modes(batch):
    hidden, mask = batch
    with pytest.raises(ValueError, match="avg") as err:
        pool(hidden, mask, "avg")
    for mode in ("mean", "weightedmean", "lasttoken", "cls", "max"):
        assert mode in str(err.value)


def test_pooling_modes_tuple():
    assert set(POOLING_MODES) == {"mean", "weightedmean", "lasttoken", "cls", "max"}


# ---------------------------------------------------------------------------------------------- lasttoken_legacy


def test_lasttoken_legacy_reproduces_the_fork_spec7():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2) + 1
    out = pool(hidden, torch.tensor([[1, 1, 1], [1, 1, 0]]), "lasttoken_legacy")
    torch.testing.assert_close(out, torch.stack([hidden[0, 0], hidden[1, 1]]))  # fork indices (0, 1): the bug
    left = pool(hidden[:1], torch.tensor([[0, 1, 1]]), "lasttoken_legacy")
    torch.testing.assert_close(left, torch.zeros(1, 2))  # gathers the pad at 0, times its mask 0


def test_lasttoken_legacy_matches_fork_code_on_random_batches(batch):
    """Against the fork's own lines (argmin - 1, clamp, gather over token_embeddings * mask)."""
    hidden, mask = batch
    for h, m in (batch, left_pad(hidden, mask)):
        index = torch.clamp(torch.argmin(m, 1) - 1, min=0)
        gather = index.unsqueeze(-1).repeat(1, h.shape[-1]).unsqueeze(1)
        expected = torch.gather(h * m.unsqueeze(-1).to(h.dtype), 1, gather).squeeze(1)
        torch.testing.assert_close(pool(h, m, "lasttoken_legacy"), expected)
    padded_rows = [0, 2]  # rows with padding: legacy equals the corrected last token
    torch.testing.assert_close(
        pool(hidden, mask, "lasttoken_legacy")[padded_rows], pool(hidden, mask, "lasttoken")[padded_rows]
    )


def test_lasttoken_legacy_is_a_choice_not_a_mode():
    from sgpt.model.pooling import POOLING_CHOICES, check_pooling_mode

    assert "lasttoken_legacy" not in POOLING_MODES
    assert POOLING_CHOICES == (*POOLING_MODES, "lasttoken_legacy")
    assert check_pooling_mode("lasttoken_legacy") == "lasttoken_legacy"


def test_lasttoken_legacy_saves_as_lasttoken_and_reloads_legacy(tiny_gpt_dir, tmp_path, caplog):
    import json
    import logging

    import numpy as np

    import sgpt
    from sgpt.model.spec import ModelSpec

    texts = ["the cat sleeps", "a dog runs in the park every morning!", "x"]
    model = sgpt.load(tiny_gpt_dir, ModelSpec(pooling="lasttoken_legacy", max_seq_length=16))
    assert model.pooling == "lasttoken_legacy"
    ref = model.encode(texts, batch_size=8)
    lengths = [len(x) for x in model.token_ids(texts)]
    hidden = model.backbone(**model.collate(model.token_ids(texts))).last_hidden_state
    longest = lengths.index(max(lengths))
    np.testing.assert_allclose(ref[longest], hidden[longest, 0].detach().numpy(), atol=1e-6)  # the bug: token 0

    with caplog.at_level(logging.WARNING, logger="sgpt.model"):
        out = model.save(tmp_path / "m")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "sentence-transformers will use the corrected last token" in warnings[0]
    config = json.loads((out / "1_Pooling" / "config.json").read_text())
    assert [k for k, v in config.items() if v is True] == ["pooling_mode_lasttoken"]
    assert json.loads((out / "1_Pooling" / "sgpt_pooling.json").read_text()) == {"pooling": "lasttoken_legacy"}

    back = sgpt.load(out)
    assert back.pooling == "lasttoken_legacy"
    np.testing.assert_array_equal(back.encode(texts, batch_size=8), ref)
    fixed = sgpt.load(out, pooling="lasttoken")
    assert fixed.pooling == "lasttoken"
    assert np.abs(fixed.encode(texts, batch_size=8)[longest] - ref[longest]).max() > 1e-3
    st = pytest.importorskip("sentence_transformers")
    oracle = st.SentenceTransformer(str(out), device="cpu").encode(texts, batch_size=8)
    assert np.abs(oracle - fixed.encode(texts, batch_size=8)).max() <= 1e-5  # ST: the corrected last token

    (out / "1_Pooling" / "sgpt_pooling.json").unlink()  # a stock lasttoken folder never loads as legacy
    assert sgpt.load(out).pooling == "lasttoken"
