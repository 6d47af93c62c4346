"""One definition of what a metric's name says: its direction and its display scale."""
import pytest

from lntune.spec.metrics import greater_is_better, percent_scale


@pytest.mark.parametrize("name, greater, scale", [
    ("accuracy", True, 100.0), ("f1", True, 100.0), ("entity_f1", True, 100.0), ("pearson", True, 100.0),
    ("mcc", True, 100.0), ("loss", False, 1.0), ("val_loss", False, 1.0), ("perplexity", False, 1.0),
    ("ppl", False, 1.0), ("ter", False, 1.0), ("bleu", True, 1.0), ("rouge_l", True, 1.0), ("cider", True, 1.0),
])
def test_a_metric_knows_its_direction_and_scale(name, greater, scale):
    assert greater_is_better(name) is greater and percent_scale(name) == scale


def test_every_layer_reads_the_one_definition():
    """The sweep's lr choice, the report and early stopping on the score use these functions, not copies."""
    import lntune.report.aggregate as aggregate
    import lntune.sweep.driver as driver
    import lntune.sweep.grid as grid
    from lntune.spec import metrics

    assert aggregate.higher_is_better is metrics.greater_is_better and aggregate.percent_scale is metrics.percent_scale
    assert grid.greater_is_better is metrics.greater_is_better and driver.greater_is_better is metrics.greater_is_better
    for module in (aggregate, grid, driver):
        assert not hasattr(module, "LOWER_IS_BETTER")


def test_tasks_take_their_direction_from_the_metric():
    from lntune.data import get_task

    assert not hasattr(get_task("sst2"), "greater_is_better") and not hasattr(get_task("e2e"), "greater_is_better")
    assert greater_is_better(get_task("stsb").metric) and not greater_is_better(get_task("e2e").metric)
