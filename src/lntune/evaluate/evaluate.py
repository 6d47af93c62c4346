"""Loss and task metrics of a model on encoded examples, in a fixed order."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from lntune.data.encode import IGNORE
from lntune.evaluate import metrics


@torch.no_grad()
def evaluate(model, loader: DataLoader, head: str, accelerator=None, label_names: tuple[str, ...] = ()) -> dict:
    """Mean loss (per example for heads, per target token for decoders, per word for taggers) and
    the head's metrics; token-classification needs `label_names`, the task's tags by id."""
    if head == "token-classification" and not label_names:
        raise ValueError("token-classification metrics need the tag names: evaluate(..., label_names=task.labels)")
    was_training = model.training
    model.eval()
    total, weight, outs, labels = 0.0, 0, [], []
    for batch in loader:
        out = model(**batch)
        if head == "causal-lm":
            n = int((batch["labels"][:, 1:] != IGNORE).sum())  # HF shifts labels by one
        elif head == "token-classification":
            n = int((batch["labels"] != IGNORE).sum())  # the loss is a mean over first sub-tokens
            preds, y = out.logits.argmax(-1), batch["labels"]
            if accelerator is not None:  # shards differ in width: pad before gathering
                preds, y = accelerator.pad_across_processes((preds, y), dim=1, pad_index=IGNORE)
                preds, y = accelerator.gather_for_metrics((preds, y))
            outs.extend(_words(preds, y, label_names))
            labels.extend(_words(y, y, label_names))
        else:
            n = batch["labels"].shape[0]
            logits, y = out.logits.float(), batch["labels"]
            if accelerator is not None:
                logits, y = accelerator.gather_for_metrics((logits, y))
            outs.append(logits.cpu().numpy())
            labels.append(y.cpu().numpy())
        if n:  # a batch with no scored position has a NaN loss
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
    elif head == "token-classification":
        result.update(metrics.entities(outs, labels))
    elif head == "multiple-choice":
        result.update(metrics.multiple_choice(np.concatenate(outs), np.concatenate(labels)))
    else:
        result.update(metrics.language_model(result["loss"]))
    return result


def _words(ids: torch.Tensor, gold: torch.Tensor, names: tuple[str, ...]) -> list[list[str]]:
    """Tag names of `ids` at each sentence's scored positions (first sub-tokens of words)."""
    keep = (gold != IGNORE).cpu()
    return [[names[i] for i in row[k].tolist()] for row, k in zip(ids.cpu(), keep)]
