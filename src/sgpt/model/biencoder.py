"""BiEncoder: text -> token ids -> transformer -> (dense) -> pooling -> (dense) -> (normalize) -> vector."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from sgpt.data.sampling import length_sorted_batches
from sgpt.model.backbone import max_length_of, resolve_dtype
from sgpt.model.formatting import Formatter, Role, TextFormat, add_speca_tokens
from sgpt.model.heads import Dense
from sgpt.model.pooling import check_pooling_mode, pool


class BiEncoder(nn.Module):
    """A sentence-embedding model: one transformer backbone, optional dense layers, one pooling.

    Args:
        backbone: a Hugging Face ``AutoModel`` (no LM head) returning ``last_hidden_state``.
        tokenizer: its tokenizer; must have a pad token (see ``sgpt.model.backbone.set_pad_token``).
        pooling: ``mean | weightedmean | lasttoken | cls | max`` (SPEC 1.3).
        max_seq_length: inputs are truncated to this many tokens (special tokens included);
            default: the model's limit.
        dense: dense layers, each marked ``position="before"`` or ``"after"`` pooling.
        normalize: L2-normalise the output (a saved ``Normalize`` module).
        do_lower_case: lower-case texts before tokenising.
        text_format: how queries and documents are marked (specb/speca brackets, prompts; see
            ``sgpt.model.formatting``); speca adds its four tokens to the tokenizer and backbone.

    Raises:
        ValueError: unknown pooling mode or special-token mode, a tokenizer without pad token,
            or brackets that are not single tokens of the tokenizer.
    """

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        *,
        pooling: str = "mean",
        max_seq_length: int | None = None,
        dense: Sequence[Dense] = (),
        normalize: bool = False,
        do_lower_case: bool = False,
        text_format: TextFormat | None = None,
    ) -> None:
        super().__init__()
        if tokenizer.pad_token_id is None:
            raise ValueError("BiEncoder: the tokenizer has no pad token; call sgpt.model.backbone.set_pad_token first")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = check_pooling_mode(pooling)
        self.max_seq_length = int(max_seq_length or max_length_of(backbone, tokenizer))
        self.dense = nn.ModuleList(dense)
        self.normalize = normalize
        self.do_lower_case = do_lower_case
        self.text_format = text_format or TextFormat()
        if self.text_format.special_tokens == "speca":
            add_speca_tokens(tokenizer, backbone)
        self.formatter = Formatter(tokenizer, self.text_format)

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        """Device of the backbone's parameters."""
        return next(self.backbone.parameters()).device

    @property
    def embedding_dim(self) -> int:
        """Size ``d`` of the output vectors."""
        after = [h for h in self.dense if h.position == "after"]
        if after:
            return after[-1].out_features
        before = [h for h in self.dense if h.position == "before"]
        return before[-1].out_features if before else int(self.backbone.config.hidden_size)

    # ------------------------------------------------------------------ tokenisation
    def token_ids(self, texts: Sequence[str], role: Role | None = None) -> list[list[int]]:
        """Token ids of each text: stripped, the role's prompt put in front, lower-cased if
        ``do_lower_case``, then tokenised with the tokenizer's own special tokens and the role's
        brackets (``sgpt.model.formatting.Formatter``), at most ``max_seq_length`` ids. No padding.

        Args:
            texts: ``n`` strings.
            role: ``None`` (plain text), ``"query"`` or ``"document"``.
        """
        prompt = self.text_format.prompt(role)
        cleaned = [prompt + str(t).strip() for t in texts]
        if self.do_lower_case:
            cleaned = [t.lower() for t in cleaned]
        return self.formatter(cleaned, role, self.max_seq_length)

    def collate(self, ids: Sequence[Sequence[int]]) -> dict[str, Tensor]:
        """Right-pad token ids into ``input_ids [b, s]`` and ``attention_mask [b, s]`` (1 = real token).

        Right padding keeps positions 0..n-1 for every row, so a text gets the same hidden states
        alone and inside a batch of longer texts; pooling itself works for either side.
        """
        longest = max((len(x) for x in ids), default=0)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(ids), max(longest, 1)), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), max(longest, 1)), dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Embed a padded batch.

        Args:
            input_ids: ``[b, s]`` token ids.
            attention_mask: ``[b, s]`` in {0, 1}.

        Returns:
            ``[b, d]`` sentence embeddings (float dtype of the backbone).
        """
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [b, s, h]
        for head in self.dense:
            if head.position == "before":
                hidden = head(hidden)
        emb = pool(hidden, attention_mask, self.pooling)  # [b, d]
        for head in self.dense:
            if head.position == "after":
                emb = head(emb)
        if self.normalize:
            emb = F.normalize(emb, p=2, dim=-1)
        return emb

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> Tensor:
        """Embed one batch of token-id lists -> ``[b, d]``, keeping the autograd graph.

        A text with no tokens at all (empty or whitespace-only under a tokenizer that adds no
        special tokens) is never run through the backbone; its embedding is the zero vector.
        """
        nonempty = [i for i, seq in enumerate(ids) if len(seq) > 0]
        if len(nonempty) == len(ids):
            return self(**self.collate(ids))
        out = torch.zeros(len(ids), self.embedding_dim, device=self.device, dtype=self._float_dtype())
        if nonempty:
            emb = self(**self.collate([ids[i] for i in nonempty]))
            out = out.to(emb.dtype).index_copy(0, torch.as_tensor(nonempty, device=self.device), emb)
        return out

    def embed(self, texts: Sequence[str], *, micro_batch_size: int | None = None,
              role: Role | None = None) -> Tensor:
        """Embed texts with gradient (training): ``[n] -> [n, d]`` in input order, formatted as ``role``.

        Texts are sorted by token length and run in micro-batches of ``micro_batch_size`` so
        little compute goes to padding; the result is identical (up to float rounding) to one
        padded batch. Default: all texts in one batch.
        """
        ids = self.token_ids(texts, role)
        batches = length_sorted_batches([len(x) for x in ids], micro_batch_size or max(len(ids), 1))
        parts = [self.embed_ids([ids[i] for i in idx]) for idx in batches]
        order = [i for idx in batches for i in idx]
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.as_tensor(order, dtype=torch.long)] = torch.arange(len(order))
        return torch.cat(parts).index_select(0, inverse.to(self.device))  # [n, d] in input order

    # ------------------------------------------------------------------ inference
    def _float_dtype(self) -> torch.dtype:
        return next(self.backbone.parameters()).dtype

    @contextlib.contextmanager
    def _inference(self, precision: str | None) -> Iterator[None]:
        """eval mode + inference_mode (+ autocast), restoring every module's own train/eval flag."""
        dtype = resolve_dtype(precision) if precision else None  # validate before touching any state
        autocast = (torch.autocast(self.device.type, dtype=dtype)
                    if dtype is not None and dtype != torch.float32 else contextlib.nullcontext())
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            with torch.inference_mode(), autocast:
                yield
        finally:
            for m, flag in modes:  # not self.train(flag): that would overwrite a mixed per-module state
                m.training = flag

    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = 32,
        normalize: bool = False,
        *,
        convert_to: Literal["numpy", "torch"] = "numpy",
        show_progress: bool = False,
        precision: str | None = None,
        role: str | None = None,
    ) -> np.ndarray | Tensor:
        """Embed texts for inference.

        Texts are tokenised once, sorted by token length (longest first) and cut into batches
        of ``batch_size``, so padding is minimal; results come back in input order.

        Args:
            texts: a string or a sequence of strings.
            batch_size: texts per forward pass.
            normalize: L2-normalise each vector (the zero vector of an empty text stays zero).
            convert_to: ``"numpy"`` (float32 ``np.ndarray``) or ``"torch"`` (float32 CPU tensor).
            show_progress: show a tqdm bar over batches.
            precision: ``None``/``"float32"``, or ``"bfloat16"`` to run under autocast; the result is float32.
            role: ``None`` (plain text), ``"query"`` or ``"document"``: the formatting to apply
                (see :meth:`encode_queries`, :meth:`encode_documents`).

        Returns:
            ``[n, d]`` float32 embeddings (``[d]`` for a single string).

        Raises:
            ValueError: ``batch_size < 1`` or unknown ``convert_to``/``precision``.
        """
        if batch_size < 1:
            raise ValueError(f"encode: batch_size must be >= 1, got {batch_size}")
        if convert_to not in ("numpy", "torch"):
            raise ValueError(f"encode: convert_to must be 'numpy' or 'torch', got {convert_to!r}")
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        ids = self.token_ids(items, role)
        out = torch.zeros(len(ids), self.embedding_dim, dtype=torch.float32)
        batches = length_sorted_batches([len(x) for x in ids], batch_size)
        with self._inference(precision):
            for idx in tqdm(batches, desc="encode", unit="batch", disable=not show_progress):
                emb = self.embed_ids([ids[i] for i in idx]).float().cpu()
                out[torch.as_tensor(idx, dtype=torch.long)] = emb
        if normalize:
            out = F.normalize(out, p=2, dim=-1)
        if single:
            out = out[0]
        return out.numpy() if convert_to == "numpy" else out

    def encode_queries(self, texts: str | Sequence[str], batch_size: int = 32, normalize: bool = False,
                       **kwargs) -> np.ndarray | Tensor:
        """Embed search queries: like :meth:`encode`, with the model's query formatting
        (specb/speca brackets or query prompt) and, for an asymmetric model, its query tower."""
        return self.encode(texts, batch_size, normalize, role="query", **kwargs)

    def encode_documents(self, texts: str | Sequence[str], batch_size: int = 32, normalize: bool = False,
                         **kwargs) -> np.ndarray | Tensor:
        """Embed documents: like :meth:`encode`, with the model's document formatting and tower."""
        return self.encode(texts, batch_size, normalize, role="document", **kwargs)

    def signature(self) -> dict:
        """What decides the vectors besides the weights: pooling, length, formatting, dimension.
        An index stores it and refuses a query model whose signature differs."""
        return {"pooling": self.pooling, "max_seq_length": self.max_seq_length, "normalize": self.normalize,
                "embedding_dim": self.embedding_dim, "do_lower_case": self.do_lower_case,
                "text_format": self.text_format.to_dict()}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, keep: Sequence[str] = ()) -> Path:
        """Write a sentence-transformers folder (atomically; ``keep``: entries of an existing folder
        to carry over, such as training logs); see ``sgpt.model.folder``."""
        from sgpt.model.folder import save_folder

        return save_folder(self, path, keep=keep)

    @classmethod
    def load(cls, name_or_path: str | Path, **kwargs) -> BiEncoder:
        """Load a saved bi-encoder folder or a plain backbone; see ``sgpt.model.folder.load``."""
        from sgpt.model.folder import load

        return load(name_or_path, **kwargs)
