"""Loss and task metrics of a model on encoded examples, in a fixed order."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from lntune.heads import get_head


@torch.no_grad()
def evaluate(model, loader: DataLoader, head: str, accelerator=None, label_names: tuple[str, ...] = ()) -> dict:
    """Mean loss (per example for heads, per target token for decoders, per word for taggers) and
    the head's metrics; token-classification needs `label_names`, the task's tags by id."""
    kind = get_head(head)
    was_training = model.training
    model.eval()
    total, weight, collected = 0.0, 0, []
    # Several processes: each saw a shard, and accelerate completes the last batch with repeated examples,
    # which gather_for_metrics drops again; the loss is summed per example so the repeats drop out of it too.
    shards = accelerator is not None and accelerator.num_processes > 1
    for batch in loader:
        out = model(**batch)
        if shards:
            sums, counts = accelerator.gather_for_metrics(kind.example_losses(out.logits, batch["labels"]))
            total += float(sums.double().sum())
            weight += int(counts.sum())
        collected.append(kind.collect(out.logits, batch["labels"], accelerator, label_names))
        if shards:
            continue
        n = kind.loss_terms(batch["labels"])
        if n:  # a batch with no scored position has a NaN loss
            total += float(out.loss) * n
        weight += n
    model.train(was_training)
    result = {"loss": total / max(weight, 1)}
    result.update(kind.metrics(collected, result["loss"], label_names))
    return result
