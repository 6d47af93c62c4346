"""3V (Yang et al. 2022, "manipulating hidden states"): three vectors read a frozen model.

The pretrained model is untouched. Three trainable vectors turn its hidden states into
the sentence vector that the task's existing linear classifier sees:

1. softmax weights over the L+1 hidden states (embeddings plus every layer's output),
2. an H-dim query for attention pooling over the non-padding tokens,
3. an H-dim element-wise scale of the pooled state.

For a model with L layers and hidden size H that is (L+1) + 2H parameters: 1,549 for BERT-base.
The module lives at `model.threev`, and `model.forward` is overridden on the instance
so `model(**batch)` still returns Hugging Face outputs with `.loss` and `.logits`.
"""
from __future__ import annotations

import math
import types
from dataclasses import dataclass

import torch
from torch import nn

from lntune.errors import MethodError
from lntune.method.base import Method, Options, Tuned
from lntune.spec.rules import SCALE, SEED, Rule, ruled

ATTR = "threev"  # fixed module name, so every apply yields the same parameter names for skins
HEADS = ("classification", "regression")
HEAD_ATTRS = ("classifier", "score")  # BERT-style encoders, GPT-2 / Llama decoders
LAYER_INITS = ("uniform", "last")


@dataclass
class ThreeVConfig(Options):
    # uniform: equal weights on the L+1 states | last: 99% on the top state
    layer_init: str = ruled("uniform", Rule(str, choices=LAYER_INITS))
    # std of the initial query; 0 starts as the mask-aware mean over tokens
    query_init: float = ruled(0.0, Rule(float, 0, 10, note="a standard deviation"))
    scale_init: float = ruled(1.0, SCALE)  # initial value of every element of the scale vector
    seed: int = ruled(0, SEED)  # draws the initial query when query_init > 0, so apply is reproducible


class ThreeVPooler(nn.Module):
    """Layer mix -> attention pooling -> scale: (L+1) x (B, T, H) hidden states to (B, H)."""

    def __init__(self, num_states: int, hidden: int, head_attr: str) -> None:
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(num_states))
        self.query = nn.Parameter(torch.zeros(hidden))
        self.scale = nn.Parameter(torch.ones(hidden))
        self.head_attr = head_attr  # a name, not the module: deepcopy of the model stays consistent

    def reset(self, config: ThreeVConfig) -> None:
        with torch.no_grad():
            self.layer_logits.zero_()
            if config.layer_init == "last":
                # softmax puts e^c / (S - 1 + e^c) on the top state; this c makes that 0.99
                self.layer_logits[-1] = math.log(99 * (self.layer_logits.numel() - 1))
            self.query.zero_()
            if config.query_init > 0:
                g = torch.Generator().manual_seed(config.seed)
                self.query.copy_(torch.randn(self.query.shape, generator=g) * config.query_init)
            self.scale.fill_(config.scale_init)

    def mix(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if len(hidden_states) != self.layer_logits.numel():
            raise MethodError(
                f"3V expects {self.layer_logits.numel()} hidden states (embeddings + each layer), "
                f"the model returned {len(hidden_states)}"
            )
        # float32 so the softmax weights and pooling do not round in bf16/fp16 models
        stacked = torch.stack([h.float() for h in hidden_states])  # (S, B, T, H)
        return torch.einsum("s,sbth->bth", self.layer_logits.softmax(0), stacked)

    def forward(self, hidden_states: tuple[torch.Tensor, ...], attention_mask: torch.Tensor | None) -> torch.Tensor:
        mixed = self.mix(hidden_states)
        scores = mixed @ self.query  # (B, T)
        if attention_mask is not None:
            # finfo.min rather than -inf: an all-padding row pools uniformly instead of to NaN
            scores = scores.masked_fill(attention_mask == 0, torch.finfo(scores.dtype).min)
        weights = scores.softmax(-1)
        pooled = torch.einsum("bt,bth->bh", weights, mixed)
        return pooled * self.scale


def _forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
    """Replaces `model.forward`: backbone -> 3V -> the model's own dropout and classifier."""
    from transformers.loss.loss_utils import ForSequenceClassificationLoss
    from transformers.modeling_outputs import SequenceClassifierOutput

    want_states = bool(kwargs.pop("output_hidden_states", False))
    kwargs.pop("return_dict", None)
    out = self.base_model(
        input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, return_dict=True, **kwargs
    )
    pooler = getattr(self, ATTR)
    pooled = pooler(out.hidden_states, attention_mask)
    dropout = getattr(self, "dropout", None)  # BERT drops out before its classifier; decoders have none
    if isinstance(dropout, nn.Dropout):
        pooled = dropout(pooled)
    head = getattr(self, pooler.head_attr)
    logits = head(pooled.to(head.weight.dtype))
    # Same rule as the model's own head: num_labels == 1 -> MSE, integer labels -> cross-entropy.
    loss = ForSequenceClassificationLoss(labels, logits, self.config) if labels is not None else None
    return SequenceClassifierOutput(
        loss=loss,
        logits=logits,
        hidden_states=out.hidden_states if want_states else None,
        attentions=getattr(out, "attentions", None),
    )


def _linear_head(model: nn.Module) -> str:
    cls = type(model).__name__
    for attr in HEAD_ATTRS:
        module = getattr(model, attr, None)
        if isinstance(module, nn.Linear):
            return attr
        if module is not None:
            raise MethodError(
                f"3V feeds a pooled vector to a linear classifier, but {cls}.{attr} is a "
                f"{type(module).__name__}; use a model whose head is one nn.Linear (BERT, GPT-2, Llama)"
            )
    raise MethodError(f"3V needs a linear classifier at .classifier or .score; {cls} has neither")


def attach(model: nn.Module, config: ThreeVConfig) -> ThreeVPooler:
    """Add the 3V module to `model` in place and route `model.forward` through it."""
    cls = type(model).__name__
    if not cls.endswith("ForSequenceClassification"):
        raise MethodError(f"3V is for sequence classification only; {cls} is not a *ForSequenceClassification model")
    if hasattr(model, ATTR):
        raise MethodError(f"3V is already applied to this {cls}; load a fresh base model")
    head_attr = _linear_head(model)
    text = model.config.get_text_config()
    pooler = ThreeVPooler(text.num_hidden_layers + 1, text.hidden_size, head_attr)
    pooler.reset(config)
    pooler.to(getattr(model, head_attr).weight.device)
    model.add_module(ATTR, pooler)
    model.forward = types.MethodType(_forward, model)
    return pooler


class ThreeV(Method):
    name = "3v"
    adds_modules = True
    heads = HEADS
    Config = ThreeVConfig

    def apply(self, lm) -> list[Tuned]:
        if lm.head not in HEADS:
            raise MethodError(
                f"3V is for sequence classification only (classification or regression heads), "
                f"not the {lm.head!r} head; use ln or another method for this task"
            )
        pooler = attach(lm.model, self.config)
        return [Tuned(f"{ATTR}.{n}", p) for n, p in pooler.named_parameters()]
