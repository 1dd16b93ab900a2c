"""The MS MARCO recipe (SGPT's ``train_bi-encoder_mnrl.py``, SPEC 2.2): MS MARCO's own files ->
margin-filtered hard negatives -> MNRL with queries and passages by role -> MRR@10 / nDCG@10 on dev.

Reads top to bottom: find the files, model, hard negatives, passages (read from disk when a batch
needs them: the collection is never held as text), training, dev scores.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from sgpt.data import RoundRobinExamples
from sgpt.data.beir import RetrievalData
from sgpt.data.msmarco import (
    CE_SCORES,
    COLLECTION,
    DEV_QRELS,
    DEV_QUERIES,
    HARD_NEGATIVES,
    TRAIN_QUERIES,
    dev_corpus,
    load_ce_scores,
    read_dev_judgments,
    read_hard_negatives,
    read_tsv_queries,
)
from sgpt.data.passages import PassageStore, PassageTexts
from sgpt.data.retrieval_examples import RetrievalExample
from sgpt.data.rows import few
from sgpt.model.heads import HeadSpec
from sgpt.model.loader import load
from sgpt.model.spec import ModelSpec
from sgpt.recipes.common import claims_output, model_to_train
from sgpt.recipes.tasks import MSMarcoTask
from sgpt.recipes.train_retrieval import retrieval_evaluator
from sgpt.train.config import TrainConfig
from sgpt.train.distributed import is_main_process
from sgpt.train.step import QUERY_DOCUMENT
from sgpt.train.trainer import fit
from sgpt.utils.io import write_json

logger = logging.getLogger("sgpt.train")

HUB_DATASET = "sentence-transformers/msmarco-hard-negatives"
DEV_NAME = "msmarco-dev"

_ROLES = {
    COLLECTION: "the passages",
    TRAIN_QUERIES: "the training queries",
    HARD_NEGATIVES: "the mined hard negatives",
    CE_SCORES: "the cross-encoder scores",
    DEV_QUERIES: "the dev queries (--eval-dev)",
    DEV_QRELS: "the dev judgments (--eval-dev)",
}


@dataclass(frozen=True)
class MSMarcoFiles:
    """Where each MS MARCO file of a run is (SPEC 2.2); the dev files only with ``eval_dev``."""

    collection: Path
    train_queries: Path
    hard_negatives: Path
    ce_scores: Path
    dev_queries: Path | None = None
    dev_qrels: Path | None = None


def msmarco_files(data: str | Path, *, dev: bool = False) -> MSMarcoFiles:
    """Find the files of ``--data``.

    A folder must hold MS MARCO's own files (``collection.tsv``, ``queries.train.tsv``, and
    ``queries.dev.small.tsv`` + ``qrels.dev.tsv`` with ``dev``); the two files of the hub data set
    :data:`HUB_DATASET` (hard negatives, cross-encoder scores) are taken from the folder when it
    holds them, else from that data set through ``huggingface_hub`` (downloaded into its cache when
    the hub can be reached, else read from the cache). A hub data set name as ``data`` takes every
    file from that data set (:data:`HUB_DATASET` itself holds only its two files).

    Raises:
        FileNotFoundError: a file is missing, in one line naming it and where it was looked for.
        ValueError: ``data`` is a file, not a folder.
    """
    names = [COLLECTION, TRAIN_QUERIES, HARD_NEGATIVES, CE_SCORES] + ([DEV_QUERIES, DEV_QRELS] if dev else [])
    folder = Path(data)
    if folder.is_dir():
        return MSMarcoFiles(*(_folder_file(folder, name, names) for name in names))
    if folder.exists():
        raise ValueError(f"--data {data}: not a folder (expected a folder holding {', '.join(names)})")
    if not _hub_name(str(data)):
        raise FileNotFoundError(f"--data {data}: no such folder (expected one holding {', '.join(names)})")
    return MSMarcoFiles(*(_hub_file(str(data), name, f"--data {data} is not a folder here") for name in names))


def _folder_file(folder: Path, name: str, names: list[str]) -> Path:
    path = folder / name
    if path.is_file():
        return path
    if name not in (HARD_NEGATIVES, CE_SCORES):
        raise FileNotFoundError(f"{path}: missing ({_ROLES[name]}); --data {folder} must hold {', '.join(names)}")
    return _hub_file(HUB_DATASET, name, f"{path}: missing ({_ROLES[name]})")


def _hub_name(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~"))


def _hub_file(repo: str, name: str, why: str) -> Path:
    """``name`` of the hub data set ``repo``: downloaded (reachable hub) or from the cache; ``why``
    starts the error message (where the file was looked for first)."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    from sgpt.model.backbone import hub_reachable

    online = hub_reachable()
    try:
        return Path(hf_hub_download(repo, name, repo_type="dataset", local_files_only=not online))
    except LocalEntryNotFoundError:  # first: it is also an EntryNotFoundError
        raise FileNotFoundError(
            f"{why}; the Hugging Face hub cannot be reached to download {name} from the data set {repo}, "
            f"and the cache {constants.HF_HUB_CACHE} does not hold it"
        ) from None
    except (EntryNotFoundError, RepositoryNotFoundError):
        raise FileNotFoundError(
            f"{why}; the hub data set {repo} has no {name} ({_ROLES[name]}): put MS MARCO's files "
            "(https://microsoft.github.io/msmarco/) in a folder and pass it as --data"
        ) from None


