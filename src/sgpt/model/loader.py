"""Load a bi-encoder: a sentence-transformers folder (layout: :mod:`sgpt.model.folder`), a plain
transformers folder, a hub id or a GGUF file, with the choices of a :class:`~sgpt.model.spec.ModelSpec` on top.

``load`` reads Routers that sentence-transformers built (route names ``query``/``document``) and the
``Asym`` folders of SGPT's own ``--asym`` models (``0_Asym/config.json``, routes
``QRY``/``DOCPOS``/``DOCNEG``); everything after the transformers must be shared by both routes.
A plain backbone whose tokenizer has a chat template (SmolLM2-Instruct) loads with it on, as
sentence-transformers 6 builds it; a folder whose ``modality_config`` has ``message`` loads with
``chat_template=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file

from sgpt.model.backbone import check_model_path, load_backbone
from sgpt.model.biencoder import BiEncoder
from sgpt.model.folder import (
    FORMAT_FILE,
    LEGACY_LASTTOKEN,
    POOLING_FILE,
    ROUTE_ROLES,
    ROUTER_FILE,
    pooling_mode_from_config,
)
from sgpt.model.formatting import ROLES, Role, TextFormat
from sgpt.model.heads import Dense, activation_from_string
from sgpt.model.learnt_pooling import WEIGHTS_FILE, LearntMeanPooling
from sgpt.model.pooling import check_pooling_mode
from sgpt.model.spec import ModelSpec
from sgpt.utils.io import read_json

logger = logging.getLogger("sgpt.model")


# where a Dense reads from: sentence-transformers' module_input_name, SGPT fork's key_name (SPEC 1.7)
_DENSE_INPUTS: dict[str, Literal["before", "after"]] = {"token_embeddings": "before", "sentence_embedding": "after"}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """A module's weights: ``model.safetensors``, else ``pytorch_model.bin`` (tensors only)."""
    file = folder / "model.safetensors"
    if file.exists():
        return load_file(str(file))
    return torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)


def _load_dense(folder: Path, position: Literal["before", "after"]) -> Dense:
    """A ``Dense`` module folder: sentence-transformers' layout or SGPT fork's (``key_name``).

    ``module_input_name`` / ``key_name`` (``token_embeddings`` = before pooling,
    ``sentence_embedding`` = after) decide the position when present; ``position`` (from the
    module order) otherwise.

    Raises:
        ValueError: ``use_residual``, or an input other than those two, naming the config file.
    """
    config = read_json(folder / "config.json")
    if config.get("use_residual"):
        raise ValueError(f"{folder}/config.json: Dense use_residual=true is not supported")
    source = config.get("module_input_name", config.get("key_name"))
    if source is not None:
        if source not in _DENSE_INPUTS:
            raise ValueError(
                f"{folder}/config.json: Dense input {source!r} is not supported; "
                f"expected one of {', '.join(_DENSE_INPUTS)}"
            )
        position = _DENSE_INPUTS[source]
    head = Dense(
        int(config["in_features"]),
        int(config["out_features"]),
        bias=bool(config.get("bias", True)),
        activation=activation_from_string(config.get("activation_function", "identity")),
        position=position,
    )
    head.load_state_dict({k: v for k, v in _weights(folder).items() if k.startswith("linear.")})
    return head


def _load_pooling(folder: Path) -> str:
    """The mode of a ``Pooling`` folder; ``lasttoken_legacy`` only when sgpt wrote ``sgpt_pooling.json`` so.

    Raises:
        ValueError: an unsupported config, or a ``sgpt_pooling.json`` that does not fit it.
    """
    mode = pooling_mode_from_config(read_json(folder / "config.json"), str(folder / "config.json"))
    if not (folder / POOLING_FILE).exists():
        return mode
    saved = read_json(folder / POOLING_FILE).get("pooling")
    if saved != LEGACY_LASTTOKEN or mode != "lasttoken":
        raise ValueError(
            f"{folder / POOLING_FILE}: pooling {saved!r} does not fit config.json's {mode!r} "
            f"(only {LEGACY_LASTTOKEN!r} over lasttoken is written there)"
        )
    logger.info(
        "%s: %s pooling (SGPT's last token, first token for unpadded rows); "
        "sentence-transformers uses the corrected last token for this folder",
        folder,
        LEGACY_LASTTOKEN,
    )
    return LEGACY_LASTTOKEN


