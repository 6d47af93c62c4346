import json

import torch

from lntune.analyse.curve import CurveConfig, run_curve
from lntune.analyse.fisher import ln_names
from lntune.analyse.report import report_curve
from lntune.model import load_model
from lntune.train import TrainConfig

FAST = TrainConfig(lr=3e-2, max_steps=1, batch_size=16, eval_batch_size=32, progress=False)


def test_curve_trains_each_fraction_and_kind(tiny_dir, data_dir, tmp_path):
    base = str(tiny_dir("bert"))
    lm = load_model(base)
    params = dict(lm.model.named_parameters())
    g = torch.Generator().manual_seed(0)
    fishers = {"sst2": {n: torch.rand(params[n].shape, generator=g) for n in ln_names(lm)}}
    n = sum(v.numel() for v in fishers["sst2"].values())
    config = CurveConfig(
        fractions=(0.25, 1.0), kinds=("individual", "random"), train=FAST, train_limit=16, eval_limit=16
    )
    rows = run_curve(base, ["sst2"], fishers, tmp_path, config, data_dir)
    assert [(r["kind"], r["fraction"]) for r in rows] == [
        ("individual", 0.25),
        ("individual", 1.0),
        ("random", 0.25),
        ("random", 1.0),
    ]
    assert [r["selected"] for r in rows] == [round(0.25 * n), n, round(0.25 * n), n]
    assert all(r["metric"] == "accuracy" and 0.0 <= r["value"] <= 1.0 for r in rows)
    # at f = 1 every kind is the same mask: trained once
    assert rows[1]["run"] == rows[3]["run"] and rows[0]["run"] != rows[2]["run"]
    assert json.loads((tmp_path / "curve.json").read_text()) == rows
    report_curve(rows, tmp_path)
    assert (tmp_path / "curve.png").stat().st_size > 0 and (tmp_path / "curve.csv").read_text().count("\n") == 5
    skin = json.loads((tmp_path / "runs" / "sst2-individual-f0.25" / "skin.json").read_text())
    assert skin["counts"]["tuned"] == round(0.25 * n)
