import json
import statistics
import warnings

import pytest

from lntune.report.aggregate import (
    ReportError, aggregate, higher_is_better, load_records, percent_scale,
)

from .records import efficiency, record, write_store


def test_keeps_lr_with_best_mean_val_and_reports_its_test_mean_and_std():
    # lr 1e-2 has the best single val score (0.95) but lr 1e-3 the best mean (0.85 > 0.65).
    runs = {1e-2: [(0.95, 0.70), (0.35, 0.72), (0.65, 0.74)], 1e-3: [(0.84, 0.80), (0.86, 0.83), (0.85, 0.79)]}
    records = [record(lr=lr, lr_rank=i, seed=s, val=v, score=t)
               for i, (lr, pairs) in enumerate(runs.items()) for s, (v, t) in enumerate(pairs)]
    [cell] = aggregate(records)
    tests = [t for _, t in runs[1e-3]]
    assert cell.lr == 1e-3
    assert cell.mean == pytest.approx(statistics.mean(tests))
    assert cell.std == pytest.approx(statistics.stdev(tests))  # sample std, ddof=1
    assert cell.seeds == [0, 1, 2]
    assert cell.lrs[1e-2]["val_mean"] == pytest.approx(statistics.mean([0.95, 0.35, 0.65]))


def test_tie_goes_to_the_earlier_lr_in_the_priority_list():
    records = [record(lr=2e-4, lr_rank=2, val=0.8, score=0.1), record(lr=1e-3, lr_rank=1, val=0.8, score=0.2),
               record(lr=1e-2, lr_rank=3, val=0.8, score=0.3)]
    [cell] = aggregate(records)
    assert cell.lr == 1e-3 and cell.std == 0.0  # one seed: std 0


def test_lower_is_better_metric_keeps_the_lowest_val():
    records = [record(metric="loss", lr=1e-2, lr_rank=0, val=2.0, score=2.1),
               record(metric="loss", lr=1e-3, lr_rank=1, val=1.5, score=1.6)]
    [cell] = aggregate(records)
    assert cell.lr == 1e-3 and cell.mean == pytest.approx(1.6)


def test_cells_split_by_group_row_task_model_and_mask_and_skip_efficiency():
    records = [record(row="LN"), record(row="LN", group="subset"), record(row="LN", task="rte"),
               record(row="LN", model="other"), record(row="LN", group="fraction", mask={"kind": "cv", "fraction": .2}),
               record(row="LN", group="fraction", mask={"kind": "cv", "fraction": .5}), efficiency("full")]
    cells = aggregate(records)
    assert len(cells) == 6
    assert {(c.mask_kind, c.fraction) for c in cells if c.group == "fraction"} == {("cv", .2), ("cv", .5)}


@pytest.mark.parametrize("metric,higher", [("accuracy", True), ("f1", True), ("bleu", True), ("loss", False),
                                           ("eval_loss", False), ("perplexity", False), ("ter", False),
                                           ("pearson", True)])
def test_direction_from_metric_name(metric, higher):
    assert higher_is_better(metric) is higher


def test_percent_scale_only_for_fraction_metrics():
    assert percent_scale("accuracy") == 100 and percent_scale("mcc") == 100
    assert percent_scale("bleu") == 1 and percent_scale("loss") == 1


def test_missing_or_empty_store_names_the_path(tmp_path):
    with pytest.raises(ReportError, match=str(tmp_path / "nope")):
        load_records(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="records.jsonl is missing"):
        load_records(tmp_path / "empty")
    write_store(tmp_path / "zero", [])
    with pytest.raises(ReportError, match="no finished runs"):
        load_records(tmp_path / "zero")


def test_torn_last_line_is_ignored(tmp_path):
    store = write_store(tmp_path / "r", [record(seed=1), record(seed=2), record(seed=1)])  # a duplicate key
    with open(store / "records.jsonl", "a") as f:
        f.write(json.dumps(record(seed=3).model_dump(mode="json"))[:40])  # a killed sweep's half line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the sweep's reader warns about the torn line
        assert [r.seed for r in load_records(store)] == [1, 2]
