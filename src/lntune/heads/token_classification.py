"""Token classification (NER): one tag per word, read at the word's first sub-token; seqeval entity F1."""
from __future__ import annotations

import warnings

from lntune.errors import BadInput, InputTooLong, LntuneWarning
from lntune.heads import metrics
from lntune.heads.base import IGNORE, Head, check_unicode, one_text, token_log_likelihood, token_losses


class TokenClassification(Head):
    name = "token-classification"
    auto_class = "AutoModelForTokenClassification"
    architecture = "ForTokenClassification"
    peft_task_type = "TOKEN_CLS"
    pipeline_tag = "token-classification"
    bank_head = "token-classification"
    label_kind = "tags"
    metric = "f1"
    named_labels = True
    one_output_per_row = False

    def model_kwargs(self, num_labels: int) -> dict:
        return {"num_labels": num_labels}

    def encode(self, examples: list[dict], tokenizer, max_length: int) -> list[dict]:
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
                          "nor scored; raise --max-length to keep them", LntuneWarning, stacklevel=3)
        return out

    def loss_terms(self, labels) -> int:
        return int((labels != IGNORE).sum())  # the loss is a mean over first sub-tokens

    def example_losses(self, logits, labels):
        return token_losses(logits, labels)

    def collect(self, logits, labels, accelerator, label_names):
        if not label_names:
            raise ValueError("token-classification metrics need the tag names: evaluate(..., label_names=task.labels)")
        preds = logits.argmax(-1)
        if accelerator is not None:  # shards differ in width: pad before gathering
            preds, labels = accelerator.pad_across_processes((preds, labels), dim=1, pad_index=IGNORE)
            preds, labels = accelerator.gather_for_metrics((preds, labels))
        return _words(preds, labels, label_names), _words(labels, labels, label_names)

    def metrics(self, collected: list, mean_loss: float, label_names) -> dict[str, float]:
        return metrics.entities([s for p, _ in collected for s in p], [s for _, g in collected for s in g])

    def log_likelihood(self, logits, label):
        return token_log_likelihood(logits, label)  # words are independent given the sentence: log-probs add

    def parse_line(self, line: str, sentences: int | None) -> object:
        return one_text(line, sentences, pairs=False)

    def check_input(self, i: int, skin, item: object) -> None:
        pass  # the words are checked as they are encoded

    def serve_encode(self, i: int, item: object, bank) -> tuple[dict, object]:
        words = item.split() if isinstance(item, str) else item
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w for w in words):
            raise BadInput(f"input {i}: give a text or a non-empty list of words (str) to tag")
        if sum(map(len, words)) > bank.max_chars:
            raise InputTooLong(f"input {i} has more than {bank.max_chars} characters; shorten or split it")
        for w in words:
            check_unicode(i, w)
        words = bank.with_tokenizer(_visible, words)  # a word the tokenizer drops (zero-width) reads as unknown
        enc = bank.tokens(i, words, is_split_into_words=True)
        ids = enc.word_ids()
        firsts = [t for t, w in enumerate(ids) if w is not None and (t == 0 or ids[t - 1] != w)]
        return dict(enc), (words, firsts)

    def answer(self, skin, logits, extra: object) -> dict:
        words, firsts = extra
        ids = logits[firsts].argmax(-1).tolist()  # a word's label is its first sub-token's, as in training
        return {"task": skin.name, "words": words[: len(ids)], "labels": [skin.labels[j] for j in ids],
                "label_ids": ids}

    def check_outputs(self, labels: list[str], outputs: int) -> str | None:
        return f"{len(labels)} labels but a head with {outputs} outputs" if labels and len(labels) != outputs else None


def _visible(words: list[str], tokenizer) -> list[str]:
    """`words`, with those the tokenizer drops entirely (zero-width characters) read as unknown,
    so that every word keeps a label and is scored."""
    seen = set(tokenizer(words, is_split_into_words=True, add_special_tokens=False).word_ids())
    if len(seen) == len(words):
        return words
    return [w if i in seen else tokenizer.unk_token for i, w in enumerate(words)]


def _words(ids, gold, names: tuple[str, ...]) -> list[list[str]]:
    """Tag names of `ids` at each sentence's scored positions (first sub-tokens of words)."""
    keep = (gold != IGNORE).cpu()
    return [[names[i] for i in row[k].tolist()] for row, k in zip(ids.cpu(), keep)]
