"""NLG loaders: the shared files parse with counts taken from the raw files; bad files name themselves."""
import csv
import json

import datasets
import pytest

from lntune.data import get_task
from lntune.data.nlg import group_references
from lntune.errors import DataError

pytestmark = pytest.mark.usefixtures("hub_answers")  # the fakes here stand in for a Hub that answers


def _pairs_and_inputs(train, dev):
    examples = train + dev
    return len(examples), len(group_references(train)) + len(group_references(dev))


def test_e2e_groups_references_by_mr(data_dir):
    with open(data_dir / "nlg" / "e2e" / "testset_w_refs.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    dev = get_task("e2e").load("dev", data_dir)
    items = group_references(dev)
    assert len(dev) == len(rows) == 4_693
    assert len(items) == len({r["mr"] for r in rows})
    first = rows[0]["mr"]
    assert items[0]["prompt"] == f"Table: {first}\nText:"
    assert items[0]["references"] == [r["ref"] for r in rows if r["mr"] == first]
    assert get_task("e2e").max_new_tokens == 35


def test_webnlg_reads_every_lexicalisation_and_carves_a_fixed_dev_split(data_dir):
    entries = json.loads((data_dir / "nlg" / "webnlg" / "dev.json").read_text())["entries"]
    n_lex = sum(len(e["lexicalisations"]) for wrapped in entries for e in wrapped.values())
    task = get_task("webnlg")
    train, dev = task.load("train", data_dir), task.load("dev", data_dir)
    pairs, inputs = _pairs_and_inputs(train, dev)
    assert pairs == n_lex
    assert inputs < len(entries)  # a few entries repeat another's triples: one input, all references
    assert len(group_references(dev)) == round(0.2 * inputs)
    assert not {e["prompt"] for e in train} & {e["prompt"] for e in dev}  # split by input, no leaks
    assert task.load("dev", data_dir) == dev  # the same rows for every run
    assert train[0]["prompt"] == "Triples: Aarhus | leaderName | Jacob Bundsgaard\nText:"
    assert train[0]["target"] == " The leader of Aarhus is Jacob Bundsgaard."
    assert task.max_new_tokens == 45


def test_dart_reads_every_annotation(data_dir):
    records = json.loads((data_dir / "nlg" / "dart" / "dart-v1.1.1-full-dev.json").read_text())
    task = get_task("dart")
    train, dev = task.load("train", data_dir), task.load("dev", data_dir)
    pairs, inputs = _pairs_and_inputs(train, dev)
    assert pairs == sum(len(r["annotations"]) for r in records)
    assert inputs < len(records)  # identical triplesets in different records share an input
    assert len(group_references(dev)) == round(0.2 * inputs)
    assert not {e["prompt"] for e in train} & {e["prompt"] for e in dev}
    assert task.max_new_tokens == 45


def test_samsum_trains_on_validation_and_evaluates_on_test(data_dir):
    root = data_dir / "nlg" / "samsum"
    val, test = datasets.load_from_disk(str(root / "validation")), datasets.load_from_disk(str(root / "test"))
    task = get_task("samsum")
    train, dev = task.load("train", data_dir), task.load("dev", data_dir)
    assert (len(train), len(dev)) == (len(val), len(test)) == (818, 819)
    assert train[0]["prompt"].startswith("Dialogue: A: Hi Tom") and train[0]["prompt"].endswith("\nSummary:")
    assert "\r" not in train[0]["prompt"]
    assert train[0]["target"] == " " + val[0]["summary"].strip()
    assert task.max_new_tokens == 35


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ('{"entries": []}', 'no "entries" list'),
    ('{"entries": [{"1": {"lexicalisations": [{"lex": "x"}]}}]}', "entry 0 is malformed.*modifiedtripleset"),
])
def test_malformed_webnlg(tmp_path, text, match):
    folder = tmp_path / "nlg" / "webnlg"
    folder.mkdir(parents=True)
    (folder / "dev.json").write_text(text)
    with pytest.raises(DataError, match=f"dev.json: {match}"):
        get_task("webnlg").load("dev", tmp_path)


