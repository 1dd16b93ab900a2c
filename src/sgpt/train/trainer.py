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
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from sgpt.data.sampling import NoDuplicatesBatchSampler  # noqa: F401  (tests reach it as trainer.NoDuplicatesBatchSampler)
from sgpt.model.biencoder import BiEncoder
from sgpt.model.formatting import Role
from sgpt.train.batching import rank_batches, total_steps
from sgpt.train.checkpoints import (
    CHECKPOINTS,
    KEPT_ON_SAVE,
    CheckpointWriteError,
    DamagedCheckpoint,
    checkpoint_size,
    claimed_output,
    complete_checkpoints,
    finished_summary,
    latest_checkpoint,
    prune_checkpoints,
    restore_checkpoint,
    run_identity,
    save_checkpoint,
)
from sgpt.train.config import TrainConfig
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
from sgpt.train.interrupt import StopRequest, resume_command, stop_signals, stopped
from sgpt.train.params import adamw
from sgpt.train.runlog import RunLog
from sgpt.train.step import SYMMETRIC, Example, StepFn, make_step
from sgpt.train.tracking import Tracking, check_trackers, start_tracking
from sgpt.utils.io import check_free_space, write_json

logger = logging.getLogger("sgpt.train")

Evaluator = Callable[[BiEncoder], dict]


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
    is written at the end of every epoch, at every dev evaluation and every ``cfg.checkpoint_steps``
    steps (the newest two are kept); with ``cfg.resume`` the run continues from the newest intact
    one with the same optimizer, schedule, random states, batches, best model and logs.

    SIGTERM or SIGINT during the run (handlers installed for the call only, see
    ``sgpt.train.interrupt``) stops it after the current step, on every process together: the
    main process saves a checkpoint and prints the command that resumes it.

    Returns:
        Summary dict: ``steps``, ``seconds``, ``final_loss`` (of the global batch), ``best_step``,
        ``best_score``, ``dev`` (last scores).

    Raises:
        ValueError: fewer examples than one batch, nothing trainable, or a tracker that is not installed.
        TrainingTerminated: SIGTERM stopped the run (a ``SystemExit`` with status 143).
        TrainingInterrupted: SIGINT stopped the run (a ``KeyboardInterrupt``).
    """
    check_trackers(cfg.log_with)
    # handlers for the call only; a signal while setting up is acted on after the first step
    with process_group(), claimed_output(Path(cfg.output), cfg.resume, cfg.overwrite), stop_signals() as stop:
        return _train(model, examples, cfg, evaluator, roles, stop)  # the group is destroyed also on error


@dataclass
class _Run:
    """The live state of one training run on this process, and what it does besides the steps:
    evaluate and keep the best model, checkpoint, log, and finish."""

    model: BiEncoder
    cfg: TrainConfig
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    evaluator: Evaluator | None
    identity: dict
    log: RunLog
    tracker: Tracking = field(default_factory=Tracking)
    best: dict = field(default_factory=lambda: {"step": None, "score": -math.inf, "scores": {}})
    intact: list[Path] = field(default_factory=list)  # checkpoints known whole: written or verified by this run
    stop: StopRequest = field(default_factory=StopRequest)

    @property
    def out(self) -> Path:
        return Path(self.cfg.output)

    def evaluate(self, step: int) -> None:
        """Score the model on the dev set (main process); save it when it is the best so far."""
        assert self.evaluator is not None
        scores = self.evaluator(self.model)
        self.model.train()
        self.log.eval.append({"step": step, **scores})
        self.tracker.log({f"dev/{k}": v for k, v in scores.items()}, step=step)
        score = scores[self.cfg.selection_metric]
        tqdm.write(f"step {step}: dev {self.cfg.selection_metric} = {score:.4f}")
        if score > self.best["score"]:
            with self.writing(f"the best model (step {step})", self.out):
                self.model.save(self.out, keep=KEPT_ON_SAVE, overwrite=True)
            self.best.update(step=step, score=score, scores=scores)
        with self.writing("the training logs", self.out):
            self.log.write()

    @contextlib.contextmanager
    def writing(self, what: str, where: Path) -> Iterator[None]:
        """Turn a failed write (full disk, lost permissions) into one line saying what was kept."""
        try:
            yield
        except OSError as e:
            if isinstance(e, CheckpointWriteError):
                raise
            kept = latest_checkpoint(self.out)
            best = f"{self.out} holds the best model of step {self.best['step']}" if self.best["step"] else ""
            parts = [
                p
                for p in (best, f"the newest intact checkpoint is {kept} (continue with --resume)" if kept else "")
                if p
            ]
            raise CheckpointWriteError(
                f"could not write {what} to {where} ({e.strerror or e}); " + ("; ".join(parts) or "nothing was kept")
            ) from e

    def checkpoint(self, step: int) -> Path:
        """Save the checkpoint of ``step`` (main process), then delete those older than the newest two."""
        args = (self.model, self.optimizer, self.scheduler, self.log, self.best, self.identity)
        folder = save_checkpoint(self.out, step, *args)
        self.intact = [p for p in self.intact if p != folder] + [folder]
        prune_checkpoints(self.out, self.intact)
        return folder

    def resume(self, batches: Iterator[list[int]]) -> int:
        """With ``cfg.resume``: restore the newest complete checkpoint and skip the batches it had
        trained on; returns the first step to run (1 for a new run)."""
        if not self.cfg.resume:
            return 1
        args = (self.model, self.optimizer, self.scheduler, self.log, self.best, self.identity)
        found, first = None, 1
        for candidate in complete_checkpoints(self.out):
            try:
                first = restore_checkpoint(candidate, *args) + 1
            except DamagedCheckpoint as e:
                if is_main_process():
                    print(f"--resume: {e}; falling back to an older checkpoint", flush=True)
                continue
            found = candidate
            self.intact.append(candidate)  # verified just now
            break
        if found is None:
            if is_main_process():
                print(f"--resume: no intact checkpoint in {self.out / CHECKPOINTS}; starting a new run", flush=True)
            return 1
        for _ in range((first - 1) * self.cfg.grad_accum):  # the batches already trained on (sampling only)
            next(batches)
        if is_main_process():
            print(f"resuming from {found} at step {first}", flush=True)
        return first

    def summary(self, steps: int, seconds: float, loss: float) -> dict:
        """Save the last model when no dev set chose one, write the logs and ``train_summary.json``
        (main process), and return the summary of :func:`fit`."""
        if is_main_process():
            if self.evaluator is None:
                with self.writing("the trained model", self.out):
                    self.model.save(self.out, keep=KEPT_ON_SAVE, overwrite=True)
            with self.writing("the training logs", self.out):
                self.log.write()
            write_json(
                self.out / "train_summary.json",
                {
                    "config": self.cfg.to_dict(),
                    "steps": steps,
                    "seconds": seconds,
                    "processes": world_size(),
                    "device": device_name(self.model.device),
                    "final_loss": loss,
                    "best_step": self.best["step"],
                    "best_dev": self.best["scores"],
                    "run": self.identity,
                },
            )
        best_score = self.best["score"] if self.best["step"] is not None else None
        return {
            "steps": steps,
            "seconds": seconds,
            "final_loss": loss,
            "best_step": self.best["step"],
            "best_score": best_score,
            "dev": self.best["scores"],
        }


def device_name(device: torch.device) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA H200)``: the device of a run, for its summary and model card."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _train(
    model: BiEncoder,
    examples: Sequence[Example],
    cfg: TrainConfig,
    evaluator: Evaluator | None,
    roles: Sequence[Role | None],
    stop: StopRequest,
) -> dict:
    main, device = is_main_process(), training_device()
    set_seed(cfg.seed + rank())  # each process its own dropout stream; rank 0 = the single-process run
    batches_per_epoch, batches = rank_batches(examples, cfg)
    steps = total_steps(batches_per_epoch, cfg)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil(cfg.warmup_ratio * steps)
    eval_every = cfg.eval_steps or max(1, int(0.1 * steps))
    steps_per_epoch = max(1, batches_per_epoch // cfg.grad_accum)
    model.to(device).train()
    broadcast_parameters(model)  # identical start on every process (e.g. randomly initialised heads)
    optimizer = adamw(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = _Run(
        model,
        cfg,
        optimizer,
        get_linear_schedule_with_warmup(optimizer, warmup, steps),
        evaluator,
        run_identity(cfg, model, len(examples)),
        RunLog(Path(cfg.output), cfg.selection_metric),
    )
    if cfg.resume and (done := finished_summary(run.out, run.identity)) is not None:
        if main:
            print(f"--resume: {run.out} holds the finished run ({done.get('steps')} steps); nothing to do", flush=True)
        model.eval()
        return _finished(done, cfg.selection_metric)
    if main:  # a checkpoint (or the model, saved beside the old one) must fit: find out now, not at the end
        needed = checkpoint_size(model) if cfg.checkpoint_every_epoch else 2 * checkpoint_size(model, moments=False)
        check_free_space(run.out, needed, "a checkpoint" if cfg.checkpoint_every_epoch else "saving the model")
    trainable = [p for p in model.parameters() if p.requires_grad]
    step_fn = make_step(model, cfg, roles)  # plain or GradCache, chosen once
    first = run.resume(batches)
    evaluation = f", dev evaluation every {eval_every}" if evaluator is not None else ", no dev evaluation"
    logger.info(
        "training %d steps of %d examples x %d processes (warm-up %d%s)",
        steps, cfg.batch_size, world_size(), warmup, evaluation,
    )  # fmt: skip
    # a resumed run's clock continues from its last logged step, so train_log.csv's seconds keep rising
    earlier = float(run.log.train[-1]["seconds"]) if run.log.train else 0.0
    last = float(run.log.train[-1]["loss"]) if run.log.train else math.nan  # a resume may run no step
    start = time.perf_counter() - earlier
    plan = _Plan(steps, eval_every if evaluator is not None else None, steps_per_epoch, cfg.checkpoint_every_epoch,
                 cfg.checkpoint_steps)  # fmt: skip
    run.stop, run.tracker = stop, start_tracking(cfg, model)
    try:
        loss = _loop(run, plan, range(first, steps + 1), start, examples, batches, step_fn, trainable)
    finally:
        run.tracker.finish()  # also on a stop or an error: W&B's run is closed, wandb.watch's hooks removed
    summary = run.summary(steps, time.perf_counter() - start, last if loss is None else loss)
    barrier()  # the saved model is complete before any process returns
    model.eval()
    return summary


@dataclass(frozen=True)
class _Plan:
    """When a run of ``steps`` optimizer steps evaluates (``eval_every``; ``None``: no dev set)
    and saves checkpoints (with ``checkpoints``: epoch ends, evaluations, every ``checkpoint_steps``)."""

    steps: int
    eval_every: int | None
    steps_per_epoch: int
    checkpoints: bool
    checkpoint_steps: int | None

    def evaluates(self, step: int) -> bool:
        return self.eval_every is not None and (step % self.eval_every == 0 or step == self.steps)

    def saves(self, step: int) -> bool:
        # at each evaluation too: the best model just saved and the eval log then resume together
        periodic = self.checkpoint_steps is not None and step % self.checkpoint_steps == 0
        ends = step % self.steps_per_epoch == 0 or step == self.steps
        return self.checkpoints and (ends or periodic or self.evaluates(step))


def _loop(
    run: _Run,
    plan: _Plan,
    steps: range,
    start: float,
    examples: Sequence[Example],
    batches: Iterator[list[int]],
    step_fn: StepFn,
    trainable: list,
) -> float | None:
    """Run ``steps`` with their evaluations and checkpoints; returns the last loss (``None``: no step).

    Raises:
        TrainingTerminated, TrainingInterrupted: a stop signal came (see :func:`_stop`).
    """
    cfg, main, loss = run.cfg, is_main_process(), None
    bar = tqdm(desc="train", unit="step", disable=not main, initial=steps.start - 1, total=plan.steps)
    for step in steps:
        lr = run.scheduler.get_last_lr()[0]  # the rate this step runs at (the schedule moves on after it)
        loss = _optimizer_step(run, step_fn, [[examples[i] for i in next(batches)] for _ in range(cfg.grad_accum)],
                               trainable)  # fmt: skip
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
        bar.update(1)  # before any evaluation, so the bar shows the step as done while it is scored
        run.log.train.append({"step": step, "loss": loss, "lr": lr, "seconds": round(time.perf_counter() - start, 3)})
        run.tracker.log({"train/loss": loss, "train/lr": float(lr)}, step=step)
        if step % cfg.log_every == 0 and main:
            run.log.write()
        evaluate, checkpoint = plan.evaluates(step), plan.saves(step)
        if evaluate or checkpoint:
            with _off_the_clock(bar):
                _between_steps(run, step, evaluate, checkpoint)
        # every process asks, every step (one small all-reduce); after the last step the run just finishes
        if step < plan.steps and (signum := run.stop.agreed(run.model.device)) is not None:
            bar.close()
            _stop(run, step, signum, saved=checkpoint)
    bar.close()
    return loss


def _stop(run: _Run, step: int, signum: int, saved: bool) -> None:
    """End a run stopped by ``signum`` after ``step``: the main process saves a checkpoint (unless
    the step just saved one) and the logs, prints how to resume; every process raises.

    Raises:
        TrainingTerminated, TrainingInterrupted: always (see ``sgpt.train.interrupt``).
    """
    folder = run.out / CHECKPOINTS / f"checkpoint-{step}"
    if is_main_process():
        if not saved:  # also with checkpoints off: without one the run could not be resumed
            folder = run.checkpoint(step)
        with run.writing("the training logs", run.out):
            run.log.write()
    barrier()
    error = stopped(signum, step, folder, resume_command())
    if is_main_process():
        print(f"sgpt: {error.message}", file=sys.stderr, flush=True)
    raise error


def _finished(summary: dict, metric: str) -> dict:
    """:func:`fit`'s summary of a run finished earlier, from its ``train_summary.json``."""
    best = summary.get("best_dev") or {}
    return {
        "steps": summary.get("steps"),
        "seconds": summary.get("seconds"),
        "final_loss": summary.get("final_loss"),
        "best_step": summary.get("best_step"),
        "best_score": best.get(metric),
        "dev": best,
    }


