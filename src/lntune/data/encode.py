"""Tokenise examples and pad batches to their longest row (dynamic padding)."""
from __future__ import annotations

import torch

IGNORE = -100  # label id the loss skips: prompt tokens of decoders


def encode(examples: list[dict], tokenizer, head: str, max_length: int) -> list[dict]:
    if head == "causal-lm":
        return [_encode_lm(e, tokenizer, max_length) for e in examples]
    return [_encode_cls(e, tokenizer, head, max_length) for e in examples]


def _encode_cls(e: dict, tokenizer, head: str, max_length: int) -> dict:
    feats = dict(tokenizer(e["text_a"], e.get("text_b"), truncation=True, max_length=max_length))
    feats["labels"] = float(e["label"]) if head == "regression" else int(e["label"])
    return feats


def _encode_lm(e: dict, tokenizer, max_length: int) -> dict:
    # Loss on the target only: the model is not asked to reproduce the prompt.
    prompt = tokenizer(e["prompt"], add_special_tokens=False)["input_ids"]
    target = tokenizer(e["target"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt + target)[:max_length]
    labels = ([IGNORE] * len(prompt) + target)[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def collate(features: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad every sequence field to the batch's longest; labels of pads are ignored."""
    width = max(len(f["input_ids"]) for f in features)
    batch = {}
    for key in features[0]:
        if key == "labels" and not isinstance(features[0]["labels"], list):
            dtype = torch.float32 if isinstance(features[0]["labels"], float) else torch.long
            batch[key] = torch.tensor([f[key] for f in features], dtype=dtype)
            continue
        fill = {"input_ids": pad_id, "labels": IGNORE}.get(key, 0)
        batch[key] = torch.tensor([f[key] + [fill] * (width - len(f[key])) for f in features])
    return batch