def test_malformed_dart(tmp_path):
    folder = tmp_path / "nlg" / "dart"
    folder.mkdir(parents=True)
    bad = [{"tripleset": [["a", "b"]], "annotations": [{"text": "t"}]}]
    (folder / "dart-v1.1.1-full-dev.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match="full-dev.json: record 0 needs 3-part triples"):
        get_task("dart").load("train", tmp_path)


def test_malformed_samsum(tmp_path):
    folder = tmp_path / "nlg" / "samsum" / "validation"
    folder.mkdir(parents=True)
    (folder / "junk.txt").write_text("x")
    with pytest.raises(DataError, match="validation: not a readable datasets folder"):
        get_task("samsum").load("train", tmp_path)
    datasets.Dataset.from_dict({"dialogue": ["A: hi"], "text": ["x"]}).save_to_disk(str(tmp_path / "wrong"))
    with pytest.raises(DataError, match=r"missing column\(s\) \['summary'\]"):
        get_task("samsum").read_local(tmp_path / "wrong")


def test_upstream_train_file_is_preferred_to_carving(tmp_path):
    folder = tmp_path / "nlg" / "dart"
    folder.mkdir(parents=True)
    rec = {"tripleset": [["A", "p", "B"]], "annotations": [{"text": "A p B."}, {"text": "B is A's p."}]}
    (folder / "dart-v1.1.1-full-train.json").write_text(json.dumps([rec]))
    (folder / "dart-v1.1.1-full-dev.json").write_text(json.dumps([rec, rec]))
    task = get_task("dart")
    assert len(task.load("train", tmp_path)) == 2 and len(task.load("dev", tmp_path)) == 4


# ---- hub loaders (the real training sets), with datasets.load_dataset faked: no network ----

HUB_ROWS = {
    "GEM/e2e_nlg": [{"meaning_representation": "name[X]", "target": "X is a pub."}],
    "webnlg-challenge/web_nlg": [
        {"modified_triple_sets": {"mtriple_set": [["Aarhus | leaderName | Jacob_Bundsgaard"]]},
         "lex": {"text": ["The leader of Aarhus is Jacob Bundsgaard.", "Jacob Bundsgaard leads Aarhus."]}},
    ],
    "Yale-LILY/dart": [{"tripleset": [["A", "p", "B"]], "annotations": {"source": ["s"], "text": ["A p B."]}}],
    "Samsung/samsum": [{"id": "1", "dialogue": "A: hi\r\nB: hello", "summary": "They greet. "}],
}


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []

    def load_dataset(name, *args, split=None, **kwargs):
        calls.append((name, *args, split))
        return HUB_ROWS[name]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


@pytest.mark.parametrize("name, call, example", [
    ("e2e", ("GEM/e2e_nlg", "train"), {"prompt": "Table: name[X]\nText:", "target": " X is a pub."}),
    ("webnlg", ("webnlg-challenge/web_nlg", "webnlg_challenge_2017", "train"),
     {"prompt": "Triples: Aarhus | leaderName | Jacob Bundsgaard\nText:",
      "target": " The leader of Aarhus is Jacob Bundsgaard."}),
    ("dart", ("Yale-LILY/dart", "train"), {"prompt": "Triples: A | p | B\nText:", "target": " A p B."}),
    ("samsum", ("Samsung/samsum", "train"),
     {"prompt": "Dialogue: A: hi\nB: hello\nSummary:", "target": " They greet."}),
])
def test_hub_training_sets(fake_hub, name, call, example):
    rows = get_task(name).load("train", None)  # no data directory: the hub
    assert fake_hub == [call]
    assert rows[0] == example


def test_hub_failure_names_the_missing_files(monkeypatch, tmp_path):
    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="samsum, split train: .*validation does not exist, and the hub copy failed"):
        get_task("samsum").load("train", tmp_path)
