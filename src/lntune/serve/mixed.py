"""Per-row normalisation: one forward pass in which every row of the batch wears its own LN skin.

Each norm of the base model gets a forward that normalises without its affine, then applies the
gain/bias of the row's skin, gathered from a stacked [slots, d] table (slot 0: the base values).
When every row uses one slot the model's own fused kernel runs instead, so a single-skin batch
costs exactly what the plain model costs.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lntune.errors import ArchitectureError
from lntune.model.archmap import NormSite


@dataclass
class Route:
    """The skin slot of each row of the batch in flight; set by the bank around one forward."""

    rows: torch.Tensor | None = None  # [batch] long; None: no batch in flight (base values)
    uniform: int | None = None  # the slot when every row uses the same one: native fused path
    groups: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (slot, row indices) per slot

    def set(self, slots: list[int], device: torch.device | str = "cpu") -> None:
        rows = torch.tensor(slots, dtype=torch.long, device=device)
        self.rows = rows
        self.uniform = slots[0] if len(set(slots)) == 1 else None
        self.groups = [(s, (rows == s).nonzero().squeeze(1)) for s in sorted(set(slots))]

    def clear(self) -> None:
        self.rows, self.uniform, self.groups = None, None, []


def _neutral_copy(module: nn.Module) -> nn.Module:
    """A shallow copy whose gain is ones and bias zeros: its forward is the bare normalisation,
    with the module's own eps and dtype handling (x * 1 + 0 is exact)."""
    neutral = copy.copy(module)
    neutral._parameters = dict(module._parameters)
    with torch.no_grad():
        neutral._parameters["weight"] = nn.Parameter(torch.ones_like(module.weight), requires_grad=False)
        if getattr(module, "bias", None) is not None:
            neutral._parameters["bias"] = nn.Parameter(torch.zeros_like(module.bias), requires_grad=False)
    return neutral


class MixedNorm:
    """Takes over one NormSite's forward; `set_tables` installs the stacked per-skin values."""

    def __init__(self, site: NormSite, route: Route) -> None:
        m = site.module
        if "forward" in m.__dict__:
            raise ArchitectureError(f"{site.name}: its forward is replaced already (another SkinBank serves this "
                                    "model?); give each SkinBank a freshly loaded model")
        self.name, self.module, self.route = site.name, m, route
        self.fused = isinstance(m, nn.LayerNorm) and type(m).forward is nn.LayerNorm.forward
        self.neutral = None if self.fused else _neutral_copy(m)
        self.base_gain = m.weight.detach().clone()
        self.base_bias = m.bias.detach().clone() if getattr(m, "bias", None) is not None else None
        self.ones, self.zeros = torch.ones_like(self.base_gain), torch.zeros_like(self.base_gain)
        self.gain = self.base_gain[None]
        self.bias = None if self.base_bias is None else self.base_bias[None]
        self._check_affine_after_norm()
        m.forward = self.forward  # an instance attribute shadows the class's forward

    def _check_affine_after_norm(self) -> None:
        # Gemma-style norms scale by (1 + w), others may mix the affine into the normalisation:
        # splitting them would be silently wrong, so prove the split on a probe first.
        x = torch.randn(2, 3, self.base_gain.numel(), generator=torch.Generator().manual_seed(0))
        x = x.to(self.base_gain.device, self.base_gain.dtype)
        with torch.no_grad():
            want = self.module(x)
            got = self._affine(self._normalise(x), self.base_gain, self.base_bias)
        if not torch.allclose(want.float(), got.float(), atol=1e-5, rtol=1e-4):
            raise ArchitectureError(
                f"{self.name} ({type(self.module).__name__}): its output is not normalise-then-gain(+bias), "
                "so skins cannot be mixed per row; mixed serving supports LayerNorm and RMSNorm (x * w) norms"
            )

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:  # ones/zeros, not None: ATen's CPU kernel without affine is about 2x slower
            return F.layer_norm(x, self.module.normalized_shape, self.ones, self.zeros, self.module.eps)
        out = self.neutral(x)
        return out.clone() if out.data_ptr() == x.data_ptr() else out  # _affine writes into it

    @staticmethod
    def _affine(x: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """gain * x (+ bias) into the fresh normalised tensor `x`: on CPU a second activation-sized
        allocation costs more than the arithmetic. gain * x is how transformers' RMSNorms write it,
        and the same product either way round."""
        if torch.result_type(x, gain) != x.dtype:  # would promote: out of place, as the module does
            return gain * x if bias is None else gain * x + bias
        x = x.mul_(gain)
        return x if bias is None else x.add_(bias)

    def set_tables(self, gain: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.gain, self.bias = gain, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route = self.route
        slot = 0 if route.rows is None else route.uniform
        if slot is not None:
            bias = None if self.bias is None else self.bias[slot]
            if self.fused:
                return F.layer_norm(x, self.module.normalized_shape, self.gain[slot], bias, self.module.eps)
            return self._affine(self._normalise(x), self.gain[slot], bias)
        if x.shape[0] != route.rows.numel():
            raise ArchitectureError(
                f"{self.name}: sees {x.shape[0]} rows but the batch has {route.rows.numel()}; this model "
                "reshapes its rows (multiple choice?), which mixed serving does not support"
            )
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        gain = self.gain.index_select(0, route.rows).view(shape)
        bias = None if self.bias is None else self.bias.index_select(0, route.rows).view(shape)
        return self._affine(self._normalise(x), gain, bias)

    def restore(self) -> None:
        del self.module.forward


def install(norms, route: Route) -> list[MixedNorm]:
    """Make every norm of `norms` (a NormMap) per-row; the modules keep their base parameters.
    Norms without a gain (LayerNorm(elementwise_affine=False)) have nothing a skin could tune."""
    return [MixedNorm(site, route) for site in norms if getattr(site.module, "weight", None) is not None]
