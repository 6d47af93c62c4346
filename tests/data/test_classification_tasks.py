import json

import pytest

from lntune.data import get_task
from lntune.errors import DataError

pytestmark = pytest.mark.usefixtures("hub_answers")  # the fakes here stand in for a Hub that answers


def test_cb_carves_a_fixed_dev_split_and_tests_on_val(data_dir):
    cb = get_task("cb")
    train, dev, test = (cb.load(s, data_dir) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (225, 25, 56)
    assert not {e["text_a"] + e["text_b"] for e in dev} & {e["text_a"] + e["text_b"] for e in train}
    assert cb.load("dev", data_dir) == dev


def test_sick_splits_follow_the_semeval_column(data_dir):
    sizes = {s: len(get_task("sick").load(s, data_dir)) for s in ("train", "dev", "test")}
    assert sizes == {"train": 4439, "dev": 495, "test": 4906} and sum(sizes.values()) == 9840
    first = get_task("sick_relatedness").load("train", data_dir)[0]
    assert first == {"text_a": "A group of kids is playing in a yard and an old man is standing in the background",
                     "text_b": "A group of boys in a yard is playing and a man is standing in the background",
                     "label": 4.5}
    assert get_task("sick").load("train", data_dir)[0]["label"] == 1  # NEUTRAL


def test_cb_errors_name_file_and_line(tmp_path):
    folder = tmp_path / "superglue" / "CB"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text('{"premise": "a", "hypothesis": "b", "label": "entailment"}\n{"premise": "a"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: missing key\(s\) 'hypothesis', 'label'"):
        get_task("cb").load("train", tmp_path)
    (folder / "train.jsonl").write_text('{"premise": "a", "hypothesis": "b", "label": "maybe"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:1: unknown label 'maybe'"):
        get_task("cb").load("train", tmp_path)


@pytest.mark.parametrize("task,expected_call,row,example", [
    ("mnli_mm", ("nyu-mll/glue", "mnli", "validation_mismatched"),
     {"premise": "p", "hypothesis": "h", "label": 2}, {"text_a": "p", "text_b": "h", "label": 2}),
    ("mrpc", ("nyu-mll/glue", "mrpc", "validation"),
     {"sentence1": "a", "sentence2": "b", "label": 1}, {"text_a": "a", "text_b": "b", "label": 1}),
    ("snli", ("stanfordnlp/snli", "validation"),
     {"premise": "p", "hypothesis": "h", "label": 0}, {"text_a": "p", "text_b": "h", "label": 0}),
    ("cola", ("nyu-mll/glue", "cola", "validation"), {"sentence": "s", "label": 1}, {"text_a": "s", "label": 1}),
])
def test_hub_only_tasks_map_columns_and_drop_unlabelled_rows(monkeypatch, tmp_path, task, expected_call, row, example):
    import datasets

    calls = []

    def fake(*args, split):
        calls.append((*args, split))
        return [row, {**row, "label": -1}]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert get_task(task).load("dev", tmp_path) == [example]
    assert calls == [expected_call]


def test_hub_only_task_offline_says_so(monkeypatch, tmp_path):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("offline")))
    with pytest.raises(DataError, match="cola, split train: it has no offline files, and the hub copy failed: offline"):
        get_task("cola").load("train", tmp_path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_local_task_reads_csv_tsv_and_jsonl(tmp_path, suffix):
    rows = [("a cat", "a pet", "yes"), ("a car", "a pet", "no"), ("a dog", "a pet", "yes")]
    for split, rs in (("train", rows), ("dev", rows[:2])):
        path = tmp_path / f"{split}{suffix}"
        if suffix == ".jsonl":
            path.write_text("".join(json.dumps({"p": a, "h": b, "y": c}) + "\n" for a, b, c in rs))
        else:
            sep = "," if suffix == ".csv" else "\t"
            path.write_text(sep.join(["p", "h", "y"]) + "\n" + "".join(sep.join(r) + "\n" for r in rs))
    task = get_task(f"local:train={tmp_path}/train{suffix},dev={tmp_path}/dev{suffix},text=p+h,label=y")
    assert task.labels == ("no", "yes") and task.head == "classification"
    assert task.load("dev", None) == [{"text_a": "a cat", "text_b": "a pet", "label": 1},
                                      {"text_a": "a car", "text_b": "a pet", "label": 0}]


def test_local_regression_and_errors(tmp_path):
    (tmp_path / "train.csv").write_text("s,score\nx,1.5\ny,2\n")
    (tmp_path / "dev.csv").write_text("s,score\nx,high\n")
    task = get_task(f"local:train={tmp_path}/train.csv,dev={tmp_path}/dev.csv,text=s,label=score,head=regression")
    assert task.load("train", None) == [{"text_a": "x", "label": 1.5}, {"text_a": "y", "label": 2.0}]
    with pytest.raises(DataError, match=r"dev.csv:2: label 'high' is not a number"):
        task.load("dev", None)
    with pytest.raises(DataError, match="missing column"):
        get_task(f"local:train={tmp_path}/train.csv,text=sentence,label=score")
    with pytest.raises(DataError, match="write local:train=PATH"):
        get_task("local:dev=x.csv")
    with pytest.raises(DataError, match="no dev file given"):
        get_task(f"local:train={tmp_path}/train.csv,text=s,label=score,head=regression").load("dev", None)