def _module_kind(module_type: str, where: str) -> str:
    """``Transformer | Router | Pooling | WeightedMeanPooling | Dense | Normalize`` from a saved module type
    (``Asym``, the Router's old name, reads as ``Router``).

    Raises:
        ValueError: any other module type, naming ``where``.
    """
    kind = str(module_type).rsplit(".", 1)[-1]
    kind = "Router" if kind == "Asym" else kind
    if kind not in ("Transformer", "Router", "Pooling", "WeightedMeanPooling", "Dense", "Normalize"):
        raise ValueError(
            f"{where}: module type {module_type!r} is not supported "
            "(expected Transformer, Router/Asym, Pooling, WeightedMeanPooling, Dense or Normalize)"
        )
    return kind


def _read_router(folder: Path) -> tuple[Path, Path, list[tuple[Path, str]], Role | None]:
    """Read a sentence-transformers ``Router`` (or SGPT-era ``Asym``) module folder.

    Returns:
        ``(query tower folder, document tower folder, shared modules after the towers as
        (folder, kind) pairs, default role)``.

    Raises:
        ValueError: routes other than query/document (``query``/``document``, or SGPT's
            ``QRY``/``DOCPOS``/``DOCNEG``), ``route_mappings``, a route that does not start with
            the route's only Transformer, or routes that differ after their Transformers
            (sgpt shares pooling and heads); each naming the config file.
    """
    file = folder / ROUTER_FILE
    if not file.exists():
        file = folder / "config.json"  # sentence-transformers <= 4 named it so (class Asym)
    config = read_json(file)
    types, structure = config.get("types") or {}, config.get("structure") or {}
    params = config.get("parameters") or {}
    if params.get("route_mappings"):
        raise ValueError(f"{file}: route_mappings are not supported; sgpt routes by task (query or document) only")
    routes: dict[str, list[str]] = {}
    for name, ids in structure.items():
        role = ROUTE_ROLES.get(name)
        if role is None:
            raise ValueError(
                f"{file}: route {name!r} is neither a query nor a document route "
                f"(expected one of {', '.join(ROUTE_ROLES)})"
            )
        if routes.setdefault(role, list(ids)) != list(ids):
            raise ValueError(f"{file}: the {role} routes differ ({routes[role]} vs {list(ids)})")
    if set(routes) != set(ROLES):
        raise ValueError(f"{file}: expected a query and a document route, got {sorted(structure)}")
    kinds = _route_kinds(file, routes, types)
    query, document = routes["query"], routes["document"]
    if len(query) != len(document) or not all(
        _same_module(folder, a, b, kinds) for a, b in zip(query[1:], document[1:], strict=False)
    ):
        raise ValueError(
            f"{file}: the query and document routes differ after their transformers "
            f"({query[1:]} vs {document[1:]}); sgpt shares everything but the transformer"
        )
    default = params.get("default_route")
    if default is None and params.get("allow_empty_key", True):
        default = next(iter(structure))  # what the Router itself does
    if default is not None and default not in structure:
        raise ValueError(f"{file}: default_route {default!r} is not one of the routes {sorted(structure)}")
    return (
        folder / query[0],
        folder / document[0],
        [(folder / m, kinds[m]) for m in query[1:]],
        ROUTE_ROLES[default] if default is not None else None,
    )


def _route_kinds(file: Path, routes: dict[str, list[str]], types: dict[str, str]) -> dict[str, str]:
    """Module id -> kind for every module of the routes, checking each route starts with its only Transformer.

    Raises:
        ValueError: a module that is not a plain sub-folder listed under ``types``, or a bad route.
    """
    kinds: dict[str, str] = {}
    for ids in routes.values():
        for mid in ids:
            if mid not in types or Path(mid).is_absolute() or len(Path(mid).parts) != 1 or mid in (".", ".."):
                raise ValueError(f"{file}: module {mid!r} is not a sub-folder listed under 'types'")
            kinds[mid] = _module_kind(types[mid], str(file))
        route_kinds = [kinds[m] for m in ids]
        if route_kinds[:1] != ["Transformer"] or route_kinds.count("Transformer") != 1 or "Router" in route_kinds:
            raise ValueError(f"{file}: each route must start with its only Transformer; got {ids}")
    return kinds


