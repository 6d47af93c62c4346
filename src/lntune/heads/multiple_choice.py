"""Multiple choice: one (context + question, answer) pair per choice, one score each; accuracy."""
from __future__ import annotations

from lntune.errors import BadInput, InputTooLong
from lntune.heads import metrics
from lntune.heads.base import Head, check_unicode, class_log_likelihood, concat, gather_rows, majority_share, row_losses


class MultipleChoice(Head):
    name = "multiple-choice"
    auto_class = "AutoModelForMultipleChoice"
    architecture = "ForMultipleChoice"
    bank_head = "multiple-choice"  # PEFT has no task type for it: none is given
    label_kind = "choice"
    metric = "accuracy"
    unsupported_hint = "multiple-choice tasks need an encoder (minilm, bert-base-uncased, roberta-base, ...)"

    def model_kwargs(self, num_labels: int) -> dict:
        return {}  # one score per choice: no num_labels

    def encode(self, examples: list[dict], tokenizer, max_length: int) -> list[dict]:
        out = []
        for e in examples:
            first = " ".join(t for t in (e["context"], e["question"]) if t)
            enc = tokenizer([first] * len(e["choices"]), list(e["choices"]), truncation=True, max_length=max_length)
            out.append({**{k: [list(x) for x in v] for k, v in enc.items()}, "labels": int(e["label"])})
        return out

    def loss_terms(self, labels) -> int:
        return labels.shape[0]

    def example_losses(self, logits, labels):
        return row_losses(logits, labels, "ce")

    def collect(self, logits, labels, accelerator, label_names):
        return gather_rows(logits, labels, accelerator)

    def metrics(self, collected: list, mean_loss: float, label_names) -> dict[str, float]:
        return metrics.multiple_choice(*concat(collected))

    def log_likelihood(self, logits, label):
        return class_log_likelihood(logits, label)

    def majority(self, examples: list[dict]) -> float | None:
        return majority_share(examples)

    def parse_line(self, line: str, sentences: int | None) -> object:
        fields = line.split("\t")
        if len(fields) < 3:
            raise BadInput(f"{line!r:.60}: a multiple-choice input is QUESTION<TAB>CHOICE<TAB>CHOICE...")
        return {"question": fields[0], "choices": fields[1:]}

    def check_input(self, i: int, skin, item: object) -> None:
        ok = isinstance(item, dict) and isinstance(item.get("question"), str) and isinstance(item.get("choices"), list) \
            and len(item["choices"]) >= 2 and all(isinstance(c, str) for c in item["choices"]) \
            and isinstance(item.get("context") or "", str)
        if not ok:
            raise BadInput(f"input {i}: skin {skin.name!r} answers multiple-choice questions: give "
                           "{\"question\": str, \"choices\": [str, str, ...], \"context\": str (optional)}")
        if skin.task and skin.task.labels and len(item["choices"]) != len(skin.labels):
            raise BadInput(f"input {i}: {len(item['choices'])} choices; skin {skin.name!r} was trained on "
                           f"{len(skin.labels)} ({', '.join(skin.labels)})")

    def serve_encode(self, i: int, item: object, bank) -> tuple[dict, object]:
        first = " ".join(t for t in (item.get("context") or "", item["question"]) if t)
        if len(first) + sum(map(len, item["choices"])) > bank.max_chars:
            raise InputTooLong(f"input {i} has more than {bank.max_chars} characters; shorten it")
        for text in (first, *item["choices"]):
            check_unicode(i, text)
        enc = bank.tokens(i, [first] * len(item["choices"]), list(item["choices"]))
        return {k: [list(x) for x in v] for k, v in enc.items()}, list(item["choices"])

    def answer(self, skin, logits, extra: object) -> dict:
        import torch

        values = logits.float().tolist()
        probs = torch.softmax(logits.float(), -1).tolist()
        best = max(range(len(values)), key=values.__getitem__)
        labels = skin.labels if len(skin.labels) == len(values) else [chr(65 + j) for j in range(len(values))]
        return {"task": skin.name, "label": labels[best], "label_id": best, "choice": extra[best],
                "probabilities": dict(zip(labels, probs)), "logits": values}

    def check_outputs(self, labels: list[str], outputs: int) -> str | None:
        return None  # the choices are the outputs; their number varies per question
