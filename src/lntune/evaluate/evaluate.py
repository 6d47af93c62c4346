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
    # Several processes: each saw a shard, and accelerate completes the last batch with repeated examples,
    # which gather_for_metrics drops again; the loss is summed per example so the repeats drop out of it too.
    shards = accelerator is not None and accelerator.num_processes > 1
    for batch in loader:
        out = model(**batch)
        if shards:
            sums, counts = accelerator.gather_for_metrics(_example_losses(out.logits, batch["labels"], head))
            total += float(sums.double().sum())
            weight += int(counts.sum())
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
        if shards:
            continue
        if n:  # a batch with no scored position has a NaN loss
            total += float(out.loss) * n
        weight += n
    model.train(was_training)
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


def _example_losses(logits: torch.Tensor, labels: torch.Tensor, head: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example's summed loss and number of scored positions, as the model's own loss computes them
    (cross-entropy; squared error for regression; next-token cross-entropy for decoders)."""
    import torch.nn.functional as F

    logits, rows = logits.float(), labels.shape[0]
    if head == "regression":
        losses = (logits.reshape(rows, -1)[:, 0] - labels.reshape(rows).float()) ** 2
        return losses, torch.ones_like(losses, dtype=torch.long)
    if head in ("classification", "multiple-choice"):
        losses = F.cross_entropy(logits.reshape(rows, -1), labels.reshape(rows), reduction="none")
        return losses, torch.ones_like(losses, dtype=torch.long)
    if head == "causal-lm":  # HF shifts the labels by one
        logits, labels = logits[:, :-1], labels[:, 1:]
    token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE,
                            reduction="none").view(labels.shape)
    return token.sum(-1), (labels != IGNORE).sum(-1)


def _words(ids: torch.Tensor, gold: torch.Tensor, names: tuple[str, ...]) -> list[list[str]]:
    """Tag names of `ids` at each sentence's scored positions (first sub-tokens of words)."""
    keep = (gold != IGNORE).cpu()
    return [[names[i] for i in row[k].tolist()] for row, k in zip(ids.cpu(), keep)]
