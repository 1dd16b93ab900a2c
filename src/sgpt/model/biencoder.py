"""BiEncoder: text -> token ids -> transformer -> (dense) -> pooling -> (dense) -> (normalize) -> vector.

An asymmetric model (SGPT ``--asym``, SPEC 1.8) has two transformers ("towers"): one for queries,
one for documents, each a separate copy of the same checkpoint when training starts. The tokenizer,
the formatting, the (parameter-free) pooling, the dense heads and the normalisation are shared.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, cast, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from sgpt.data.sampling import length_sorted_batches
from sgpt.model.backbone import resolve_dtype
from sgpt.model.formatting import ROLES, Formatter, Role, TextFormat, add_speca_tokens
from sgpt.model.heads import Dense
from sgpt.model.inputs import check_document_tower, checked_max_seq_length, distinct_sequences, right_pad
from sgpt.model.learnt_pooling import LearntMeanPooling
from sgpt.model.pooling import check_pooling_mode, pool
from sgpt.model.prefix import transformer_states

logger = logging.getLogger("sgpt.model")


class BiEncoder(nn.Module):
    """A sentence-embedding model: a transformer backbone (or a query and a document tower),
    optional dense layers, one pooling.

    Args:
        backbone: a Hugging Face ``AutoModel`` (no LM head) returning ``last_hidden_state``;
            for an asymmetric model, the query tower.
        tokenizer: its tokenizer; must have a pad token (see ``sgpt.model.backbone.set_pad_token``).
        pooling: ``mean | weightedmean | lasttoken | cls | max`` (SPEC 1.3), or
            ``lasttoken_legacy`` (SGPT's buggy last token, only to reproduce its checkpoints).
        max_seq_length: inputs are truncated to this many tokens (special tokens included);
            default: the model's limit.
        dense: dense layers, each marked ``position="before"`` or ``"after"`` pooling.
        normalize: L2-normalise the output (a saved ``Normalize`` module).
        do_lower_case: lower-case texts before tokenising.
        text_format: how queries and documents are marked (specb/speca brackets, prompts; see
            ``sgpt.model.formatting``); speca adds its four tokens to the tokenizer and to every
            tower (each tower's new rows are initialised on its own; :meth:`make_asymmetric`
            copies them, so towers made from one model start identical).
        document_backbone: the document tower of an asymmetric model (SPEC 1.8); ``None`` for a
            symmetric model. Same architecture and hidden size as ``backbone``, its own weights.
        learnt_pooling: a learned pooling (SGPT ``--learntmean``) used instead of ``pooling``;
            :attr:`pooling` then reads ``"learntmean"``.
        default_role: asymmetric models only: the tower that embeds texts given without a role
            (``encode(texts)``, ``embed(texts)``): ``"document"`` (default, as
            sentence-transformers' ``Router.for_query_document``), ``"query"``, or ``None`` to
            refuse them. Texts without a role get no query/document formatting either way.

    Raises:
        ValueError: unknown pooling mode or special-token mode, a tokenizer without pad token,
            brackets that are not single tokens of the tokenizer, a ``document_backbone`` that
            is ``backbone`` itself or has another hidden size, or an unknown ``default_role``.
    """

    def __init__(  # noqa: PLR0913 - one argument per sentence-transformers module of the saved folder
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
        document_backbone: nn.Module | None = None,
        default_role: Role | None = "document",
        learnt_pooling: LearntMeanPooling | None = None,
    ) -> None:
        super().__init__()
        if tokenizer.pad_token_id is None:
            raise ValueError("BiEncoder: the tokenizer has no pad token; call sgpt.model.backbone.set_pad_token first")
        if default_role not in (None, *ROLES):
            raise ValueError(f"BiEncoder: default_role must be None, 'query' or 'document', got {default_role!r}")
        if document_backbone is not None:
            check_document_tower(backbone, document_backbone)
        self.backbone = backbone
        self.document_backbone = document_backbone
        self.default_role = default_role
        self.tokenizer = tokenizer
        self.learnt_pooling = learnt_pooling
        self._pooling = check_pooling_mode(pooling)
        self.dense = nn.ModuleList(dense)
        self.normalize = normalize
        self.do_lower_case = do_lower_case
        self.text_format = text_format or TextFormat()
        if self.text_format.special_tokens == "speca":
            for tower in self.towers():
                add_speca_tokens(tokenizer, tower)
        self.formatter = Formatter(tokenizer, self.text_format)
        self.max_seq_length = max_seq_length  # checked by the property's setter

    # ------------------------------------------------------------------ length
    @property
    def max_seq_length(self) -> int:
        """Inputs are truncated to this many tokens (special tokens, brackets, prompt and chat
        template included).

        Setting it checks the value as the constructor does: ``None`` means the model's limit
        (the tokenizer's ``model_max_length`` capped at ``max_position_embeddings``); a value
        above the positions is cut to them with a warning.

        Raises:
            TypeError: a value that is not an integer (or ``None``).
            ValueError: a value below 1, or too short to leave one content token after the
                formatting of any role (e.g. 2 for BERT: ``[CLS] [SEP]``; see
                :meth:`Formatter.check_length`).
        """
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        length = checked_max_seq_length(value, self.backbone, self.tokenizer)
        self.formatter.check_length(length, lower=self.do_lower_case)
        self._max_seq_length = length

    # ------------------------------------------------------------------ pooling
    @property
    def pooling(self) -> str:
        """The pooling mode (:data:`sgpt.model.pooling.POOLING_CHOICES`), or ``"learntmean"``
        when :attr:`learnt_pooling` is set.

        Setting a mode checks it and removes a learned pooling.

        Raises:
            ValueError: an unknown mode (``"learntmean"`` too: add it with ``sgpt.model.heads.add_heads``).
        """
        return "learntmean" if self.learnt_pooling is not None else self._pooling

    @pooling.setter
    def pooling(self, mode: str) -> None:
        self._pooling = check_pooling_mode(mode)
        self.learnt_pooling = None

    def _pool(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        """``hidden [b, s, h]``, ``attention_mask [b, s]`` -> ``[b, h]`` by the learned or fixed pooling."""
        if self.learnt_pooling is not None:
            return self.learnt_pooling(hidden, attention_mask)
        return pool(hidden, attention_mask, self._pooling)

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        """Device of the backbone's parameters."""
        return next(self.backbone.parameters()).device

    @property
    def embedding_dim(self) -> int:
        """Size ``d`` of the output vectors."""
        heads = [cast(Dense, h) for h in self.dense]
        after = [h for h in heads if h.position == "after"]
        if after:
            return after[-1].out_features
        before = [h for h in heads if h.position == "before"]
        return before[-1].out_features if before else int(cast(Any, self.backbone).config.hidden_size)

    # ------------------------------------------------------------------ towers
    @property
    def is_asymmetric(self) -> bool:
        """True when queries and documents have separate transformers (SPEC 1.8)."""
        return self.document_backbone is not None

    def towers(self) -> list[nn.Module]:
        """The distinct transformers: ``[backbone]``, or ``[query tower, document tower]``.
        Freezing (BitFit) and anything else meant for "the transformer" must visit each."""
        return [self.backbone] if self.document_backbone is None else [self.backbone, self.document_backbone]

    def tower(self, role: Role | None = None) -> nn.Module:
        """The transformer that embeds texts of ``role``.

        Symmetric model: ``backbone`` for every role. Asymmetric: ``"query"`` -> ``backbone``,
        ``"document"`` -> ``document_backbone``, ``None`` -> the tower of ``default_role``.

        Raises:
            ValueError: unknown role, or ``role=None`` on an asymmetric model without ``default_role``.
        """
        if role not in (None, *ROLES):
            raise ValueError(f"role must be None, 'query' or 'document', got {role!r}")
        if self.document_backbone is None:
            return self.backbone
        role = role or self.default_role
        if role is None:
            raise ValueError(
                "this model has separate query and document towers and no default: use "
                "encode_queries/encode_documents (or role='query'/'document') to choose one"
            )
        return self.document_backbone if role == "document" else self.backbone

    def make_asymmetric(self, default_role: Role | None = "document") -> BiEncoder:
        """Give documents their own transformer: a deep copy of ``backbone`` (SGPT ``--asym``);
        ``backbone`` becomes the query tower. Both start identical, then train independently.
        Parameters double; build the optimizer afterwards.

        Returns:
            ``self``.

        Raises:
            ValueError: the model is already asymmetric, or an unknown ``default_role``.
        """
        if self.is_asymmetric:
            raise ValueError("make_asymmetric: the model already has separate query and document towers")
        if default_role not in (None, *ROLES):
            raise ValueError(f"make_asymmetric: default_role must be None, 'query' or 'document', got {default_role!r}")
        self.document_backbone = copy.deepcopy(self.backbone)
        self.default_role = default_role
        return self

    # ------------------------------------------------------------------ tokenisation
    def token_ids(self, texts: Sequence[str], role: Role | None = None, *, where: str = "token_ids") -> list[list[int]]:
        """Token ids of each text: stripped (not under the chat template, like
        sentence-transformers), the role's prompt put in front, lower-cased if
        ``do_lower_case``, then tokenised with the tokenizer's own special tokens and the role's
        brackets, or rendered with the chat template (``sgpt.model.formatting.Formatter``), at
        most ``max_seq_length`` ids. No padding.

        Args:
            texts: ``n`` strings.
            role: ``None`` (plain text), ``"query"`` or ``"document"``.
            where: the caller named in a ``TypeError`` (``"encode"``, ``"embed"``).

        Returns:
            ``n`` lists of token ids.

        Raises:
            TypeError: ``texts`` is not a sequence of ``str`` (a single string, a dict or set),
                or one of them is not a ``str`` (``None``, bytes, a number, NaN), naming its
                index and type: ``encode: texts[3] is NoneType, not str``.
            ValueError: unknown role.
        """
        return self.formatter(texts, role, self.max_seq_length, lower=self.do_lower_case, where=where)

    def collate(self, ids: Sequence[Sequence[int]]) -> dict[str, Tensor]:
        """Right-pad token ids into ``input_ids [b, s]`` and ``attention_mask [b, s]`` (1 = real token).

        Right padding keeps positions 0..n-1 for every row, so a text gets the same hidden states
        alone and inside a batch of longer texts; pooling itself works for either side.
        """
        return right_pad(ids, self.tokenizer.pad_token_id, self.device)

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids: Tensor, attention_mask: Tensor, role: Role | None = None) -> Tensor:
        """Embed a padded batch.

        Args:
            input_ids: ``[b, s]`` token ids.
            attention_mask: ``[b, s]`` in {0, 1}.
            role: picks the tower of an asymmetric model (:meth:`tower`); ignored by a symmetric one.

        Returns:
            ``[b, d]`` sentence embeddings (float dtype of the backbone).

        Raises:
            ValueError: see :meth:`tower`.
        """
        tower = self.tower(role)
        hidden = transformer_states(tower, input_ids, attention_mask)  # [b, s, h]; shared prefix computed once
        for head in self.dense:
            if head.position == "before":
                hidden = head(hidden)
        emb = self._pool(hidden, attention_mask)  # [b, d]
        for head in self.dense:
            if head.position == "after":
                emb = head(emb)
        if self.normalize:
            emb = F.normalize(emb, p=2, dim=-1)
        return emb

    def embed_ids(self, ids: Sequence[Sequence[int]], role: Role | None = None) -> Tensor:
        """Embed one batch of token-id lists -> ``[b, d]`` with the tower of ``role``, keeping the
        autograd graph. The ids are used as given: formatting is :meth:`token_ids`' job.

        A text with no tokens at all (empty or whitespace-only under a tokenizer that adds no
        special tokens) is never run through the backbone; its embedding is the zero vector.

        Raises:
            ValueError: see :meth:`tower`.
        """
        self.tower(role)  # a missing role fails here, even for a batch of empty texts
        nonempty = [i for i, seq in enumerate(ids) if len(seq) > 0]
        if len(nonempty) == len(ids):
            return self(**self.collate(ids), role=role)
        out = torch.zeros(len(ids), self.embedding_dim, device=self.device, dtype=self._float_dtype())
        if nonempty:
            emb = self(**self.collate([ids[i] for i in nonempty]), role=role)
            out = out.to(emb.dtype).index_copy(0, torch.as_tensor(nonempty, device=self.device), emb)
        return out

    def embed(self, texts: Sequence[str], *, micro_batch_size: int | None = None, role: Role | None = None) -> Tensor:
        """Embed texts with gradient (training): ``[n] -> [n, d]`` in input order, formatted as
        ``role`` and, for an asymmetric model, run through ``role``'s tower (:meth:`tower`).

        Texts are sorted by token length and run in micro-batches of ``micro_batch_size`` so
        little compute goes to padding; the result is identical (up to float rounding) to one
        padded batch. Default: all texts in one batch.

        Args:
            texts: ``n`` strings.

        Returns:
            ``[n, d]`` embeddings (float dtype of the backbone), with autograd graph.

        Raises:
            TypeError: ``texts`` is not a sequence of ``str`` (see :meth:`token_ids`).
            ValueError: unknown role, or ``role=None`` on an asymmetric model without ``default_role``.
        """
        self.tower(role)
        ids = self.token_ids(texts, role, where="embed")
        batches = length_sorted_batches([len(x) for x in ids], micro_batch_size or max(len(ids), 1))
        parts = [self.embed_ids([ids[i] for i in idx], role) for idx in batches]
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
        autocast = (
            torch.autocast(self.device.type, dtype=dtype)
            if dtype is not None and dtype != torch.float32
            else contextlib.nullcontext()
        )
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            with torch.inference_mode(), autocast:
                yield
        finally:
            for m, flag in modes:  # not self.train(flag): that would overwrite a mixed per-module state
                m.training = flag

    @overload
    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = ...,
        normalize: bool = ...,
        *,
        convert_to: Literal["numpy"] = ...,
        show_progress: bool = ...,
        precision: str | None = ...,
        role: Role | None = ...,
    ) -> np.ndarray: ...

    @overload
    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = ...,
        normalize: bool = ...,
        *,
        convert_to: Literal["torch"],
        show_progress: bool = ...,
        precision: str | None = ...,
        role: Role | None = ...,
    ) -> Tensor: ...

    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = 32,
        normalize: bool = False,
        *,
        convert_to: Literal["numpy", "torch"] = "numpy",
        show_progress: bool = False,
        precision: str | None = None,
        role: Role | None = None,
    ) -> np.ndarray | Tensor:
        """Embed texts for inference.

        Texts are tokenised once; each distinct token sequence is embedded once and its vector
        copied to every position holding it, so identical texts get bit-identical rows. The
        distinct sequences are sorted by token length (longest first, ties by their ids, not by
        input position) and cut into batches of ``batch_size``, so padding is minimal and the
        batches do not depend on the input order; results come back in input order.

        Args:
            texts: a string or a sequence of strings.
            batch_size: texts per forward pass.
            normalize: L2-normalise each vector (the zero vector of an empty text stays zero).
            convert_to: ``"numpy"`` (float32 ``np.ndarray``) or ``"torch"`` (float32 CPU tensor).
            show_progress: show a tqdm bar over batches.
            precision: ``None``/``"float32"``, or ``"bfloat16"`` to run under autocast; the result is float32.
            role: ``None`` (plain text), ``"query"`` or ``"document"``: the formatting to apply
                and, for an asymmetric model, the tower (see :meth:`encode_queries`,
                :meth:`encode_documents`). ``None`` on an asymmetric model uses the tower of
                ``default_role`` (documents, unless saved otherwise) without formatting, like
                sentence-transformers' ``encode`` without ``task``.

        Returns:
            ``[n, d]`` float32 embeddings (``[d]`` for a single string).

        Raises:
            TypeError: ``texts`` is neither a string nor a sequence of strings (a dict, a set,
                bytes, ``None``), or one of them is not a ``str``, naming its index and type:
                ``encode: texts[3] is NoneType, not str``.
            ValueError: ``batch_size < 1``, unknown ``convert_to``/``precision``/``role``, or
                ``role=None`` on an asymmetric model saved without a default route.
        """
        if batch_size < 1:
            raise ValueError(f"encode: batch_size must be >= 1, got {batch_size}")
        if convert_to not in ("numpy", "torch"):
            raise ValueError(f"encode: convert_to must be 'numpy' or 'torch', got {convert_to!r}")
        self.tower(role)
        single = isinstance(texts, str)
        ids = self.token_ids([texts] if isinstance(texts, str) else texts, role, where="encode")  # checks them
        unique, slot = distinct_sequences(ids)  # slot[i]: the row of unique that text i gets
        vectors = torch.zeros(len(unique), self.embedding_dim, dtype=torch.float32)
        batches = length_sorted_batches([len(x) for x in unique], batch_size)
        with self._inference(precision):
            for idx in tqdm(batches, desc="encode", unit="batch", disable=not show_progress):
                emb = self.embed_ids([unique[i] for i in idx], role).float().cpu()
                vectors[torch.as_tensor(idx, dtype=torch.long)] = emb
        out = vectors[torch.as_tensor(slot, dtype=torch.long)] if ids else vectors  # [n, d]
        if normalize:
            out = F.normalize(out, p=2, dim=-1)
        if single:
            out = out[0]
        return out.numpy() if convert_to == "numpy" else out

    def encode_queries(
        self, texts: str | Sequence[str], batch_size: int = 32, normalize: bool = False, **kwargs: Any
    ) -> np.ndarray | Tensor:
        """Embed search queries: like :meth:`encode`, with the model's query formatting
        (specb/speca brackets or query prompt) and, for an asymmetric model, its query tower."""
        return self.encode(texts, batch_size, normalize, role="query", **kwargs)

    def encode_documents(
        self, texts: str | Sequence[str], batch_size: int = 32, normalize: bool = False, **kwargs: Any
    ) -> np.ndarray | Tensor:
        """Embed documents: like :meth:`encode`, with the model's document formatting and tower."""
        return self.encode(texts, batch_size, normalize, role="document", **kwargs)

    def signature(self) -> dict:
        """What decides the vectors besides the weights: pooling, length, formatting, dimension,
        and whether queries and documents have separate towers (``asymmetric``; an asymmetric
        model adds ``default_role``, the tower of texts given without a role).
        An index stores it and refuses a query model whose signature differs."""
        sig = {
            "pooling": self.pooling,
            "max_seq_length": self.max_seq_length,
            "normalize": self.normalize,
            "embedding_dim": self.embedding_dim,
            "do_lower_case": self.do_lower_case,
            "text_format": self.text_format.to_dict(),
            "asymmetric": self.is_asymmetric,
        }
        if self.is_asymmetric:
            sig["default_role"] = self.default_role
        return sig

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, keep: Sequence[str] = (), overwrite: bool = False) -> Path:
        """Write a sentence-transformers folder (atomically; ``keep``: entries of an existing folder
        to carry over, such as training logs); see ``sgpt.model.folder.save_folder``.

        Raises:
            ValueError: non-finite weights; ``path`` empty or a file; or (without ``overwrite``) a
                folder holding files this save would delete. Nothing is written then.
        """
        from sgpt.model.folder import save_folder

        return save_folder(self, path, keep=keep, overwrite=overwrite)

    @classmethod
    def load(cls, name_or_path: str | Path, **kwargs) -> BiEncoder:
        """Load a saved bi-encoder folder or a plain backbone; see ``sgpt.model.loader.load``."""
        from sgpt.model.loader import load

        return load(name_or_path, **kwargs)
