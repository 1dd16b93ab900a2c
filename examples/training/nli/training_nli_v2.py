"""SGPT's ``examples/training/nli/training_nli_v2.py``: the original's flags, run by sgpt.

See ``sgpt.legacy.training_nli_v2`` (``--help``) for what maps to what. Run from a folder holding
``data/`` (or where it may be downloaded to), e.g. the repository root::

    accelerate launch examples/training/nli/training_nli_v2.py --model_name EleutherAI/gpt-neo-125m --pooling mean
"""

import sys
from pathlib import Path

try:
    import sgpt  # noqa: F401
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from sgpt.legacy.training_nli_v2 import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
