"""AdamW over the tuned elements only, packed into flat float32 buffers.

Unmasked tensors become views into the flat parameter buffer and their `.grad` views into the
flat gradient buffer, so autograd accumulates straight into it and one fused AdamW step updates
every tensor at once. Masked tensors contribute only their masked-in elements: those are gathered
before the step and scattered back after it, so masked-out elements are never touched (they stay
bit-identical) and cost the optimizer nothing. Each parameter group has its own buffer: the method's
tensors, the head's tensors when the head has its own lr, and head matrices under weight decay (decay
applies to head matrices only)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lntune.method.base import Tuned
from lntune.method.tuning import Tuning


@dataclass
class _Slot:
    tuned: Tuned
    group: int  # index into the parameter groups (see group_of)
    start: int
    stop: int


def group_of(tuning: Tuning, t: Tuned, lr: float, weight_decay: float, head_lr: float | None) -> tuple[float, float]:
    """(lr, weight decay) of tensor `t`: the head may have its own lr; only unmasked head matrices decay
    (decay on a masked tensor would move its masked-out elements)."""
    in_head = any(t.param is h.param for h in tuning.head)
    decays = in_head and weight_decay and t.param.dim() >= 2 and t.mask is None
    return (head_lr if in_head and head_lr is not None else lr), (weight_decay if decays else 0.0)


class PackedAdamW(torch.optim.AdamW):
    """torch.optim.AdamW (fused where the device has a kernel) over one flat buffer per group.

    Schedulers and accelerate see an ordinary optimizer. `zero_grad` zeroes the flat gradients
    in place (the views must survive), `clip_grad_norm_` clips the flat gradients, and `release`
    gives every tensor its own storage back when training ends."""

    def __init__(self, tuning: Tuning, lr: float, weight_decay: float = 0.0, fused: bool | None = None,
                 head_lr: float | None = None, **kw) -> None:
        seen, self.slots, settings, sizes = set(), [], [], []
        for t in tuning.all:
            if id(t.param) in seen:  # a tensor listed twice trains once
                continue
            seen.add(id(t.param))
            setting = group_of(tuning, t, lr, weight_decay, head_lr)
            if setting not in settings:
                settings.append(setting)
                sizes.append(0)
            g = settings.index(setting)
            self.slots.append(_Slot(t, g, sizes[g], sizes[g] + t.count))
            sizes[g] += t.count
        device = tuning.all[0].param.device if tuning.all else torch.device("cpu")
        self.flat = [torch.zeros(n, dtype=torch.float32, device=device) for n in sizes or [0]]
        for f in self.flat:
            f.grad = torch.zeros_like(f)
        self.bind()
        groups = [{"params": [f], "lr": g_lr, "weight_decay": wd} for f, (g_lr, wd) in zip(self.flat, settings)]
        if fused is None:
            fused = device.type in ("cpu", "cuda")
        super().__init__(groups or [{"params": self.flat}], lr=lr, fused=fused, **kw)

    @torch.no_grad()
    def bind(self) -> None:
        """Make every unmasked tensor (and its .grad) a view into the flat buffers, taking its current values.
        Called again after wrapping the model in DistributedDataParallel, which gives the parameters it
        wraps storage of their own and drops their .grad (it then writes the averaged gradients into
        whatever .grad is after backward: once re-bound, the flat buffer)."""
        for s in self.slots:
            p, flat, grad = s.tuned.param, self.flat[s.group], self.flat[s.group].grad
            if p.dtype != torch.float32:
                raise TypeError(f"{s.tuned.name} is {p.dtype}; tuned tensors are kept in float32 by prepare()")
            if s.tuned.mask is None:
                flat[s.start : s.stop].copy_(p.reshape(-1))
                p.data = flat[s.start : s.stop].view_as(p)
                p.grad = grad[s.start : s.stop].view_as(p)
            else:
                flat[s.start : s.stop].copy_(p[s.tuned.mask])
                p.grad = None

    @property
    def flat_grads(self) -> list[torch.Tensor]:
        return [f.grad for f in self.flat]

    @torch.no_grad()
    def gather_masked(self) -> None:
        """Copy the masked-in gradient elements into the flat gradient buffer (once per step)."""
        for s in self.slots:
            if s.tuned.mask is not None:
                g = s.tuned.param.grad
                dst = self.flat[s.group].grad[s.start : s.stop]
                dst.copy_(g[s.tuned.mask]) if g is not None else dst.zero_()
        self._gathered = True

    @torch.no_grad()
    def clip_flat_(self, max_norm: float) -> torch.Tensor:
        """torch.nn.utils.clip_grad_norm_'s rule on the flat gradients, gathered already."""
        total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in self.flat_grads]))
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in self.flat_grads:
            g.mul_(coef)
        return total

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        self.gather_masked()
        return self.clip_flat_(max_norm)

    @torch.no_grad()
    def step(self, closure=None, **kwargs):
        if not getattr(self, "_gathered", False):
            self.gather_masked()
        self._gathered = False
        out = super().step(closure, **kwargs) if kwargs else super().step(closure)
        for s in self.slots:
            if s.tuned.mask is not None:
                s.tuned.param[s.tuned.mask] = self.flat[s.group][s.start : s.stop]
        return out

    def zero_grad(self, set_to_none: bool = True) -> None:  # noqa: ARG002 - the views must survive
        for f in self.flat:
            f.grad.zero_()
        for s in self.slots:
            if s.tuned.mask is not None:
                s.tuned.param.grad = None

    @torch.no_grad()
    def release(self) -> None:
        """Detach every tensor from the flat buffers (own storage, no .grad), e.g. after training."""
        for s in self.slots:
            p = s.tuned.param
            if s.tuned.mask is None:
                p.data = p.data.clone()
            p.grad = None