def _same_module(folder: Path, a: str, b: str, kinds: dict[str, str]) -> bool:
    """Whether two route modules act alike: the same folder, or parameter-free with one config."""
    if a == b:
        return True
    if kinds[a] != kinds[b] or kinds[a] not in ("Pooling", "Normalize"):
        return False
    if kinds[a] == "Normalize":
        return True
    return pooling_mode_from_config(
        read_json(folder / a / "config.json"), str(folder / a / "config.json")
    ) == pooling_mode_from_config(read_json(folder / b / "config.json"), str(folder / b / "config.json"))


def resolve_hub_folder(name: str | Path) -> Path:
    """A local path for ``name``: itself when it exists locally; for a hub id of a
    sentence-transformers model (one with ``modules.json``), its downloaded snapshot; otherwise
    ``Path(name)`` unchanged, so a plain hub backbone is loaded by transformers as usual.

    Raises:
        FileNotFoundError: ``name`` looks like a local path that does not exist.
        ConnectionError: a hub id while the hub cannot be reached and the id is not in the local
            cache (one line, within a few seconds; ``resolve_hub_id``).
    """
    path = Path(name)
    if path.exists():
        return path
    if str(name).startswith((".", "/", "~")) or (path.parent != Path(".") and path.parent.is_dir()):
        raise FileNotFoundError(f"no such model file or folder: {name}")  # a local path, not a hub id
    if str(name).count("/") > 1:
        return path
    from sgpt.model.backbone import resolve_hub_id

    where = resolve_hub_id(str(name))  # offline: the cached snapshot, or a one-line error at once
    if isinstance(where, Path):
        return where
    try:
        from huggingface_hub import hf_hub_download, snapshot_download

        hf_hub_download(str(name), "modules.json")
        return Path(snapshot_download(str(name)))
    except Exception:  # missing repo or no modules.json: let transformers decide and report
        return path


def load(
    name_or_path: str | Path,
    spec: ModelSpec | None = None,
    *,
    device: str | torch.device | None = None,
    default_pooling: str = "mean",
    **choices: Any,
) -> BiEncoder:
    """Load a bi-encoder.

    ``name_or_path`` is a sentence-transformers folder (``modules.json``; also published ones
    with legacy pooling keys, ``Dense`` and ``Normalize`` modules, and asymmetric ones: a
    ``Router``/``Asym`` of a query and a document transformer), a plain transformers
    folder, a hub id, or a ``.gguf`` file. Choices left unset come from the saved folder;
    a given choice overrides it (a plain backbone gets ``default_pooling``, ``mean`` unless said).

    Args:
        name_or_path: where to load from.
        spec: the loading choices (:class:`~sgpt.model.spec.ModelSpec`); or give them as keyword
            arguments (``choices``), as in ``sgpt.load(path, pooling="weightedmean", max_seq_length=75)``:
            ``pooling``, ``max_seq_length``, ``dtype`` (``float32`` default, or ``bfloat16``),
            ``special_tokens`` (``"specb"``, ``"speca"``, or ``None`` for none; SPEC 1.4),
            ``query_prompt`` / ``document_prompt`` (default: the saved ones, from ``sgpt_format.json``,
            else sentence-transformers' ``prompts`` ``query`` and ``document``/``passage``),
            ``chat_template`` (default: the saved choice, else whether sentence-transformers'
            ``modality_config`` has ``message``; for a plain backbone, on when its tokenizer has a
            chat template and no brackets are asked for, as sentence-transformers 6 decides:
            SmolLM2-Instruct on; GPT-Neo, Pythia, GPT-J, BERT raw text as in SGPT), ``asym``
            (separate query and document towers: two copies of the transformer).
        device: where to put the model (default CPU).
        default_pooling: pooling of a plain backbone when none is given (the training recipes use
            ``weightedmean``, SGPT's choice for GPT models).

    Returns:
        A ``BiEncoder`` in eval mode.

    Raises:
        ValueError: unsupported module types, pooling or router configs, or towers with
            different tokenizers, naming the file; a local folder that is not a model (no
            ``config.json``, ``modules.json`` or ``.gguf`` file) or a local file that is not a
            ``.gguf`` file, in one line naming it.
        TypeError: both ``spec`` and keyword choices, or an unknown choice.
        OSError: the model cannot be found.
    """
    if spec is not None and choices:
        raise TypeError("pass the loading choices as a ModelSpec or as keyword arguments, not both")
    spec = spec if spec is not None else ModelSpec.from_kwargs(**choices)
    if spec.pooling is not None:
        check_pooling_mode(spec.pooling)
    root = resolve_hub_folder(name_or_path)
    if root.exists() and not (root / "modules.json").is_file():
        check_model_path(root, "config.json, modules.json or .gguf file")
    if (root / "modules.json").exists():
        model = _load_saved(root, spec)
    else:
        model = _load_plain(name_or_path, spec, default_pooling)
    if spec.asym and not model.is_asymmetric:
        model.make_asymmetric()
    return model.to(device or "cpu").eval()


