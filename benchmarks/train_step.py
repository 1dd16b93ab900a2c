"""One MNRL training step, sgpt vs sentence-transformers, in one run (same model, data, batch, precision).

    python benchmarks/train_step.py                 # SmolLM2-135M, 32 SNLI triplets, max length 75
    python benchmarks/train_step.py --steps 3 --model minilm
    python benchmarks/train_step.py --chat-template   # texts in SmolLM2's chat template on both sides

Both sides train from the same weights on batches from SNLI dev+test triplets with a
no-duplicates sampler: sentence-transformers through its own trainer (``SentenceTransformerTrainer``,
``BatchSamplers.NO_DUPLICATES``), sgpt through ``sgpt.train.trainer.mnrl_step`` + AdamW. The
first step of each is a warm-up and not timed. Before timing, the loss of one identical batch is
computed by both and must agree. Prints seconds per step and the speed-up, and writes
``benchmarks/results/train_step_<model>[_chat].json`` and a bar plot.

``--chat-template`` trains on texts rendered with the chat template on both sides: what
sentence-transformers 6 does by default with a plain SmolLM2 folder (the issue's reference run);
sgpt then computes the template head shared by all texts once per micro-batch
(``sgpt.model.prefix``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import REPO, minilm_path, smollm2_path, snli_triplets


def st_model(path: str, pooling: str, max_len: int, chat: bool = False):
    """sentence-transformers on the same backbone, pooling, max length and formatting.

    Built from a folder that sgpt saves: raw text unless ``chat`` (a plain SmolLM2 folder would
    make sentence-transformers 6 wrap every text in the chat template); with ``chat`` the folder
    says so and sentence-transformers renders the template.
    """
    from sentence_transformers import SentenceTransformer

    import sgpt

    folder = REPO / "runs" / f"bench-st-{Path(path).name}-{pooling}-{max_len}{'-chat' if chat else ''}"
    if not (folder / "modules.json").exists():
        sgpt.load(path, pooling=pooling, max_seq_length=max_len, chat_template=chat).save(folder)
    return SentenceTransformer(str(folder), device="cpu")


def st_step_times(path, pooling, max_len, triplets, batch, steps, lr, chat=False):
    """Seconds per optimizer step of sentence-transformers' trainer (first step excluded)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers
    from transformers import TrainerCallback

    model = st_model(path, pooling, max_len, chat)
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

    ds = Dataset.from_dict({k: [t[i] for t in triplets] for i, k in enumerate(["anchor", "positive", "negative"])})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(REPO / "runs" / "bench-st"),
        per_device_train_batch_size=batch,
        max_steps=steps + 1,
        learning_rate=lr,
        warmup_ratio=0.1,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        report_to="none",
        save_strategy="no",
        logging_steps=1000,
        seed=0,
        dataloader_drop_last=True,
        use_cpu=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=ds, loss=MultipleNegativesRankingLoss(model), callbacks=[Timer()]
    )
    trainer.train()
    return times[1:]


def sgpt_step_times(path, pooling, max_len, triplets, batch, steps, lr, micro, chat=False):  # noqa: PLR0913 - the benchmark's knobs
    """Seconds per optimizer step of sgpt's MNRL step + AdamW (first step excluded)."""

    import sgpt
    from sgpt.data import NoDuplicatesBatchSampler
    from sgpt.train.config import TrainConfig
    from sgpt.train.params import adamw
    from sgpt.train.step import mnrl_step

    model = sgpt.load(path, pooling=pooling, max_seq_length=max_len, chat_template=chat).train()
    cfg = TrainConfig(output=str(REPO / "runs" / "bench-sgpt"), batch_size=batch, lr=lr, micro_batch_size=micro)
    opt = adamw(model, lr=lr)
    sampler, times = NoDuplicatesBatchSampler(triplets, batch, seed=0), []
    for _, idx in zip(range(steps + 1), sampler, strict=False):
        t = time.perf_counter()
        mnrl_step(model, [triplets[j] for j in idx], cfg, 1.0)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return times[1:]


def same_loss(path, pooling, max_len, triplets, chat=False) -> tuple[float, float]:
    """MNRL loss of one batch under sentence-transformers and under sgpt (must agree)."""
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    import sgpt
    from sgpt.train.losses import mnrl_from_columns

    st = st_model(path, pooling, max_len, chat)
    cols = [[t[i] for t in triplets] for i in range(3)]
    with torch.no_grad():
        feats = [st.preprocess(c) for c in cols]
        st_loss = float(MultipleNegativesRankingLoss(st)(feats, None))
        model = sgpt.load(path, pooling=pooling, max_seq_length=max_len, chat_template=chat)
        ours = float(mnrl_from_columns([model.embed(c) for c in cols]))
    return st_loss, ours


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["smollm2", "minilm"], default="smollm2")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=3, help="timed steps per side (plus one warm-up)")
    p.add_argument("--max-seq-length", type=int, default=75)
    p.add_argument("--micro-batch-size", type=int, default=32)
    p.add_argument(
        "--chat-template",
        action="store_true",
        help="render texts with the chat template on both sides (sentence-transformers' default for SmolLM2)",
    )
    args = p.parse_args()
    chat = args.chat_template
    torch.manual_seed(0)
    path = smollm2_path() if args.model == "smollm2" else minilm_path()
    pooling = "weightedmean" if args.model == "smollm2" else "mean"
    triplets = snli_triplets(2000)
    st_loss, our_loss = same_loss(path, pooling, args.max_seq_length, triplets[: args.batch_size], chat)
    print(f"loss on one batch: sentence-transformers {st_loss:.6f}  sgpt {our_loss:.6f}")
    assert abs(st_loss - our_loss) < 1e-4 * max(1.0, abs(st_loss)), "losses disagree"
    ours = sgpt_step_times(
        path, pooling, args.max_seq_length, triplets, args.batch_size, args.steps, 2e-5, args.micro_batch_size, chat
    )
    st = st_step_times(path, pooling, args.max_seq_length, triplets, args.batch_size, args.steps, 2e-5, chat)
    s_ours, s_st = sum(ours) / len(ours), sum(st) / len(st)
    result = {
        "model": args.model,
        "chat_template": chat,
        "batch_size": args.batch_size,
        "max_seq_length": args.max_seq_length,
        "threads": torch.get_num_threads(),
        "sgpt_s_per_step": s_ours,
        "st_s_per_step": s_st,
        "speedup": s_st / s_ours,
        "sgpt_steps": ours,
        "st_steps": st,
    }
    print(json.dumps(result, indent=2))
    print(f"sgpt {s_ours:.2f} s/step, sentence-transformers {s_st:.2f} s/step: {s_st / s_ours:.2f}x")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    tag = f"{args.model}{'_chat' if chat else ''}"
    (out / f"train_step_{tag}.json").write_text(json.dumps(result, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(["sentence-transformers", "sgpt"], [s_st, s_ours], color=["tab:gray", "tab:blue"])
    ax.set_ylabel("seconds per step")
    ax.set_title(f"MNRL step, {tag}, batch {args.batch_size}: {s_st / s_ours:.2f}x")
    fig.tight_layout()
    fig.savefig(out / f"train_step_{tag}.png", dpi=100)


if __name__ == "__main__":
    main()
