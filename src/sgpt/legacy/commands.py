"""A whole original command line (``CUDA_VISIBLE_DEVICES=... accelerate launch ... script.py --flags``)
-> the ``(task, flags)`` its script maps it to."""

from __future__ import annotations

import shlex
from typing import Any

from sgpt.legacy import train_bi_encoder_mnrl, training_nli_v2

# script path (as the seed README writes it) -> the module that maps its flags
SCRIPTS = {
    "examples/training/nli/training_nli_v2.py": training_nli_v2,
    "examples/training/msmarco/training_nli_v2.py": training_nli_v2,  # the README's path for SBERT-large-nli-v2
    "examples/training/ms_marco/train_bi-encoder_mnrl.py": train_bi_encoder_mnrl,
}


def split_command(line: str) -> tuple[str, list[str]]:
    """The script path and its arguments in a shell command line (environment assignments,
    ``python``, ``accelerate launch`` and the launcher's options before the script are skipped).

    Raises:
        ValueError: no known script in the line.
    """
    words = shlex.split(line)
    for i, word in enumerate(words):
        for script in SCRIPTS:
            if word == script or word.endswith("/" + script):
                return script, words[i + 1 :]
    raise ValueError(f"no original SGPT training script ({', '.join(SCRIPTS)}) in: {line}")


def parse_command(line: str) -> tuple[str, dict[str, Any]]:
    """``(task, flags)`` of an original command line, as its script would run it.

    Raises:
        ValueError: no known script in the line, or flags the script refuses.
        SystemExit: argparse's own errors (unknown flag, missing ``--model_name``).
    """
    script, argv = split_command(line)
    module = SCRIPTS[script]
    return module.parse(argv, prog=script.rsplit("/", 1)[-1])
