import pytest

from lntune.data import get_task, resolve_data_dir, subset
from lntune.errors import DataError

pytestmark = pytest.mark.usefixtures("hub_answers")  # the fakes here stand in for a Hub that answers

SST2 = get_task("sst2")


def test_reads_the_shared_sst2_files(data_dir):
    train, dev = SST2.load("train", data_dir), SST2.load("dev", data_dir)
    assert (len(train), len(dev)) == (67_349, 872)
    assert {e["label"] for e in dev} == {0, 1}
    assert dev[0]["text_a"].startswith("it 's a charming and often affecting journey")


def test_reads_the_shared_rte_and_stsb_files(data_dir):
    rte, stsb = get_task("rte"), get_task("stsb")
    assert (len(rte.load("train", data_dir)), len(rte.load("dev", data_dir))) == (2_490, 277)
    train, dev = stsb.load("train", data_dir), stsb.load("dev", data_dir)
    assert (len(train), len(dev)) == (5_749, 1_500)
    assert train[0] == {"text_a": "A plane is taking off.", "text_b": "An air plane is taking off.", "label": 5.0}
    assert {e["label"] for e in rte.load("dev", data_dir)} == {0, 1}


def test_non_numeric_score_is_refused(tmp_path):
    folder = tmp_path / "glue" / "STS-B"
    folder.mkdir(parents=True)
    (folder / "dev.tsv").write_text("sentence1\tsentence2\tscore\na\tb\thigh\n")
    with pytest.raises(DataError, match=r"dev.tsv:2: score 'high' is not a number"):
        get_task("stsb").load("dev", tmp_path)


def write(tmp_path, text):
    folder = tmp_path / "glue" / "SST-2"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text(text)
    return folder / "train.tsv"


@pytest.mark.parametrize("text,message", [
    ("", "the file is empty"),
    ("sentence\tlabel\n", "no data rows"),
    ("text\tlabel\ngood\t1\n", "missing column(s) 'sentence'"),
    ("sentence\tlabel\ngood\t1\nbad\t2\n", ":3: unknown label '2'; expected one of 0, 1"),
    ("sentence\tlabel\ngood\t1\nbad\n", ":3: 1 fields, header has 2"),
])
def test_bad_files_name_the_file_and_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as e:
        SST2.load("train", tmp_path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_missing_files_fall_back_to_the_hub(tmp_path, monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return [{"sentence": "a fine film", "label": 1, "idx": 0}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert SST2.load("dev", tmp_path) == [{"text_a": "a fine film", "label": 1}]
    assert calls == [("nyu-mll/glue", "sst2", "validation")]


def test_offline_without_files_says_where_files_were_expected(tmp_path, monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("hub unreachable")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"glue/SST-2/train.tsv does not exist, and the hub copy failed: hub"):
        SST2.load("train", tmp_path)


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("LNTUNE_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("elsewhere").name == "elsewhere"


def test_subset_is_seeded_and_keeps_order():
    rows = [{"i": i} for i in range(100)]
    a, b = subset(rows, 10, seed=3), subset(rows, 10, seed=3)
    assert a == b and len(a) == 10
    assert [r["i"] for r in a] == sorted(r["i"] for r in a)
    assert subset(rows, 10, seed=4) != a
    assert subset(rows, None, seed=0) is rows
