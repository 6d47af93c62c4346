import json
import warnings

import pytest

from lntune.data import get_task
from lntune.data.encode import collate
from lntune.data.ner import bio_labels, read_conll, to_bio
from lntune.errors import DataError, LntuneWarning
from lntune.heads import IGNORE, encode

CONLL04, BTC = get_task("conll04"), get_task("btc")


def test_conll04_reads_the_shared_files(data_dir):
    splits = {s: CONLL04.load(s, data_dir) for s in ("train", "dev", "test")}
    # counted from the files: sentences and words per split
    assert {s: len(v) for s, v in splits.items()} == {"train": 922, "dev": 231, "test": 288}
    assert {s: sum(len(e["tokens"]) for e in v) for s, v in splits.items()} == {
        "train": 26_525, "dev": 6_993, "test": 8_336}
    # upstream BILOU (B-Peop I-Peop L-Peop) is read as BIO
    first = splits["dev"][0]
    assert first["tokens"][:3] == ["John", "Wilkes", "Booth"]
    assert [CONLL04.labels[i] for i in first["tags"][:3]] == ["B-Peop", "I-Peop", "I-Peop"]
    assert {CONLL04.labels[i] for e in splits["train"] for i in e["tags"]} == set(CONLL04.labels)


def test_conll04_labels_follow_the_types_file(data_dir):
    types = json.loads((data_dir / "ner" / "conll04" / "conll04_types.json").read_text())
    assert CONLL04.labels == bio_labels(tuple(types["entities"]))
    assert CONLL04.labels[:3] == ("O", "B-Loc", "I-Loc") and CONLL04.head == "token-classification"


def test_btc_sections_and_splits(data_dir):
    folder = data_dir / "ner" / "btc"
    tweets = {s: len(read_conll(folder / f"{s}.conll", "")) for s in "abefgh"}
    assert tweets == {"a": 1000, "b": 2000, "e": 200, "f": 2000, "g": 2138, "h": 2001}
    train, dev, test = (BTC.load(s, data_dir) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (6339, 1000, 2000)  # f is test; dev carved from the rest
    assert sum(len(e["tokens"]) for e in train + dev + test) == 150_388
    assert BTC.load("dev", data_dir) == dev  # a fixed split, not a per-run draw
    assert set(BTC.labels) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}


def test_a_token_holding_a_line_break_stays_in_its_tweet(tmp_path):
    # BTC f.conll has a token whose first half is a line of spaces; the tweet must not split there
    path = tmp_path / "x.conll"
    path.write_text("Paris\tB-LOC\n \n\tO\nis\tO\n\nnext\tO\n")
    [(lines, words, tags), second] = read_conll(path, "")
    assert words == ["Paris", "", "is"] and tags == ["B-LOC", "O", "O"] and lines == [1, 3, 4]
    assert second[1] == ["next"]


def test_bilou_and_iobes_read_as_bio():
    assert [to_bio(t) for t in ("O", "B-X", "I-X", "L-X", "U-X", "E-X", "S-X")] == [
        "O", "B-X", "I-X", "I-X", "B-X", "I-X", "B-X"]
    assert to_bio("PER") is None and to_bio("Q-X") is None


def write_conll04(tmp_path, split, text):
    folder = tmp_path / "ner" / "conll04"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"conll04_{split}.json").write_text(text)
    return folder / f"conll04_{split}.json"


@pytest.mark.parametrize("records,message", [
    ("", "the file is empty"),
    ("{not json", "not valid JSON"),
    ("[]", "expected a non-empty JSON list"),
    ('[{"tokens": ["a"]}]', "record 0: missing key(s) 'tags'"),
    ('[{"tokens": ["a"], "tags": ["O"]}, {"tokens": ["a", "b"], "tags": ["O"]}]', "record 1: 2 tokens but 1 tags"),
    ('[{"tokens": ["Bonn"], "tags": ["U-City"]}]', "record 0, token 0: tag 'U-City' is not in the label set"),
    ('[{"tokens": [], "tags": []}]', "record 0: a sentence without tokens"),
])
def test_conll04_bad_files_name_the_file_and_record(tmp_path, records, message):
    path = write_conll04(tmp_path, "dev", records)
    with pytest.raises(DataError) as e:
        CONLL04.load("dev", tmp_path)
    assert str(path) in str(e.value) and message in str(e.value)


def write_btc(tmp_path, sections: dict[str, str]):
    folder = tmp_path / "ner" / "btc"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in sections.items():
        (folder / f"{name}.conll").write_text(text)
    return folder


GOOD = "Hi\tO\n\nLondon\tB-LOC\n\n"


