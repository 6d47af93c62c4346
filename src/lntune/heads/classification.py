"""Sequence classification: one text (or pair) per row, one of N labels; accuracy, F1, MCC."""
from __future__ import annotations

from lntune.heads import metrics
from lntune.heads.base import (
    Head,
    best_label,
    check_fit,
    class_log_likelihood,
    concat,
    gather_rows,
    majority_share,
    one_text,
    row_losses,
    sequence_encode,
)


class Classification(Head):
    name = "classification"
    auto_class = "AutoModelForSequenceClassification"
    peft_task_type = "SEQ_CLS"
    pipeline_tag = "text-classification"
    bank_head = "classification"
    label_kind = "class"
    metric = "accuracy"
    named_labels = True

    def model_kwargs(self, num_labels: int) -> dict:
        return {"num_labels": num_labels}

    def encode(self, examples: list[dict], tokenizer, max_length: int) -> list[dict]:
        return sequence_encode(examples, tokenizer, max_length, int)

    def loss_terms(self, labels) -> int:
        return labels.shape[0]

    def example_losses(self, logits, labels):
        return row_losses(logits, labels, "ce")

    def collect(self, logits, labels, accelerator, label_names):
        return gather_rows(logits, labels, accelerator)

    def metrics(self, collected: list, mean_loss: float, label_names) -> dict[str, float]:
        return metrics.classification(*concat(collected))

    def log_likelihood(self, logits, label):
        return class_log_likelihood(logits, label)

    def majority(self, examples: list[dict]) -> float | None:
        return majority_share(examples)


    def parse_line(self, line: str, sentences: int | None) -> object:
        return one_text(line, sentences, pairs=True)

    def check_input(self, i: int, skin, item: object) -> None:
        check_fit(i, skin, item)

    def serve_encode(self, i: int, item: object, bank) -> tuple[dict, object]:
        return bank.encode_text(i, item), None

    def answer(self, skin, logits, extra: object) -> dict:
        return best_label(skin, logits)

    def check_outputs(self, labels: list[str], outputs: int) -> str | None:
        return f"{len(labels)} labels but a head with {outputs} outputs" if labels and len(labels) != outputs else None
