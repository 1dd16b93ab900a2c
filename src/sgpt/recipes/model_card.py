"""The model card (``README.md``) of a trained model folder, written from the run itself (SPEC 5, row 16).

SGPT's Hub cards described the training of other runs (stale for re-trained models). Here the
card is written at the end of a recipe from what the run did: the command line, the data and
its counts, the steps and batch sizes, the hardware, the loss and the final scores (read from
the run's ``train_summary.json``), and how to load the folder in sgpt and in
sentence-transformers. The front matter is the Hub's model-card metadata.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sgpt.model.biencoder import BiEncoder
from sgpt.train.checkpoints import MODEL_CARD
from sgpt.train.distributed import is_main_process
from sgpt.train.interrupt import command_line
from sgpt.utils.io import atomic_write_text, read_json
from sgpt.version import __version__

Scores = Mapping[str, Mapping[str, Any] | None]  # set name -> {metric: value} (None: not scored)


def write_model_card(
    out: str | Path,
    model: BiEncoder,
    *,
    base_model: str,
    data: Mapping[str, Sequence[str | Path] | str | Path | None],
    counts: Mapping[str, int],
    scores: Scores,
    argv: Sequence[str] | None = None,
    keep_existing: bool = False,
) -> Path | None:
    """Write ``out/README.md`` (atomically, main process only) describing the finished run in ``out``.

    Args:
        out: the run's output folder (holds ``train_summary.json``).
        model: the trained model (its pooling, length and formatting are described).
        base_model: what the run started from (``--model``).
        data: role -> path(s), e.g. ``{"train": [...], "dev": ..., "test": ...}`` (``None`` left out).
        counts: what was counted, e.g. ``{"training examples": 20, "NLI pairs": 14}``.
        scores: set name -> metrics, e.g. ``{"test (STS-B), after training": {...}}``.
        argv: the command line (default ``sys.argv``), shown shell-quoted.
        keep_existing: leave a card that is there already (``--resume`` of a finished run changes nothing).

    Returns:
        The card's path, or ``None`` on the other processes.
    """
    if not is_main_process():
        return None
    out = Path(out)
    if keep_existing and (out / MODEL_CARD).is_file():
        return out / MODEL_CARD
    summary_file = out / "train_summary.json"
    summary = read_json(summary_file) if summary_file.is_file() else {}
    text = model_card_text(
        out.name, model, base_model=base_model, data=data, counts=counts, scores=scores, summary=summary, argv=argv
    )
    atomic_write_text(out / MODEL_CARD, text)
    return out / MODEL_CARD


def _command(argv: Sequence[str] | None) -> str:
    argv = list(sys.argv if argv is None else argv)
    cmd = command_line(argv)
    return shlex.join(cmd) if cmd is not None else f"{shlex.join(argv)}  # from Python (sgpt.recipes)"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a" if value is None else str(value)
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _paths(value: Sequence[str | Path] | str | Path) -> str:
    values = [value] if isinstance(value, (str, Path)) else list(value)
    return ", ".join(f"`{v}`" for v in values)


def model_card_text(
    name: str,
    model: BiEncoder,
    *,
    base_model: str,
    data: Mapping[str, Sequence[str | Path] | str | Path | None],
    counts: Mapping[str, int],
    scores: Scores,
    summary: Mapping[str, Any],
    argv: Sequence[str] | None = None,
) -> str:
    """The card's Markdown (see :func:`write_model_card`); ``summary`` is the run's ``train_summary.json``."""
    cfg = summary.get("config", {})
    processes = int(summary.get("processes") or 1)
    batch = cfg.get("batch_size")
    accum = int(cfg.get("grad_accum") or 1)
    global_batch = batch * processes * accum if isinstance(batch, int) else None
    best_step, best_dev = summary.get("best_step"), summary.get("best_dev") or {}
    metric = cfg.get("selection_metric", "score")
    rows = [
        *[(f"{role} data", _paths(paths)) for role, paths in data.items() if paths],
        *[(what, str(n)) for what, n in counts.items()],
        ("optimizer steps", str(summary.get("steps"))),
        ("epochs", f"{cfg.get('epochs')}" + (f" (max_steps {cfg['max_steps']})" if cfg.get("max_steps") else "")),
        (
            "batch",
            f"{batch} per process × {processes} process{'es' if processes > 1 else ''}"
            + (f" × {accum} accumulated micro-batches" if accum > 1 else "")
            + f" = {global_batch} examples per optimizer step ({cfg.get('data_parallel')})",
        ),
        (
            "learning rate",
            f"{cfg.get('lr')} (AdamW, linear warm-up then decay, weight decay {cfg.get('weight_decay')})",
        ),
        (
            "loss",
            f"MultipleNegativesRankingLoss, scale {cfg.get('scale')}" + (", GradCache" if cfg.get("gradcache") else ""),
        ),
        ("precision", str(cfg.get("precision"))),
        ("trainable parameters", _trainable(cfg)),
        ("hardware", f"{summary.get('device', 'n/a')}, {processes} process{'es' if processes > 1 else ''}"),
        ("training time", f"{float(summary.get('seconds') or 0):.1f} s"),
        ("final loss", _number(summary.get("final_loss"))),
        ("seed", str(cfg.get("seed"))),
    ]
    if best_step is not None:
        rows.append(("best dev step", f"{best_step} ({metric} = {_number(best_dev.get(metric))}; the saved model)"))
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: sentence-similarity",
        "tags: [sentence-transformers, feature-extraction, sentence-similarity, sgpt]",
        f"base_model: {json.dumps(str(base_model))}",
        "---",
        "",
        f"# {name}",
        "",
        f"A bi-encoder trained with sgpt {__version__} from `{base_model}`: {_architecture(model)}.",
        "",
        "## Training",
        "",
        "```bash",
        _command(argv),
        "```",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
        "Logs: `train_log.csv` (loss per step), `eval_log.csv` (dev scores), `train_summary.json`, "
        "`eval/results.json`.",
        "",
        "## Results",
        "",
        *_score_lines(scores),
        "## Usage",
        "",
        *_usage(name, model),
    ]
    return "\n".join(lines) + "\n"


def _trainable(cfg: Mapping[str, Any]) -> str:
    if cfg.get("freeze"):
        what = "added heads only (transformer frozen)"
    elif cfg.get("freezenonbias"):
        what = "biases only (BitFit)"
    else:
        return "all"
    return what + (" + token embeddings" if cfg.get("unfreezewte") else "")


def _architecture(model: BiEncoder) -> str:
    fmt = model.text_format
    parts = [
        f"{model.pooling} pooling",
        f"max_seq_length {model.max_seq_length}",
        f"{model.embedding_dim}-dimensional embeddings" + (", normalized" if model.normalize else ""),
    ]
    if model.is_asymmetric:
        parts.append("separate query and document towers")
    if fmt.special_tokens:
        parts.append(f"{fmt.special_tokens} brackets around queries and documents")
    if fmt.query_prompt or fmt.document_prompt:
        parts.append(f"query prompt {fmt.query_prompt!r}, document prompt {fmt.document_prompt!r}")
    if fmt.chat_template:
        parts.append("texts rendered with the chat template")
    return ", ".join(parts)


def _score_lines(scores: Scores) -> list[str]:
    """A table of every set's scores; of the ranking metrics only those at cut-off 10 (all in ``eval/results.json``)."""
    table = [
        (name, k, v)
        for name, metrics in scores.items()
        if metrics
        for k, v in metrics.items()
        if "@" not in k or k.endswith("@10")
    ]
    if not table:
        return ["No evaluation set was scored.", ""]
    return ["| set | metric | value |", "|---|---|---|", *[f"| {n} | {k} | {_number(v)} |" for n, k, v in table], ""]


