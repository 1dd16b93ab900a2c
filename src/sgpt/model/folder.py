"""Read and write the sentence-transformers folder format (SPEC 2.4).

Layout written by ``save_folder`` (stock sentence-transformers 2.x–6.x loads it):

    modules.json                     [{idx, name, path, type}, ...]
    config.json, model.safetensors   the transformer (root folder)
    tokenizer files                  incl. the pad token
    sentence_bert_config.json        {max_seq_length, do_lower_case}
    config_sentence_transformers.json
    {i}_Dense/                       layers before pooling (module_input_name = token_embeddings)
    {i}_Pooling/config.json          legacy boolean keys (every sentence-transformers version reads them)
    {i}_Pooling/sgpt_pooling.json    {"pooling": "lasttoken_legacy"} for SGPT's buggy last token only
                                     (config.json says lasttoken: sentence-transformers uses the
                                     corrected last token, sgpt reloads the legacy one)
    {i}_WeightedMeanPooling/         instead of {i}_Pooling for a learned pooling (--learntmean), in
                                     the SGPT fork's layout (sgpt.model.learnt_pooling); stock
                                     sentence-transformers cannot load this module type
    {i}_Dense/                       layers after pooling
    {i}_Normalize/                   when the model normalises
    sgpt_format.json                 query/document formatting (specb/speca/prompts/chat template),
                                     when not plain

An asymmetric model (separate query and document towers, SPEC 1.8) is written in the layout that
sentence-transformers' ``Router.for_query_document`` saves (v6 writes the same; versions before 5,
which have no ``Router``, cannot load it), with the Router in place of the root transformer:

    modules.json                     [Router (path ""), Pooling, Dense..., Normalize]
    router_config.json               {types, structure: {query: [...], document: [...]},
                                      parameters: {default_route, allow_empty_key, route_mappings: {}}}
    query_0_Transformer/             query tower: config.json, model.safetensors, tokenizer files,
                                     sentence_bert_config.json
    document_0_Transformer/          document tower, same files (the tokenizer is the same)
    query_{i}_Dense/                 layers before pooling, listed in both routes (saved once, shared)
    {i}_Pooling/, {i}_Dense/, {i}_Normalize/, config_sentence_transformers.json, sgpt_format.json
                                     as above

:mod:`sgpt.model.loader` reads this layout back (``load``); it also reads Routers that
sentence-transformers built (route names ``query``/``document``) and the ``Asym`` folders of
SGPT's own ``--asym`` models (``0_Asym/config.json``, routes ``QRY``/``DOCPOS``/``DOCNEG``);
everything after the transformers must be shared by both routes.

Prompts are also written to ``config_sentence_transformers.json`` (``prompts``: ``query`` and
``document``), so sentence-transformers' ``encode_query``/``encode_document`` apply them too.
Brackets have no sentence-transformers equivalent (it only knows string prefixes): a stock
sentence-transformers load of a specb/speca model embeds without them.

A plain backbone whose tokenizer has a chat template (SmolLM2-Instruct) loads with it on, as
sentence-transformers 6 builds it, so both libraries embed a plain folder alike;
``chat_template=False`` (``--no-chat-template``) embeds raw text, as SGPT did. A model that
embeds through the chat template writes sentence-transformers 6's ``modality_config`` with the
``message`` modality into ``sentence_bert_config.json``, so sentence-transformers renders the
template too (and prompts as system messages); any other model writes no ``modality_config``,
so sentence-transformers embeds its plain text even when the tokenizer has a chat template. A
folder whose ``modality_config`` has ``message`` loads with ``chat_template=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
import transformers
from safetensors.torch import save_file

from sgpt.model.biencoder import BiEncoder
from sgpt.model.formatting import ROLES, Role
from sgpt.model.heads import Dense
from sgpt.model.learnt_pooling import ST_TYPE as LEARNT_POOLING_TYPE
from sgpt.model.learnt_pooling import WEIGHTS_FILE as LEARNT_POOLING_WEIGHTS
from sgpt.model.pooling import POOLING_MODES
from sgpt.utils.io import atomic_dir, write_json
from sgpt.version import __version__

logger = logging.getLogger("sgpt.model")

ST = "sentence_transformers.models."
FORMAT_FILE = "sgpt_format.json"
ROUTER_FILE = "router_config.json"
POOLING_FILE = "sgpt_pooling.json"  # beside {i}_Pooling/config.json: the sgpt-only pooling modes
LEGACY_LASTTOKEN = "lasttoken_legacy"
# Router route names -> roles: sentence-transformers' for_query_document, and SGPT's --asym keys (SPEC 1.8).
ROUTE_ROLES: dict[str, Role] = {
    "query": "query",
    "document": "document",
    "QRY": "query",
    "DOCPOS": "document",
    "DOCNEG": "document",
}
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
    """The ``Pooling/config.json`` for ``mode``, with the legacy boolean keys (``lasttoken_legacy``
    is written as ``lasttoken``: sentence-transformers has only the corrected one)."""
    mode = "lasttoken" if mode == LEGACY_LASTTOKEN else mode
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
        raise ValueError(
            f"{where}: pooling mode {modes[0]!r} is not supported; expected one of {', '.join(POOLING_MODES)}"
        )
    return modes[0]


def _save_pooling(model: BiEncoder, folder: Path, dim: int) -> str:
    """Write the pooling module into ``folder`` (``{idx}_Pooling`` or ``{idx}_WeightedMeanPooling``); return its type.

    A learned pooling goes to ``{idx}_WeightedMeanPooling`` (SGPT fork's layout), the legacy last
    token to a ``Pooling`` saying ``lasttoken`` plus ``sgpt_pooling.json``; each logs a warning
    about what stock sentence-transformers does with it.
    """
    if model.learnt_pooling is not None:
        learnt = model.learnt_pooling
        folder.mkdir()
        write_json(folder / "config.json", learnt.st_config())
        weights = {"position_weights": learnt.position_weights.detach().float().cpu()}
        torch.save(weights, folder / LEARNT_POOLING_WEIGHTS)  # the fork reads only pytorch_model.bin
        logger.warning(
            "learnt mean pooling is saved as SGPT's WeightedMeanPooling: stock sentence-transformers "
            "cannot load this folder (sgpt and SGPT's fork can)"
        )
        return LEARNT_POOLING_TYPE
    folder.mkdir()
    write_json(folder / "config.json", pooling_config(model.pooling, dim))
    if model.pooling == LEGACY_LASTTOKEN:
        write_json(folder / POOLING_FILE, {"pooling": LEGACY_LASTTOKEN})
        logger.warning(
            "lasttoken_legacy pooling is saved as lasttoken: sgpt reloads the legacy (SGPT) last token, "
            "sentence-transformers will use the corrected last token"
        )
    return ST + "Pooling"


def _save_dense(head: Dense, folder: Path) -> None:
    folder.mkdir(parents=True)
    write_json(folder / "config.json", head.st_config())
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in head.state_dict().items() if k.startswith("linear.")},
        str(folder / "model.safetensors"),
    )


# sentence-transformers 6's Transformer config for a model embedding through its chat template
CHAT_MODALITY_CONFIG = {
    "transformer_task": "feature-extraction",
    "modality_config": {
        "text": {"method": "forward", "method_output_name": "last_hidden_state"},
        "message": {"method": "forward", "method_output_name": "last_hidden_state", "format": "flat"},
    },
    "module_output_name": "token_embeddings",
}


def _save_transformer(model: BiEncoder, tower: torch.nn.Module, folder: Path) -> None:
    """One sentence-transformers ``Transformer`` module: weights, tokenizer, length config
    (and the ``message`` modality when the model embeds through the chat template)."""
    cast(transformers.PreTrainedModel, tower).save_pretrained(folder, safe_serialization=True)
    model.tokenizer.save_pretrained(folder)
    config: dict[str, Any] = {"max_seq_length": model.max_seq_length, "do_lower_case": model.do_lower_case}
    if model.text_format.chat_template:
        config |= CHAT_MODALITY_CONFIG
    write_json(folder / "sentence_bert_config.json", config)


def _save_router(model: BiEncoder, folder: Path, before: Sequence[Dense]) -> None:
    """The two towers (and the shared layers before pooling) as a sentence-transformers ``Router``."""
    types: dict[str, str] = {}
    structure: dict[str, list[str]] = {"query": [], "document": []}
    for role, tower in zip(ROLES, model.towers(), strict=False):
        name = f"{role}_0_Transformer"
        _save_transformer(model, tower, folder / name)
        types[name] = ST + "Transformer"
        structure[role].append(name)
    for i, head in enumerate(before, start=1):
        name = f"query_{i}_Dense"  # one module in both routes: saved once, as Router.save does
        _save_dense(head, folder / name)
        types[name] = ST + "Dense"
        for ids in structure.values():
            ids.append(name)
    # allow_empty_key=True with default_route=None would make sentence-transformers pick the first route
    parameters: dict[str, Any] = {
        "default_route": model.default_role,
        "allow_empty_key": model.default_role is not None,
        "route_mappings": {},
    }
    write_json(folder / ROUTER_FILE, {"types": types, "structure": structure, "parameters": parameters})


def check_finite_weights(model: torch.nn.Module) -> None:
    """Raise when a floating-point parameter or buffer of ``model`` holds NaN or infinite values.

    Raises:
        ValueError: naming up to three such tensors and how many there are.
    """
    bad = [
        name
        for name, tensor in model.state_dict().items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ValueError(
            f"refusing to save a model with non-finite weights: {', '.join(bad[:3])}{more} hold NaN or inf"
        )


def save_folder(model: BiEncoder, path: str | Path, *, keep: Sequence[str] = (), overwrite: bool = False) -> Path:
    """Save ``model`` as a sentence-transformers folder, atomically (temp folder, then rename);
    an asymmetric model as a ``Router`` of its two towers (see module doc).

    An existing folder is replaced when this save writes every entry it holds (an earlier save
    of a model of the same layout); entries of it named in ``keep`` (training logs) are carried
    over; any other entry (a user's file, another layout's module) is deleted only with
    ``overwrite=True``.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: a weight holds NaN or infinite values (naming up to three tensors); ``path`` is
            empty or an existing file; or, without ``overwrite``, an existing folder holds entries
            this save would delete (named). Nothing is written then.
    """
    check_finite_weights(model)
    heads = [cast(Dense, h) for h in model.dense]
    before = [h for h in heads if h.position == "before"]
    with atomic_dir(path, keep, overwrite=overwrite) as tmp:
        if model.is_asymmetric:
            modules = [{"idx": 0, "name": "0", "path": "", "type": ST + "Router"}]
            _save_router(model, tmp, before)
        else:
            modules = [{"idx": 0, "name": "0", "path": "", "type": ST + "Transformer"}]
            _save_transformer(model, model.backbone, tmp)
            for head in before:
                idx = len(modules)
                modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Dense", "type": ST + "Dense"})
                _save_dense(head, tmp / f"{idx}_Dense")
        hidden = before[-1].out_features if before else int(cast(Any, model.backbone).config.hidden_size)
        idx = len(modules)
        name = f"{idx}_WeightedMeanPooling" if model.learnt_pooling is not None else f"{idx}_Pooling"
        modules.append({"idx": idx, "name": str(idx), "path": name, "type": _save_pooling(model, tmp / name, hidden)})
        for head in (h for h in heads if h.position == "after"):
            idx = len(modules)
            modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Dense", "type": ST + "Dense"})
            _save_dense(head, tmp / f"{idx}_Dense")
        if model.normalize:
            idx = len(modules)
            modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Normalize", "type": ST + "Normalize"})
            (tmp / f"{idx}_Normalize").mkdir()
        write_json(tmp / "modules.json", modules)
        fmt = model.text_format
        if not fmt.is_plain:
            write_json(tmp / FORMAT_FILE, fmt.to_dict())
        prompts = {k: v for k, v in (("query", fmt.query_prompt), ("document", fmt.document_prompt)) if v}
        write_json(
            tmp / "config_sentence_transformers.json",
            {
                "__version__": {
                    "sgpt": __version__,
                    "transformers": transformers.__version__,
                    "pytorch": torch.__version__,
                },
                "prompts": prompts,
                "default_prompt_name": None,
                "similarity_fn_name": "cosine",
            },
        )
    return Path(path)
