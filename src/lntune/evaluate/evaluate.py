"""Loss and task metrics of a model on encoded examples, in a fixed order."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from lntune.data.encode import IGNORE
from lntune.evaluate import metrics


@torch.no_grad()
def evaluate(model, loader: DataLoader, head: str, accelerator=None) -> dict:
    """Mean loss (per example for heads, per target token for decoders) and the head's metrics."""
    was_training = model.training
    model.eval()
    total, weight, outs, labels = 0.0, 0, [], []
    for batch in loader:
        out = model(**batch)
        if head == "causal-lm":
            n = int((batch["labels"][:, 1:] != IGNORE).sum())  # HF shifts labels by one
        else:
            n = batch["labels"].shape[0]
            logits, y = out.logits.float(), batch["labels"]
            if accelerator is not None:
                logits, y = accelerator.gather_for_metrics((logits, y))
            outs.append(logits.cpu().numpy())
            labels.append(y.cpu().numpy())
        total += float(out.loss) * n
        weight += n
    model.train(was_training)
    if accelerator is not None and accelerator.num_processes > 1:  # each process saw a shard
        sums = accelerator.reduce(torch.tensor([total, float(weight)], device=accelerator.device), "sum")
        total, weight = float(sums[0]), int(sums[1])
    result = {"loss": total / max(weight, 1)}
    if head == "classification":
        result.update(metrics.classification(np.concatenate(outs), np.concatenate(labels)))
    elif head == "regression":
        result.update(metrics.regression(np.concatenate(outs), np.concatenate(labels)))
    else:
        result.update(metrics.language_model(result["loss"]))
    return result