def msmarco_examples(
    files: MSMarcoFiles, passages: PassageStore, task: MSMarcoTask, seed: int
) -> list[RetrievalExample]:
    """The training queries: query text, positive and hard-negative **pids** (SPEC 2.2's filter,
    :func:`sgpt.data.read_hard_negatives`). With ``use_all_queries`` a query left without a
    negative gets one random passage of the collection (one batch needs one tuple length; SGPT's
    script would fail on such a query).

    Raises:
        ValueError: no training query, or ids missing from the queries or the collection (unless
            ``skip_bad_rows``: then such queries / ids are left out and counted).
    """
    hard = read_hard_negatives(
        files.hard_negatives,
        load_ce_scores(files.ce_scores),  # GBs for the real file: freed when the filter is done
        ce_score_margin=task.ce_score_margin,
        num_negs_per_system=task.num_negs_per_system,
        negs_to_use=task.negs_to_use,
        use_all_queries=task.use_all_queries,
        max_lines=task.train_dataset_max_size,
    )
    queries = read_tsv_queries(files.train_queries, skip_bad_rows=task.skip_bad_rows, keep={h.query_id for h in hard})
    _check_ids(
        [h.query_id for h in hard if h.query_id not in queries], f"queries without text in {files.train_queries}", task
    )
    pids = (p for h in hard for p in (*h.positives, *h.negatives))
    _check_ids(sorted({p for p in pids if p not in passages}), f"passages not in {files.collection}", task)
    rng = random.Random(seed)
    examples: list[RetrievalExample] = []
    drawn = 0
    for h in hard:
        positives = [p for p in h.positives if p in passages]
        negatives = [p for p in h.negatives if p in passages]
        if h.query_id not in queries or not positives or (not negatives and not task.use_all_queries):
            continue
        if not negatives:
            negatives, drawn = [_random_passage(passages, set(positives), rng)], drawn + 1
        examples.append(RetrievalExample(queries[h.query_id], positives, negatives, h.query_id))
    if drawn:
        logger.warning("--use-all-queries: %d queries without a hard negative got a random passage", drawn)
    if not examples:
        raise ValueError(f"{files.hard_negatives}: no training query is left (with a positive and a hard negative)")
    return examples


def _check_ids(missing: list[str], what: str, task: MSMarcoTask) -> None:
    if not missing:
        return
    if not task.skip_bad_rows:
        raise ValueError(f"{len(missing)} {what}: {few(missing)} (--skip-bad-rows leaves them out)")
    logger.warning("left out %d %s: %s", len(missing), what, few(missing))


