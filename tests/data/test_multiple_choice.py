import json

import pytest

from lntune.data import get_task
from lntune.data.encode import collate
from lntune.errors import DataError
from lntune.heads import encode

pytestmark = pytest.mark.usefixtures("hub_answers")  # the fakes here stand in for a Hub that answers

SIQA, CSQA = get_task("socialiqa"), get_task("csqa")


def test_socialiqa_reads_the_shared_files(data_dir):
    train, dev = SIQA.load("train", data_dir), SIQA.load("dev", data_dir)
    assert (len(train), len(dev)) == (33_410, 1_954)
    assert dev[0] == {
        "context": "Tracy didn't go home that evening and resisted Riley's attacks.",
        "question": "What does Tracy need to do before this?",
        "choices": ["make a new plan", "Go home and see Riley", "Find somewhere to go"],
        "label": 2,  # dev-labels.lst line 1 is 3
    }
    assert {e["label"] for e in dev} == {0, 1, 2} and SIQA.head == "multiple-choice"


ROW = {"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "c"}


def write_siqa(tmp_path, rows, labels):
    folder = tmp_path / "qa" / "socialiqa"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) if isinstance(rows, list) else rows)
    if labels is not None:
        (folder / "dev-labels.lst").write_text(labels)
    return folder


@pytest.mark.parametrize("rows,labels,file,message", [
    ("", "1\n", "dev.jsonl", "the file is empty"),
    ([ROW, {k: v for k, v in ROW.items() if k != "answerC"}], "1\n2\n", "dev.jsonl", ":2: missing key(s) 'answerC'"),
    ([ROW, ROW], "1\n", "dev-labels.lst", "1 labels for the 2 records of"),
    ([ROW, ROW], "1\n4\n", "dev-labels.lst", ":2: label '4'; expected one of 1, 2, 3"),
    ([ROW], None, "dev-labels.lst", "not found; it holds the answers"),
])
def test_socialiqa_bad_files_name_the_file(tmp_path, rows, labels, file, message):
    folder = write_siqa(tmp_path, rows, labels)
    with pytest.raises(DataError) as e:
        SIQA.load("dev", tmp_path)
    assert str(folder / file) in str(e.value) and message in str(e.value)


def hub_row(key="B"):
    return {"id": "x", "question": "Where are books?", "question_concept": "book",
            "choices": {"label": list("ABCDE"), "text": ["shelf", "library", "sea", "sky", "sun"]}, "answerKey": key}


def test_csqa_from_the_hub_without_network(tmp_path, monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, split):
        calls.append((name, split))
        return [hub_row("B"), hub_row("")]  # the second is like the unanswered test rows

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert CSQA.load("dev", tmp_path) == [
        {"context": "", "question": "Where are books?", "choices": ["shelf", "library", "sea", "sky", "sun"],
         "label": 1}
    ]
    assert calls == [("tau/commonsense_qa", "validation")]
    CSQA.load("train", None)
    assert calls[-1] == ("tau/commonsense_qa", "train")


def test_csqa_hub_rows_with_other_choices_are_refused(monkeypatch):
    import datasets

    row = hub_row("F")
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: [row])
    with pytest.raises(DataError, match="row 0: choices labelled .* with answer 'F'"):
        CSQA.load("train", None)


def test_csqa_reads_upstream_jsonl(tmp_path):
    folder = tmp_path / "qa" / "csqa"
    folder.mkdir(parents=True)
    choices = [{"label": c, "text": t} for c, t in zip("ABCDE", ["shelf", "library", "sea", "sky", "sun"])]
    good = {"answerKey": "A", "id": "1", "question": {"question_concept": "book", "choices": choices, "stem": "Where?"}}
    (folder / "train_rand_split.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({"answerKey": "A"}) + "\n")
    with pytest.raises(DataError, match=r"train_rand_split.jsonl:2: missing key\(s\) 'question'"):
        CSQA.load("train", tmp_path)
    (folder / "train_rand_split.jsonl").write_text(json.dumps(good) + "\n")
    assert CSQA.load("train", tmp_path)[0] == {
        "context": "", "question": "Where?", "choices": ["shelf", "library", "sea", "sky", "sun"], "label": 0}


def test_choices_encode_as_pairs_and_pad_to_the_longest_choice(tokenizer):
    rows = [
        {"context": "Kim ate.", "question": "Why?", "choices": ["hungry", "very very hungry indeed", "bored"],
         "label": 1},
        {"context": "", "question": "Who?", "choices": ["a", "b", "c"], "label": 2},
    ]
    feats = encode(rows, tokenizer, "multiple-choice", 64)
    assert tokenizer.decode(feats[0]["input_ids"][1]) == "[CLS] kim ate. why? [SEP] very very hungry indeed [SEP]"
    batch = collate(feats, tokenizer.pad_token_id)
    width = len(feats[0]["input_ids"][1])
    assert batch["input_ids"].shape == (2, 3, width) and batch["labels"].tolist() == [1, 2]
    assert batch["attention_mask"][1, 0].tolist() == [1] * len(feats[1]["input_ids"][0]) + [0] * (
        width - len(feats[1]["input_ids"][0]))
    assert batch["input_ids"][1, 2, -1].item() == tokenizer.pad_token_id
