"""The training loop: MultipleNegativesRankingLoss on (anchor, positive[, negatives...]) examples.

Built on ``accelerate`` so the same code runs on CPU, one GPU or several. The trainer does not
know which task it trains: NLI and retrieval differ only in their examples and evaluator.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from sgpt.data.sampling import NoDuplicatesBatchSampler
from sgpt.model.biencoder import BiEncoder
from sgpt.train.config import TrainConfig
from sgpt.train.losses import mnrl_from_columns, split_columns
from sgpt.train.params import adamw
from sgpt.train.runlog import RunLog
from sgpt.utils.io import write_json

logger = logging.getLogger("sgpt.train")

# Files the trainer writes next to the saved model; a new best checkpoint keeps them.
LOG_FILES = ("train_log.csv", "eval_log.csv", "training_curve.png", "train_summary.json", "runs", "eval")

Example = tuple[str, ...]
Evaluator = Callable[[BiEncoder], dict]


def batches_forever(sampler: NoDuplicatesBatchSampler) -> Iterator[list[int]]:
    """Yield index batches epoch after epoch (reshuffled per epoch, deterministic by seed)."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from sampler
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


def mnrl_step(model: BiEncoder, batch: Sequence[Example], cfg: TrainConfig, accelerator: Accelerator,
              loss_scale: float) -> float:
    """Forward, MultipleNegativesRankingLoss and backward for one micro-batch; returns the loss.

    All texts of the batch are embedded in one call, grouped by length into forward passes of
    ``cfg.micro_batch_size`` texts, so little compute goes to padding.
    """
    texts = flatten_columns(batch)
    with accelerator.autocast():
        emb = model.embed(texts, micro_batch_size=cfg.micro_batch_size)  # [k*b, d]
    loss = mnrl_from_columns(split_columns(emb, len(batch[0])), scale=cfg.scale)
    accelerator.backward(loss * loss_scale)
    return float(loss.detach())


def total_steps(n_batches_per_epoch: int, cfg: TrainConfig) -> int:
    """Optimizer steps of the run: ``max_steps``, else ``epochs * floor(batches / grad_accum)``.

    Raises:
        ValueError: the data holds fewer examples than one batch.
    """
    if n_batches_per_epoch < 1:
        raise ValueError(f"not enough training examples for one batch of {cfg.batch_size}")
    return cfg.max_steps or max(1, cfg.epochs * (n_batches_per_epoch // cfg.grad_accum))


def fit(model: BiEncoder, examples: Sequence[Example], cfg: TrainConfig, *,
        evaluator: Evaluator | None = None) -> dict:
    """Train ``model`` in place with MultipleNegativesRankingLoss (SPEC 1.9, 1.11).

    AdamW (eps 1e-6, decay except biases and norm weights), linear warm-up then linear decay to
    0, gradient clipping once per optimizer step, gradient accumulation averaged over
    ``grad_accum`` micro-batches, batches without duplicate texts. With an ``evaluator`` the
    model is scored every ``eval_steps`` and at the end and the best checkpoint is saved to
    ``cfg.output`` (atomically); without one the last model is saved there.

    Args:
        model: the bi-encoder to train (parameters already frozen as wanted).
        examples: tuples of texts, all of the same length ``k >= 2``.
        cfg: the run settings.
        evaluator: ``model -> {metric: value}`` on the dev set.

    Returns:
        Summary dict: ``steps``, ``seconds``, ``final_loss``, ``best_step``, ``best_score``, ``dev`` (last scores).

    Raises:
        ValueError: fewer examples than one batch, or nothing trainable.
    """
    accelerator = Accelerator(mixed_precision="bf16" if cfg.precision == "bf16" else "no",
                              log_with=list(cfg.log_with) or None, project_dir=str(Path(cfg.output) / "runs"))
    set_seed(cfg.seed)
    sampler = NoDuplicatesBatchSampler(examples, cfg.batch_size, seed=cfg.seed, drop_last=True)
    steps = total_steps(len(sampler), cfg)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil(cfg.warmup_ratio * steps)
    eval_every = cfg.eval_steps or max(1, int(0.1 * steps))
    model.to(accelerator.device).train()
    optimizer = adamw(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if cfg.log_with:
        accelerator.init_trackers(cfg.project, config=cfg.to_dict())

    out = Path(cfg.output)
    log = RunLog(out, cfg.selection_metric)
    best = {"step": None, "score": -math.inf, "scores": {}}

    def evaluate(step: int) -> None:
        scores = evaluator(model)
        model.train()
        log.eval.append({"step": step, **scores})
        accelerator.log({f"dev/{k}": v for k, v in scores.items()}, step=step)
        score = scores[cfg.selection_metric]
        tqdm.write(f"step {step}: dev {cfg.selection_metric} = {score:.4f}")
        if score > best["score"]:
            best.update(step=step, score=score, scores=scores)
            model.save(out, keep=LOG_FILES)
        log.write()

    logger.info("training %d steps of %d examples (warm-up %d, eval every %d)", steps, cfg.batch_size, warmup, eval_every)
    batches, start, loss_value = batches_forever(sampler), time.perf_counter(), math.nan
    bar = tqdm(range(1, steps + 1), desc="train", unit="step", disable=not accelerator.is_main_process)
    for step in bar:
        losses = []
        for _ in range(cfg.grad_accum):
            batch = [examples[i] for i in next(batches)]
            losses.append(mnrl_step(model, batch, cfg, accelerator, 1.0 / cfg.grad_accum))
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = sum(losses) / len(losses)
        lr = scheduler.get_last_lr()[0]
        bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
        log.train.append({"step": step, "loss": loss_value, "lr": lr, "seconds": round(time.perf_counter() - start, 3)})
        accelerator.log({"train/loss": loss_value, "train/lr": lr}, step=step)
        if step % cfg.log_every == 0 and accelerator.is_main_process:
            log.write()
        if evaluator is not None and accelerator.is_main_process and (step % eval_every == 0 or step == steps):
            evaluate(step)
    seconds = time.perf_counter() - start
    if accelerator.is_main_process:
        if evaluator is None:
            model.save(out, keep=LOG_FILES)
        log.write()
        write_json(out / "train_summary.json", {"config": cfg.to_dict(), "steps": steps, "seconds": seconds,
                                                "final_loss": loss_value, "best_step": best["step"],
                                                "best_dev": best["scores"]})
    accelerator.end_training()
    model.eval()
    return {"steps": steps, "seconds": seconds, "final_loss": loss_value, "best_step": best["step"],
            "best_score": best["score"] if best["step"] is not None else None, "dev": best["scores"]}