def _load_plain(name_or_path: str | Path, spec: ModelSpec, default_pooling: str) -> BiEncoder:
    """A bi-encoder over a plain transformers backbone (folder, hub id or GGUF file)."""
    backbone, tokenizer = load_backbone(name_or_path, dtype=spec.dtype)
    # as sentence-transformers 6: a chat model's texts go through its template, unless brackets are asked for
    chat = bool(getattr(tokenizer, "chat_template", None)) and spec.brackets is None
    return BiEncoder(
        backbone,
        tokenizer,
        pooling=spec.pooling or check_pooling_mode(default_pooling),
        max_seq_length=spec.max_seq_length,
        text_format=_text_format({"chat_template": chat}, spec),
    )


def _load_saved(root: Path, spec: ModelSpec) -> BiEncoder:
    """A bi-encoder from a sentence-transformers folder (``modules.json``), ``spec`` on top."""
    modules_file = root / "modules.json"
    entries = sorted(read_json(modules_file), key=lambda e: int(e["idx"]))
    kinds = [_module_kind(e.get("type", ""), str(modules_file)) for e in entries]
    if kinds[:1] not in (["Transformer"], ["Router"]) or kinds.count("Transformer") + kinds.count("Router") != 1:
        raise ValueError(f"{modules_file}: expected exactly one Transformer (or Router) module, first; got {kinds}")
    rest = [(root / e["path"], k) for e, k in zip(entries[1:], kinds[1:], strict=True)]
    default_role: Role | None
    document, default_role = None, "document"
    if kinds[0] == "Transformer":
        query_folder = root / entries[0].get("path", "")
        backbone, tokenizer = load_backbone(query_folder, dtype=spec.dtype)
    else:
        query_folder, document_folder, shared, default_role = _read_router(root / entries[0].get("path", ""))
        rest = shared + rest
        backbone, tokenizer = load_backbone(query_folder, dtype=spec.dtype)
        document, document_tokenizer = load_backbone(document_folder, dtype=spec.dtype)
        if document_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise ValueError(
                f"{root}: the query and document towers have different tokenizers "
                f"({query_folder.name}, {document_folder.name}); sgpt shares one"
            )
        _warn_if_configs_differ(query_folder, document_folder)
    st_config = query_folder / "sentence_bert_config.json"
    saved = read_json(st_config) if st_config.exists() else {}
    saved_pooling, dense, normalize, learnt = _read_modules(rest)
    dtype = next(backbone.parameters()).dtype  # heads compute in the backbone's dtype (bf16 loads too)
    dense = [h.to(dtype) for h in dense]
    learnt = learnt.to(dtype) if learnt is not None else None
    if spec.pooling and saved_pooling and spec.pooling != saved_pooling:
        logger.warning("%s was saved with %s pooling; using %s as asked", root, saved_pooling, spec.pooling)
    if spec.pooling:
        learnt = None  # a pooling asked for replaces a learned one
    return BiEncoder(
        backbone,
        tokenizer,
        pooling=spec.pooling or (saved_pooling if learnt is None else None) or "mean",
        max_seq_length=spec.max_seq_length if spec.max_seq_length is not None else saved.get("max_seq_length"),
        dense=dense,
        normalize=normalize,
        do_lower_case=bool(saved.get("do_lower_case", False)),
        text_format=_text_format(saved_format(root, saved), spec),
        document_backbone=document,
        default_role=default_role,
        learnt_pooling=learnt,
    )


