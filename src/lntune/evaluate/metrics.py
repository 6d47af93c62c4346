"""Task metrics from predictions; well-kept libraries where they exist."""
from __future__ import annotations

import math

import numpy as np


def classification(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, F1 (of class 1 when binary, as GLUE reports it; macro otherwise) and Matthews correlation."""
    from sklearn.metrics import f1_score, matthews_corrcoef

    preds = logits.argmax(-1)
    binary = logits.shape[-1] == 2
    return {
        "accuracy": float((preds == labels).mean()),
        "f1": float(f1_score(labels, preds, average="binary" if binary else "macro", zero_division=0)),
        "mcc": float(matthews_corrcoef(labels, preds)),
    }


def regression(preds: np.ndarray, labels: np.ndarray) -> dict:
    from scipy.stats import pearsonr, spearmanr

    preds = preds.reshape(-1)
    return {"pearson": float(pearsonr(preds, labels)[0]), "spearman": float(spearmanr(preds, labels)[0])}


def language_model(mean_loss: float) -> dict:
    return {"perplexity": math.exp(min(mean_loss, 50.0))}
