import torch

from lntune.data.encode import collate
from lntune.heads import IGNORE, encode


def test_classification_batches_pad_to_the_longest_row(tokenizer):
    feats = encode([{"text_a": "good", "label": 1}, {"text_a": "a much longer sentence here", "label": 0}],
                   tokenizer, "classification", 128)
    batch = collate(feats, tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (2, len(feats[1]["input_ids"]))
    assert batch["attention_mask"][0].tolist() == [1] * len(feats[0]["input_ids"]) + [0] * (
        len(feats[1]["input_ids"]) - len(feats[0]["input_ids"]))
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == torch.long


def test_regression_labels_are_float(tokenizer):
    batch = collate(encode([{"text_a": "x", "text_b": "y", "label": 3.5}], tokenizer, "regression", 16), 0)
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [3.5]
    assert 1 in batch["token_type_ids"][0].tolist()  # the pair is encoded as two segments


def test_decoder_loss_covers_the_target_only(tokenizer):
    [f] = encode([{"prompt": "name [ x ]", "target": " a place"}], tokenizer, "causal-lm", 128)
    prompt = tokenizer("name [ x ]", add_special_tokens=False)["input_ids"]
    target = tokenizer(" a place", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert f["input_ids"] == prompt + target
    assert f["labels"] == [IGNORE] * len(prompt) + target
    batch = collate([f, {**f, "input_ids": f["input_ids"][:2], "attention_mask": [1, 1], "labels": f["labels"][:2]}], 0)
    assert batch["labels"][1, 2:].eq(IGNORE).all()
