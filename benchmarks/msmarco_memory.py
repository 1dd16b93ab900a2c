"""Memory per passage of the MS MARCO collection: sgpt's ``PassageStore`` against SGPT's dict of strings.

    python benchmarks/msmarco_memory.py                   # 1M synthetic passages (about 340 MB on disk)
    python benchmarks/msmarco_memory.py --passages 100000 --quick

Writes a synthetic ``collection.tsv`` (``pid<TAB>text``, pids 0..n-1 as in MS MARCO, about 56
words / 340 characters a passage: MS MARCO's mean) into a temp folder, then, each in a fresh
process, builds

* ``store``: :class:`sgpt.data.passages.PassageStore` (an offsets index; texts read by ``os.pread``);
* ``sgpt_dict``: ``{int(pid): text}`` as SGPT's ``train_bi-encoder_mnrl.py`` reads the collection

and reports the resident memory it adds (RSS after - RSS before, with the object alive, divided by
the number of passages), the peak RSS, the build time and, for the store, random reads per second.
The real collection has 8,841,823 passages: multiply. Writes ``benchmarks/results/msmarco_memory.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MSMARCO_PASSAGES = 8_841_823
WORDS_PER_PASSAGE = 56


def write_collection(path: Path, n: int, seed: int = 0) -> int:
    """``n`` passages of random lower-case words; returns the file size in bytes."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(20_000)]
    with open(path, "w", encoding="utf-8") as f:
        for pid in range(n):
            words = rng.choices(vocab, k=rng.randint(WORDS_PER_PASSAGE - 20, WORDS_PER_PASSAGE + 20))
            f.write(f"{pid}\t{' '.join(words)}.\n")
    return path.stat().st_size


def rss_bytes(field: str = "VmRSS") -> int:
    """This process's resident set (``VmRSS``) or its peak (``VmHWM``) from /proc, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(method: str, path: Path, reads: int) -> dict:
    """Build one collection object in this (fresh) process and measure it."""
    from sgpt.data.passages import PassageStore  # imported before the baseline: the library is not counted

    gc.collect()
    before = rss_bytes()
    t = time.perf_counter()
    if method == "store":
        obj: object = PassageStore(path)
    else:
        corpus: dict[int, str] = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                pid, passage = line.strip().split("\t")
                corpus[int(pid)] = passage
        obj = corpus
    build_s = time.perf_counter() - t
    gc.collect()
    after = rss_bytes()
    n = len(obj)  # type: ignore[arg-type]
    out = {"method": method, "passages": n, "build_s": round(build_s, 2), "rss_added_bytes": after - before}
    out["bytes_per_passage"] = round((after - before) / n, 1)
    out["peak_rss_bytes"] = rss_bytes("VmHWM")
    if method == "store":
        out["index_bytes"] = obj.index_bytes  # type: ignore[attr-defined]
        rng = random.Random(1)
        pids = [str(rng.randrange(n)) for _ in range(reads)]
        t = time.perf_counter()
        chars = sum(len(obj[p]) for p in pids)  # type: ignore[index]
        out["random_reads_per_s"] = round(reads / (time.perf_counter() - t))
        out["mean_chars"] = round(chars / reads, 1)
    out["projected_msmarco_bytes"] = round(out["bytes_per_passage"] * MSMARCO_PASSAGES)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--passages", type=int, default=1_000_000)
    p.add_argument("--reads", type=int, default=100_000, help="random passage reads timed on the store")
    p.add_argument("--methods", default="store,sgpt_dict")
    p.add_argument("--quick", action="store_true", help="write msmarco_memory_quick.json instead")
    p.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.reads)))
        return
    with tempfile.TemporaryDirectory(prefix="msmarco-memory-") as tmp:
        path = Path(tmp) / "collection.tsv"
        t = time.perf_counter()
        size = write_collection(path, args.passages)
        print(f"wrote {args.passages} passages ({size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s", flush=True)
        rows = []
        for method in args.methods.split(","):
            cmd = [sys.executable, __file__, "--child", method, str(path), "--reads", str(args.reads)]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {
        "command": " ".join(["python benchmarks/msmarco_memory.py", *sys.argv[1:]]),
        "passages": args.passages,
        "file_bytes": size,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("msmarco_memory_quick.json" if args.quick else "msmarco_memory.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
