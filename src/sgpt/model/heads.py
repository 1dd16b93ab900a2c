"""Dense layers before or after pooling (SGPT ``--addxlinear``, ``--linearthenpool``, ``--useact``; SPEC 1.7).

Saved exactly like sentence-transformers' ``Dense`` module (``config.json`` + ``model.safetensors``
with ``linear.weight``/``linear.bias``), so stock sentence-transformers loads them; a layer
before pooling is written with ``module_input_name = "token_embeddings"``. The loader also reads
SGPT's fork layout (``key_name`` instead of ``module_input_name``, ``pytorch_model.bin``).

:func:`add_heads` adds what a training run asks for (:class:`HeadSpec`): the dense layers and the
learned pooling of :mod:`sgpt.model.learnt_pooling`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor, nn

from sgpt.model.learnt_pooling import LearntMeanPooling

logger = logging.getLogger("sgpt.model")

ACTIVATIONS: dict[str, type[nn.Module]] = {"identity": nn.Identity, "gelu": nn.GELU, "tanh": nn.Tanh, "relu": nn.ReLU}
_ST_NAMES = {
    cls: f"torch.nn.modules.{'linear' if cls is nn.Identity else 'activation'}.{cls.__name__}"
    for cls in ACTIVATIONS.values()
}


def activation_from_string(name: str) -> str:
    """Map a stored activation (``"gelu"`` or ``"torch.nn.modules.activation.GELU"``) to our short name.

    Raises:
        ValueError: an activation other than identity, GELU, tanh or ReLU.
    """
    short = name.rsplit(".", 1)[-1].lower()
    if short not in ACTIVATIONS:
        raise ValueError(f"Dense: unsupported activation_function {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return short


class Dense(nn.Module):
    """``y = act(W x + b)`` applied to the sentence embedding (``position="after"``) or to every
    token embedding before pooling (``position="before"``).

    Args:
        in_features: input size ``d_in``.
        out_features: output size ``d_out``.
        bias: learn ``b`` (SGPT sets False under BitFit so the head is not a hidden bias).
        activation: ``identity | gelu | tanh | relu``.
        position: ``after`` pooling (shape ``[b, d_in] -> [b, d_out]``) or ``before``
            (``[b, s, d_in] -> [b, s, d_out]``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        activation: str = "identity",
        position: Literal["before", "after"] = "after",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Dense: unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        if position not in ("before", "after"):
            raise ValueError(f"Dense: position must be 'before' or 'after' pooling, got {position!r}")
        self.in_features, self.out_features, self.activation, self.position = (
            in_features,
            out_features,
            activation,
            position,
        )
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        """``[..., d_in] -> [..., d_out]``."""
        return self.act(self.linear(x))

    def st_config(self) -> dict:
        """The sentence-transformers ``Dense`` config for this layer."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.linear.bias is not None,
            "activation_function": _ST_NAMES[ACTIVATIONS[self.activation]],
            "module_input_name": "token_embeddings" if self.position == "before" else "sentence_embedding",
        }


@dataclass(frozen=True)
class HeadSpec:
    """The layers a training run adds to a backbone (SGPT's NLI/MS MARCO script flags, SPEC 1.3, 1.7).

    Attributes:
        addxlinear: number of ``Dense`` layers (``--addxlinear N``), each ``hidden -> hidden``
            (the last ``hidden -> outfeats`` when ``outfeats`` is set); 0 = none.
        linearthenpool: apply them to every token embedding before pooling instead of to the
            pooled vector (``--linearthenpool``).
        useact: GELU after every layer (``--useact``); else identity.
        outfeats: output size of the single layer (``--outfeats``, only with ``addxlinear == 1``).
        learntmean: replace the pooling by a learned weight per position (``--learntmean``,
            SGPT's ``WeightedMeanPooling``: one weight per position, initialised to 1).

    Raises:
        ValueError: ``addxlinear < 0``, ``outfeats`` without exactly one layer or below 1, or a
            head flag (``linearthenpool``, ``useact``) without any layer.
    """

    addxlinear: int = 0
    linearthenpool: bool = False
    useact: bool = False
    outfeats: int | None = None
    learntmean: bool = False

    def __post_init__(self) -> None:
        errors = []
        if self.addxlinear < 0:
            errors.append(f"--addxlinear must be >= 0, got {self.addxlinear}")
        if self.outfeats is not None and (self.addxlinear != 1 or self.outfeats < 1):
            errors.append(f"--outfeats {self.outfeats} needs exactly one layer (--addxlinear 1) and a size >= 1")
        for name in ("linearthenpool", "useact"):
            if getattr(self, name) and self.addxlinear == 0:
                errors.append(f"--{name} applies only with --addxlinear N (N dense layers)")
        if errors:
            raise ValueError("; ".join(errors))

    @property
    def any(self) -> bool:
        """Whether this adds anything to the model."""
        return self.addxlinear > 0 or self.learntmean


def add_heads(model: Any, heads: HeadSpec, *, bias: bool = True) -> None:
    """Add the ``heads`` to a ``BiEncoder`` in place, after freezing: every new parameter trains.

    ``heads.addxlinear`` ``Dense`` layers, each ``Linear(hidden -> hidden)`` with PyTorch's
    default init (the last ``hidden -> outfeats`` when ``outfeats`` is set), GELU with
    ``useact`` else identity, before pooling with ``linearthenpool`` else after it (SPEC 1.7);
    ``learntmean`` replaces the pooling by a :class:`~sgpt.model.learnt_pooling.LearntMeanPooling`
    over ``max_seq_length`` positions, weights 1 (SPEC 1.3). Both towers of an asymmetric model
    share them; the model's ``embedding_dim`` follows ``outfeats``. The new modules take the
    backbone's device and dtype.

    Args:
        model: the ``BiEncoder`` (symmetric or asymmetric).
        heads: what to add.
        bias: give the dense layers a bias (SGPT: ``False`` under ``--freezenonbias``).

    Raises:
        ValueError: the model has heads already (dense layers or a learned pooling).
    """
    if len(model.dense) or model.learnt_pooling is not None:
        raise ValueError(
            f"add_heads: the model already has heads ({len(model.dense)} dense layer(s), pooling "
            f"{model.pooling}); train it as it is, or start from a model without heads"
        )
    param = next(model.backbone.parameters())
    backbone_dim = hidden = model.embedding_dim  # no heads yet: the transformer's hidden size
    position: Literal["before", "after"] = "before" if heads.linearthenpool else "after"
    layers = []
    for i in range(heads.addxlinear):
        out = heads.outfeats if (heads.outfeats and i == heads.addxlinear - 1) else hidden
        activation = "gelu" if heads.useact else "identity"
        layers.append(Dense(hidden, out, bias=bias, activation=activation, position=position))
        hidden = out
    new: list[nn.Module] = list(layers)
    if layers:
        model.dense = nn.ModuleList(m.to(device=param.device, dtype=param.dtype) for m in layers)
    if heads.learntmean:
        token_dim = hidden if position == "before" else backbone_dim  # what reaches the pooling
        pooler = LearntMeanPooling(token_dim, model.max_seq_length).to(device=param.device, dtype=param.dtype)
        model.learnt_pooling = pooler
        new.append(pooler)
    for module in new:
        module.requires_grad_(True)
    count = sum(p.numel() for m in new for p in m.parameters())
    logger.info(
        "added %d dense layer(s) %s pooling%s: %d trainable parameters",
        len(layers),
        position,
        ", learnt mean pooling" if heads.learntmean else "",
        count,
    )