class NonFiniteTraining(ValueError):
    """The loss or the gradient norm of a step is not finite; the run stopped before the update."""


def _optimizer_step(run: _Run, step_fn: StepFn, micro_batches: list[list[Example]], trainable: list) -> float:
    """One optimizer step over ``grad_accum`` micro-batches; returns the loss of the global batch.

    Raises:
        NonFiniteTraining: the loss or the gradient norm is NaN or infinite (the weights are left as
            they were before the step; see :func:`_check_finite`).
    """
    cfg = run.cfg
    losses = [step_fn(batch, 1.0 / cfg.grad_accum) for batch in micro_batches]
    all_reduce_gradients(trainable)  # once per optimizer step: after accumulation and GradCache, before clipping
    # max_norm=inf measures the norm without scaling anything
    norm = float(torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm or math.inf))
    loss = sum_over_processes(sum(losses) / len(losses), run.model.device)  # shares -> global-batch loss
    _check_finite(run, loss, norm)  # same loss and norm on every process: all stop together
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return loss


def _check_finite(run: _Run, loss: float, norm: float) -> None:
    """Stop before a NaN/inf loss or gradient reaches the weights, naming the step, the last finite
    loss and the checkpoint that was kept; nothing more is saved."""
    if math.isfinite(loss) and math.isfinite(norm):
        return
    step = len(run.log.train) + 1
    last = next((r for r in reversed(run.log.train) if math.isfinite(float(r["loss"]))), None)
    before = (
        f"the last finite loss was {float(last['loss']):.4f} at step {last['step']}" if last else "no step before it"
    )
    kept = latest_checkpoint(run.out)
    saved = f"the newest checkpoint is {kept}" if kept else "no checkpoint was written"
    if run.best["step"] is not None:
        saved += f"; {run.out} holds the best model so far (step {run.best['step']})"
    raise NonFiniteTraining(
        f"step {step}: the loss is {loss} and the gradient norm {norm}: training stopped before this update "
        f"({before}; {saved}); lower --lr, check the data, or use --precision fp32"
    )


def _between_steps(run: _Run, step: int, evaluate: bool, checkpoint: bool) -> None:
    """Dev evaluation and/or an epoch checkpoint on the main process; the others wait for it."""
    if evaluate:
        if is_main_process():
            run.evaluate(step)
        barrier()
    if checkpoint:
        if is_main_process():
            run.checkpoint(step)
        barrier()


@contextlib.contextmanager
def _off_the_clock(bar: tqdm) -> Iterator[None]:
    """Work inside (an evaluation, a checkpoint) is not counted into the bar's elapsed time and s/step."""
    if bar.disable:
        yield
        return
    paused = time.time()  # tqdm's own clock
    try:
        yield
    finally:
        pause = time.time() - paused
        bar.start_t += pause  # elapsed and rate exclude the pause
        bar.last_print_t += pause
