"""Per-skin value tables: row 0 holds the base values, each loaded skin one row (its slot).

Adding or removing a skin writes or frees one row, under the bank's lock, so it costs the same with 1,000
skins loaded as with one. Capacity grows by a quarter when full (amortised copies, little slack); a freed
row is reused by the next skin. Head tables are zero-padded to the widest head loaded, so skins with 2, 3
or 1 outputs share a batch; a wider head widens the table once.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
from functools import lru_cache

import torch

GROWTH = 1.25


@lru_cache(maxsize=1)
def _malloc_trim():
    libc = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(libc), "malloc_trim", None) if libc else None


def release_free_memory() -> None:
    """Hand freed heap memory back to the system (glibc's malloc_trim; a no-op elsewhere). A grown table frees
    its old copy, and glibc keeps such memory for reuse: with 1,000 skins that is half again the tables' size
    (measured by benchmarks/serve_generate.py)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class SlotTable:
    def __init__(self, base: torch.Tensor) -> None:
        self.base = base
        self.data = base[None].clone()

    def _grow(self, rows: int, width: int | None) -> bool:
        """Reallocate when `rows` or `width` do not fit; True if it did."""
        shape = list(self.data.shape)
        if rows > shape[0]:
            shape[0] = max(rows, math.ceil(shape[0] * GROWTH) + 1)
        if width is not None and width > shape[1]:
            shape[1] = width
        if shape != list(self.data.shape):
            bigger = self.data.new_zeros(shape)
            bigger[: self.data.shape[0], : self.data.shape[1]] = self.data
            self.data = bigger
            return True
        return False

    def put(self, slot: int, value: torch.Tensor | None) -> bool:
        """Slot `slot` holds `value` (None: the base values), zero-padded to the table's width; True if the
        table grew for it."""
        value = self.base if value is None else value.to(self.base.device, self.base.dtype)
        grew = self._grow(slot + 1, value.shape[0] if value.dim() >= 1 else None)
        row = self.data[slot]
        if value.dim() >= 1 and value.shape[0] < row.shape[0]:
            row.zero_()
            row[: value.shape[0]] = value
        else:
            row.copy_(value)
        return grew

    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()


class PackedTable:
    """Fixed-width tables side by side in one SlotTable: row `slot` holds every norm value of one skin, so adding
    a skin writes one row (one copy) instead of one per norm (61 on SmolLM2, most of an add's time). Each
    norm reads its columns through a view; `views` must be handed out again after a put that grew the table."""

    def __init__(self, bases: list[torch.Tensor]) -> None:
        self.bases = bases
        ends = torch.tensor([b.numel() for b in bases]).cumsum(0).tolist()
        self.bounds = list(zip([0, *ends[:-1]], ends))
        self.table = SlotTable(torch.cat(bases) if bases else torch.zeros(0))

    def put(self, slot: int, values: list[torch.Tensor | None]) -> bool:
        """Row `slot` holds `values` (None: that part's base values), in the order of the bases; True if it grew."""
        if len(values) != len(self.bases):
            raise ValueError(f"{len(values)} values for {len(self.bases)} packed tables")
        return self.table.put(slot, torch.cat([b if v is None else v.reshape(-1) for v, b in zip(values, self.bases)]))

    def views(self) -> list[torch.Tensor]:
        """[slots, width] per part, in the order of the bases."""
        return [self.table.data[:, a:b] for a, b in self.bounds]

    def nbytes(self) -> int:
        return self.table.nbytes()
