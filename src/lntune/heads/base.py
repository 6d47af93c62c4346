"""What every head kind must say about itself: how its examples become features, how many terms its loss
averages over, how its outputs are scored, its log-likelihood for the Fisher, and what other libraries
(transformers, PEFT, the Hub) call it. A new head is one subclass and one registry line (heads/__init__).

torch and numpy are imported inside the hooks, not at the top, so that `lntune --help` (which lists the head
names) loads neither."""
from __future__ import annotations

from typing import Any, ClassVar

from lntune.errors import BadInput

IGNORE = -100  # label id the loss skips: prompt tokens of decoders, non-first sub-tokens of words


class Head:
    """One kind of task output. Subclasses set the class variables and implement every hook below
    (the base raises, so a missing hook is an error, never a silent default)."""

    name: ClassVar[str]
    auto_class: ClassVar[str]  # transformers' AutoModelFor... class that builds this head
    architecture: ClassVar[str | None] = None  # the suffix of saved architectures that marks this head
    peft_task_type: ClassVar[str | None] = None  # PEFT's TaskType; None: PEFT has none for it
    pipeline_tag: ClassVar[str | None] = None  # the Hub's pipeline tag on a model card
    bank_head: ClassVar[str]  # the head a serving bank loads its model with to answer this head's skins
    label_kind: ClassVar[str]  # what one example's label is: class | score | tags | choice | text
    metric: ClassVar[str]  # the main metric of a task of this head that names none
    generates: ClassVar[bool] = False  # a decoder that writes text (NLG metrics, /v1 completions)
    named_labels: ClassVar[bool] = False  # each output is one of the task's labels (config.id2label)
    one_output_per_row: ClassVar[bool] = True  # only the first position's output is read (the cut last block)
    unsupported_hint: ClassVar[str] = "choose a model that transformers has this head for"

    def model_kwargs(self, num_labels: int) -> dict:
        """Keyword arguments of `from_pretrained` that shape the head."""
        raise NotImplementedError(self.name)

    def encode(self, examples: list[dict], tokenizer, max_length: int) -> list[dict]:
        """Features (input ids, masks, labels) of the task's examples."""
        raise NotImplementedError(self.name)

    def loss_terms(self, labels) -> int:
        """How many terms a batch's mean loss averages over (its rows, or its scored tokens)."""
        raise NotImplementedError(self.name)

    def example_losses(self, logits, labels) -> tuple[Any, Any]:
        """Each example's summed loss and scored positions, as the model's own loss computes them."""
        raise NotImplementedError(self.name)

    def collect(self, logits, labels, accelerator, label_names: tuple[str, ...]) -> Any:
        """What `metrics` needs from one batch, gathered across processes; None when it needs nothing."""
        raise NotImplementedError(self.name)

    def metrics(self, collected: list, mean_loss: float, label_names: tuple[str, ...]) -> dict[str, float]:
        """The task metrics of every collected batch (and the mean loss, for perplexity)."""
        raise NotImplementedError(self.name)

    def log_likelihood(self, logits, label):
        """log p(y|x) of ONE example (no batch dimension): what the Fisher information differentiates."""
        raise NotImplementedError(self.name)

    def majority(self, examples: list[dict]) -> float | None:
        """The share of the commonest label (what always guessing it scores); None: no such baseline."""
        return None

    def check_outputs(self, labels: list[str], outputs: int) -> str | None:
        """Why a skin's head of `outputs` rows does not fit its `labels`; None when it fits."""
        raise NotImplementedError(self.name)

    def labels_shown(self, labels: list[str]) -> list[str]:
        """The labels a served skin lists (a regression skin has none)."""
        return labels

    # --- serving: a served skin's inputs (SkinBank.predict, lntune ask) and its answers -----------------------

    def parse_line(self, line: str, sentences: int | None) -> object:
        """One `lntune ask` input line (fields separated by tabs) as SkinBank.predict takes it."""
        raise NotImplementedError(self.name)

    def check_input(self, i: int, skin, item: object) -> None:
        """Refuse (BadInput) input `i` when it does not fit `skin`; run for every input before any is tokenised."""
        raise NotImplementedError(self.name)

    def serve_encode(self, i: int, item: object, bank) -> tuple[dict, object]:
        """Input `i` as features (with `bank`'s tokenizer and limits) and what `answer` needs besides the logits."""
        raise NotImplementedError(self.name)

    def answer(self, skin, logits, extra: object) -> dict:
        """The JSON answer of one input from its logits (finite: the bank has checked)."""
        raise NotImplementedError(self.name)

    def matches(self, architectures: tuple[str, ...], problem_type: str | None) -> bool:
        """Whether a saved transformers config (its architectures) holds this head."""
        return self.architecture is not None and any(a.endswith(self.architecture) for a in architectures)


