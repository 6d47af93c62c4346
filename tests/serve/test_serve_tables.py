import torch

from lntune.serve.tables import SlotTable


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