@pytest.mark.parametrize("bad,message", [
    ("", "the file is empty"),
    ("Hi\tO\nthere\n", ":2: expected `token<TAB>tag`, got 'there'"),
    ("Hi\tO\n\nParis\tB-GPE\n", ":3: tag 'B-GPE' is not in the label set of btc"),
])
def test_btc_bad_files_name_the_file_and_line(tmp_path, bad, message):
    folder = write_btc(tmp_path, {s: GOOD for s in "abefh"} | {"g": bad})
    with pytest.raises(DataError) as e:
        BTC.load("train", tmp_path)
    assert str(folder / "g.conll") in str(e.value) and message in str(e.value)


def test_btc_missing_section_is_named(tmp_path):
    folder = write_btc(tmp_path, {s: GOOD for s in "abegh"})
    assert len(BTC.load("train", tmp_path)) + len(BTC.load("dev", tmp_path)) == 10
    with pytest.raises(DataError, match=r"f.conll: file not found"):
        BTC.load("test", tmp_path)
    with pytest.raises(DataError, match="no data directory"):
        BTC.load("test", None)
    assert folder.is_dir()


def test_conll_folder_task_infers_and_reports_labels(tmp_path):
    (tmp_path / "train.conll").write_text("-DOCSTART- -X- O\n\nJohn NNP B-PER\nin IN O\nRome NNP U-LOC\n\nok X O\n")
    (tmp_path / "dev.conll").write_text("Ann\tB-PER\nSmith\tI-PER\n")
    task = get_task(f"conll:{tmp_path}")
    assert task.labels == ("O", "B-LOC", "I-LOC", "B-PER", "I-PER") and task.splits == ("train", "dev")
    train = task.load("train", None)
    assert train[0] == {"tokens": ["John", "in", "Rome"], "tags": [3, 0, 1]} and len(train) == 2
    assert task.load("dev", None) == [{"tokens": ["Ann", "Smith"], "tags": [3, 4]}]
    with pytest.raises(DataError, match="no test file"):
        task.load("test", None)
    same = get_task(f"conll:train={tmp_path / 'train.conll'},dev={tmp_path / 'dev.conll'}")
    assert same.labels == task.labels and same.load("dev", None) == task.load("dev", None)


def test_conll_task_errors(tmp_path):
    with pytest.raises(DataError, match="train.conll not found"):
        get_task(f"conll:{tmp_path}")
    (tmp_path / "train.conll").write_text("John\tB-PER\n\nx\tPER\n")
    with pytest.raises(DataError, match=r"train.conll:3: tag 'PER' is not BIO"):
        get_task(f"conll:{tmp_path}")
    (tmp_path / "train.conll").write_text("John\tB-PER\n")
    (tmp_path / "dev.conll").write_text("a\tO\n\nRome\tB-LOC\n")
    task = get_task(f"conll:{tmp_path}")
    with pytest.raises(DataError, match=r"dev.conll:3: tag 'B-LOC' is not in the label set .* comes from .*train"):
        task.load("dev", None)
    with pytest.raises(DataError, match="conll:DIR"):
        get_task("conll:dev=x.conll")


def test_first_sub_token_carries_the_tag(tokenizer):
    word = "Krasnoyarsk"
    pieces = tokenizer.tokenize(word)
    assert len(pieces) >= 3  # the point of the test: one word, several sub-tokens
    [f] = encode([{"tokens": ["Paris", word, "\u200b", "x"], "tags": [1, 2, 3, 0]}], tokenizer,
                 "token-classification", 64)
    # [CLS] Paris <pieces> [UNK] x [SEP]: a zero-width word becomes [UNK] so it keeps its tag
    assert tokenizer.convert_ids_to_tokens(f["input_ids"]) == ["[CLS]", "paris", *pieces, "[UNK]", "x", "[SEP]"]
    assert f["labels"] == [IGNORE, 1, 2, *[IGNORE] * (len(pieces) - 1), 3, 0, IGNORE]


def test_truncated_words_are_reported(tokenizer):
    with pytest.warns(LntuneWarning, match="3 words lie beyond max_length=4"):
        [f] = encode([{"tokens": list("abcde"), "tags": [0] * 5}], tokenizer, "token-classification", 4)
    assert f["labels"] == [IGNORE, 0, 0, IGNORE]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode([{"tokens": list("abcde"), "tags": [0] * 5}], tokenizer, "token-classification", 16)


def test_tag_labels_pad_with_ignore(tokenizer):
    feats = encode([{"tokens": ["a"], "tags": [1]}, {"tokens": ["a", "b", "c"], "tags": [0, 1, 2]}],
                   tokenizer, "token-classification", 32)
    batch = collate(feats, tokenizer.pad_token_id)
    assert batch["labels"].tolist() == [[IGNORE, 1, IGNORE, IGNORE, IGNORE], [IGNORE, 0, 1, 2, IGNORE]]
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0]
