import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lntune.evaluate import evaluate
from lntune.heads import IGNORE, metrics

GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
PRED = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "B-LOC"]]


def test_entity_f1_by_hand():
    # gold entities: PER(0-1), LOC(3), ORG(0); predicted: PER(0) (span wrong), LOC(3), ORG(0), LOC(1)
    tp, predicted, gold = 2, 4, 3
    p, r = tp / predicted, tp / gold
    got = metrics.entities(PRED, GOLD)
    assert math.isclose(got["precision"], p) and math.isclose(got["recall"], r)
    assert math.isclose(got["f1"], 2 * p * r / (p + r)) and math.isclose(got["f1"], 4 / 7)
    assert math.isclose(got["word_accuracy"], 4 / 6)


def test_entity_f1_is_seqevals():
    from seqeval.metrics import f1_score

    assert metrics.entities(PRED, GOLD)["f1"] == f1_score(GOLD, PRED)
    assert metrics.entities([["O"]], [["O"]])["f1"] == 0.0  # no entities: 0, not a warning or NaN


def test_multiple_choice_accuracy():
    logits = np.array([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert metrics.multiple_choice(logits, np.array([1, 1, 2])) == {"accuracy": 2 / 3}


class Fixed(torch.nn.Module):
    """A 'model' predicting fixed tag ids per position, with a fixed loss."""

    def __init__(self, preds):
        super().__init__()
        self.preds = preds

    def forward(self, labels, **_):
        logits = torch.nn.functional.one_hot(self.preds, 3).float()
        return SimpleNamespace(loss=torch.tensor(0.5), logits=logits)


def test_evaluate_scores_words_at_first_sub_tokens():
    names = ("O", "B-PER", "I-PER")
    # [CLS] w1 w1## w2 [SEP] pad: only positions 1 and 3 are words
    labels = torch.tensor([[IGNORE, 1, IGNORE, 2, IGNORE, IGNORE]])
    preds = torch.tensor([[2, 1, 0, 2, 2, 2]])  # a wrong tag on the continuation piece must not count
    loader = [{"input_ids": torch.zeros_like(labels), "labels": labels}]
    got = evaluate(Fixed(preds), loader, "token-classification", label_names=names)
    assert got["f1"] == 1.0 and got["word_accuracy"] == 1.0 and got["loss"] == 0.5
    with pytest.raises(ValueError, match="label_names"):
        evaluate(Fixed(preds), loader, "token-classification")
