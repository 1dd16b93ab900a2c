"""Load a Hugging Face transformer and its tokenizer: hub id, local folder or ``.gguf`` file.

The pad-token policy lives here: a tokenizer without a pad token gets its EOS token as pad
(SGPT's choice, SPEC 1.2), decided by the tokenizer itself, never by the model's name.
"""

from __future__ import annotations

import logging
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from sgpt.utils.io import atomic_dir

logger = logging.getLogger("sgpt.model")

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """Map ``"float32" | "bfloat16" | "float16"`` (or short forms, or a torch dtype) to a torch dtype.

    Raises:
        ValueError: unknown name.
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype: unknown value {dtype!r}; expected one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


# How long to wait for the hub to answer a connection before calling it unreachable (instead of
# huggingface_hub's retry loop, which takes over a minute offline).
HUB_CONNECT_TIMEOUT_S = 3.0
LOCAL_MODEL_HINT = "models/all-minilm-l6-v2"


def hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``, through the https proxy when one is set)
    accepts a TCP connection within ``timeout`` seconds; ``False`` under ``HF_HUB_OFFLINE``."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlsplit(constants.ENDPOINT)
    host, port = url.hostname or "", url.port or (80 if url.scheme == "http" else 443)
    proxy = urllib.request.getproxies().get(url.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_url = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_url.hostname or host, proxy_url.port or 80
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_hub_id(name: str) -> str | Path:
    """Where to load hub id ``name`` from: ``name`` itself when the hub can be reached (the
    libraries download it as usual), else its snapshot in the local Hugging Face cache.

    Raises:
        ConnectionError: the hub cannot be reached and ``name`` is not in the cache (one line,
            naming the id and a local folder to use instead), raised within a few seconds instead
            of after huggingface_hub's retries.
    """
    if hub_reachable():
        return name
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # not in the cache (or an invalid id): nothing to load offline
        pass
    raise ConnectionError(
        f"{name}: not a local folder, and the Hugging Face hub cannot be reached to download it "
        f"(nor is it in the local cache); give a local model folder instead, e.g. {LOCAL_MODEL_HINT}"
    )


def find_gguf(path: Path) -> Path | None:
    """The GGUF file named by ``path``, or the single ``.gguf`` file in a folder without ``config.json``."""
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir() and not (path / "config.json").exists():
        files = sorted(path.glob("*.gguf"))
        if len(files) == 1:
            return files[0]
        if len(files) > 1:
            raise ValueError(f"{path}: several .gguf files ({', '.join(f.name for f in files)}); name one of them")
    return None


def check_model_path(path: Path, expected: str = "config.json or .gguf file") -> None:
    """Refuse, in one line, a local path that cannot hold a model, before the tokenizer library
    tries it (and answers with a paragraph about sentencepiece).

    Args:
        path: an existing local file or folder.
        expected: what a model folder would hold, for the message.

    Raises:
        ValueError: ``path`` is a folder without ``config.json`` and without a ``.gguf`` file
            (``FOLDER: not a model folder (no config.json or .gguf file)``), or a file that is not
            a ``.gguf`` file.
    """
    if path.is_dir():
        if not (path / "config.json").is_file() and not any(path.glob("*.gguf")):
            raise ValueError(f"{path}: not a model folder (no {expected})")
    elif path.suffix != ".gguf":
        raise ValueError(f"{path}: not a model (a file that is not .gguf; give a model folder or a .gguf file)")


def _load_gguf(file: Path, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Dequantise a GGUF checkpoint into a plain (saveable) transformers model."""
    logger.info("loading GGUF %s (dequantised to %s); `sgpt convert-gguf` makes later loads fast", file, dtype)
    tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
    gguf_model = AutoModel.from_pretrained(file.parent, gguf_file=file.name, dtype=dtype)
    config = gguf_model.config
    # A GGUF-loaded model refuses save_pretrained(); rebuild it without the quantization config.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModel.from_config(config, dtype=dtype)
    model.load_state_dict(gguf_model.state_dict())
    return model, tokenizer


