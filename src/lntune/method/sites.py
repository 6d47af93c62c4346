"""Where adapters and LoRA attach inside a transformer block, for BERT, GPT-2 and Llama styles."""
from __future__ import annotations

from torch import nn

from lntune.errors import MethodError

# Paths relative to a block, in the order tried.
MHA_OUT = ("attention.output.dense", "attn.c_proj", "self_attn.o_proj", "self_attn.out_proj", "attn.out_proj")
FFN_IN = ("intermediate", "mlp", "feed_forward", "ffn")
FFN_OUT = ("output.dense", "mlp.c_proj", "mlp.down_proj", "mlp.fc2", "feed_forward.w2", "fc2")
LORA_DEFAULTS = (("query", "value"), ("c_attn",), ("q_proj", "v_proj"))


def blocks(lm) -> list[tuple[str, nn.Module]]:
    path = lm.norms.blocks
    return [(f"{path}.{i}", b) for i, b in enumerate(lm.model.get_submodule(path))]


def find(block: nn.Module, candidates: tuple[str, ...], what: str, where: str) -> nn.Module:
    for path in candidates:
        try:
            return block.get_submodule(path)
        except AttributeError:
            continue
    raise MethodError(f"{where}: no {what} found (looked for {', '.join(candidates)}); this architecture is not supported")


def features(module: nn.Module) -> tuple[int, int]:
    """(in, out) of a Linear or of GPT-2's Conv1D, whose weight is stored transposed."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":
        return module.weight.shape[0], module.weight.shape[1]
    raise MethodError(f"{type(module).__name__} is neither a Linear nor a Conv1D projection")
