"""The seed README's path for ``SBERT-large-nli-v2`` (``examples/training/msmarco/training_nli_v2.py
--modelname bert-large-uncased``; the original had no such file): the NLI script, ``--modelname``
accepted for ``--model_name``. See ``sgpt.legacy.training_nli_v2``."""

import sys
from pathlib import Path

try:
    import sgpt  # noqa: F401
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from sgpt.legacy.training_nli_v2 import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