def _read_modules(
    modules: Sequence[tuple[Path, str]],
) -> tuple[str | None, list[Dense], bool, LearntMeanPooling | None]:
    """``(pooling mode, dense heads, normalize, learned pooling)`` of the modules after the
    transformer (the mode is ``"learntmean"`` for a ``WeightedMeanPooling``). A Dense runs where
    its ``module_input_name``/``key_name`` says; without one, before the pooling module on token
    embeddings, after it on the pooled vector."""
    pooling: str | None = None
    dense, normalize, learnt = [], False, None
    for folder, kind in modules:
        if kind == "Pooling":
            pooling = _load_pooling(folder)
        elif kind == "WeightedMeanPooling":
            where = str(folder / "config.json")
            learnt = LearntMeanPooling.from_config(read_json(folder / "config.json"), _weights(folder), where)
            pooling = "learntmean"
        elif kind == "Dense":
            dense.append(_load_dense(folder, "after" if pooling else "before"))
        elif kind == "Normalize":
            normalize = True
    return pooling, dense, normalize, learnt


def _warn_if_configs_differ(query: Path, document: Path) -> None:
    """sgpt uses one length and casing for both towers: the query tower's; say so when they differ."""
    configs = [
        read_json(f / "sentence_bert_config.json") if (f / "sentence_bert_config.json").exists() else {}
        for f in (query, document)
    ]
    for key in ("max_seq_length", "do_lower_case"):
        if configs[0].get(key) != configs[1].get(key):
            logger.warning(
                "%s: %s is %r for the query tower but %r for the document tower; using %r for both",
                document.parent,
                key,
                configs[0].get(key),
                configs[1].get(key),
                configs[0].get(key),
            )


def saved_format(root: Path, transformer_config: dict | None = None) -> dict:
    """The formatting saved in a folder: ``sgpt_format.json``, else the ``query`` and
    ``document`` (or ``passage``) prompts of ``config_sentence_transformers.json`` and, from the
    transformer's ``sentence_bert_config.json`` (``transformer_config``), whether
    sentence-transformers would render the chat template (``message`` in ``modality_config``)."""
    if (root / FORMAT_FILE).exists():
        return read_json(root / FORMAT_FILE) | {"where": str(root / FORMAT_FILE)}
    st_file = root / "config_sentence_transformers.json"
    prompts = (read_json(st_file).get("prompts") or {}) if st_file.exists() else {}
    modalities = (transformer_config or {}).get("modality_config") or {}
    return {
        "query_prompt": prompts.get("query", ""),
        "document_prompt": prompts.get("document", prompts.get("passage", "")),
        "chat_template": "message" in modalities,
    }


def _text_format(saved: dict, spec: ModelSpec) -> TextFormat:
    """The saved formatting with the choices of ``spec`` on top (``None`` keeps the saved value)."""
    saved = dict(saved)
    where = saved.pop("where", "text format")
    fmt = TextFormat.from_dict(saved, where)
    return TextFormat(
        special_tokens=fmt.special_tokens if spec.special_tokens is None else spec.brackets,
        query_prompt=fmt.query_prompt if spec.query_prompt is None else spec.query_prompt,
        document_prompt=fmt.document_prompt if spec.document_prompt is None else spec.document_prompt,
        chat_template=fmt.chat_template if spec.chat_template is None else bool(spec.chat_template),
    )
