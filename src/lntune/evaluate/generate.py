"""Greedy and beam-search generation for decoders, and generation metrics of a task's dev inputs.

Prompts are left-padded so that every row's next token follows its own last prompt token; the model's
generate() derives position ids from the attention mask, so a row's output does not depend on its
batch-mates. Prompts are tokenised without special tokens, exactly as training encodes them.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from lntune.evaluate import nlg_metrics
from lntune.data.nlg import group_references
from lntune.heads.chat import prompt_and_reference


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    num_beams: int = 1,
    batch_size: int = 16,
) -> list[str]:
    """The continuation of each prompt, up to the first EOS, prompt stripped, whitespace trimmed."""
    was_training = model.training
    model.eval()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    device = next(model.parameters()).device
    out: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[start : start + batch_size]]
            batch = _left_pad(rows, pad)
            batch = {k: v.to(device) for k, v in batch.items()}
            ids = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                num_beams=num_beams,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=pad,
                # pin what a checkpoint's generation_config could change (sampling knobs, penalties)
                temperature=None, top_p=None, top_k=None, repetition_penalty=None, length_penalty=1.0,
                early_stopping=num_beams > 1,
            )
            out += [_decode(row, tokenizer, eos) for row in ids[:, batch["input_ids"].shape[1] :]]
    finally:
        model.train(was_training)
    return out


def _left_pad(rows: list[list[int]], pad: int) -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    return {
        "input_ids": torch.tensor([[pad] * (width - len(r)) + r for r in rows]),
        "attention_mask": torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows]),
    }


def _decode(row: torch.Tensor, tokenizer, eos: int) -> str:
    ids = row.tolist()
    if eos in ids:  # rows that finished early are padded after their EOS
        ids = ids[: ids.index(eos)]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


def generation_metrics(
    lm,
    task,
    dev_examples: list[dict],
    limit: int | None = None,
    seed: int = 42,
    num_beams: int = 1,
    batch_size: int = 16,
    predictions: str | Path | None = None,
) -> dict:
    """Generate for `limit` unique dev inputs (seeded; None: all) and score them with the task's metrics.

    Returns {"settings": ..., "metrics": {name: value or null}, "unavailable": {name: why}}; with
    `predictions`, also writes one JSON line per input (prompt, prediction, references).
    """
    chats = [prompt_and_reference(lm.tokenizer, e["messages"]) for e in dev_examples if "messages" in e]
    items = group_references([{"prompt": p, "target": r} for p, r in chats] or dev_examples)
    if limit and limit < len(items):
        keep = sorted(random.Random(seed).sample(range(len(items)), limit))
        items = [items[i] for i in keep]
    hyps = generate(lm.model, lm.tokenizer, [it["prompt"] for it in items], task.max_new_tokens, num_beams, batch_size)
    scores = nlg_metrics.score(hyps, [it["references"] for it in items], task.gen_metrics)
    if predictions:
        Path(predictions).parent.mkdir(parents=True, exist_ok=True)
        with open(predictions, "w", encoding="utf-8") as f:
            for it, h in zip(items, hyps):
                f.write(json.dumps({"prompt": it["prompt"], "prediction": h, "references": it["references"]}) + "\n")
    settings = {
        "inputs": len(items), "limit": limit, "seed": seed, "num_beams": num_beams,
        "max_new_tokens": task.max_new_tokens, "batch_size": batch_size,
    }
    return {"settings": settings, "metrics": {k: v for k, v in scores.items() if k != "unavailable"},
            "unavailable": scores.get("unavailable", {})}
