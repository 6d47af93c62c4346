"""What every method shares: a config dataclass, and `apply`, which says which tensors train."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass
class Tuned:
    """One trainable tensor; with a mask only its masked-in elements may change."""

    name: str
    param: nn.Parameter
    mask: torch.Tensor | None = None

    @property
    def count(self) -> int:
        return int(self.mask.sum()) if self.mask is not None else self.param.numel()


class Method:
    """Subclasses set `name` and `Config` and implement `apply`."""

    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config: object | None = None, **options) -> None:
        self.config = config if config is not None else self.Config(**options)

    def options(self) -> dict:
        return asdict(self.config)

    def apply(self, lm) -> list[Tuned]:
        """Add any modules the method needs to `lm.model` and return the tensors to train."""
        raise NotImplementedError
