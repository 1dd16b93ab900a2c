"""The retrieval recipe (asymmetric search, SPEC 2.2): queries, positives and hard negatives -> MNRL
with queries and documents formatted (and, with ``asym``, embedded) by role -> nDCG@10 on BEIR sets.

Reads top to bottom: data, model, freezing, before-scores, training, after-scores.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from sgpt.data import RoundRobinExamples
from sgpt.data.beir import RetrievalData, load_beir
from sgpt.data.retrieval_examples import RetrievalExample, beir_examples, read_retrieval_examples
from sgpt.evaluation.beir import evaluate_retrieval
from sgpt.model.biencoder import BiEncoder
from sgpt.model.heads import HeadSpec
from sgpt.model.loader import load
from sgpt.model.spec import ModelSpec
from sgpt.recipes.common import claims_output, model_to_train
from sgpt.recipes.model_card import write_model_card
from sgpt.recipes.tasks import RetrievalTask
from sgpt.train.config import TrainConfig
from sgpt.train.distributed import is_main_process
from sgpt.train.step import QUERY_DOCUMENT
from sgpt.train.trainer import fit
from sgpt.utils.io import write_json

logger = logging.getLogger("sgpt.train")

SELECTION_METRIC = "ndcg@10"


def load_retrieval_examples(
    paths: Sequence[str | Path],
    *,
    split: str = "train",
    negatives: str | Path | None = None,
    skip_bad_rows: bool = False,
    mined_dir: str | Path | None = None,
) -> list[RetrievalExample]:
    """Training queries from every path: a BEIR-layout folder (its ``split`` qrels; hard negatives
    by id from ``negatives``, a ``sgpt mine-negatives`` file, or ``"bm25"`` to mine them now with
    BM25, top 30, written to ``mined_dir``) or a generic ``{query, pos: [...], neg: [...]}`` jsonl file.

    A path given twice is read once.

    Raises:
        ValueError: no training query at all.
    """
    examples: list[RetrievalExample] = []
    unique = list(dict.fromkeys(Path(p).resolve() for p in paths))
    if len(unique) < len(paths):
        logger.warning("a training path was given more than once; it is read once")
    for path in unique:
        if not path.is_dir():
            if negatives is not None:
                logger.warning(
                    "%s: --negatives applies to BEIR-layout folders; this file's own 'neg' lists are used", path
                )
            examples.extend(read_retrieval_examples(path, skip_bad_rows=skip_bad_rows))
            continue
        source = negatives
        if negatives == "bm25":
            source = mine_bm25_negatives(
                path, split, Path(mined_dir or ".") / f"{path.name}-bm25.jsonl", skip_bad_rows=skip_bad_rows
            )
        examples.extend(beir_examples(path, split, source, skip_bad_rows=skip_bad_rows))
    if not examples:
        raise ValueError(f"no training queries in {', '.join(map(str, paths))}")
    return examples


def mine_bm25_negatives(folder: str | Path, split: str, out: Path, *, k: int = 30, skip_bad_rows: bool = False) -> Path:
    """Mine BM25 hard negatives (top ``k``, positives skipped) for a BEIR split into ``out``."""
    from sgpt.search.bm25 import BM25Retriever
    from sgpt.search.mining import mine_negatives, write_negatives

    data = load_beir(folder, split, skip_bad_rows=skip_bad_rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_negatives(out, mine_negatives(data, BM25Retriever(data.corpus), k=k))
    logger.info("mined BM25 negatives for %d queries of %s into %s", len(data.queries), folder, out)
    return out


def with_negatives(examples: list[RetrievalExample], negatives_per_query: int) -> tuple[list[RetrievalExample], int]:
    """The examples to train on and the hard negatives per example.

    With ``negatives_per_query > 0``, queries without any hard negative are left out and counted
    (SGPT keeps a query only with a positive and a negative, SPEC 2.2); when no query has one, the
    run falls back to in-batch negatives only (0), with a warning.
    """
    if negatives_per_query == 0:
        return examples, 0
    kept = [e for e in examples if e.negatives]
    if not kept:
        logger.warning(
            "no hard negatives (--negatives): training with in-batch negatives only; mine some with "
            "`sgpt mine-negatives` or pass --negatives bm25"
        )
        return examples, 0
    if len(kept) < len(examples):
        logger.warning(
            "%d of %d training queries have no hard negative and are left out", len(examples) - len(kept), len(examples)
        )
    return kept, negatives_per_query


def beir_evaluator(
    path: str | Path, split: str, batch_size: int, *, precision: str | None = None, skip_bad_rows: bool = False
):
    """``model -> metrics`` (nDCG@k, MAP, recall, MRR) on a BEIR-layout split; data read once.
    Encoding shows progress bars on the main process."""
    return retrieval_evaluator(load_beir(path, split, skip_bad_rows=skip_bad_rows), batch_size, precision=precision)


def retrieval_evaluator(data: RetrievalData, batch_size: int, *, precision: str | None = None):
    """``model -> metrics`` (nDCG@k, MAP, recall, MRR@10) on ``data``, with progress bars on the main process."""

    def run(model: BiEncoder) -> dict:
        return evaluate_retrieval(
            model, data, batch_size=batch_size, precision=precision, show_progress=is_main_process()
        )

    return run


MINED_NEGATIVES = "negatives"  # <output>/negatives/<folder>-bm25.jsonl, kept with the model


@claims_output
def train_retrieval(
    model_name: str, task: RetrievalTask, cfg: TrainConfig, spec: ModelSpec | None = None, heads: HeadSpec | None = None
) -> dict:
    """Train a bi-encoder for asymmetric search with MNRL over in-batch and hard negatives (SPEC 2.2).

    Each epoch gives every training query one example ``(query, positive, negative_1..n)``,
    rotating round-robin through its positives and (once-shuffled) negatives
    (:class:`sgpt.data.RoundRobinExamples`). Column 0 is embedded as a query, the rest as
    documents (brackets/prompts of the spec's ``special_tokens``/``query_prompt``/``document_prompt``;
    separate towers with ``asym``).

    Args:
        model_name: hub id, folder or ``.gguf`` file of the backbone, or a saved bi-encoder.
        task: the data and scoring of the run.
        cfg: training settings (``checkpoint_every_epoch``/``resume`` for epoch checkpoints; ``freeze`` /
            ``freezenonbias``: see ``sgpt.train.params.apply_freezing``).
        spec: loading choices; pooling defaults to the saved bi-encoder's, else weightedmean (SGPT's
            choice), ``max_seq_length`` to ``task.max_seq_length``, the formatting to the saved one.
        heads: dense layers / learned pooling to add (SPEC 1.7); ``None``: none.

    Returns:
        ``{"train": fit summary, "n_queries", "before": {name: metrics} | None, "after": {name: metrics}}``,
        also written to ``<output>/eval/results.json``.

    Raises:
        ValueError: an output folder the run would destroy, bad data (file, line and field named), or
            no training query.
    """
    out = Path(cfg.output)
    model = model_to_train(model_name, spec, cfg, task.max_seq_length, heads)
    examples = load_retrieval_examples(
        task.train_data,
        split=task.split,
        negatives=task.negatives,
        skip_bad_rows=task.skip_bad_rows,
        mined_dir=out / MINED_NEGATIVES,
    )
    examples, negatives_per_query = with_negatives(examples, task.negatives_per_query)
    logger.info("%d training queries, %d hard negatives each", len(examples), negatives_per_query)
    tests = {Path(p).name: _evaluator(p, task.eval_split, cfg, task) for p in task.eval_data}
    before = None
    if task.eval_before and is_main_process():
        before = {name: run(model) for name, run in tests.items()}
        for name, scores in before.items():
            logger.info("before training: %s ndcg@10 = %.4f", name, scores["ndcg@10"])
    cfg = dataclasses.replace(cfg, selection_metric=SELECTION_METRIC)  # what a dev set would select on
    dev = _evaluator(task.dev_data, task.dev_split, cfg, task) if task.dev_data is not None else None
    data = RoundRobinExamples(examples, negatives_per_query=negatives_per_query, seed=cfg.seed)
    summary = fit(model, data, cfg, evaluator=dev, roles=QUERY_DOCUMENT)
    if not is_main_process():
        return {"train": summary, "n_queries": len(examples), "before": before, "after": None}
    trained = load(cfg.output) if tests else None
    after = {name: run(trained) for name, run in tests.items()}
    results = {"train": summary, "n_queries": len(examples), "before": before, "after": after}
    write_json(out / "eval" / "results.json", results)
    write_model_card(
        out, model, base_model=model_name, keep_existing=cfg.resume,
        data={"train": task.train_data, "dev": task.dev_data, "test": task.eval_data},
        counts={"training queries": len(examples), "hard negatives per example": negatives_per_query},
        scores={"dev, best step": summary["dev"], **{f"{n}, before training": v for n, v in (before or {}).items()},
                **{f"{n}, after training": v for n, v in after.items()}},
    )  # fmt: skip
    return results


def _evaluator(path: str | Path, split: str, cfg: TrainConfig, task: RetrievalTask):
    return beir_evaluator(
        path, split, cfg.eval_batch_size, precision=task.eval_precision, skip_bad_rows=task.skip_bad_rows
    )
