"""sgpt: train, evaluate and serve SGPT-style bi-encoders (arXiv 2202.08904).

import sgpt
m = sgpt.load("path/or/hub-id", pooling="weightedmean", max_seq_length=75)
e = m.encode(["a text", "another"], batch_size=32, normalize=True)   # np.float32 [2, d]
m.save("out/")                                                       # sentence-transformers folder
"""

from sgpt.model import BiEncoder, load
from sgpt.version import __version__

__all__ = ["BiEncoder", "load", "__version__"]
