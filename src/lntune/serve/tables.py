"""Per-skin value tables: row 0 holds the base values, each loaded skin one row (its slot).

Adding or removing a skin writes or frees one row, under the bank's lock, so it costs the same with 1,000
skins loaded as with one. Capacity grows by a quarter when full (amortised copies, little slack); a freed
row is reused by the next skin. Head tables are zero-padded to the widest head loaded, so skins with 2, 3
or 1 outputs share a batch; a wider head widens the table once.
"""
from __future__ import annotations

import math

import torch

GROWTH = 1.25


class SlotTable:
    def __init__(self, base: torch.Tensor) -> None:
        self.base = base
        self.data = base[None].clone()

    def _grow(self, rows: int, width: int | None) -> None:
        shape = list(self.data.shape)
        if rows > shape[0]:
            shape[0] = max(rows, math.ceil(shape[0] * GROWTH) + 1)
        if width is not None and width > shape[1]:
            shape[1] = width
        if shape != list(self.data.shape):
            bigger = self.data.new_zeros(shape)
            bigger[: self.data.shape[0], : self.data.shape[1]] = self.data
            self.data = bigger

    def put(self, slot: int, value: torch.Tensor | None) -> None:
        """Slot `slot` holds `value` (None: the base values), zero-padded to the table's width."""
        value = self.base if value is None else value.to(self.base.device, self.base.dtype)
        self._grow(slot + 1, value.shape[0] if value.dim() >= 1 else None)
        row = self.data[slot]
        if value.dim() >= 1 and value.shape[0] < row.shape[0]:
            row.zero_()
            row[: value.shape[0]] = value
        else:
            row.copy_(value)

    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()
