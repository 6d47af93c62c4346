"""Figures whose layout is decided from the data: the forest plot's broken axis."""
from lntune.report.plots import _forest_panels, forest


def test_a_contrast_far_from_zero_gets_its_own_panel_and_the_rest_keep_their_scale():
    near, floor = (-3.5, 1.9), (58.9, 61.2)  # LN - FT; LN - Head only, 60 points off
    panels = _forest_panels([near, floor], margin=1.5)
    assert [main for _, main, _ in panels] == [True, False] and [m for _, _, m in panels] == [{0}, {1}]
    (lo, hi), _, _ = panels[0]
    assert lo < -3.5 and 1.9 < hi < 3  # the main panel spans the near CIs (and the ±margin), not 60 points
    assert panels[1][0][0] < 58.9 and panels[1][0][1] > 61.2
    left = _forest_panels([(-40.0, -35.0), near], margin=1.5)
    assert [main for _, main, _ in left] == [False, True]  # a far negative contrast goes left
    assert len(_forest_panels([near, (5.0, 7.0)], margin=1.5)) == 1  # within 5 margins of 0: no break
    assert len(_forest_panels([near, floor], margin=0.0)) == 1  # no margin (times): never broken


def test_the_broken_forest_plot_is_drawn(tmp_path):
    rows = [("LN - FT", [("pooled", -2.0, -3.0, -1.0), ("sst2 (n=9)", -3.0, -5.0, -1.0)], "holds"),
            ("LN - Head only", [("pooled", 60.0, 59.0, 61.0)], "holds")]
    path = forest(tmp_path / "forest.png", rows, 1.5, "paired difference A - B (points)")
    assert path.stat().st_size > 10_000
