"""Sequence regression: one text (or pair) per row, one real score; Pearson and Spearman."""
from __future__ import annotations

from lntune.heads import metrics
from lntune.heads.base import Head, check_fit, concat, gather_rows, one_text, row_losses, sequence_encode


class Regression(Head):
    name = "regression"
    auto_class = "AutoModelForSequenceClassification"
    peft_task_type = "SEQ_CLS"
    pipeline_tag = "text-classification"
    bank_head = "classification"  # the same model class: one bank answers both
    label_kind = "score"
    metric = "pearson"

    def model_kwargs(self, num_labels: int) -> dict:
        return {"num_labels": 1, "problem_type": "regression"}

    def encode(self, examples: list[dict], tokenizer, max_length: int) -> list[dict]:
        return sequence_encode(examples, tokenizer, max_length, float)

    def loss_terms(self, labels) -> int:
        return labels.shape[0]

    def example_losses(self, logits, labels):
        return row_losses(logits, labels, "mse")

    def collect(self, logits, labels, accelerator, label_names):
        return gather_rows(logits, labels, accelerator)

    def metrics(self, collected: list, mean_loss: float, label_names) -> dict[str, float]:
        return metrics.regression(*concat(collected))

    def log_likelihood(self, logits, label):
        return -0.5 * (logits.reshape(()) - label) ** 2  # Gaussian with unit variance, as MSE assumes


    def parse_line(self, line: str, sentences: int | None) -> object:
        return one_text(line, sentences, pairs=True)

    def check_input(self, i: int, skin, item: object) -> None:
        check_fit(i, skin, item)

    def serve_encode(self, i: int, item: object, bank) -> tuple[dict, object]:
        return bank.encode_text(i, item), None

    def answer(self, skin, logits, extra: object) -> dict:
        return {"task": skin.name, "value": logits.float().tolist()[0]}

    def check_outputs(self, labels: list[str], outputs: int) -> str | None:
        return f"a regression head with {outputs} outputs; it should have one" if outputs != 1 else None

    def labels_shown(self, labels: list[str]) -> list[str]:
        return []

    def matches(self, architectures: tuple[str, ...], problem_type: str | None) -> bool:
        return problem_type == "regression"