def set_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give ``tokenizer`` a pad token if it has none: EOS, else UNK (SPEC 1.2, decided by the tokenizer).

    Raises:
        ValueError: the tokenizer has neither a pad, an EOS nor an UNK token.
    """
    if tokenizer.pad_token is not None:
        return
    for name in ("eos_token", "unk_token"):
        token = getattr(tokenizer, name)
        if token is not None:
            tokenizer.pad_token = token
            logger.info("tokenizer has no pad token: using its %s %r (id %d)", name, token, tokenizer.pad_token_id)
            return
    raise ValueError("tokenizer has no pad, EOS or UNK token; set tokenizer.pad_token before building a BiEncoder")


def load_backbone(
    name_or_path: str | Path,
    *,
    dtype: str | torch.dtype | None = None,
    subfolder: str = "",
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """Load a transformer (``AutoModel``, no LM head) and its tokenizer.

    Args:
        name_or_path: a hub id, a local folder, a ``.gguf`` file, or a folder holding one ``.gguf`` file.
        dtype: weight dtype (default float32; GGUF weights are dequantised to it).
        subfolder: folder inside ``name_or_path`` holding the transformer (asymmetric towers).

    Returns:
        ``(model, tokenizer)``; the tokenizer always has a pad token.

    Raises:
        ValueError: a local folder without ``config.json`` or ``.gguf`` file, or a local file that
            is not ``.gguf`` (one line, :func:`check_model_path`); a local folder whose tokenizer
            cannot be loaded (one line naming it).
        OSError: the path or hub id cannot be found (from transformers); ``ConnectionError``
            within seconds when a hub id is neither reachable nor cached (``resolve_hub_id``).
    """
    torch_dtype = resolve_dtype(dtype)
    path = Path(name_or_path) / subfolder if subfolder else Path(name_or_path)
    if path.exists():
        check_model_path(path)
    gguf = find_gguf(path) if path.exists() else None
    if gguf is not None:
        model, tokenizer = _load_gguf(gguf, torch_dtype)
    else:
        src = str(path) if path.exists() else str(resolve_hub_id(str(name_or_path)))
        kwargs = {} if path.exists() or not subfolder else {"subfolder": subfolder}
        try:
            tokenizer = AutoTokenizer.from_pretrained(src, **kwargs)
        except (ValueError, OSError) as e:
            if not path.exists():
                raise
            said = str(e).strip().splitlines()[0].rstrip(" :") if str(e).strip() else type(e).__name__
            if "backend tokenizer" in said:  # the sentencepiece paragraph: no tokenizer files at all
                said = "no tokenizer files it can use (tokenizer.json, tokenizer_config.json, vocabulary)"
            raise ValueError(f"{path}: cannot load the tokenizer of this model folder: {said}") from None
        model = AutoModel.from_pretrained(src, dtype=torch_dtype, **kwargs)
    set_pad_token(tokenizer)
    return model, tokenizer


def convert_gguf(file: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a GGUF checkpoint as a plain safetensors model folder (exact round trip, fast reloads).

    Args:
        file: the ``.gguf`` file.
        out: the folder to write (replaced atomically if it exists; a folder holding files this
            conversion does not write is refused unless ``overwrite``).

    Returns:
        ``Path(out)``.

    Raises:
        ValueError: ``file`` is not a GGUF file; ``out`` is a file or (without ``overwrite``) holds
            files the conversion would delete.
    """
    src = Path(file)
    gguf = find_gguf(src) if src.exists() else None
    if gguf is None:
        raise ValueError(f"{file}: not a .gguf file (or a folder holding exactly one)")
    model, tokenizer = _load_gguf(gguf, torch.float32)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out)


def position_limit(model: nn.Module) -> int | None:
    """The most positions the model has learned embeddings for (``max_position_embeddings``;
    ``None`` when the config does not say)."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(limit) if isinstance(limit, int) and limit > 0 else None


def max_length_of(model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> int:
    """Longest input the model accepts: the tokenizer's ``model_max_length`` when set, else the
    model's ``max_position_embeddings`` (many decoder tokenizers leave the former unset)."""
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and limit < 1_000_000:
        return int(limit)
    config = getattr(model, "config", None) or AutoConfig.for_model("gpt2")
    return int(getattr(config, "max_position_embeddings", 512))