def _usage(name: str, model: BiEncoder) -> list[str]:
    formatted = not model.text_format.is_plain or model.is_asymmetric
    sgpt_lines = [
        "```python",
        "import sgpt",
        "",
        f'model = sgpt.load("{name}")  # the folder (or its Hub id once uploaded)',
    ]
    if formatted:
        sgpt_lines += [
            'queries = model.encode_queries(["how do cats sleep?"])  # the query formatting of the training',
            'documents = model.encode_documents(["Cats sleep most of the day."])',
        ]
    else:
        sgpt_lines += ['embeddings = model.encode(["A man is playing a guitar.", "Someone plays music."])']
    sgpt_lines += ["```", ""]
    st_lines = [
        "With sentence-transformers:",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        f'model = SentenceTransformer("{name}")',
    ]
    if formatted:
        st_lines += [
            'queries = model.encode_query(["how do cats sleep?"])',
            'documents = model.encode_document(["Cats sleep most of the day."])',
            "```",
            "",
        ]
        if model.text_format.special_tokens:
            st_lines += [
                "sentence-transformers does not add the bracket tokens "
                f"({model.text_format.special_tokens}); use sgpt for the embeddings the model was trained with.",
                "",
            ]
    else:
        st_lines += ['embeddings = model.encode(["A man is playing a guitar.", "Someone plays music."])', "```", ""]
    return ["With sgpt:", "", *sgpt_lines, *st_lines]
