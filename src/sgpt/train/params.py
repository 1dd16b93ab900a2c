"""Which parameters train: freezing, BitFit (SPEC 1.6) and the AdamW parameter groups (SPEC 1.11)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger("sgpt.train")


def is_trainable(name: str, *, freeze: bool = False, freezenonbias: bool = False, embedding: bool = False) -> bool:
    """Whether the backbone parameter called ``name`` trains under SGPT's freezing flags (SPEC 1.6).

    No flag: it trains. ``freeze``: nothing trains. ``freezenonbias`` (BitFit, with or without
    ``freeze``): only names containing ``bias``. ``embedding``: the parameter belongs to the
    token embeddings and ``--unfreezewte`` was given, so it trains under either flag.
    Shared by :func:`apply_freezing` (a loaded model) and ``sgpt.train.memory.count_parameters``
    (an architecture on the meta device).
    """
    if not (freeze or freezenonbias):
        return True
    return (freezenonbias and "bias" in name) or embedding


def tower_rules(
    tower: nn.Module, *, freeze: bool = False, freezenonbias: bool = False, unfreeze_wte: bool = False
) -> Iterator[tuple[nn.Parameter, bool]]:
    """``(parameter, trains)`` for every parameter of one backbone ``tower`` (a transformers model).

    ``unfreeze_wte`` keeps the parameters of ``tower.get_input_embeddings()`` trainable (SGPT
    matches the name ``wte``; the module is the same one for GPT models and also names BERT's and
    LLaMA's embeddings).
    """
    getter = getattr(tower, "get_input_embeddings", None)
    embeddings = getter() if unfreeze_wte and getter is not None else None
    keep = {id(p) for p in embeddings.parameters()} if embeddings is not None else set()
    for name, p in tower.named_parameters():
        yield p, is_trainable(name, freeze=freeze, freezenonbias=freezenonbias, embedding=id(p) in keep)


def check_bitfit(towers: Sequence[nn.Module], freezenonbias: bool) -> None:
    """Refuse BitFit on backbones without any bias tensor.

    Raises:
        ValueError: ``freezenonbias`` on a backbone whose parameter names never contain ``bias``
            (e.g. LLaMA-family models such as SmolLM2), which would train nothing.
    """
    if not freezenonbias or any("bias" in name for tower in towers for name, _ in tower.named_parameters()):
        return
    backbone = towers[0]
    kind = getattr(getattr(backbone, "config", None), "model_type", type(backbone).__name__)
    raise ValueError(
        f"--freezenonbias (BitFit) trains only bias tensors, but this {kind} backbone has none "
        "(LLaMA-family models such as SmolLM2 have no biases), so nothing would train. "
        "Alternatives: full fine-tuning (drop --freezenonbias), --freeze with extra dense layers, "
        "or LoRA via peft."
    )


def apply_freezing(
    model: nn.Module, *, freeze: bool = False, freezenonbias: bool = False, unfreeze_wte: bool = False
) -> tuple[int, int]:
    """Freeze the transformer backbone of ``model`` (its dense heads always train).

    ``freeze``: every backbone parameter is frozen. ``freezenonbias`` (BitFit, Ben Zaken et al.
    2021, used by SGPT, arXiv 2202.08904 section 3.2): only backbone parameters whose name
    contains ``bias`` train; both flags together equal ``freezenonbias``. ``unfreeze_wte`` also
    keeps the token embeddings trainable. The rule per parameter is :func:`is_trainable`.

    Args:
        model: a ``BiEncoder`` (anything with a ``backbone`` attribute); an asymmetric one has
            both towers frozen alike.

    Returns:
        ``(trainable, total)`` parameter counts.

    Raises:
        ValueError: BitFit asked on a backbone without bias tensors (e.g. LLaMA-family models
            such as SmolLM2), which would train nothing.
    """
    owner = cast(Any, model)  # nn.Module types the attributes of a BiEncoder as Tensor | Module
    towers: list[PreTrainedModel] = owner.towers() if hasattr(model, "towers") else [owner.backbone]  # asym: both
    check_bitfit(towers, freezenonbias)
    if freeze and freezenonbias:
        logger.info("--freeze with --freezenonbias is BitFit: the bias tensors train (SGPT's semantics, SPEC 1.6)")
    if freeze or freezenonbias:
        for tower in towers:
            for p, trains in tower_rules(tower, freeze=freeze, freezenonbias=freezenonbias, unfreeze_wte=unfreeze_wte):
                p.requires_grad = trains
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("trainable parameters: %d of %d (%.4f%%)", trainable, total, 100.0 * trainable / max(total, 1))
    return trainable, total


def _no_decay_ids(model: nn.Module) -> set[int]:
    """Ids of biases and of normalisation-layer weights (LayerNorm, RMSNorm, ...)."""
    ids = set()
    for module in model.modules():
        is_norm = "norm" in type(module).__name__.lower()
        for name, p in module.named_parameters(recurse=False):
            if is_norm or "bias" in name:
                ids.add(id(p))
    return ids


def adamw(model: nn.Module, *, lr: float, weight_decay: float = 0.01, eps: float = 1e-6) -> torch.optim.AdamW:
    """AdamW over the trainable parameters: decay ``weight_decay`` except biases and norm weights
    (SPEC 1.11: betas 0.9/0.999, eps 1e-6). Frozen parameters are left out of the optimizer.

    Raises:
        ValueError: no parameter is trainable.
    """
    no_decay = _no_decay_ids(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    groups = [
        {"params": [p for p in params if id(p) not in no_decay], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0},
    ]
    # The fused kernel is the same update as the default one, several times faster on CPU and GPU.
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.bfloat16) for p in params)
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=lr, eps=eps, betas=(0.9, 0.999), fused=fused or None
    )
