"""What changes the weights: MNRL loss, freezing/BitFit, the training loop, recipes."""

from sgpt.train.config import TrainConfig
from sgpt.train.losses import mnrl_loss
from sgpt.train.trainer import fit

__all__ = ["TrainConfig", "fit", "mnrl_loss"]
