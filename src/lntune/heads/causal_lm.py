"""Causal language modelling: loss on the target (or the assistant turns) only; perplexity, and generation."""
from __future__ import annotations

from lntune.errors import BadInput
from lntune.heads import metrics
from lntune.heads.base import IGNORE, Head, token_log_likelihood, token_losses
from lntune.heads.chat import assistant_spans


class CausalLM(Head):
    name = "causal-lm"
    auto_class = "AutoModelForCausalLM"
    architecture = "ForCausalLM"
    peft_task_type = "CAUSAL_LM"
    pipeline_tag = "text-generation"
    bank_head = "causal-lm"
    label_kind = "text"
    metric = "perplexity"
    generates = True
    one_output_per_row = False

    def model_kwargs(self, num_labels: int) -> dict:
        return {}

    def encode(self, examples: list[dict], tokenizer, max_length: int) -> list[dict]:
        return [_encode_chat(e, tokenizer, max_length) if "messages" in e else _encode_target(e, tokenizer, max_length)
                for e in examples]

    def loss_terms(self, labels) -> int:
        return int((labels[..., 1:] != IGNORE).sum())  # HF shifts: the first label is never predicted

    def example_losses(self, logits, labels):
        return token_losses(logits[:, :-1], labels[:, 1:])  # HF shifts the labels by one

    def collect(self, logits, labels, accelerator, label_names):
        return None  # perplexity needs only the mean loss

    def metrics(self, collected: list, mean_loss: float, label_names) -> dict[str, float]:
        return metrics.language_model(mean_loss)

    def log_likelihood(self, logits, label):
        return token_log_likelihood(logits[:-1], label[1:])  # position t predicts token t+1

    def parse_line(self, line: str, sentences: int | None) -> object:
        return line  # a prompt: tabs are part of it

    def check_input(self, i: int, skin, item: object) -> None:
        raise BadInput(f"input {i}: skin {skin.name!r} generates text: use /v1/completions or /v1/chat/completions "
                       "(SkinBank.generate)")

    def serve_encode(self, i: int, item: object, bank) -> tuple[dict, object]:
        raise BadInput("causal-LM skins generate text (SkinBank.generate); they answer no /predict input")

    def answer(self, skin, logits, extra: object) -> dict:
        raise BadInput("causal-LM skins generate text (SkinBank.generate); they answer no /predict input")

    def check_outputs(self, labels: list[str], outputs: int) -> str | None:
        return None  # no task head: the vocabulary is the output


def _encode_chat(e: dict, tokenizer, max_length: int) -> dict:
    # Loss on the assistant turns only: a token is trained when its first character lies in one.

    text, spans = assistant_spans(tokenizer, e["messages"])
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)  # the template has its specials
    ids = enc["input_ids"][:max_length]
    labels = [t if any(a <= start < b for a, b in spans) else IGNORE
              for t, (start, _) in zip(ids, enc["offset_mapping"])]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def _encode_target(e: dict, tokenizer, max_length: int) -> dict:
    # Loss on the target only: the model is not asked to reproduce the prompt.
    prompt = tokenizer(e["prompt"], add_special_tokens=False)["input_ids"]
    target = tokenizer(e["target"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt + target)[:max_length]
    labels = ([IGNORE] * len(prompt) + target)[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}
