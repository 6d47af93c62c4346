"""Task metrics from predictions; well-kept libraries where they exist."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the arrays come from the caller: importing numpy here would slow `lntune --help`
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


def entities(preds: list[list[str]], golds: list[list[str]]) -> dict:
    """Entity-level micro F1, precision and recall (seqeval, CoNLL rules), plus per-word accuracy.

    One list of BIO tag strings per sentence; an entity counts only when its type and span match.
    """
    from seqeval.metrics import f1_score, precision_score, recall_score

    words = sum(len(g) for g in golds)
    return {
        "f1": float(f1_score(golds, preds, zero_division=0)),
        "precision": float(precision_score(golds, preds, zero_division=0)),
        "recall": float(recall_score(golds, preds, zero_division=0)),
        "word_accuracy": sum(p == g for ps, gs in zip(preds, golds) for p, g in zip(ps, gs)) / max(words, 1),
    }


def multiple_choice(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy of the best-scoring choice; F1 over choice positions would mean nothing."""
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}
