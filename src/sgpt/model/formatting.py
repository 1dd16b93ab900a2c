"""Query/document formatting: SGPT's special brackets (specb, speca) and free-text prompts (SPEC 1.4).

Asymmetric search embeds short queries and long documents with the same network, so each text
is marked with its role:

* ``specb``: queries are wrapped in ``[`` ... ``]``, documents in ``{`` ... ``}``, reusing the
  tokens the vocabulary already has (no new parameters). SGPT's published msmarco models use it.
* ``speca``: four new learned special tokens ``[SOS]``, ``[EOS]``, ``{SOS}``, ``{EOS}`` are added to
  the tokenizer and the embedding matrix.
* prompts: free text put in front of a query (``query_prompt``) or a document
  (``document_prompt``), e.g. ``"query: "``, as instruction-style models expect.
* ``chat_template``: every text becomes the user message of a conversation rendered with the
  tokenizer's chat template (a prompt becomes the system message), exactly as
  sentence-transformers >= 6 embeds with a chat model such as SmolLM2-Instruct. SGPT itself
  embeds raw text; this is for chat-tuned decoders and for matching sentence-transformers.

Brackets are inserted as token ids after tokenisation, never by string concatenation, so a
bracket never merges with its neighbour (SPEC 5, row 3). The content is truncated so that the
whole sequence, brackets and the tokenizer's own special tokens included, is at most
``max_seq_length`` tokens; a tokenizer that adds BOS/CLS keeps it in front:
``[CLS] [ content ] [SEP]``. SGPT itself wasted one slot and refused tokenizers with a BOS
(SPEC 5, row 4); we do neither.

Prompts are prefixed as strings, exactly as sentence-transformers applies its ``prompts``, so a
saved model with prompts encodes the same in sentence-transformers' ``encode_query`` /
``encode_document``.

With the chat template, a text longer than ``max_seq_length`` loses the end of its content but
keeps the template's tail (``<|im_end|>\n`` for SmolLM2): the rendered conversation is cut to
``max_seq_length`` tokens and the tail is written back over its last tokens, as
sentence-transformers does. Every row then starts with the same template head (about 24 tokens
for SmolLM2), which a causal model computes once per batch (``sgpt.model.prefix``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from transformers import PreTrainedTokenizerBase

SPECIAL_TOKEN_MODES = ("specb", "speca")
SPECA_INIT_SEED = 0
Role = Literal["query", "document"]
ROLES: tuple[Role, Role] = ("query", "document")

# (query start, query end, document start, document end) of each mode (SPEC 1.4 table).
BRACKETS = {
    "specb": ("[", "]", "{", "}"),
    "speca": ("[SOS]", "[EOS]", "{SOS}", "{EOS}"),
}


@dataclass(frozen=True)
class TextFormat:
    """How queries and documents are marked before the transformer sees them.

    Attributes:
        special_tokens: ``None``, ``"specb"`` or ``"speca"`` (see module doc).
        query_prompt: text put in front of every query (string prefix, as sentence-transformers does).
        document_prompt: text put in front of every document.
        chat_template: render every text as the user message of the tokenizer's chat template;
            prompts then become the system message (see module doc).

    Raises:
        ValueError: unknown ``special_tokens``, or brackets together with ``chat_template``.
    """

    special_tokens: str | None = None
    query_prompt: str = ""
    document_prompt: str = ""
    chat_template: bool = False

    def __post_init__(self) -> None:
        if self.special_tokens not in (None, *SPECIAL_TOKEN_MODES):
            raise ValueError(f"special_tokens must be None, 'specb' or 'speca', got {self.special_tokens!r}")
        if self.chat_template and self.special_tokens:
            raise ValueError(
                f"special tokens {self.special_tokens!r} (--special-tokens) cannot be combined with the "
                "chat template (--chat-template; a chat model's default): the template marks the text "
                "itself; use query/document prompts (system messages), or --no-chat-template for brackets"
            )

    @property
    def is_plain(self) -> bool:
        """True when every text is tokenised as it is, whatever its role."""
        return (
            self.special_tokens is None
            and not self.query_prompt
            and not self.document_prompt
            and not self.chat_template
        )

    def to_dict(self) -> dict:
        """JSON form, stored in the model folder (``sgpt_format.json``) and in index manifests."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "text format") -> TextFormat:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: unknown keys or values, naming ``where``.
        """
        unknown = set(data) - {"special_tokens", "query_prompt", "document_prompt", "chat_template"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        if not isinstance(data.get("chat_template", False), bool):
            raise ValueError(f"{where}: chat_template must be true or false, got {data['chat_template']!r}")
        try:
            return cls(
                special_tokens=data.get("special_tokens"),
                query_prompt=str(data.get("query_prompt") or ""),
                document_prompt=str(data.get("document_prompt") or ""),
                chat_template=bool(data.get("chat_template", False)),
            )
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def prompt(self, role: Role | None) -> str:
        """The prompt of ``role`` (``""`` for ``None``)."""
        return {"query": self.query_prompt, "document": self.document_prompt}.get(role or "", "")


def bracket_token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """The id of one bracket token: the vocabulary entry itself, else the single id it encodes to.

    Raises:
        ValueError: the token is not one id in this vocabulary (e.g. speca tokens not added yet).
    """
    vocab = tokenizer.get_vocab()
    if token in vocab:
        return int(vocab[token])
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"bracket {token!r} is not a single token of this tokenizer (encodes to {ids})")
    return int(ids[0])


def add_speca_tokens(tokenizer: PreTrainedTokenizerBase, backbone) -> int:
    """Add the four speca tokens to ``tokenizer`` (as special tokens, so they never merge) and
    grow the backbone's input embeddings to match; tokens already present are kept. New rows
    start as seeded normal draws with the mean and per-dimension spread of the existing rows
    (deterministic, distinct for the four tokens); they are learned in training.

    Returns:
        The number of tokens added (0 when the model already has them, e.g. after loading).
    """
    added = tokenizer.add_tokens(list(BRACKETS["speca"]), special_tokens=True)
    old_rows = backbone.get_input_embeddings().num_embeddings
    if old_rows < len(tokenizer):
        backbone.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        weight = backbone.get_input_embeddings().weight
        with torch.no_grad():  # seeded: the same start on every load (SGPT: random normal, unseeded)
            old = weight[:old_rows].float()
            gen = torch.Generator().manual_seed(SPECA_INIT_SEED)
            new = torch.randn(len(tokenizer) - old_rows, weight.shape[1], generator=gen)
            weight[old_rows:] = (old.mean(0) + new * old.std(0)).to(weight.dtype)
    return added


def check_texts(texts: object, where: str = "texts") -> list[str]:
    """``texts`` as a list of strings, or a ``TypeError`` instead of embedding a ``str()`` of them.

    Accepts any ordered iterable of ``str`` (list, tuple, NumPy array of strings, generator);
    ``numpy.str_`` is a ``str``.

    Args:
        texts: the texts given to ``where``.
        where: the caller's name, put in front of the message (``"encode"``).

    Returns:
        ``list(texts)`` (``n`` strings, in order).

    Raises:
        TypeError: ``texts`` is a single string or bytes, a mapping, a set, or not iterable
            (``encode: texts is dict, not a sequence of str``); or an element is not a ``str``
            (``encode: texts[3] is NoneType, not str``), such as ``None``, bytes, a number or NaN.
    """
    if isinstance(texts, (str, bytes, bytearray, Mapping, AbstractSet)) or not isinstance(texts, Iterable):
        hint = "; pass [text] for one text" if isinstance(texts, str) else ""
        raise TypeError(f"{where}: texts is {type(texts).__name__}, not a sequence of str{hint}")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"{where}: texts[{i}] is {type(text).__name__}, not str")
    return items


class Formatter:
    """Turns texts of one role into token-id lists for a given tokenizer, format and length.

    Args:
        tokenizer: the model's tokenizer (speca tokens already added when ``fmt`` uses them).
        fmt: the text format.

    Raises:
        ValueError: a bracket that is not one token of the tokenizer, or ``chat_template`` with a
            tokenizer that has none.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, fmt: TextFormat) -> None:
        self.tokenizer = tokenizer
        self.format = fmt
        self.brackets: dict[str, tuple[int, int]] = {}
        if fmt.special_tokens:
            qs, qe, ds, de = (bracket_token_id(tokenizer, t) for t in BRACKETS[fmt.special_tokens])
            self.brackets = {"query": (qs, qe), "document": (ds, de)}
        if fmt.chat_template and not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "--chat-template (chat_template=True) was asked for, but this tokenizer has no chat "
                "template (tokenizer_config.json 'chat_template' or chat_template.jinja)"
            )
        self.prefix, self.suffix = own_special_tokens(tokenizer)
        self._parts: dict[str, tuple[int, list[int]]] = {}
        self._overhead: dict[tuple[Role | None, bool], list[int]] = {}

    def __call__(
        self,
        texts: Sequence[str],
        role: Role | None,
        max_seq_length: int,
        lower: bool = False,
        *,
        where: str = "Formatter",
    ) -> list[list[int]]:
        """Token ids of each text in ``role``; ``[n] -> n lists`` of at most ``max_seq_length`` ids,
        no padding. Texts are stripped of outer whitespace (as SGPT and sentence-transformers
        before v6 do; chat messages are not, as in sentence-transformers 6) and the role's prompt
        is added here.

        Plain: the tokenizer's own call on ``prompt + text`` (special tokens added, truncation at
        ``max_seq_length``). With brackets: ``prefix + [start] + content + [end] + suffix``, the
        content truncated to ``max_seq_length - len(prefix) - len(suffix) - 2`` tokens. With the
        chat template: see :meth:`chat`.

        Args:
            texts: ``n`` strings.
            lower: lower-case ``prompt + text`` (the text only, with the chat template).
            where: the caller named in a ``TypeError`` (``"encode"``).

        Raises:
            TypeError: ``texts`` is not a sequence of ``str`` (:func:`check_texts`).
            ValueError: unknown role, or ``max_seq_length`` below :meth:`min_length` (too short
                to hold one content token).
        """
        if role not in (None, *ROLES):
            raise ValueError(f"role must be None, 'query' or 'document', got {role!r}")
        texts = check_texts(texts, where)
        if not texts:
            return []
        self.check_length(max_seq_length, (role,), lower)
        return self._ids(texts, role, max_seq_length, lower)

    def _ids(self, texts: Sequence[str], role: Role | None, max_seq_length: int, lower: bool) -> list[list[int]]:
        """:meth:`__call__` without its checks (``max_seq_length`` may be below :meth:`min_length`)."""
        prompt = self.format.prompt(role)
        if self.format.chat_template:
            return self.chat([t.lower() if lower else t for t in texts], prompt, max_seq_length)
        texts = [(prompt + t.strip()).lower() if lower else prompt + t.strip() for t in texts]
        bracket = self.brackets.get(role or "")
        if bracket is None:
            enc = self.tokenizer(
                texts,
                add_special_tokens=True,
                truncation=True,
                max_length=max_seq_length,
                padding=False,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
            return [list(ids) for ids in enc["input_ids"]]
        enc = self.tokenizer(
            texts,
            add_special_tokens=False,
            truncation=True,
            max_length=max(max_seq_length - len(self.prefix) - len(self.suffix) - 2, 1),
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        start, end = bracket
        return [self.prefix + [start] + list(ids) + [end] + self.suffix for ids in enc["input_ids"]]

    def overhead(self, role: Role | None, lower: bool = False) -> list[int]:
        """The ids the formatting of ``role`` adds around a text: the ids of an empty text
        (special tokens, brackets, prompt; e.g. ``[CLS] [SEP]`` for plain BERT, ``[]`` for plain
        GPT-2), or, with the chat template, the template's head and tail (:meth:`chat`). Cached."""
        key = (role, lower)
        if key not in self._overhead:
            if self.format.chat_template:
                head_length, tail = self._template_parts(self.format.prompt(role))
                head = self._ids([""], role, 1 << 30, lower)[0][:head_length]
                self._overhead[key] = head + tail
            else:
                self._overhead[key] = self._ids([""], role, 1 << 30, lower)[0]
        return self._overhead[key]

    def min_length(self, role: Role | None, lower: bool = False) -> int:
        """The smallest ``max_seq_length`` that leaves ``role``'s texts one content token:
        ``len(overhead(role)) + 1`` (3 for plain BERT: ``[CLS] x [SEP]``; 1 for plain GPT-2)."""
        return len(self.overhead(role, lower)) + 1

    def check_length(
        self, max_seq_length: int, roles: Sequence[Role | None] = (None, *ROLES), lower: bool = False
    ) -> None:
        """Refuse a ``max_seq_length`` that leaves no room for text in any of ``roles``.

        Raises:
            ValueError: ``max_seq_length < min_length(role)`` for one of ``roles``, naming the
                tokens the formatting takes and the smallest length that works.
        """
        for role in roles:
            need = self.min_length(role, lower)
            if max_seq_length >= need:
                continue
            ids = self.overhead(role, lower)
            what = "plain text" if role is None else f"{role} text"
            fix = ""
            if self.format.chat_template:
                kind = "the chat template's head and tail"
                fix = ", or --no-chat-template / chat_template=False"
            else:
                parts = [
                    *(["special tokens"] if self.prefix or self.suffix else []),
                    *([f"{self.format.special_tokens} brackets"] if role in self.brackets else []),
                    *(["prompt"] if self.format.prompt(role) else []),
                ]
                kind = ", ".join(parts) or "formatting"
            shown = " ".join(self.tokenizer.convert_ids_to_tokens(ids[:12])) + (" ..." if len(ids) > 12 else "")
            raise ValueError(
                f"max_seq_length {max_seq_length} leaves no room for text: this model's formatting of "
                f"{what} takes {len(ids)} tokens ({kind}: {shown}); use at least {need}{fix}"
            )

    def chat(self, texts: Sequence[str], system: str, max_seq_length: int) -> list[list[int]]:
        """Chat-template token ids: each text is the user message of a conversation (after a system
        message ``system`` when not empty), rendered with the tokenizer's template, tokenised
        without adding special tokens, cut to ``max_seq_length`` ids; a cut row gets the
        template's tail (:meth:`template_tail`) written back over its last ids. This is
        sentence-transformers 6's ``message`` modality with its default ``restore_suffix``.

        Raises:
            ValueError: ``max_seq_length`` leaves no room for text between the template's head and
                tail (every text would embed the same; sentence-transformers accepts it silently).
        """
        head_length, tail = self._template_parts(system)
        if max_seq_length <= head_length + len(tail):
            raise ValueError(
                f"max_seq_length {max_seq_length} leaves no room for text in the chat template "
                f"(its head and tail take {head_length + len(tail)} tokens); use at least "
                f"{head_length + len(tail) + 1}, or --no-chat-template / chat_template=False"
            )
        rendered = self.tokenizer.apply_chat_template([conversation(system, t) for t in texts], tokenize=False)
        enc = self.tokenizer(
            list(rendered),
            add_special_tokens=False,
            truncation=True,
            max_length=max_seq_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        rows = [list(ids) for ids in enc["input_ids"]]
        for row in rows:
            if len(row) >= max_seq_length and tail:
                row[-len(tail) :] = tail
        return rows

    def template_tail(self, system: str = "") -> list[int]:
        """The ids the chat template puts after the user's text (``<|im_end|>\n`` for SmolLM2),
        found as the longest common end of two renders with different texts, as
        sentence-transformers derives it; ``[]`` if the renders share no end."""
        return self._template_parts(system)[1]

    def _template_parts(self, system: str) -> tuple[int, list[int]]:
        """(number of ids before the user's text, ids after it) of the template with ``system``:
        the common start and end of two renders with different texts (cached)."""
        if system not in self._parts:
            first, second = (
                self.tokenizer(
                    self.tokenizer.apply_chat_template(conversation(system, filler), tokenize=False),
                    add_special_tokens=False,
                )["input_ids"]
                for filler in ("0", "1 2 3 4")
            )
            shortest = min(len(first), len(second))
            start = next((i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b), shortest)
            tails = zip(reversed(first), reversed(second), strict=False)
            end = next((i for i, (a, b) in enumerate(tails) if a != b), shortest)
            tail = list(first[len(first) - end :]) if 0 < end < shortest else []
            self._parts[system] = (start, tail)
        return self._parts[system]


def conversation(system: str, text: str) -> list[dict[str, str]]:
    """The chat messages of one text: a system message ``system`` (when not empty), then the
    text as the user message (sentence-transformers' flat ``message`` format)."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def own_special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a single text (e.g. BERT ``[CLS]`` / ``[SEP]``,
    Llama ``<s>`` / nothing, GPT-2 nothing / nothing), found by tokenising a probe with and
    without special tokens.

    Raises:
        ValueError: the tokenizer changes the text's own ids when it adds special tokens.
    """
    probe = "hello world"
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    raise ValueError("cannot find where this tokenizer puts its special tokens; use prompts instead of brackets")