def _random_passage(passages: PassageStore, exclude: set[str], rng: random.Random) -> str:
    for _ in range(100):
        pid = passages.pid_at(rng.randrange(len(passages)))
        if pid not in exclude:
            return pid
    raise ValueError("--use-all-queries: the collection holds no passage besides the positives")


@claims_output
def train_msmarco(
    model_name: str, task: MSMarcoTask, cfg: TrainConfig, spec: ModelSpec | None = None, heads: HeadSpec | None = None
) -> dict:
    """Train a bi-encoder on MS MARCO with MNRL over in-batch and mined hard negatives (SPEC 2.2).

    Each epoch gives every training query one example ``(query, positive, negative)``, rotating
    round-robin through its positives and once-shuffled hard negatives
    (:class:`sgpt.data.RoundRobinExamples`, as SGPT's ``MSMARCODataset``); the passages are read
    from ``collection.tsv`` when a batch needs them (:class:`sgpt.data.passages.PassageStore`).
    Column 0 is embedded as a query, the others as documents (see :func:`train_retrieval`).
    The cross-encoder scores are unpickled with a restricted unpickler
    (:func:`sgpt.data.msmarco.load_ce_scores`).

    Args:
        model_name: hub id, folder or ``.gguf`` file of the backbone, or a saved bi-encoder.
        task: the data and scoring of the run.
        cfg: training settings (``checkpoint_every_epoch``/``resume`` for epoch checkpoints).
        spec: loading choices (pooling default weightedmean, length ``task.max_seq_length``).
        heads: dense layers / learned pooling to add (SPEC 1.7); ``None``: none.

    Returns:
        ``{"train": fit summary, "n_queries", "before": None, "after": {"msmarco-dev": metrics} or {}}``,
        also written to ``<output>/eval/results.json``.

    Raises:
        FileNotFoundError: a file of ``task.data`` is missing (before the model is loaded).
        ValueError: an output folder the run would destroy, bad data (file, line and field named),
            or no training query.
    """
    files = msmarco_files(task.data, dev=task.eval_dev)  # every file is there before weights load
    judgments = None
    if task.eval_dev and is_main_process():  # parse the dev files now, not after hours of training
        assert files.dev_queries is not None and files.dev_qrels is not None  # msmarco_files(dev=True) found them
        judgments = read_dev_judgments(files.dev_queries, files.dev_qrels, skip_bad_rows=task.skip_bad_rows)
    model = model_to_train(model_name, spec, cfg, task.max_seq_length, heads)
    passages = PassageStore(files.collection, skip_bad_rows=task.skip_bad_rows)
    examples = msmarco_examples(files, passages, task, cfg.seed)
    n_queries = len(examples)
    logger.info("%d training queries from %s (%d passages)", n_queries, task.data, len(passages))
    data = PassageTexts(RoundRobinExamples(examples, negatives_per_query=1, seed=cfg.seed), passages)
    del examples  # RoundRobinExamples holds its own lists: one copy of the ids during training
    summary = fit(model, data, cfg, roles=QUERY_DOCUMENT)  # no dev selection: SGPT keeps the last model
    results = {"train": summary, "n_queries": n_queries, "before": None, "after": None}
    if not is_main_process():
        return results
    after = {}
    if judgments is not None:
        queries, qrels = judgments
        dev = RetrievalData(dev_corpus(passages, qrels, task.dev_corpus_max_size), queries, qrels, name=DEV_NAME)
        after[DEV_NAME] = retrieval_evaluator(dev, cfg.eval_batch_size)(load(cfg.output))
        logger.info(
            "%s: mrr@10 = %.4f, ndcg@10 = %.4f", DEV_NAME, after[DEV_NAME]["mrr@10"], after[DEV_NAME]["ndcg@10"]
        )
    results["after"] = after
    write_json(Path(cfg.output) / "eval" / "results.json", results)
    return results
