from lntune.train.config import TrainConfig
from lntune.train.loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
