"""Fisher-selected LN masks (paper 002 §3.2–3.5): the top fraction f of LN elements train.

individual  top-f of the task's own Fisher
global      top-f of the sum over tasks of each task's Fisher divided by its total
cv          as global, but without the target task (leave one task out)
random      f of the elements drawn at random (seeded): the control

Exactly round(f * N) elements are chosen out of the N considered. Elements are ordered by
parameter name, then index; equal scores keep that order, so ties break the same way every time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lntune.errors import LntuneError
from lntune.spec.masks import MASK_KINDS as KINDS, RANDOM  # noqa: F401 - KINDS: also imported from here
from lntune.analyse.files import save_tensors



@dataclass
class MaskSpec:
    kind: str = "individual"  # individual | global | cv | random
    fraction: float = 0.2  # share of the LN elements that train
    task: str | None = None  # the target task: needed by individual and cv
    seed: int = 42  # random masks only

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LntuneError(f"--kind {self.kind!r}: choose one of {', '.join(KINDS)}")
        if not 0.0 < self.fraction <= 1.0:
            raise LntuneError(f"--fraction {self.fraction}: use a share in (0, 1], e.g. 0.2")
        if self.kind in ("individual", "cv") and not self.task:
            raise LntuneError(f"a {self.kind} mask is for one task: pass --task")

    @property
    def file_name(self) -> str:
        who = {"individual": f"-{self.task}", "cv": f"-{self.task}", RANDOM: f"-s{self.seed}"}.get(self.kind, "")
        return f"mask-{self.kind}{who}-f{self.fraction:g}.safetensors"


def count(n: int, fraction: float) -> int:
    """How many of `n` elements a fraction selects: round(f * n)."""
    return round(fraction * n)


def normalised(fisher: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Divide by the task's total, so a task with little information is not overshadowed."""
    total = sum(float(v.double().sum()) for v in fisher.values()) or 1.0
    return {n: v.double() / total for n, v in fisher.items()}


def scores(spec: MaskSpec, fishers: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The per-element score a mask ranks by."""
    _check_same_elements(fishers)
    if spec.kind == "individual":
        return {n: v.double() for n, v in _fisher_of(spec.task, fishers).items()}
    pool = [t for t in fishers if not (spec.kind == "cv" and t == spec.task)]
    if spec.kind == "cv":
        _fisher_of(spec.task, fishers)
        if not pool:
            raise LntuneError(
                f"a cv mask for {spec.task} needs the Fisher of at least one other task; compute more tasks"
            )
    summed = None
    for t in pool:
        part = normalised(fishers[t])
        summed = part if summed is None else {n: summed[n] + part[n] for n in summed}
    return summed


def top_fraction(scores: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """True for the round(f * N) highest scores; ties go to the earlier element (name, index)."""
    names = sorted(scores)
    flat = torch.cat([scores[n].reshape(-1).double() for n in names])
    chosen = torch.sort(flat, descending=True, stable=True).indices[: _k(flat.numel(), fraction)]
    return _unflatten(chosen, names, {n: scores[n].shape for n in names})


def random_fraction(shapes: dict[str, torch.Size], fraction: float, seed: int) -> dict[str, torch.Tensor]:
    """round(f * N) elements drawn uniformly without replacement, the same for the same seed."""
    names = sorted(shapes)
    n = sum(torch.Size(shapes[k]).numel() for k in names)
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: _k(n, fraction)]
    return _unflatten(chosen, names, shapes)


def build_mask(spec: MaskSpec, fishers: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mask `spec` asks for, over the LN elements the Fisher files cover."""
    if not fishers:
        raise LntuneError("no Fisher results: run lntune analyse fisher first")
    if spec.kind == RANDOM:
        any_task = next(iter(fishers.values()))
        return random_fraction({n: v.shape for n, v in any_task.items()}, spec.fraction, spec.seed)
    return top_fraction(scores(spec, fishers), spec.fraction)


def save_mask(path, masks: dict[str, torch.Tensor], spec: MaskSpec, tasks: list[str]):
    """A file `lntune train --ln-mask` reads: LN parameter name -> bool tensor."""
    from dataclasses import asdict

    n = sum(m.numel() for m in masks.values())
    chosen = sum(int(m.sum()) for m in masks.values())
    return save_tensors(path, masks, {**asdict(spec), "fisher_tasks": tasks, "elements": n, "selected": chosen})


def _k(n: int, fraction: float) -> int:
    k = count(n, fraction)
    if k == 0:
        raise LntuneError(f"--fraction {fraction} of {n} LN elements selects none; use a larger fraction")
    return k


def _unflatten(chosen: torch.Tensor, names: list[str], shapes) -> dict[str, torch.Tensor]:
    flat = torch.zeros(sum(torch.Size(shapes[n]).numel() for n in names), dtype=torch.bool)
    flat[chosen] = True
    out, start = {}, 0
    for n in names:
        size = torch.Size(shapes[n]).numel()
        out[n] = flat[start : start + size].reshape(shapes[n]).clone()
        start += size
    return out


def _fisher_of(task: str, fishers: dict) -> dict[str, torch.Tensor]:
    if task not in fishers:
        raise LntuneError(
            f"no Fisher for task {task!r} (have {', '.join(sorted(fishers))}); run lntune analyse fisher --task {task}"
        )
    return fishers[task]


def _check_same_elements(fishers: dict[str, dict[str, torch.Tensor]]) -> None:
    ref_task, ref = next(iter(fishers.items()))
    for t, f in fishers.items():
        if {n: v.shape for n, v in f.items()} != {n: v.shape for n, v in ref.items()}:
            raise LntuneError(
                f"the Fisher of {t} and {ref_task} cover different LN parameters: compute both on the same model"
            )