def sequence_encode(examples: list[dict], tokenizer, max_length: int, label: type) -> list[dict]:
    """One text or text pair per row, its label as `label` (int class id, or float score)."""
    out = []
    for e in examples:
        feats = dict(tokenizer(e["text_a"], e.get("text_b"), truncation=True, max_length=max_length))
        feats["labels"] = label(e["label"])
        out.append(feats)
    return out


def row_losses(logits, labels, loss: str):
    """Per-row losses of a one-output-per-row head: `loss` is "mse" (regression) or "ce" (classes, choices)."""
    import torch
    import torch.nn.functional as F

    logits, rows = logits.float(), labels.shape[0]
    if loss == "mse":
        losses = (logits.reshape(rows, -1)[:, 0] - labels.reshape(rows).float()) ** 2
    else:
        losses = F.cross_entropy(logits.reshape(rows, -1), labels.reshape(rows), reduction="none")
    return losses, torch.ones_like(losses, dtype=torch.long)


def token_losses(logits, labels):
    """Per-example summed token cross-entropy and scored tokens (IGNORE skipped)."""
    import torch.nn.functional as F

    logits = logits.float()
    token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE,
                            reduction="none").view(labels.shape)
    return token.sum(-1), (labels != IGNORE).sum(-1)


def token_log_likelihood(logits, labels):
    import torch

    keep = labels != IGNORE
    picked = torch.log_softmax(logits.float(), -1).gather(-1, labels.clamp(min=0)[:, None])[:, 0]
    return (picked * keep).sum()


def class_log_likelihood(logits, label):
    import torch

    return torch.log_softmax(logits.float(), -1).gather(-1, label.reshape(1))[0]


def gather_rows(logits, labels, accelerator) -> tuple:
    """(logits, labels) of one batch as numpy arrays, gathered across processes."""
    logits = logits.float()
    if accelerator is not None:
        logits, labels = accelerator.gather_for_metrics((logits, labels))
    return logits.cpu().numpy(), labels.cpu().numpy()


def concat(collected: list) -> tuple:
    import numpy as np

    return np.concatenate([c[0] for c in collected]), np.concatenate([c[1] for c in collected])


def majority_share(examples: list[dict]) -> float | None:
    """The share of the most common label: the accuracy of a model that never left the majority class."""
    labels = [e["label"] for e in examples if "label" in e]
    return max(labels.count(v) for v in set(labels)) / len(labels) if labels else None


def check_unicode(i: int, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate (JSON "\ud800"): no tokenizer can read it
        raise BadInput(f"input {i}: the text holds a lone surrogate (U+{ord(text[e.start]):04X} at character "
                       f"{e.start}), which is not a character; send valid Unicode text") from None


def one_text(line: str, sentences: int | None, pairs: bool) -> object:
    """An ask line of a head that reads one text, or (when `pairs`) a TEXT<TAB>TEXT_PAIR pair."""
    fields = line.split("\t")
    if pairs and len(fields) == 2:
        return tuple(fields)
    if len(fields) > 1:
        want = "TEXT<TAB>TEXT_PAIR" if sentences == 2 else "one text"
        raise BadInput(f"{line!r:.60}: {len(fields)} tab-separated fields; this skin takes {want}")
    return line


def check_fit(i: int, skin, text: object) -> None:
    """A text pair sent to a skin trained on single texts is refused (the model would read it as one run-on text)."""
    pair = isinstance(text, (tuple, list)) and len(text) == 2 and text[1] is not None
    if pair and skin.sentences == 1:
        task = str(skin.task and skin.task.name).partition(":")[0]  # a local: spec names files on the server
        raise BadInput(f"input {i}: skin {skin.name!r} was trained on single texts (task {task!r}); "
                       "send text without text_pair, or use a skin of a pair task")


def best_label(skin, logits) -> dict:
    """The answer of a head that picks one of its outputs: label, id, probabilities and logits."""
    import torch

    values = logits.float().tolist()
    probs = torch.softmax(logits.float(), -1).tolist()
    best = max(range(len(values)), key=values.__getitem__)
    return {"task": skin.name, "label": skin.labels[best], "label_id": best,
            "probabilities": dict(zip(skin.labels, probs)), "logits": values}
