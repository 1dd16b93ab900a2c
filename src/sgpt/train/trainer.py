"""The training loop: MultipleNegativesRankingLoss on (anchor, positive[, negatives...]) examples.

The same code runs on CPU, one GPU or several processes (``torchrun`` / ``accelerate launch``,
see ``sgpt.train.distributed``), with or without GradCache (``sgpt.train.gradcache``). The
trainer does not know which task it trains: NLI and retrieval differ only in their examples
and evaluator.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import Tensor
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from sgpt.data.sampling import NoDuplicatesBatchSampler, length_sorted_batches
from sgpt.model.biencoder import BiEncoder
from sgpt.model.formatting import Role
from sgpt.train.checkpoints import (
    CHECKPOINTS,
    RUN_FILES,
    check_output,
    latest_checkpoint,
    restore_checkpoint,
    run_identity,
    save_checkpoint,
)
from sgpt.train.config import TrainConfig, parse_bytes
from sgpt.train.distributed import (
    all_reduce_gradients,
    barrier,
    broadcast_parameters,
    is_main_process,
    process_group,
    rank,
    sum_over_processes,
    training_device,
    world_size,
)
from sgpt.train.gradcache import (
    EmbedFn,
    auto_chunk_size,
    cached_loss,
    free_memory,
    memory_in_use,
)
from sgpt.train.losses import mnrl_global, split_columns
from sgpt.train.params import adamw
from sgpt.train.runlog import RunLog
from sgpt.utils.io import write_json

logger = logging.getLogger("sgpt.train")

Example = tuple[str, ...]
Evaluator = Callable[[BiEncoder], dict]
StepFn = Callable[[Sequence[Example], float], float]  # (micro-batch, loss scale) -> loss value

# ``replicate``: process r shuffles with seed + r * stride (+ epoch), distinct for any run < stride epochs.
REPLICA_SEED_STRIDE = 100_003


def batches_forever(sampler: NoDuplicatesBatchSampler) -> Iterator[list[int]]:
    """Yield index batches epoch after epoch (reshuffled per epoch, deterministic by seed).

    Raises:
        ValueError: an epoch yields no batch (too many duplicate texts to fill one), which
            would otherwise loop forever.
    """
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        n = 0
        for n, batch in enumerate(sampler, 1):
            yield batch
        if n == 0:
            raise ValueError(
                f"no batch of {sampler.batch_size} examples without duplicate texts can be formed; "
                "lower the batch size or add examples"
            )
        epoch += 1


def flatten_columns(batch: Sequence[Example]) -> list[str]:
    """``b`` examples of ``k`` texts -> ``k*b`` texts, column by column (anchors, positives, ...).

    Raises:
        ValueError: examples of different lengths in one batch.
    """
    k = len(batch[0])
    if any(len(ex) != k for ex in batch):
        raise ValueError("all examples of a batch must have the same number of texts")
    return [ex[c] for c in range(k) for ex in batch]


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on a CUDA device that supports it, else ``fp32``; others unchanged."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


SYMMETRIC: tuple[Role | None, ...] = (None,)  # one group: every text embedded alike (NLI)
QUERY_DOCUMENT: tuple[Role | None, ...] = ("query", "document")  # column 0 queries, the rest documents


def text_embedder(
    model: BiEncoder, micro_batch_size: int | None, precision: str, roles: Sequence[Role | None] = SYMMETRIC
) -> EmbedFn:
    """``(texts, group) -> [n, d]`` with gradient, under bf16 autocast if asked; group ``g`` is
    embedded in role ``roles[g]`` (its formatting and, for an asymmetric model, its tower); groups
    past the last role take the last one (e.g. one group per column: positives and negatives are
    all documents)."""
    device_type = model.device.type

    def embed(texts: Sequence[str], group: int) -> Tensor:
        autocast = (
            torch.autocast(device_type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        )
        with autocast:
            return model.embed(texts, micro_batch_size=micro_batch_size, role=roles[min(group, len(roles) - 1)])

    return embed


def length_order(model: BiEncoder, texts: Sequence[str], role: Role | None = None) -> list[int]:
    """Longest first, ties in input order: the order in which ``BiEncoder.embed`` cuts micro-batches."""
    lengths = [len(x) for x in model.token_ids(texts, role)]
    return [i for batch in length_sorted_batches(lengths, max(len(texts), 1)) for i in batch]


def column_groups(batch: Sequence[Example], roles: Sequence[Role | None]) -> list[list[str]]:
    """The texts of a batch grouped for embedding: one group of all ``k*b`` texts (symmetric), or
    the ``b`` queries and the ``(k-1)*b`` documents (positives, then negatives, column by column)."""
    texts = flatten_columns(batch)
    if len(roles) == 1:
        return [texts]
    return [texts[: len(batch)], texts[len(batch) :]]


def choose_chunk_size(model: BiEncoder, embed: EmbedFn, cfg: TrainConfig) -> int:
    """``chunk_size="auto"``: the largest chunk whose activations fit the memory left on the model's device.

    Budget = ``max_memory`` minus what the process holds now (default: the device's free
    memory), minus what the optimizer step has yet to allocate (gradients and AdamW's two
    moments of every trainable parameter).
    """
    device = model.device
    if cfg.max_memory is None:
        budget = free_memory(device)
    else:
        budget = parse_bytes(cfg.max_memory) - memory_in_use(device)
    budget -= sum(3 * p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    if budget <= 0:
        have = f"max_memory={cfg.max_memory}" if cfg.max_memory is not None else "the free memory"
        raise ValueError(
            f"chunk_size='auto': {have} does not even hold the model's gradients and optimizer "
            "state; raise max_memory or set an integer chunk_size"
        )
    probe = " ".join(["a"] * (model.max_seq_length + 8))  # truncated to max_seq_length tokens
    return auto_chunk_size(embed, probe, budget_bytes=budget, max_chunk=cfg.batch_size)


def make_step(model: BiEncoder, cfg: TrainConfig, roles: Sequence[Role | None] = SYMMETRIC) -> StepFn:
    """The micro-step of a run, chosen once: plain MNRL or GradCache (``cfg.gradcache``).

    The step embeds a batch, computes this process's MNRL (``sgpt.train.losses.mnrl_global``:
    the plain MNRL in a single process), back-propagates ``loss * loss_scale`` and returns the
    loss value. One tower embeds every column, so all ``k*b`` texts of a batch form one group,
    cut in length order into forward passes (plain: ``micro_batch_size`` texts; GradCache:
    ``chunk_size``), which keeps padding low. Both paths call the same embedding and loss
    functions; GradCache's loss only differs in what its backward does
    (``sgpt.train.gradcache.cached_loss``), and with ``micro_batch_size == chunk_size`` both
    run the very same forward passes (dropout masks included). With ``chunk_size="auto"`` the
    chunk is chosen here (printed on the main process).

    ``roles=QUERY_DOCUMENT`` (retrieval): column 0 holds queries, embedded as queries, and the
    other columns documents, embedded as documents (``BiEncoder.embed(role=...)``): two groups.
    """
    embed = text_embedder(model, cfg.micro_batch_size, resolve_precision(cfg.precision, model.device), roles)
    if cfg.gradcache:
        chunk = cfg.chunk_size if cfg.chunk_size != "auto" else choose_chunk_size(model, embed, cfg)
        if cfg.chunk_size == "auto" and is_main_process():
            print(f"--chunksize auto: chunks of {chunk} texts", flush=True)
        logger.info("GradCache with chunks of %d texts", chunk)

    def step(batch: Sequence[Example], loss_scale: float = 1.0) -> float:
        k = len(batch[0])

        def loss_fn(groups: list[Tensor]) -> Tensor:  # groups -> k columns [b, d]
            if len(groups) == 1:  # [k*b, d]
                return mnrl_global(split_columns(groups[0], k), scale=cfg.scale)
            return mnrl_global([groups[0], *split_columns(groups[1], k - 1)], scale=cfg.scale)

        groups = column_groups(batch, roles)
        if cfg.gradcache:
            loss = cached_loss(
                embed, groups, loss_fn, chunk, order=lambda texts, g: length_order(model, texts, roles[g])
            )
        else:
            loss = loss_fn([embed(texts, g) for g, texts in enumerate(groups)])
        (loss * loss_scale).backward()  # GradCache: this backward re-embeds the chunks (gradcache.cached_loss)
        return float(loss.detach())

    return step


def mnrl_step(model: BiEncoder, batch: Sequence[Example], cfg: TrainConfig, loss_scale: float = 1.0) -> float:
    """Forward, MultipleNegativesRankingLoss and backward for one micro-batch; returns the loss.

    All texts of the batch are embedded in one call, grouped by length into forward passes of
    ``cfg.micro_batch_size`` texts (little padding). Builds the step each call: a loop should
    call :func:`make_step` once.
    """
    return make_step(model, cfg)(batch, loss_scale)


def total_steps(n_batches_per_epoch: int, cfg: TrainConfig) -> int:
    """Optimizer steps of the run: ``max_steps``, else ``epochs * floor(batches / grad_accum)``.

    Raises:
        ValueError: the data holds fewer examples than one batch.
    """
    if n_batches_per_epoch < 1:
        raise ValueError(f"not enough training examples for one batch of {cfg.batch_size}")
    return cfg.max_steps or max(1, cfg.epochs * (n_batches_per_epoch // cfg.grad_accum))


def rank_batches(examples: Sequence[Example], cfg: TrainConfig) -> tuple[int, Iterator[list[int]]]:
    """(batches per epoch, endless stream of this process's index batches) for ``cfg.data_parallel``.

    ``shard``: every process draws the same global batches of ``processes * batch_size``
    examples (duplicate-free across the whole global batch) and takes its own slice.
    ``replicate``: every process walks the whole data set with its own shuffle (SPEC 1.12).
    One process: both are the plain sampler.
    """
    world, me, b = world_size(), rank(), cfg.batch_size
    if cfg.data_parallel == "shard":
        sampler = NoDuplicatesBatchSampler(examples, b * world, seed=cfg.seed, drop_last=True)
        return len(sampler), (batch[me * b : (me + 1) * b] for batch in batches_forever(sampler))
    # The sampler shuffles with seed + epoch: space the processes' seeds so no epochs coincide.
    sampler = NoDuplicatesBatchSampler(examples, b, seed=cfg.seed + REPLICA_SEED_STRIDE * me, drop_last=True)
    return len(sampler), batches_forever(sampler)


def fit(
    model: BiEncoder,
    examples: Sequence[Example],
    cfg: TrainConfig,
    *,
    evaluator: Evaluator | None = None,
    roles: Sequence[Role | None] = SYMMETRIC,
) -> dict:
    """Train ``model`` in place with MultipleNegativesRankingLoss (SPEC 1.9-1.12).

    AdamW (eps 1e-6, decay except biases and norm weights), linear warm-up then linear decay to
    0, gradient clipping once per optimizer step, gradient accumulation averaged over
    ``grad_accum`` micro-batches, batches without duplicate texts, optionally GradCache.
    Under ``torchrun`` / ``accelerate launch`` the processes train one model together
    (``cfg.data_parallel``): candidates are gathered from all processes, gradients are summed
    once per optimizer step, and only the main process evaluates, saves and writes logs. With an
    ``evaluator`` the model is scored every ``eval_steps`` and at the end and the best
    checkpoint is saved to ``cfg.output`` (atomically); without one the last model is saved there.

    Args:
        model: the bi-encoder to train (parameters already frozen as wanted).
        examples: tuples of texts, all of the same length ``k >= 2``.
        cfg: the run settings.
        evaluator: ``model -> {metric: value}`` on the dev set (called on the main process only).
        roles: ``SYMMETRIC`` (every text alike) or ``QUERY_DOCUMENT`` (column 0 queries, the rest
            documents; see :func:`make_step`).

    ``examples`` may change from epoch to epoch (``sgpt.data.RoundRobinExamples``): the sampler
    calls its ``set_epoch`` before each epoch. With ``cfg.checkpoint_every_epoch`` a checkpoint
    is written at the end of every epoch; with ``cfg.resume`` the run continues from the newest
    one with the same optimizer, schedule, random states, batches and logs.

    Returns:
        Summary dict: ``steps``, ``seconds``, ``final_loss`` (of the global batch), ``best_step``,
        ``best_score``, ``dev`` (last scores).

    Raises:
        ValueError: fewer examples than one batch, or nothing trainable.
    """
    with process_group():  # destroyed on exit, also on error (a live gloo group can abort the exit)
        return _train(model, examples, cfg, evaluator, roles)


def _train(
    model: BiEncoder,
    examples: Sequence[Example],
    cfg: TrainConfig,
    evaluator: Evaluator | None,
    roles: Sequence[Role | None],
) -> dict:
    main, device = is_main_process(), training_device()
    check_output(Path(cfg.output), cfg.resume)
    set_seed(cfg.seed + rank())  # each process its own dropout stream; rank 0 = the single-process run
    batches_per_epoch, batches = rank_batches(examples, cfg)
    steps = total_steps(batches_per_epoch, cfg)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil(cfg.warmup_ratio * steps)
    eval_every = cfg.eval_steps or max(1, int(0.1 * steps))
    model.to(device).train()
    broadcast_parameters(model)  # identical start on every process (e.g. randomly initialised heads)
    optimizer = adamw(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    step_fn = make_step(model, cfg, roles)  # plain or GradCache, chosen once
    tracker = None
    if cfg.log_with and main:
        tracker = Accelerator(log_with=list(cfg.log_with), project_dir=str(Path(cfg.output) / "runs"))
        tracker.init_trackers(cfg.project, config=cfg.to_dict())

    out = Path(cfg.output)
    log = RunLog(out, cfg.selection_metric)
    best = {"step": None, "score": -math.inf, "scores": {}}

    def evaluate(step: int) -> None:
        scores = evaluator(model)
        model.train()
        log.eval.append({"step": step, **scores})
        if tracker is not None:
            tracker.log({f"dev/{k}": v for k, v in scores.items()}, step=step)
        score = scores[cfg.selection_metric]
        tqdm.write(f"step {step}: dev {cfg.selection_metric} = {score:.4f}")
        if score > best["score"]:
            best.update(step=step, score=score, scores=scores)
            model.save(out, keep=RUN_FILES)
        log.write()

    steps_per_epoch = max(1, batches_per_epoch // cfg.grad_accum)
    first = 1
    run = run_identity(cfg, model, len(examples))
    resume_from = latest_checkpoint(out) if cfg.resume else None
    if cfg.resume and resume_from is None and main:
        print(f"--resume: no complete checkpoint in {out / CHECKPOINTS}; starting a new run", flush=True)
    if resume_from is not None:
        first = restore_checkpoint(resume_from, model, optimizer, scheduler, log, best, run) + 1
        for _ in range((first - 1) * cfg.grad_accum):  # the batches already trained on (sampling only)
            next(batches)
        if main:
            print(f"resuming from {resume_from} at step {first}", flush=True)

    logger.info(
        "training %d steps of %d examples x %d processes (warm-up %d, eval every %d)",
        steps,
        cfg.batch_size,
        world_size(),
        warmup,
        eval_every,
    )
    # a resumed run's clock continues from its last logged step, so train_log.csv's seconds keep rising
    earlier = float(log.train[-1]["seconds"]) if log.train else 0.0
    start, loss_value = time.perf_counter() - earlier, math.nan
    bar = tqdm(range(first, steps + 1), desc="train", unit="step", disable=not main, initial=first - 1, total=steps)
    for step in bar:
        losses = [step_fn([examples[i] for i in next(batches)], 1.0 / cfg.grad_accum) for _ in range(cfg.grad_accum)]
        all_reduce_gradients(trainable)  # once per optimizer step: after accumulation and GradCache, before clipping
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = sum_over_processes(sum(losses) / len(losses), device)  # shares -> global-batch loss
        lr = scheduler.get_last_lr()[0]
        bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
        log.train.append({"step": step, "loss": loss_value, "lr": lr, "seconds": round(time.perf_counter() - start, 3)})
        if tracker is not None:
            tracker.log({"train/loss": loss_value, "train/lr": lr}, step=step)
        if step % cfg.log_every == 0 and main:
            log.write()
        if evaluator is not None and (step % eval_every == 0 or step == steps):
            if main:
                evaluate(step)
            barrier()  # the others wait for the evaluation (and a checkpoint) to finish
        if cfg.checkpoint_every_epoch and (step % steps_per_epoch == 0 or step == steps):
            if main:
                save_checkpoint(out, step, model, optimizer, scheduler, log, best, run)
            barrier()
    seconds = time.perf_counter() - start
    if main:
        if evaluator is None:
            model.save(out, keep=RUN_FILES)
        log.write()
        write_json(
            out / "train_summary.json",
            {
                "config": cfg.to_dict(),
                "steps": steps,
                "seconds": seconds,
                "processes": world_size(),
                "final_loss": loss_value,
                "best_step": best["step"],
                "best_dev": best["scores"],
            },
        )
    if tracker is not None:
        tracker.end_training()
    barrier()  # the saved model is complete before any process returns
    model.eval()
    return {
        "steps": steps,
        "seconds": seconds,
        "final_loss": loss_value,
        "best_step": best["step"],
        "best_score": best["score"] if best["step"] is not None else None,
        "dev": best["scores"],
    }
