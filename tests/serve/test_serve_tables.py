import pytest
import torch

from lntune.serve.tables import PackedTable, SlotTable


def test_rows_grow_widen_and_keep_their_values():
    base = torch.arange(6.0).view(2, 3)  # a head of 2 outputs
    t = SlotTable(base)
    t.put(1, None)
    t.put(5, torch.ones(2, 3))
    assert t.data.shape[0] >= 6 and torch.equal(t.data[0], base) and torch.equal(t.data[1], base)
    wide = torch.full((3, 3), 7.0)
    t.put(2, wide)  # a 3-output head widens the table once; narrower rows are zero-padded
    assert t.data.shape[1] == 3 and torch.equal(t.data[2], wide)
    assert torch.equal(t.data[0, :2], base) and torch.equal(t.data[0, 2], torch.zeros(3))
    assert torch.equal(t.data[5, :2], torch.ones(2, 3))
    t.put(5, torch.zeros(1, 3))  # a narrower value overwrites the whole row
    assert torch.equal(t.data[5], torch.zeros(3, 3))


def test_growth_is_amortised():
    t = SlotTable(torch.zeros(4))
    shapes = set()
    for slot in range(1, 1001):
        t.put(slot, torch.full((4,), float(slot)))
        shapes.add(t.data.shape[0])
    assert len(shapes) < 40 and t.data.shape[0] <= 1.25 * 1001 + 1  # few copies, little slack
    assert torch.equal(t.data[1000], torch.full((4,), 1000.0))


def test_packed_table_rows_hold_each_part_and_views_follow_growth():
    bases = [torch.arange(3.0), torch.full((2,), -1.0), torch.arange(4.0) * 10]
    t = PackedTable(bases)
    assert [tuple(v.shape) for v in t.views()] == [(1, 3), (1, 2), (1, 4)]
    rows = {slot: [torch.full_like(b, float(slot)) if (slot + i) % 2 else None for i, b in enumerate(bases)]
            for slot in range(1, 40)}
    grew = [t.put(slot, values) for slot, values in rows.items()]
    assert any(grew) and not all(grew)
    views = t.views()  # handed out again after growth
    for part, (view, base) in enumerate(zip(views, bases)):
        assert torch.equal(view[0], base)
        for slot, values in rows.items():
            want = base if values[part] is None else values[part]
            assert torch.equal(view[slot], want), (part, slot)
    t.put(5, [None, None, None])  # a reused row goes back to the base values
    assert all(torch.equal(v[5], b) for v, b in zip(t.views(), bases))
    with pytest.raises(ValueError, match="2 values for 3"):
        t.put(6, [None, None])
