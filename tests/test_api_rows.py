"""train_task takes the data users have (issue 25 #10): a list of dicts, a pandas DataFrame, a datasets Dataset
or DatasetDict, with the column options of a local: spec, checked by the same rules."""
import pandas as pd
import pytest

from lntune.api import train_task
from lntune.errors import DataError, LntuneError
from lntune.train import TrainConfig

FAST = TrainConfig(lr=1e-2, epochs=1, batch_size=8, eval_batch_size=16, max_length=32, progress=False)
ROWS = [{"sentence": f"{'a fine' if i % 2 else 'a dull'} film {i}", "label": "pos" if i % 2 else "neg"}
        for i in range(40)]


def _train(tiny_dir, data, **kw):
    return train_task(data, str(tiny_dir("bert")), "ln", {}, FAST, None, train_limit=None,
                      columns={"text": "sentence", "label": "label"}, **kw)


def test_a_list_a_dataframe_and_a_dataset_train_alike(tiny_dir):
    import datasets

    got = [_train(tiny_dir, data) for data in (ROWS, pd.DataFrame(ROWS), datasets.Dataset.from_list(ROWS))]
    assert len({r.metrics["loss"] for r in got}) == 1  # the same rows, the same run
    first = got[0]
    assert first.task.name == "rows:40 training rows" and first.task.labels == ["neg", "pos"]
    assert first.data.carved and (first.data.train_size, first.data.dev_size) == (36, 4)  # no dev: a slice


def test_a_datasetdict_gives_its_validation_split_as_dev(tiny_dir):
    import datasets

    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:32]),
                                   "validation": datasets.Dataset.from_list(ROWS[32:])})
    res = _train(tiny_dir, splits)
    assert res.data.carved is None and (res.data.train_size, res.data.dev_size) == (32, 8)
    assert _train(tiny_dir, ROWS[:32], dev=pd.DataFrame(ROWS[32:])).metrics == res.metrics  # dev= is the same


@pytest.mark.parametrize("data,columns,match", [
    ([{"s": "x", "label": "a"}], {"text": "sentence"}, "no column 'sentence'; they have"),
    ([{"sentence": "x", "label": None}, {"sentence": "y", "label": "b"}], {"text": "sentence"},
     "train row 0: label 'label' is null"),
    (pd.DataFrame({"sentence": ["x", "y"], "label": [1.0, float("nan")]}), {"text": "sentence", "head": "regression"},
     "train row 1: label None is not a number"),
    ([{"sentence": "x", "label": "a"}] * 3, {"text": "sentence"}, "every training row has label 'a'"),
    ([("x", 1)], {"text": "sentence"}, "row 0 is a tuple, not a dict"),
    ({"train": ROWS, "extra": ROWS}, {"text": "sentence"}, "rename \\['extra'\\]"),
    (ROWS, {"text": "sentence", "lable": "label"}, "unknown \\['lable'\\]"),
])
def test_bad_rows_are_refused_before_anything_loads(data, columns, match):
    with pytest.raises(DataError, match=match):
        train_task(data, "no-such-model", "ln", columns=columns, out=None)


def test_columns_belong_to_rows():
    with pytest.raises(LntuneError, match="columns= and dev= go with rows"):
        train_task("sst2", columns={"text": "sentence"}, out=None)
