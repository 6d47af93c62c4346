"""Tokenise examples and pad batches to their longest row (dynamic padding)."""
from __future__ import annotations

import warnings

import torch

IGNORE = -100  # label id the loss skips: prompt tokens of decoders, non-first sub-tokens of words


def encode(examples: list[dict], tokenizer, head: str, max_length: int) -> list[dict]:
    if head == "causal-lm":
        return [_encode_lm(e, tokenizer, max_length) for e in examples]
    if head == "token-classification":
        return _encode_words(examples, tokenizer, max_length)
    if head == "multiple-choice":
        return [_encode_choices(e, tokenizer, max_length) for e in examples]
    return [_encode_cls(e, tokenizer, head, max_length) for e in examples]


def _encode_cls(e: dict, tokenizer, head: str, max_length: int) -> dict:
    feats = dict(tokenizer(e["text_a"], e.get("text_b"), truncation=True, max_length=max_length))
    feats["labels"] = float(e["label"]) if head == "regression" else int(e["label"])
    return feats


def _visible(words: list[str], tokenizer) -> list[str]:
    """`words`, with those the tokenizer drops entirely (zero-width characters) read as unknown,
    so that every word keeps a label and is scored."""
    seen = set(tokenizer(words, is_split_into_words=True, add_special_tokens=False).word_ids())
    if len(seen) == len(words):
        return words
    return [w if i in seen else tokenizer.unk_token for i, w in enumerate(words)]


def _encode_words(examples: list[dict], tokenizer, max_length: int) -> list[dict]:
    out, cut = [], 0
    for e in examples:
        enc = tokenizer(_visible(e["tokens"], tokenizer), is_split_into_words=True, truncation=True,
                        max_length=max_length)
        # The first sub-token of a word carries its tag; the model is scored on words, not pieces.
        labels, prev = [], None
        for w in enc.word_ids():
            labels.append(IGNORE if w is None or w == prev else e["tags"][w])
            prev = w
        cut += len(e["tokens"]) - sum(y != IGNORE for y in labels)
        out.append({**{k: list(v) for k, v in enc.items()}, "labels": labels})
    if cut:
        warnings.warn(f"{cut} words lie beyond max_length={max_length} tokens: they are neither trained "
                      "nor scored; raise --max-length to keep them", stacklevel=3)
    return out


def _encode_choices(e: dict, tokenizer, max_length: int) -> dict:
    # One (context + question, answer) pair per choice; the head scores each pair.
    first = " ".join(t for t in (e["context"], e["question"]) if t)
    enc = tokenizer([first] * len(e["choices"]), list(e["choices"]), truncation=True, max_length=max_length)
    return {**{k: [list(x) for x in v] for k, v in enc.items()}, "labels": int(e["label"])}


def _encode_chat(e: dict, tokenizer, max_length: int) -> dict:
    # Loss on the assistant turns only: a token is trained when its first character lies in one.
    from lntune.data.chat import assistant_spans

    text, spans = assistant_spans(tokenizer, e["messages"])
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)  # the template has its specials
    ids = enc["input_ids"][:max_length]
    labels = [t if any(a <= start < b for a, b in spans) else IGNORE
              for t, (start, _) in zip(ids, enc["offset_mapping"])]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def _encode_lm(e: dict, tokenizer, max_length: int) -> dict:
    if "messages" in e:
        return _encode_chat(e, tokenizer, max_length)
    # Loss on the target only: the model is not asked to reproduce the prompt.
    prompt = tokenizer(e["prompt"], add_special_tokens=False)["input_ids"]
    target = tokenizer(e["target"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt + target)[:max_length]
    labels = ([IGNORE] * len(prompt) + target)[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


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
