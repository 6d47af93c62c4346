"""What every method shares: a config dataclass, and `apply`, which says which tensors train."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import nn

from lntune.errors import MethodError
from lntune.spec.rules import field_problems


class OptionError(MethodError):
    """A method option breaks its field's rule."""


@dataclass
class Options:
    """Base of every method's config: each field's rule (spec.rules.ruled) is checked when the config is built,
    whatever built it (-o, a YAML config, a sweep, the Python API, a skin's rebuild options), then `check`."""

    def __post_init__(self) -> None:
        problems = field_problems(self)
        if problems:
            name, problem = problems[0]
            raise OptionError(f"{name} {problem}")
        self.check()

    def check(self) -> None:
        """Rules that join fields or need more than a type and a range."""


@dataclass
class Tuned:
    """One trainable tensor; with a mask only its masked-in elements may change."""

    name: str  # as in model.named_parameters(): the key of the tensor in a skin
    param: nn.Parameter
    mask: torch.Tensor | None = None
    store_mask: bool = True  # False when the method re-derives the mask itself (e.g. from a seed)

    @property
    def count(self) -> int:
        return int(self.mask.sum()) if self.mask is not None else self.param.numel()


class Method:
    """Subclasses set `name` and `Config` and implement `apply`.

    A skin is rebuilt by constructing the method from `skin_options()` on a fresh
    base model, calling `apply`, and loading the saved tensors by name, so `apply`
    must add the same modules with the same parameter names every time.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    # Traits the other layers read, so that no module outside method/ lists method names:
    lr_family: ClassVar[str] = "other"  # the default lr list a sweep tries (sweep.config.DEFAULT_LRS): ln | full | other
    preset_key: ClassVar[str | None] = None  # its row of the papers' size presets (options.PAPER_PRESETS)
    adds_modules: ClassVar[bool] = False  # adds modules the base lacks (adapters, prefix, LoRA): inference pays for them
    block: ClassVar[str | None] = None  # the sub-block it tunes beside LN in paper 000 sec. 4.4: mha | ffn
    adapter: ClassVar[bool] = False  # an adapter module (paper 000's adapter baselines)
    merge: ClassVar[str | None] = None  # how lntune merge folds it into plain weights: copy | lora; None: it cannot
    peft_type: ClassVar[str | None] = None  # the PEFT adapter type it exports as (lntune export --format peft)
    records_change: ClassVar[bool] = False  # sweeps record its parameter change (002 fig. 1, 000 fig. 3)
    heads: ClassVar[tuple[str, ...] | None] = None  # the task heads it can tune; None: every head
    serves_mixed: ClassVar[bool] = False  # its tensors are norm gains and biases only: lntune serve mixes its skins
    hub_tag: ClassVar[str | None] = None  # the Hub tag of its model cards (None: its name); a composite takes a part's

    def __init__(self, config: object | None = None, **options) -> None:
        try:
            self.config = config if config is not None else self.Config(**options)
        except OptionError as e:
            raise MethodError(f"method {self.name}: {e}") from None

    def options(self) -> dict:
        return asdict(self.config)

    def apply(self, lm) -> list[Tuned]:
        """Add any modules the method needs to `lm.model` (in place) and return the tensors to train."""
        raise NotImplementedError

    def finalize(self, tuning) -> None:
        """Called before a skin is saved: e.g. fold a training-only reparameterisation away."""

    def skin_options(self) -> dict:
        """Options that rebuild the saved (finalized) method from a skin."""
        return self.options()
