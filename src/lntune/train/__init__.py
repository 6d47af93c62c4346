from lntune.spec.train import TrainConfig
from lntune.train.loop import TrainResult, train
from lntune.train.step import Step

__all__ = ["Step", "TrainConfig", "TrainResult", "train"]
