"""GradCache (sgpt.train.gradcache) against the plain step: same loss, same gradient of every parameter.

Oracle: the plain MNRL step of the trainer (``make_step`` without GradCache), which embeds the
batch with a graph in micro-batches of the chunk size, in the same length order. With dropout
on, equality holds only when GradCache replays each chunk's random state (negative case below).
"""

from __future__ import annotations

import json
import shutil
from functools import partial

import pytest
import torch

import sgpt
from sgpt.train import gradcache
from sgpt.train.config import TrainConfig
from sgpt.train.losses import mnrl_global
from sgpt.train.step import length_order, make_step, text_embedder

REL = 1e-5
_WORDS = [
    "the cat",
    "a dog",
    "my old friend",
    "the quick brown fox",
    "a small robot",
    "the teacher",
    "two kids",
    "the weather",
    "this model",
    "a red car",
    "the river",
    "her sister",
    "an owl",
    "the mayor",
]


def triplets(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """``n`` (anchor, positive, hard negative) triplets of distinct texts and very different lengths."""
    g = torch.Generator().manual_seed(seed)

    def text(i: int, role: str) -> str:
        k = int(torch.randint(1, 9, (1,), generator=g))
        words = [_WORDS[int(j)] for j in torch.randint(0, len(_WORDS), (k,), generator=g)]
        return f"{role} {i}: " + " and ".join(words)

    return [(text(i, "q"), text(i, "p"), text(i, "n")) for i in range(n)]


@pytest.fixture(scope="module")
def neo_dropout_dir(tiny_gpt_dir, tmp_path_factory):
    """The tiny GPT-Neo with embedding, attention and residual dropout 0.1."""
    folder = tmp_path_factory.mktemp("neo_dropout")
    shutil.copytree(tiny_gpt_dir, folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    config.update(embed_dropout=0.1, attention_dropout=0.1, resid_dropout=0.1)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def step_result(model, batch, cfg, seed=0, loss_scale=1.0):
    """(loss, {parameter name: gradient}) of one step from a fixed random state."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss = make_step(model, cfg)(batch, loss_scale)
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same(got, want, rel=REL):
    (loss_g, grads_g), (loss_w, grads_w) = got, want
    assert loss_g == pytest.approx(loss_w, rel=rel)
    assert grads_g.keys() == grads_w.keys() and grads_w
    for name, w in grads_w.items():
        err = float((grads_g[name] - w).abs().max() / w.abs().max().clamp_min(1e-30))
        assert err <= rel, f"{name}: relative difference {err:.2e}"


def configs(tmp_path, chunk, **kw):
    plain = TrainConfig(output=str(tmp_path), micro_batch_size=chunk, **kw)
    return plain, TrainConfig(output=str(tmp_path), micro_batch_size=chunk, gradcache=True, chunk_size=chunk, **kw)


@pytest.mark.parametrize("batch_size", [6, 8, 17])
@pytest.mark.parametrize("dropout", [False, True], ids=["no-dropout", "dropout"])
def test_cached_step_equals_plain_step_gpt_neo(tiny_gpt_dir, neo_dropout_dir, tmp_path, batch_size, dropout):
    model = sgpt.load(neo_dropout_dir if dropout else tiny_gpt_dir, pooling="weightedmean").train()
    batch = triplets(batch_size)
    for chunk in (1, 4, 8, batch_size):
        plain, cached = configs(tmp_path, chunk)
        assert_same(step_result(model, batch, cached), step_result(model, batch, plain))


def test_cached_step_equals_unchunked_plain_step(tiny_gpt_dir, tmp_path):
    """Without dropout the plain step may run the whole column in one forward: equal up to rounding."""
    model = sgpt.load(tiny_gpt_dir, pooling="lasttoken").train()
    batch = triplets(17, seed=1)
    want = step_result(model, batch, TrainConfig(output=str(tmp_path), micro_batch_size=None))
    for chunk in (1, 4, 8, 17):
        cfg = TrainConfig(output=str(tmp_path), micro_batch_size=None, gradcache=True, chunk_size=chunk)
        assert_same(step_result(model, batch, cfg), want)


def test_cached_step_with_a_shared_prefix(tiny_gpt_dir, tmp_path, monkeypatch):
    """Texts that all start with one instruction (as under a chat template): GradCache and the
    plain step both compute that prefix once per chunk and still equal the plain step that runs
    every row in full (sgpt.model.prefix)."""
    from sgpt.model import prefix

    model = sgpt.load(tiny_gpt_dir, pooling="weightedmean").train()
    head = "Represent the meaning of the following sentence for retrieval: "
    batch = [tuple(head + t for t in row) for row in triplets(8, seed=2)]
    calls: list[int] = []
    model.backbone.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["input_ids"].shape[0]), with_kwargs=True)
    plain, cached = configs(tmp_path, 4)
    shared = step_result(model, batch, cached)
    assert calls.count(1) == len(calls) // 2  # every chunk forward ran the prefix as a batch of one
    assert_same(step_result(model, batch, plain), shared)
    monkeypatch.setattr(prefix, "MIN_PREFIX", 10**9)
    calls.clear()
    full = step_result(model, batch, plain)
    assert 1 not in calls
    assert_same(shared, full, rel=1e-4)


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return sgpt.load(minilm_path, max_seq_length=24).train()


@pytest.mark.parametrize("batch_size,chunks", [(6, (1, 4, 6)), (17, (4, 8))])
def test_cached_step_equals_plain_step_minilm(minilm, tmp_path, batch_size, chunks):
    """A real BERT (dropout 0.1 in train mode, L2-normalised output)."""
    model = minilm
    batch = triplets(batch_size, seed=2)
    for chunk in chunks:
        plain, cached = configs(tmp_path, chunk)
        assert_same(step_result(model, batch, cached), step_result(model, batch, plain))


def test_without_rng_replay_dropout_breaks_equality(neo_dropout_dir):
    """The negative case: replaying the chunks with fresh randomness gives another gradient."""
    model = sgpt.load(neo_dropout_dir, pooling="weightedmean").train()
    columns = [list(c) for c in zip(*triplets(8), strict=False)]
    embed = text_embedder(model, 4, "fp32")
    loss_fn = partial(mnrl_global, scale=20.0)

    def grads(replay_rng):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        loss = gradcache.cached_loss(
            embed, columns, loss_fn, 4, order=lambda texts, g: length_order(model, texts), replay_rng=replay_rng
        )
        loss.backward()
        return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}

    torch.manual_seed(0)
    with torch.no_grad():
        want = float(loss_fn([embed(c, i) for i, c in enumerate(columns)]))
    replayed, fresh = grads(True), grads(False)
    assert replayed[0] == pytest.approx(want, rel=REL) and fresh[0] == pytest.approx(want, rel=REL)
    worst = max(float((fresh[1][n] - g).abs().max() / g.abs().max()) for n, g in replayed[1].items())
    assert worst > 1e-2


def test_asymmetric_towers(tiny_gpt_dir, neo_dropout_dir):
    """Queries through one tower, documents through another: ``embed(texts, group)`` picks the tower."""
    towers = [
        sgpt.load(neo_dropout_dir, pooling="weightedmean").train(),
        sgpt.load(neo_dropout_dir, pooling="lasttoken").train(),
    ]
    with torch.no_grad():
        for p in towers[1].parameters():
            p.add_(0.01 * torch.randn_like(p))
    batch = triplets(7, seed=6)
    groups = [[a for a, _, _ in batch], [p for _, p, _ in batch] + [n for _, _, n in batch]]
    embeds = [text_embedder(t, 3, "fp32") for t in towers]

    def embed(texts, group):
        return embeds[group](texts, group)

    def loss_fn(reps):  # queries [b, d]; documents [2b, d] = positives then negatives
        return mnrl_global([reps[0], *reps[1].split(len(batch))], scale=20.0)

    def order(texts, group):  # the order text_embedder's micro-batches follow (both towers share a tokenizer)
        return length_order(towers[0], texts)

    def result(cached):
        for t in towers:
            t.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        if cached:
            loss = gradcache.cached_loss(embed, groups, loss_fn, 3, order=order)
        else:
            loss = loss_fn([embed(g, i) for i, g in enumerate(groups)])
        loss.backward()
        return float(loss.detach()), {
            f"{i}.{n}": p.grad.clone() for i, t in enumerate(towers) for n, p in t.named_parameters()
        }

    assert_same(result(cached=True), result(cached=False))


def test_bf16_autocast(tiny_gpt_dir, tmp_path):
    """Under bf16 autocast the cached loss is float32 and the gradients match the plain bf16 step."""
    model = sgpt.load(tiny_gpt_dir, pooling="mean").train()
    batch = triplets(8)
    plain, cached = configs(tmp_path, 3, precision="bf16")
    got, want = step_result(model, batch, cached), step_result(model, batch, plain)
    assert_same(got, want, rel=2e-2)
    fp32 = step_result(model, batch, configs(tmp_path, 3, precision="fp32")[1])
    assert max(float((fp32[1][n] - g).abs().max() / g.abs().max()) for n, g in got[1].items()) > 1e-4  # autocast ran
    embed = text_embedder(model, 3, "bf16")
    loss = gradcache.cached_loss(embed, [["a b", "c"], ["d", "e f"]], partial(mnrl_global, scale=20.0), 1)
    assert loss.dtype == torch.float32


def test_loss_scale_and_accumulation(tiny_gpt_dir, tmp_path):
    """The backward's incoming gradient scales the replay; two cached steps accumulate like plain ones."""
    model = sgpt.load(tiny_gpt_dir, pooling="mean").train()
    b1, b2 = triplets(5, seed=3), triplets(7, seed=4)
    plain, cached = configs(tmp_path, 2)
    half = step_result(model, b1, cached, loss_scale=0.5)
    full = step_result(model, b1, cached)
    for name, g in full[1].items():
        torch.testing.assert_close(half[1][name], g * 0.5, rtol=1e-6, atol=0)

    def accumulated(cfg):
        model.zero_grad(set_to_none=True)
        step = make_step(model, cfg)
        losses = [step(b, 0.5) for b in (b1, b2)]
        return sum(losses), {n: p.grad.clone() for n, p in model.named_parameters()}

    assert_same(accumulated(cached), accumulated(plain))


def test_two_text_examples_and_split():
    assert gradcache.split(5, 2) == [[0, 1], [2, 3], [4]]
    assert gradcache.split(3, 8, order=[2, 0, 1]) == [[2, 0, 1]]
    with pytest.raises(ValueError, match="chunk_size"):
        gradcache.split(3, 0)


def test_pairs_without_hard_negatives(tiny_gpt_dir, tmp_path):
    model = sgpt.load(tiny_gpt_dir, pooling="mean").train()
    batch = [(a, p) for a, p, _ in triplets(9, seed=5)]
    plain, cached = configs(tmp_path, 4)
    assert_same(step_result(model, batch, cached), step_result(model, batch, plain))


def test_rng_state_replay_leaves_outer_state():
    torch.manual_seed(1)
    state = gradcache.RngState()
    first = torch.rand(3)
    after = torch.get_rng_state()
    with state.replay():
        assert torch.equal(torch.rand(3), first)
    assert torch.equal(torch.get_rng_state(), after)


# ------------------------------------------------------------------------------------- chunk size auto
def test_auto_chunk_size_follows_the_budget(tiny_gpt_dir):
    model = sgpt.load(tiny_gpt_dir, pooling="mean", max_seq_length=32).train()
    embed = text_embedder(model, None, "fp32")
    probe = " ".join(["a"] * 40)
    per_text = (gradcache.saved_bytes(embed, [probe] * 4) - gradcache.saved_bytes(embed, [probe] * 2)) / 2
    assert per_text > 0
    torch.manual_seed(0)
    before = torch.get_rng_state()
    chunk = gradcache.auto_chunk_size(embed, probe, budget_bytes=10.5 * per_text * 1.5, max_chunk=1000)
    assert chunk == 10
    assert torch.equal(torch.get_rng_state(), before)  # probing leaves the random state alone
    assert gradcache.auto_chunk_size(embed, probe, budget_bytes=1e12, max_chunk=64) == 64
    with pytest.raises(ValueError, match="max_memory"):
        gradcache.auto_chunk_size(embed, probe, budget_bytes=per_text / 2, max_chunk=64)


def test_make_step_prints_the_auto_chunk(tiny_gpt_dir, tmp_path, capsys):
    model = sgpt.load(tiny_gpt_dir, pooling="mean", max_seq_length=32).train()
    cfg = TrainConfig(output=str(tmp_path), batch_size=8, gradcache=True, chunk_size="auto")
    make_step(model, cfg)(triplets(8), 1.0)
    assert "--chunksize auto: chunks of 8 texts" in capsys.readouterr().out  # plenty of memory: the whole batch
    tight = TrainConfig(output=str(tmp_path), batch_size=8, gradcache=True, chunk_size="auto", max_memory="1MB")
    with pytest.raises(ValueError, match="max_memory"):
        make_step(model, tight)


def test_config_validates_the_new_fields():
    with pytest.raises(ValueError, match=r"chunk_size.*max_memory.*data_parallel"):
        TrainConfig(output="x", chunk_size=0, max_memory="lots", data_parallel="both")
    assert TrainConfig(output="x", chunk_size="auto", max_memory="1.5GiB").max_memory == "1.5GiB"
