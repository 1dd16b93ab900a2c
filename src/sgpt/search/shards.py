"""Resumable embedding shards: a corpus embedded in fixed-size pieces, each written atomically.

While ``sgpt.search.index.build_index`` runs, its work folder (``<index>.partial/``) holds:

    build.json               what the shards belong to: corpus fingerprint, model weights
                             fingerprint and signature, precision, shard size (written first)
    shards/00000.ids.json    ids of shard 0 (corpus rows 0 .. shard_size-1, in file order)
    shards/00000.npy         float32 ``[n_0, d]`` embeddings of shard 0
    shards/00000.checksums.json  size and sha256 of ``00000.npy`` (:mod:`sgpt.utils.checksums`),
                             written after it

Every file goes through a temporary file and ``os.replace``; a shard's ``.npy`` is written after
its ids, so its presence marks the shard complete and a crash loses at most the shard in
progress. A rerun verifies a finished shard against its checksums (a damaged or changed ``.npy`` is
logged, naming it, and embedded again; a shard without checksums, from an older sgpt or a crash
just after its ``.npy``, is checked by loading it). A rerun reuses the finished shards only when
``build.json`` matches the new build exactly; otherwise it refuses, naming what differs, instead
of mixing vectors of two corpora or two models in one index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sgpt.utils.checksums import verify_checksums, write_checksums
from sgpt.utils.diff import differences
from sgpt.utils.io import atomic_file, read_json, write_json

logger = logging.getLogger("sgpt.search")

BUILD_FILE = "build.json"


def corpus_fingerprint(ids: Sequence[str], texts: Sequence[str]) -> str:
    """SHA-256 (hex) of the documents in order: every id and text, each length-prefixed.

    Two corpora get the same fingerprint only if they hold the same ids with the same texts in
    the same order, so shards of one are never reused for the other.
    """
    h = hashlib.sha256()
    for doc_id, text in zip(ids, texts, strict=True):
        for part in (doc_id, text):
            raw = part.encode("utf-8", "surrogatepass")
            h.update(len(raw).to_bytes(8, "little"))
            h.update(raw)
    return h.hexdigest()


def weights_fingerprint(model: nn.Module, sample: int = 4096) -> str:
    """SHA-256 (hex) of a model's weights: every tensor's name and shape and up to ``sample``
    evenly strided values (as float32).

    Cheap even for billions of parameters (it reads about ``sample`` values per tensor), and
    deterministic; fine-tuning, BitFit (biases are sampled whole when small) and a change of
    weight dtype all change it.
    """
    h = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // sample)
            values = flat[::step][:sample].float().cpu().numpy()
            h.update(f"{name}:{tuple(tensor.shape)}".encode())
            h.update(values.tobytes())
    return h.hexdigest()


def json_normal(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, keys strings), for comparisons."""
    return json.loads(json.dumps(obj))


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` through a temporary file in the same folder and ``os.replace`` (ordinary permissions)."""
    with atomic_file(path, "wb") as f:
        np.save(f, array)


class ShardStore:
    """The shards of one build, in ``folder``; see the module doc for the layout.

    Args:
        folder: the work folder (created if absent).
        key: what the shards belong to (JSON-able; compared field by field with a previous run's).
        resume: reuse the finished shards of a previous run with the same ``key``; ``False``
            deletes ``folder`` first.

    Raises:
        ValueError: ``folder`` holds finished shards of a different build (the message lists the
            differing fields and says how to start over), or its ``build.json`` is unreadable.
    """

    def __init__(self, folder: str | Path, key: Mapping[str, Any], *, resume: bool = True) -> None:
        self.folder = Path(folder)
        self.key = json_normal(dict(key))
        if not resume and self.folder.exists():
            shutil.rmtree(self.folder)
        build_file = self.folder / BUILD_FILE
        if build_file.exists():
            previous = read_json(build_file)
            diffs = differences(previous, self.key) if isinstance(previous, dict) else ["not a JSON object"]
            if diffs and not any((self.folder / "shards").glob("*.npy")):  # nothing finished: nothing to mix
                shutil.rmtree(self.folder)
            elif diffs:
                raise ValueError(
                    f"{build_file}: the shards there belong to a different build "
                    f"(previous vs now: {'; '.join(diffs)}); refusing to mix them. "
                    f"Delete {self.folder} or rebuild with resume=False (sgpt index build --no-resume)"
                )
        (self.folder / "shards").mkdir(parents=True, exist_ok=True)
        if not build_file.exists():
            write_json(build_file, self.key)

    def _paths(self, shard: int) -> tuple[Path, Path]:
        base = self.folder / "shards" / f"{shard:05d}"
        return base.with_name(base.name + ".ids.json"), base.with_name(base.name + ".npy")

    @staticmethod
    def _checksums_name(shard: int) -> str:
        return f"{shard:05d}.checksums.json"

    def is_done(self, shard: int, ids: Sequence[str], dim: int) -> bool:
        """True when shard ``shard`` is complete and holds exactly ``ids`` as ``[len(ids), dim]`` float32.

        A shard that is present but does not match (which only a foreign file can cause) is
        logged and treated as missing, so it is embedded again.
        """
        ids_file, npy_file = self._paths(shard)
        if not npy_file.exists():
            return False
        sums = self._checksums_name(shard)
        try:
            damaged = verify_checksums(npy_file.parent, sums) if (npy_file.parent / sums).is_file() else []
        except ValueError as e:
            damaged = [f"{sums} ({e})"]
        if damaged:
            logger.warning(
                "shard %d in %s: %s damaged or changed since it was written; embedding it again",
                shard,
                self.folder,
                ", ".join(str(npy_file.parent / name) for name in damaged),
            )
            return False
        try:
            stored_ids = read_json(ids_file)
            emb = np.load(npy_file, mmap_mode="r")
        except (OSError, ValueError) as e:
            logger.warning("shard %d in %s is unreadable (%s); embedding it again", shard, self.folder, e)
            return False
        if stored_ids != list(ids) or emb.shape != (len(ids), dim) or emb.dtype != np.float32:
            logger.warning("shard %d in %s does not match this build; embedding it again", shard, self.folder)
            return False
        return True

    def write(self, shard: int, ids: Sequence[str], emb: np.ndarray) -> None:
        """Write shard ``shard``: its ids, then its ``[len(ids), d]`` float32 embeddings (the completion mark)."""
        if emb.shape[0] != len(ids):
            raise ValueError(f"shard {shard}: {len(ids)} ids but {emb.shape[0]} embeddings")
        ids_file, npy_file = self._paths(shard)
        write_json(ids_file, list(ids))
        atomic_save_npy(npy_file, np.ascontiguousarray(emb, dtype=np.float32))
        write_checksums(npy_file.parent, [npy_file.name], self._checksums_name(shard))

    def load(self, shard: int) -> np.ndarray:
        """Embeddings of shard ``shard`` (memory-mapped, read-only) ``[n_shard, d]``."""
        return np.load(self._paths(shard)[1], mmap_mode="r")

    def finished(self) -> int:
        """How many shards are finished (this build's and an interrupted earlier one's)."""
        return sum(1 for _ in (self.folder / "shards").glob("*.npy"))

    def remove(self) -> None:
        """Delete the work folder (after the index that used it is in place)."""
        shutil.rmtree(self.folder, ignore_errors=True)
