import math

import numpy as np
from scipy.stats import pearsonr, spearmanr

from lntune.heads import metrics


def test_classification_metrics_by_hand():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])  # predictions 1, 0, 1, 0
    got = metrics.classification(logits, np.array([1, 0, 0, 0]))
    assert got["accuracy"] == 0.75
    assert math.isclose(got["f1"], 2 * 1 / (2 * 1 + 1 + 0))  # tp 1, fp 1, fn 0
    tp, tn, fp, fn = 1, 2, 1, 0
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert math.isclose(got["mcc"], mcc)


def test_multiclass_f1_is_macro():
    logits = np.eye(3)[[0, 1, 2, 2]]
    got = metrics.classification(logits, np.array([0, 1, 1, 2]))
    # per class F1: 1, 2/3, 2/3
    assert math.isclose(got["f1"], (1 + 2 / 3 + 2 / 3) / 3)


def test_regression_matches_scipy():
    p, y = np.array([[1.0], [2.0], [2.5], [4.0]]), np.array([1.0, 3.0, 2.0, 5.0])
    got = metrics.regression(p, y)
    assert math.isclose(got["pearson"], pearsonr(p[:, 0], y)[0])
    assert math.isclose(got["spearman"], spearmanr(p[:, 0], y)[0]) and math.isclose(got["spearman"], 0.8)


def test_perplexity_is_exp_loss():
    assert math.isclose(metrics.language_model(math.log(7.0))["perplexity"], 7.0)
