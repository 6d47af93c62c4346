from lntune.evaluate.evaluate import evaluate

__all__ = ["evaluate"]
