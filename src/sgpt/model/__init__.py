"""What turns text into a vector: backbone loading, pooling, dense heads, the BiEncoder, the saved folder."""

from sgpt.model.biencoder import BiEncoder
from sgpt.model.folder import save_folder
from sgpt.model.loader import load
from sgpt.model.pooling import POOLING_MODES, pool

__all__ = ["BiEncoder", "load", "save_folder", "pool", "POOLING_MODES"]
