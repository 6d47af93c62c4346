"""lntune: parameter-efficient fine-tuning centred on LayerNorm tuning."""
__version__ = "0.1.0"

from lntune.api import evaluate_skin, generate_base, generate_skin, train_task  # noqa: E402
from lntune.method import METHODS, build_method, prepare  # noqa: E402
from lntune.model import load_model, map_norms  # noqa: E402
from lntune.skin import load_skin, save_skin  # noqa: E402
from lntune.train import TrainConfig, train  # noqa: E402

__all__ = [
    "METHODS",
    "TrainConfig",
    "build_method",
    "evaluate_skin",
    "generate_base",
    "generate_skin",
    "load_model",
    "load_skin",
    "map_norms",
    "prepare",
    "save_skin",
    "train",
    "train_task",
]
