"""SGPT's ``examples/training/ms_marco/train_bi-encoder_mnrl.py``: the original's flags, run by sgpt.

See ``sgpt.legacy.train_bi_encoder_mnrl`` (``--help``) for what maps to what. Run from a folder
holding ``msmarco-data/`` (or where it may be downloaded to), e.g. the repository root::

    accelerate launch examples/training/ms_marco/train_bi-encoder_mnrl.py --model_name EleutherAI/gpt-neo-125m \\
        --train_batch_size 32 --freezenonbias --specb --pooling weightedmean --gradcache --chunksize 32
"""

import sys
from pathlib import Path

try:
    import sgpt  # noqa: F401
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from sgpt.legacy.train_bi_encoder_mnrl import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
