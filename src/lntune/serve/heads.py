"""Per-row task heads: the body runs once for the whole batch, each skin's head on its own rows.

The model's own head code still runs (BERT's pooler and dropout, GPT-2's last-token pick); only the
Linear layers that hold task-head parameters are taken over. Their outputs are padded to the widest
head in the bank, so skins with 2, 3 or 1 (regression) outputs share one batch; the bank slices
each row back to its skin's width.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lntune.errors import ArchitectureError
from lntune.serve.mixed import Route


class MixedLinear:
    """Takes over one head Linear; `set_tables` installs [slots, out, in] weights and [slots, out] biases."""

    def __init__(self, name: str, module: nn.Module, route: Route) -> None:
        if not isinstance(module, nn.Linear):
            raise ArchitectureError(
                f"head module {name} is a {type(module).__name__}; mixed serving handles heads made of Linear layers"
            )
        self.name, self.module, self.route = name, module, route
        self.base_weight = module.weight.detach().clone()
        self.base_bias = None if module.bias is None else module.bias.detach().clone()
        self.weight = self.base_weight[None]
        self.bias = None if self.base_bias is None else self.base_bias[None]
        module.forward = self.forward

    def set_tables(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight, self.bias = weight, bias

    def _one(self, x: torch.Tensor, slot: int) -> torch.Tensor:
        return F.linear(x, self.weight[slot], None if self.bias is None else self.bias[slot])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route = self.route
        slot = 0 if route.rows is None else route.uniform
        if slot is not None:
            return self._one(x, slot)
        # A loop over the skins in the batch (at most a few dozen), never over rows.
        out = x.new_empty(x.shape[:-1] + (self.weight.shape[1],))
        for slot, rows in route.groups:
            out.index_copy_(0, rows, self._one(x.index_select(0, rows), slot))
        return out

    def restore(self) -> None:
        del self.module.forward


def head_modules(model: nn.Module, head_names: tuple[str, ...]) -> dict[str, nn.Module]:
    """The modules owning the task-head parameters, by module path."""
    owners = {}
    modules = dict(model.named_modules())
    for name in head_names:
        path, _, attr = name.rpartition(".")
        if attr not in ("weight", "bias") or path not in modules:
            raise ArchitectureError(f"head parameter {name}: expected the weight or bias of a layer")
        owners[path] = modules[path]
    return owners


def install(model: nn.Module, head_names: tuple[str, ...], route: Route) -> list[MixedLinear]:
    return [MixedLinear(path, m, route) for path, m in head_modules(model, head_names).items()]
