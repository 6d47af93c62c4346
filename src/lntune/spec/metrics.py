"""What a metric's name says about it, defined once: whether greater is better, and whether it is a 0-1 share
shown x100. The sweep's lr choice, early stopping on the score, the report's tables and the paired statistics
all read these two functions.

Names are matched by their tokens, so composite names ("entity_f1", "rouge_l", "val_loss") follow their parts.

>>> greater_is_better("accuracy"), greater_is_better("perplexity"), greater_is_better("ter")
(True, False, False)
>>> percent_scale("pearson"), percent_scale("bleu")
(100.0, 1.0)
"""
from __future__ import annotations

import re

# Lower is better for these (and for any name containing one of them as a token).
LOWER_IS_BETTER = frozenset({"loss", "perplexity", "ppl", "ter"})
# 0-1 metrics shown x100 as in the papers' tables; BLEU/ROUGE/METEOR/TER are percentages already.
FRACTION_METRICS = frozenset({"accuracy", "acc", "f1", "mcc", "pearson", "spearman", "precision", "recall", "em",
                              "exact_match", "matthews", "auc"})


# The generation metrics lntune computes (lntune.evaluate.nlg_metrics), by name: tasks and users' specs name them.
NLG_METRICS = ("bleu", "nist", "meteor", "rouge_l", "cider", "ter", "rouge1", "rouge2")


def _tokens(metric: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", metric.lower())) - {""}


def greater_is_better(metric: str) -> bool:
    """From the metric name: loss, perplexity and TER go down; everything else goes up."""
    return not (_tokens(metric) & LOWER_IS_BETTER)


def percent_scale(metric: str) -> float:
    """x100 for 0-1 metrics (accuracy, F1, correlations), x1 for the rest."""
    return 100.0 if _tokens(metric) & FRACTION_METRICS else 1.0
