"""Read and write the sentence-transformers folder format (SPEC 2.4).

Layout written by ``save_folder`` (stock sentence-transformers 2.x–6.x loads it):

    modules.json                     [{idx, name, path, type}, ...]
    config.json, model.safetensors   the transformer (root folder)
    tokenizer files                  incl. the pad token
    sentence_bert_config.json        {max_seq_length, do_lower_case}
    config_sentence_transformers.json
    {i}_Dense/                       layers before pooling (module_input_name = token_embeddings)
    {i}_Pooling/config.json          legacy boolean keys (every sentence-transformers version reads them)
    {i}_Dense/                       layers after pooling
    {i}_Normalize/                   when the model normalises
    sgpt_format.json                 query/document formatting (specb/speca/prompts), when not plain

Prompts are also written to ``config_sentence_transformers.json`` (``prompts``: ``query`` and
``document``), so sentence-transformers' ``encode_query``/``encode_document`` apply them too.
Brackets have no sentence-transformers equivalent (it only knows string prefixes): a stock
sentence-transformers load of a specb/speca model embeds without them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file, save_file

import sgpt
from sgpt.model.backbone import load_backbone
from sgpt.model.biencoder import BiEncoder
from sgpt.model.formatting import TextFormat
from sgpt.model.heads import Dense, activation_from_string
from sgpt.model.pooling import POOLING_MODES, check_pooling_mode
from sgpt.utils.io import atomic_dir, read_json, write_json

logger = logging.getLogger("sgpt.model")

ST = "sentence_transformers.models."
FORMAT_FILE = "sgpt_format.json"
UNSET = object()  # "keep what the folder says" for arguments where None is a real value
# Legacy pooling keys of sentence-transformers <= 5 (SPEC 1.3) -> our mode names.
LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def pooling_config(mode: str, dim: int) -> dict:
    """The ``Pooling/config.json`` for ``mode``, with the legacy boolean keys."""
    config: dict = {"word_embedding_dimension": dim}
    config.update({key: name == mode for key, name in LEGACY_POOLING_KEYS.items()})
    return config


def pooling_mode_from_config(config: dict, where: str) -> str:
    """Read the pooling mode from a legacy (boolean keys) or current (``pooling_mode``) config.

    Raises:
        ValueError: several modes at once, or a mode sgpt does not implement (naming ``where``).
    """
    if "pooling_mode" in config:
        modes = config["pooling_mode"]
        modes = [modes] if isinstance(modes, str) else list(modes)
    else:
        modes = [name for key, name in LEGACY_POOLING_KEYS.items() if config.get(key)] or ["mean"]
    if len(modes) != 1:
        raise ValueError(f"{where}: concatenated pooling modes {modes} are not supported; use one mode")
    if modes[0] not in POOLING_MODES:
        raise ValueError(f"{where}: pooling mode {modes[0]!r} is not supported; expected one of {', '.join(POOLING_MODES)}")
    return modes[0]


def _save_dense(head: Dense, folder: Path) -> None:
    folder.mkdir(parents=True)
    write_json(folder / "config.json", head.st_config())
    save_file({k: v.detach().contiguous().cpu() for k, v in head.state_dict().items() if k.startswith("linear.")},
              str(folder / "model.safetensors"))


def _load_dense(folder: Path, position: str) -> Dense:
    config = read_json(folder / "config.json")
    if config.get("use_residual"):
        raise ValueError(f"{folder}/config.json: Dense use_residual=true is not supported")
    head = Dense(int(config["in_features"]), int(config["out_features"]), bias=bool(config.get("bias", True)),
                 activation=activation_from_string(config.get("activation_function", "identity")), position=position)
    weights = folder / "model.safetensors"
    state = load_file(str(weights)) if weights.exists() else torch.load(folder / "pytorch_model.bin", map_location="cpu")
    head.load_state_dict({k: v for k, v in state.items() if k.startswith("linear.")})
    return head


def save_folder(model: BiEncoder, path: str | Path, *, keep: Sequence[str] = ()) -> Path:
    """Save ``model`` as a sentence-transformers folder, atomically (temp folder, then rename).

    Entries of an existing folder named in ``keep`` (training logs) are carried over.

    Returns:
        ``Path(path)``.
    """
    modules = [{"idx": 0, "name": "0", "path": "", "type": ST + "Transformer"}]
    with atomic_dir(path, keep) as tmp:
        model.backbone.save_pretrained(tmp, safe_serialization=True)
        model.tokenizer.save_pretrained(tmp)
        write_json(tmp / "sentence_bert_config.json",
                   {"max_seq_length": model.max_seq_length, "do_lower_case": model.do_lower_case})
        hidden = int(model.backbone.config.hidden_size)
        for position in ("before", "after"):
            if position == "after":
                idx = len(modules)
                modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Pooling", "type": ST + "Pooling"})
                (tmp / f"{idx}_Pooling").mkdir()
                write_json(tmp / f"{idx}_Pooling" / "config.json", pooling_config(model.pooling, hidden))
            for head in (h for h in model.dense if h.position == position):
                idx = len(modules)
                modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Dense", "type": ST + "Dense"})
                _save_dense(head, tmp / f"{idx}_Dense")
                if position == "before":
                    hidden = head.out_features
        if model.normalize:
            idx = len(modules)
            modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Normalize", "type": ST + "Normalize"})
            (tmp / f"{idx}_Normalize").mkdir()
        write_json(tmp / "modules.json", modules)
        fmt = model.text_format
        if not fmt.is_plain:
            write_json(tmp / FORMAT_FILE, fmt.to_dict())
        prompts = {k: v for k, v in (("query", fmt.query_prompt), ("document", fmt.document_prompt)) if v}
        write_json(tmp / "config_sentence_transformers.json", {
            "__version__": {"sgpt": sgpt.__version__, "transformers": transformers.__version__,
                            "pytorch": torch.__version__},
            "prompts": prompts,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        })
    return Path(path)


def _module_kind(entry: dict, where: str) -> str:
    kind = str(entry.get("type", "")).rsplit(".", 1)[-1]
    if kind not in ("Transformer", "Pooling", "Dense", "Normalize"):
        raise ValueError(f"{where}: module type {entry.get('type')!r} is not supported "
                         "(expected Transformer, Pooling, Dense or Normalize)")
    return kind


def resolve_hub_folder(name: str | Path) -> Path:
    """A local path for ``name``: itself when it exists locally; for a hub id of a
    sentence-transformers model (one with ``modules.json``), its downloaded snapshot; otherwise
    ``Path(name)`` unchanged, so a plain hub backbone is loaded by transformers as usual."""
    path = Path(name)
    if path.exists():
        return path
    if str(name).startswith((".", "/", "~")) or (path.parent != Path(".") and path.parent.is_dir()):
        raise FileNotFoundError(f"no such model file or folder: {name}")  # a local path, not a hub id
    if str(name).count("/") > 1:
        return path
    try:
        from huggingface_hub import hf_hub_download, snapshot_download

        hf_hub_download(str(name), "modules.json")
        return Path(snapshot_download(str(name)))
    except Exception:  # offline, missing repo or no modules.json: let transformers decide and report
        return path


def load(
    name_or_path: str | Path,
    *,
    pooling: str | None = None,
    max_seq_length: int | None = None,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    special_tokens: str | None | object = UNSET,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> BiEncoder:
    """Load a bi-encoder.

    ``name_or_path`` is a sentence-transformers folder (``modules.json``; also published ones
    with legacy pooling keys, ``Dense`` and ``Normalize`` modules), a plain transformers
    folder, a hub id, or a ``.gguf`` file. Arguments left ``None`` come from the saved folder;
    a given argument overrides it (a plain backbone defaults to ``mean`` pooling).

    Args:
        name_or_path: where to load from.
        pooling: ``mean | weightedmean | lasttoken | cls | max``.
        max_seq_length: truncation length in tokens.
        dtype: ``float32`` (default) or ``bfloat16`` weights.
        device: where to put the model (default CPU).
        special_tokens: ``"specb"``, ``"speca"`` or ``None`` (SPEC 1.4); default: the saved choice.
        query_prompt, document_prompt: prompts (string prefixes); default: the saved ones
            (``sgpt_format.json``, else sentence-transformers' ``prompts`` ``query`` and
            ``document``/``passage``).

    Returns:
        A ``BiEncoder`` in eval mode.

    Raises:
        ValueError: unsupported module types or pooling configs, naming the file.
        OSError: the model cannot be found.
    """
    if pooling is not None:
        check_pooling_mode(pooling)
    root = resolve_hub_folder(name_or_path)
    modules_file = root / "modules.json"
    if not modules_file.exists():
        backbone, tokenizer = load_backbone(name_or_path, dtype=dtype)
        fmt = _text_format({}, special_tokens, query_prompt, document_prompt)
        model = BiEncoder(backbone, tokenizer, pooling=pooling or "mean", max_seq_length=max_seq_length,
                          text_format=fmt)
        return model.to(device or "cpu").eval()

    entries = sorted(read_json(modules_file), key=lambda e: int(e["idx"]))
    kinds = [_module_kind(e, str(modules_file)) for e in entries]
    if kinds.count("Transformer") != 1 or kinds[0] != "Transformer":
        raise ValueError(f"{modules_file}: expected exactly one Transformer module, first; got {kinds}")
    sub = entries[0].get("path", "")
    backbone, tokenizer = load_backbone(root, dtype=dtype, subfolder=sub)
    st_config = root / sub / "sentence_bert_config.json"
    saved = read_json(st_config) if st_config.exists() else {}
    saved_pooling, dense, normalize, seen_pooling = None, [], False, False
    for entry, kind in zip(entries[1:], kinds[1:]):
        folder = root / entry["path"]
        if kind == "Pooling":
            saved_pooling = pooling_mode_from_config(read_json(folder / "config.json"), str(folder / "config.json"))
            seen_pooling = True
        elif kind == "Dense":
            dense.append(_load_dense(folder, "after" if seen_pooling else "before"))
        elif kind == "Normalize":
            normalize = True
    if pooling and saved_pooling and pooling != saved_pooling:
        logger.warning("%s was saved with %s pooling; using %s as asked", root, saved_pooling, pooling)
    model = BiEncoder(
        backbone, tokenizer,
        pooling=pooling or saved_pooling or "mean",
        max_seq_length=max_seq_length or saved.get("max_seq_length"),
        dense=dense, normalize=normalize, do_lower_case=bool(saved.get("do_lower_case", False)),
        text_format=_text_format(saved_format(root), special_tokens, query_prompt, document_prompt),
    )
    return model.to(device or "cpu").eval()


def saved_format(root: Path) -> dict:
    """The formatting saved in a folder: ``sgpt_format.json``, else the ``query`` and
    ``document`` (or ``passage``) prompts of ``config_sentence_transformers.json``."""
    if (root / FORMAT_FILE).exists():
        return read_json(root / FORMAT_FILE) | {"where": str(root / FORMAT_FILE)}
    st_file = root / "config_sentence_transformers.json"
    prompts = (read_json(st_file).get("prompts") or {}) if st_file.exists() else {}
    return {"query_prompt": prompts.get("query", ""),
            "document_prompt": prompts.get("document", prompts.get("passage", ""))}


def _text_format(saved: dict, special_tokens, query_prompt: str | None, document_prompt: str | None) -> TextFormat:
    """The saved formatting with the given arguments on top (``UNSET``/``None`` keep the saved value)."""
    saved = dict(saved)
    where = saved.pop("where", "text format")
    fmt = TextFormat.from_dict(saved, where)
    return TextFormat(
        special_tokens=fmt.special_tokens if special_tokens is UNSET else special_tokens,
        query_prompt=fmt.query_prompt if query_prompt is None else query_prompt,
        document_prompt=fmt.document_prompt if document_prompt is None else document_prompt,
    )
