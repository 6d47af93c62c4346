"""Pad batches of features to their longest row (dynamic padding); each head encodes its own examples."""
from __future__ import annotations

import torch

from lntune.heads import IGNORE


def collate(features: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad every sequence field to the batch's longest; labels of pads are ignored.

    Multiple-choice features hold one sequence per choice: (batch, choices, longest) tensors."""
    nested = isinstance(features[0]["input_ids"][0], list)
    rows = [r for f in features for r in (f["input_ids"] if nested else [f["input_ids"]])]
    width = max(len(r) for r in rows)
    batch = {}
    for key in features[0]:
        if key == "labels" and not isinstance(features[0]["labels"], list):
            dtype = torch.float32 if isinstance(features[0]["labels"], float) else torch.long
            batch[key] = torch.tensor([f[key] for f in features], dtype=dtype)
            continue
        fill = {"input_ids": pad_id, "labels": IGNORE}.get(key, 0)

        def pad(r: list, fill=fill) -> list:
            return r + [fill] * (width - len(r))

        batch[key] = torch.tensor([[pad(r) for r in f[key]] if nested else pad(f[key]) for f in features])
    return batch
