"""The shared core: freeze the model, let a method choose what trains, count and snapshot it."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lntune.errors import MethodError, SkinError
from lntune.method.base import Method, Tuned

MASK_PREFIX = "mask:"


@dataclass
class Tuning:
    """A model prepared for training: what the method tunes, the task head, and exact counts."""

    lm: object  # LoadedModel
    method: Method
    tuned: list[Tuned]
    head: list[Tuned]
    base_count: int  # parameters of the pretrained model, before any method added modules

    @property
    def all(self) -> list[Tuned]:
        return self.tuned + self.head

    def parameters(self) -> list[nn.Parameter]:
        return [t.param for t in self.all]

    def counts(self) -> dict:
        tuned = sum(t.count for t in self.tuned)
        head = sum(t.count for t in self.head)
        return {
            "tuned": tuned,  # the papers' "#Para.": excludes the task head
            "head": head,
            "base": self.base_count,
            "tuned_pct": 100.0 * tuned / self.base_count,
            "tuned_with_head_pct": 100.0 * (tuned + head) / self.base_count,
        }

    def state_keys(self) -> set[str]:
        """The keys `state()` returns, without copying any tensor."""
        masked = {MASK_PREFIX + t.name for t in self.all if t.mask is not None and t.store_mask}
        return {t.name for t in self.all} | masked

    def state(self) -> dict[str, torch.Tensor]:
        """Only what trained: whole tensors, or the masked-in elements plus their mask."""
        out = {}
        for t in self.all:
            value = t.param.detach().cpu()
            if t.mask is None:
                out[t.name] = value.clone().contiguous()
            else:
                mask = t.mask.cpu()
                out[t.name] = value[mask].clone()
                if t.store_mask:
                    out[MASK_PREFIX + t.name] = mask.clone()
        return out

    @torch.no_grad()
    def load_state(self, tensors: dict[str, torch.Tensor], source: str = "skin") -> None:
        for t in self.all:
            if t.name not in tensors:
                raise SkinError(f"{source}: tensor {t.name} is missing; the skin is incomplete, train it again")
            value = tensors[t.name]
            expected = (t.count,) if t.mask is not None else tuple(t.param.shape)
            if tuple(value.shape) != expected:
                raise SkinError(f"{source}: {t.name} has shape {tuple(value.shape)}, expected {expected}")
            if t.mask is None:
                t.param.copy_(value.to(t.param.dtype))
            else:
                t.param[t.mask] = value.to(device=t.param.device, dtype=t.param.dtype)


def _keep_float32(module: nn.Module) -> None:
    # Gains sit near 1.0, where bf16 steps are 2^-7: small updates would round away.
    # Keep the module's own parameters in float32 and cast activations at its borders.
    for p in module.parameters(recurse=False):
        p.data = p.data.float()

    def pre(_, args):
        dtypes = [a.dtype for a in args if torch.is_tensor(a)]
        module._lntune_in_dtype = dtypes[0] if dtypes else torch.float32
        return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

    def post(_, args, out):
        return out.to(module._lntune_in_dtype) if torch.is_tensor(out) else out

    module.register_forward_pre_hook(pre)
    module.register_forward_hook(post)


def _owners(model: nn.Module, params: set[int]) -> list[nn.Module]:
    return [m for m in model.modules() if any(id(p) in params for p in m.parameters(recurse=False))]


def prepare(
    lm,
    method: Method,
    only: list[str] | None = None,
    masks: dict[str, torch.Tensor] | None = None,
) -> Tuning:
    """Freeze `lm.model`, apply `method`, and make its tensors and the head trainable.

    >>> from lntune import build_method, load_model, prepare
    >>> tuning = prepare(load_model("minilm"), build_method("ln"))
    >>> tuning.counts()["tuned"]
    9984

    `only` and `masks` come from a skin: they restrict and mask the tensors the method selects.
    """
    base_count = lm.base_count
    for p in lm.model.parameters():
        p.requires_grad_(False)
    tuned = method.apply(lm)
    for p in lm.model.parameters():  # what apply added trains only if it is selected below
        p.requires_grad_(False)
    if only is not None:
        tuned = [t for t in tuned if t.name in set(only)]
    for t in tuned:
        if masks and t.name in masks:
            t.mask = masks[t.name].to(t.param.device)
    params = dict(lm.model.named_parameters())
    head = [Tuned(n, params[n]) for n in lm.head_names]
    if not tuned and not head:  # training would end in torch's "does not require grad" error
        name = getattr(method, "name", type(method).__name__)
        raise MethodError(f"method {name} tunes nothing on this {lm.head} model (it has no task head of its own); "
                          "choose a method that tunes the model's own tensors, e.g. ln")
    for t in tuned + head:
        t.param.requires_grad_(True)
        if t.mask is not None:
            t.param.register_hook(lambda g, m=t.mask: g.masked_fill(~m, 0))
    trainable = {id(t.param) for t in tuned + head}
    for module in _owners(lm.model, trainable):
        if any(p.dtype != torch.float32 for p in module.parameters(recurse=False) if id(p) in trainable):
            _keep_float32(module)
    return Tuning(lm, method, tuned, head, base_count)
