"""What a training run needs before any weight is loaded: parameter counts and peak memory per device.

Used by ``sgpt train --recipe NAME --dry-run`` (issue 11). Everything here is arithmetic on a
transformers ``PretrainedConfig``: :func:`count_parameters` builds the architecture on the meta
device (shapes, no storage) and applies SGPT's freezing rule (``sgpt.train.params.is_trainable``);
:func:`estimate_peak_memory` adds up weights, gradients, optimizer moments, activations and the
runtime's own memory. Sizes are in bytes; a "text" is one tokenised input of ``seq_len`` tokens.

Activation factors were measured, not guessed: the bytes autograd saves for backward
(``torch.autograd.graph.saved_tensors_hooks``, the probe of ``sgpt.train.gradcache.saved_bytes``)
of random 1- and 3-layer models of each architecture at two hidden sizes, intermediate sizes,
head counts and lengths (fp32, CPU, transformers 5.24, torch 2.13), solved for the coefficients
of ``a*s*h + b*s*i + c*H*s*s`` per layer and text; the peak on top of what is saved, and the
runtime baseline, come from ``benchmarks/memory_estimate.py`` (peak RSS of real training steps).

The factors assume every backbone weight trains. Under BitFit autograd keeps less (frozen
weights need no saved inputs; measured: BERT a=7 b=1, GPT-Neo and GPT-J a=5 b=4), and under
``--freeze`` almost nothing in the backbone: for those the activations here are an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from sgpt.train.params import check_bitfit, tower_rules

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from sgpt.model.heads import HeadSpec

__all__ = [
    "CPU_RUNTIME_BYTES",
    "CUDA_RUNTIME_BYTES",
    "EMBEDDING_GRAD_COPIES",
    "WORKING_SET_LAYERS",
    "ActivationFactors",
    "activation_bytes_per_text",
    "config_from_figures",
    "count_parameters",
    "estimate_peak_memory",
]

Precision = Literal["fp32", "bf16"]

# Peak RSS of a process that has imported torch, transformers and sgpt and loaded a tokenizer, before
# any weight (benchmarks/memory_estimate.py, ``baseline_bytes``; CPU, torch 2.13, transformers 5.24).
CPU_RUNTIME_BYTES = 420 * 2**20  # measured 397 MiB with MiniLM's tokenizer, 442 MiB with SmolLM2's
# CUDA: the context (driver, cuBLAS/cuDNN kernels and workspaces), which torch.cuda.max_memory_allocated
# does not count but nvidia-smi does; typically 0.3-1 GiB on CUDA 12. A documented constant, NOT measured
# here (no GPU); the caching allocator's fragmentation is covered by the transient term.
CUDA_RUNTIME_BYTES = 768 * 2**20


@dataclass(frozen=True)
class ActivationFactors:
    """Elements autograd keeps per text and layer: ``hidden*s*h + mlp*s*i + attention*H*s*s``,
    plus ``embeddings*s*h`` once per text (embedding output, its norm/dropout).

    ``attention`` is used only where the attention scores are kept (eager attention, or SDPA
    falling back to its math kernel); see :func:`_keeps_scores`.
    """

    hidden: float
    mlp: float
    embeddings: float
    attention_no_dropout: float = 1.0  # the softmax output
    attention_dropout: float = 3.0  # softmax output, dropout output and its mask


# Measured (see the module docstring): e.g. BERT keeps 10 s*h (q, k, v, context, two dense inputs, two
# LayerNorm inputs, dropout masks) and 2 s*i (GELU input and output) per layer.
FACTORS: dict[str, ActivationFactors] = {
    "bert": ActivationFactors(hidden=10.0, mlp=2.0, embeddings=3.0),
    "llama": ActivationFactors(hidden=8.75, mlp=4.0, embeddings=2.0),  # GQA with kv = heads / 3
    "gpt_neo": ActivationFactors(hidden=8.0, mlp=5.0, embeddings=1.0),
    "gptj": ActivationFactors(hidden=6.0, mlp=5.0, embeddings=1.0),
}
# Fitted to the measured peaks (estimate_peak_memory): backward's working set in layers of activations, and
# the dense token-embedding gradients GradCache's chunk-by-chunk backward holds on top of ``.grad``.
WORKING_SET_LAYERS = 3
EMBEDDING_GRAD_COPIES = 2.7
_UNKNOWN = ActivationFactors(hidden=10.0, mlp=5.0, embeddings=3.0)  # the largest of each: an upper bound
_ELEMENT_BYTES = {"fp32": 4, "bf16": 2}
_MOMENTS = {"adamw": 2, "sgd": 0}  # fp32 state tensors per trainable parameter


def config_from_figures(figures: dict) -> PretrainedConfig:
    """A transformers config from stored architecture figures, for a recipe whose model is not on disk.

    Args:
        figures: ``model_type`` plus any ``config.json`` keys of that type, e.g.
            ``{"model_type": "gptj", "n_embd": 4096, "n_layer": 28, "n_head": 16, "rotary_dim": 64,
            "vocab_size": 50400}``; keys left out take transformers' defaults for that type.

    Raises:
        ValueError: no ``model_type``, or one transformers does not know.
    """
    from transformers import AutoConfig

    rest = dict(figures)
    kind = rest.pop("model_type", None)
    if not kind:
        raise ValueError(f"architecture figures need a 'model_type' (e.g. 'gpt_neo', 'gptj'), got keys {sorted(rest)}")
    try:
        return AutoConfig.for_model(kind, **rest)
    except ValueError as e:
        raise ValueError(f"architecture figures: unknown model_type {kind!r} ({e})") from e


def count_parameters(
    config: PretrainedConfig,
    *,
    freeze: bool = False,
    freezenonbias: bool = False,
    unfreezewte: bool = False,
    heads: HeadSpec | None = None,
    max_seq_length: int | None = None,
    asym: bool = False,
) -> tuple[int, int]:
    """``(trainable, total)`` parameters of the bi-encoder a run would train, without loading weights.

    The backbone is ``AutoModel.from_config(config)`` built on the meta device (so a tied LM
    head is not counted, as in a loaded model); SGPT's freezing rule is the one
    ``sgpt.train.params.apply_freezing`` applies. ``asym`` doubles the transformer (two towers,
    frozen alike). Heads always train: ``addxlinear`` N ``Dense`` layers of ``hidden*hidden``
    weights (the last ``hidden*outfeats``) plus their biases unless ``freezenonbias``;
    ``learntmean`` adds ``max_seq_length + 1`` position weights.

    Raises:
        ValueError: BitFit on a backbone without biases (as ``apply_freezing``), or ``learntmean``
            without ``max_seq_length``.
    """
    from transformers import AutoModel

    with torch.device("meta"):  # shapes only: no memory, no weights, no initialisation cost
        tower = AutoModel.from_config(config)
    check_bitfit([tower], freezenonbias)
    rules = list(tower_rules(tower, freeze=freeze, freezenonbias=freezenonbias, unfreeze_wte=unfreezewte))
    towers = 2 if asym else 1
    trainable = towers * sum(p.numel() for p, trains in rules if trains)
    total = towers * sum(p.numel() for p, _ in rules)
    extra = _head_parameters(config, heads, max_seq_length, bias=not freezenonbias) if heads is not None else 0
    return trainable + extra, total + extra


def _head_parameters(config: PretrainedConfig, heads: HeadSpec, max_seq_length: int | None, *, bias: bool) -> int:
    """Parameters of the dense heads and the learnt mean pooling (SPEC 1.7; ``sgpt.model.heads``)."""
    hidden = int(config.hidden_size)
    n = 0
    for layer in range(heads.addxlinear):
        out = heads.outfeats if heads.outfeats is not None and layer == heads.addxlinear - 1 else hidden
        n += hidden * out + (out if bias else 0)
    if heads.learntmean:
        if max_seq_length is None:
            raise ValueError("learntmean: its weights are one per position; pass max_seq_length")
        n += max_seq_length + 1
    return n


def _architecture(config: PretrainedConfig) -> tuple[int, int, int, int]:
    """``(layers L, hidden h, heads H, intermediate i)``; GPT-2-style configs leave ``i`` unset (= 4h)."""
    hidden = int(config.hidden_size)
    inner = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
    return int(config.num_hidden_layers), hidden, int(config.num_attention_heads), int(inner)


def _attention_dropout(config: PretrainedConfig) -> float:
    names = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")
    return max(float(getattr(config, n, 0.0) or 0.0) for n in names)


def _keeps_scores(config: PretrainedConfig, device: str) -> bool:
    """Whether autograd keeps the ``[H, s, s]`` attention probabilities of each text and layer.

    Eager attention keeps them. SDPA does not (its fused kernels keep a log-sum-exp per row),
    except on CPU with attention dropout in training, where torch falls back to the math kernel
    (measured: BERT keeps the same bytes with SDPA as with eager on CPU).
    """
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    impl = getattr(config, "_attn_implementation", None)
    if impl is None:  # what AutoModel.from_config picks: SDPA where the class supports it
        model_class = MODEL_MAPPING.get(type(config), None)
        impl = "sdpa" if model_class is not None and getattr(model_class, "_supports_sdpa", False) else "eager"
    if impl == "eager":
        return True
    return device == "cpu" and _attention_dropout(config) > 0


def activation_bytes_per_text(config: PretrainedConfig, seq_len: int, *, precision: Precision, device: str) -> int:
    """Bytes autograd keeps for one text of ``seq_len`` tokens through the whole backbone.

    ``E * (L * (a*s*h + b*s*i + c*H*s^2) + e*s*h)`` with ``E`` bytes per element (4 fp32, 2 under
    bf16 autocast), the measured factors ``a, b, e`` of :data:`FACTORS` for ``config.model_type``
    (an upper bound for other types) and ``c`` = 1 (softmax output) or 3 (with attention
    dropout) where the scores are kept, else 0.
    """
    layers, h, heads, inner = _architecture(config)
    f = FACTORS.get(config.model_type, _UNKNOWN)
    c = 0.0
    if _keeps_scores(config, device):
        c = f.attention_dropout if _attention_dropout(config) > 0 else f.attention_no_dropout
    s = seq_len
    per_layer = f.hidden * s * h + f.mlp * s * inner + c * heads * s * s
    return int(_ELEMENT_BYTES[precision] * (layers * per_layer + f.embeddings * s * h))


def _layer_bytes_per_text(config: PretrainedConfig, seq_len: int, *, precision: Precision, device: str) -> int:
    """One layer's share of :func:`activation_bytes_per_text` (the size of backward's working set)."""
    layers = _architecture(config)[0]
    embeddings = FACTORS.get(config.model_type, _UNKNOWN).embeddings * seq_len * int(config.hidden_size)
    whole = activation_bytes_per_text(config, seq_len, precision=precision, device=device)
    return int((whole - _ELEMENT_BYTES[precision] * embeddings) / max(layers, 1))


def estimate_peak_memory(  # noqa: PLR0913 - one knob per figure of a run that sets the peak
    config: PretrainedConfig,
    *,
    trainable: int,
    total: int,
    batch_size: int,
    texts_per_example: int,
    seq_len: int,
    gradcache: bool,
    chunk_size: int,
    precision: Precision = "fp32",
    device: Literal["cpu", "cuda"] = "cpu",
    optimizer: Literal["adamw", "sgd"] = "adamw",
) -> dict[str, int]:
    """Peak memory of one training step on one device, in bytes, by part.

    With ``n = batch_size * texts_per_example`` texts per step, each ``seq_len`` tokens (an
    upper bound: shorter texts pad less), ``A`` = :func:`activation_bytes_per_text` (what
    autograd keeps for one text) and ``A_l = A / L`` roughly (one layer's share):

    * ``weights = 4 * total`` (fp32 master weights; bf16 autocast adds ``2 * total`` for the
      bf16 copies of the weights that the forward casts and keeps for backward);
    * ``gradients = 4 * trainable``; ``optimizer = 4 * moments * trainable`` (AdamW: 2 moments);
    * ``activations`` without GradCache: ``n * (A + k * A_l)``, the graph of the whole batch
      plus backward's working set (gradients of the activations of the layer being
      back-propagated, and what the allocator cannot reuse), ``k =`` :data:`WORKING_SET_LAYERS`;
    * ``activations`` with GradCache, chunks of ``m = min(chunk_size, n)`` texts:
      ``m * (A + k * A_l) + m * A_l + 3 * 4 * n * d + G_emb``: one chunk's graph and working set,
      the working set of a chunk's no-grad forward, the whole batch's float32 embeddings
      ``[n, d]`` (no-grad outputs, detached leaves, their gradients), and, when the token
      embeddings train (taken as ``trainable >= vocab * d``), ``G_emb = g * 4 * vocab * d``:
      every chunk's backward makes a fresh dense ``[vocab, d]`` gradient that is then added into
      ``.grad`` (``g =`` :data:`EMBEDDING_GRAD_COPIES`);
    * ``runtime``: :data:`CPU_RUNTIME_BYTES` (Python, torch, transformers, sgpt, a tokenizer:
      peak RSS before any weight, measured) or :data:`CUDA_RUNTIME_BYTES` (the CUDA context,
      not measured here);
    * ``total``: their sum.

    ``k`` and ``g`` were fitted to the peak RSS of real training steps of MiniLM and SmolLM2 on
    CPU in fp32 (``benchmarks/memory_estimate.py``: every row within 30%); bf16 (2 bytes per
    activation element) and CUDA use the same structure and are not measured.

    Raises:
        ValueError: non-positive sizes, ``trainable > total``, or an unknown precision, device or optimizer.
    """
    _check_estimate_args(trainable, total, batch_size, texts_per_example, seq_len, chunk_size, precision, device)
    if optimizer not in _MOMENTS:
        raise ValueError(f"optimizer must be one of {sorted(_MOMENTS)}, got {optimizer!r}")
    n, d = batch_size * texts_per_example, int(config.hidden_size)
    per_text = activation_bytes_per_text(config, seq_len, precision=precision, device=device)
    per_layer = _layer_bytes_per_text(config, seq_len, precision=precision, device=device)
    graph = per_text + WORKING_SET_LAYERS * per_layer  # one text's graph and backward working set
    if gradcache:
        m = min(chunk_size, n)
        embedding = int(getattr(config, "vocab_size", 0) or 0) * d
        grad_copies = EMBEDDING_GRAD_COPIES * 4 * embedding if trainable >= embedding > 0 else 0
        activations = m * (graph + per_layer) + 3 * 4 * n * d + grad_copies
    else:
        activations = n * graph
    parts = {
        "weights": 4 * total + (2 * total if precision == "bf16" else 0),
        "gradients": 4 * trainable,
        "optimizer": 4 * _MOMENTS[optimizer] * trainable,
        "activations": int(activations),
        "runtime": CPU_RUNTIME_BYTES if device == "cpu" else CUDA_RUNTIME_BYTES,
    }
    return {**parts, "total": sum(parts.values())}


def _check_estimate_args(  # noqa: PLR0913
    trainable: int,
    total: int,
    batch_size: int,
    texts_per_example: int,
    seq_len: int,
    chunk_size: int,
    precision: str,
    device: str,
) -> None:
    errors = [f"{k} must be >= 1, got {v}" for k, v in
              {"batch_size": batch_size, "texts_per_example": texts_per_example, "seq_len": seq_len,
               "chunk_size": chunk_size}.items() if v < 1]  # fmt: skip
    if not 0 <= trainable <= total:
        errors.append(f"need 0 <= trainable <= total, got trainable={trainable}, total={total}")
    if precision not in _ELEMENT_BYTES:
        errors.append(f"precision must be one of {sorted(_ELEMENT_BYTES)}, got {precision!r}")
    if device not in ("cpu", "cuda"):
        errors.append(f"device must be 'cpu' or 'cuda', got {device!r}")
    if errors:
        raise ValueError("estimate_peak_memory: " + "; ".join(errors))
