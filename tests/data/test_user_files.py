"""Users' own files as people really save them: BOMs, Windows bytes, no header, huge fields, odd JSONL.

Each case ends in the right examples or a one-line DataError naming the file (and line) and the fix.
"""
import csv
import json

import pytest

from lntune.data import get_task
from lntune.errors import DataError


def local(tmp_path, name, body, extra="text=text,label=label"):
    """The local: task over one training file `name` holding `body` (str, or bytes)."""
    path = tmp_path / name
    path.write_bytes(body) if isinstance(body, bytes) else path.write_text(body, encoding="utf-8", newline="")
    return f"local:train={path},{extra}"


def error(spec_or_call) -> str:
    """The DataError message of building the task (a spec) or of calling a loader (a callable)."""
    with pytest.raises(DataError) as e:
        spec_or_call() if callable(spec_or_call) else get_task(spec_or_call).load("train", None)
    message = str(e.value)
    assert "\n" not in message  # one line, no traceback
    return message


@pytest.mark.parametrize("name,body", [
    ("a.csv", "text,label\nhi,a\nyo,b\n"),
    ("a.tsv", "text\tlabel\nhi\ta\nyo\tb\n"),
    ("a.jsonl", '{"text": "hi", "label": "a"}\n{"text": "yo", "label": "b"}\n'),
])
def test_utf8_with_a_bom_reads_as_utf8(tmp_path, name, body):
    # Excel and Notepad start UTF-8 files with a BOM; it used to stick to the first column name
    spec = local(tmp_path, name, b"\xef\xbb\xbf" + body.encode())
    assert get_task(spec).load("train", None) == [{"text_a": "hi", "label": 0}, {"text_a": "yo", "label": 1}]


def test_latin1_bytes_name_the_file_and_the_encoding_key(tmp_path):
    body = "text,label\nok,a\ncafé au lait,b\n".encode("latin-1")
    spec = local(tmp_path, "train.csv", body)
    message = error(lambda: get_task(spec))
    assert f"{tmp_path / 'train.csv'}:3: not UTF-8 text (byte 0xe9)" in message
    assert f"{spec},encoding=cp1252" in message  # the spec to copy
    assert get_task(spec + ",encoding=latin-1").load("train", None)[1] == {"text_a": "café au lait", "label": 1}
    assert get_task(spec + ",encoding=cp1252").load("train", None)[1]["text_a"] == "café au lait"


def test_other_encodings_and_unknown_names(tmp_path):
    spec = local(tmp_path, "train.tsv", "text\tlabel\nnaïve\ta\nx\tb\n".encode("utf-16"))
    message = error(lambda: get_task(spec))
    assert "is UTF-16 text" in message and f"{spec},encoding=utf-16" in message
    assert get_task(spec + ",encoding=utf-16").load("train", None)[0]["text_a"] == "naïve"
    assert "unknown encoding 'klingon'" in error(lambda: get_task(spec + ",encoding=klingon"))
    assert "unknown encoding 'rot13'" in error(lambda: get_task(spec + ",encoding=rot13"))


@pytest.mark.parametrize("body,where,what", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "", "a PNG image"),
    (b"PK\x03\x04" + bytes(100), "", "a zip archive (an Excel .xlsx?)"),
    (bytes(range(256)) * 4, ":1", "a binary file (a NUL byte on this line)"),
    (b"text,label\ngood,1\nbad\x00,0\n", ":3", "a binary file (a NUL byte on this line)"),  # a stray NUL: its line
])
@pytest.mark.parametrize("name", ["train.csv", "train.tsv", "train.jsonl"])
def test_binary_files_are_named(tmp_path, body, where, what, name):
    message = error(local(tmp_path, name, body))
    assert message.startswith(f"{tmp_path / name}{where}: this is {what}, not a text file")


def test_binary_conll_file_is_named(tmp_path):
    (tmp_path / "train.conll").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert f"{tmp_path / 'train.conll'}: this is a PNG image" in error(lambda: get_task(f"conll:{tmp_path}"))


@pytest.mark.parametrize("name,sep", [("train.csv", ","), ("train.tsv", "\t")])
def test_headerless_files_take_columns_by_index(tmp_path, name, sep):
    rows = [("7", "pos", "x", "good film"), ("8", "neg", "y", "bad film"), ("9", "pos", "z", "fine film")]
    spec = local(tmp_path, name, "".join(sep.join(r) + "\n" for r in rows), "header=none,text=3,label=1")
    task = get_task(spec)
    assert task.labels == ("neg", "pos")
    assert task.load("train", None)[0] == {"text_a": "good film", "label": 1}  # the first line is data
    pair = get_task(spec.replace("text=3", "text=0+2")).load("train", None)
    assert pair[1] == {"text_a": "8", "text_b": "y", "label": 0}
    assert "no column 4: the first row has 4 fields (columns 0 to 3)" in error(spec.replace("text=3", "text=4"))
    assert "with header=none, text= and label= are 0-based column numbers" in error(
        lambda: get_task(spec.replace("text=3", "text=review")))
    assert "header must be none" in error(lambda: get_task(spec.replace("header=none", "header=no")))


def test_header_none_refuses_jsonl_and_missing_column_suggests_it(tmp_path):
    spec = local(tmp_path, "t.jsonl", '{"0": "a", "1": "b"}\n', "header=none,text=0,label=1")
    assert "header=none applies to CSV/TSV files" in error(lambda: get_task(spec))
    # a headerless file read with a header: the error says how to read it
    spec = local(tmp_path, "t.csv", "good film,pos\nbad film,neg\n")
    assert "add header=none" in error(lambda: get_task(spec))


def test_conll_whitespace_only_separators_and_docstart(tmp_path):
    (tmp_path / "train.conll").write_text(
        "-DOCSTART-\n\nEU\tB-ORG\nrejects\tO\n  \nPeter\tB-PER\n\t\nBlack\tI-PER\n \t \n"
        "-DOCSTART- -X- -X- O\nBonn B-LOC\n-DOCSTART- -X- O\nRome B-LOC\n"
    )
    task = get_task(f"conll:{tmp_path}")
    assert task.labels == ("O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER")
    sentences = [e["tokens"] for e in task.load("train", None)]
    assert sentences == [["EU", "rejects"], ["Peter"], ["Black"], ["Bonn"], ["Rome"]]  # a document ends a sentence


def test_conll_encoding_key_and_nothing_to_learn(tmp_path):
    path = tmp_path / "train.conll"
    path.write_bytes("Café\tB-LOC\nin\tO\n".encode("cp1252"))
    message = error(lambda: get_task(f"conll:train={path}"))
    assert f"{path}:1: not UTF-8 text" in message and f"conll:train={path},encoding=cp1252" in message
    assert get_task(f"conll:train={path},encoding=cp1252").load("train", None)[0]["tokens"] == ["Café", "in"]
    assert get_task(f"conll:{tmp_path},encoding=cp1252").labels == ("O", "B-LOC", "I-LOC")
    path.write_text("a\tO\n\nb\tO\n")
    assert error(lambda: get_task(f"conll:{tmp_path}")) == (
        f"nothing to learn: every token of {path} is tagged O; the training file needs entities tagged B-TYPE/I-TYPE")


@pytest.mark.parametrize("name", ["train.csv", "train.tsv"])
def test_fields_longer_than_the_csv_default_limit(tmp_path, name):
    long = "word " * 60_000  # 300,000 characters: beyond csv's 131,072
    sep = "," if name.endswith(".csv") else "\t"
    spec = local(tmp_path, name, f"text{sep}label\n{long}{sep}a\nshort{sep}b\n")
    assert [len(e["text_a"]) for e in get_task(spec).load("train", None)] == [len(long), 5]


def test_quoted_newlines_keep_line_numbers_right(tmp_path):
    spec = local(tmp_path, "train.csv", 'text,label\n"two\nlines",a\nok,b\nbad\n')
    assert f"{tmp_path / 'train.csv'}:5: 1 fields, header has 2" in error(lambda: get_task(spec))


@pytest.mark.parametrize("line,kind", [("[1, 2]", "array"), ("5", "number"), ('"text label"', "string"),
                                       ("null", "null"), ("true", "boolean")])
def test_jsonl_lines_that_are_not_objects(tmp_path, line, kind):
    spec = local(tmp_path, "train.jsonl", f'{{"text": "x", "label": "a"}}\n\n{line}\n')
    message = error(lambda: get_task(spec))
    assert message.startswith(f"{tmp_path / 'train.jsonl'}:3: a JSON {kind}, not an object")


def test_jsonl_json_errors_stay_data_errors(tmp_path):
    for body, why in [("[" * 100_000, "not valid JSON"), ('{"text": ' + "9" * 5000 + "}", "not valid JSON")]:
        assert "train.jsonl:1: " + why in error(lambda: get_task(local(tmp_path, "train.jsonl", body + "\n")))


def test_jsonl_null_text_is_refused(tmp_path):
    # it used to train on the string "None"
    spec = local(tmp_path, "train.jsonl", '{"text": "x", "label": "a"}\n{"text": null, "label": "b"}\n')
    assert error(lambda: get_task(spec)) == (
        f"{tmp_path / 'train.jsonl'}:2: text 'text' is null; give a string, or drop the line")
    spec = local(tmp_path, "t2.jsonl", '{"p": "x", "h": ["a"], "label": "a"}\n')
    message = error(lambda: get_task(spec.replace("text=text", "text=p+h")))
    assert "t2.jsonl:1: text 'h' is a JSON array, not a string" in message
    spec = local(tmp_path, "t3.jsonl", '{"text": "\\ud800", "label": "a"}\n{"text": "x", "label": "b"}\n')
    assert "t3.jsonl:1: text 'text' holds a lone surrogate" in error(lambda: get_task(spec))


@pytest.mark.parametrize("label", ["null", '""', "[1]"])
def test_missing_classification_labels_are_refused(tmp_path, label):
    spec = local(tmp_path, "train.jsonl", f'{{"text": "x", "label": "a"}}\n{{"text": "y", "label": {label}}}\n')
    assert "train.jsonl:2: label 'label' is " in error(lambda: get_task(spec))


@pytest.mark.parametrize("name,body", [
    ("train.jsonl", '{"text": "x", "label": 1.5}\n{"text": "y", "label": NaN}\n'),
    ("train.csv", "text,label\nx,1.5\ny,nan\n"),
    ("train.tsv", "text\tlabel\nx\t1.5\ny\tinf\n"),
])
def test_non_finite_regression_labels_are_refused(tmp_path, name, body):
    # they used to reach training, which then failed blaming the learning rate
    spec = local(tmp_path, name, body, "text=text,label=label,head=regression")
    message = error(spec)
    assert message.startswith(f"{tmp_path / name}:") and "is not a finite number (head=regression)" in message


@pytest.mark.parametrize("name,body", [
    ("train.csv", "text,label\nx,pos\ny,pos\n"),
    ("train.jsonl", '{"text": "x", "label": 1}\n{"text": "y", "label": 1}\n'),
])
def test_a_training_file_with_one_label_has_nothing_to_learn(tmp_path, name, body):
    spec = local(tmp_path, name, body)
    label = "'pos'" if name.endswith(".csv") else "'1'"
    assert error(lambda: get_task(spec)) == (
        f"nothing to learn: every row of {tmp_path / name} has label {label}; "
        "a classification training file needs at least two labels")


def test_a_folder_or_an_odd_cell_gives_a_short_message(tmp_path):
    assert "is a folder, not a file" in error(lambda: get_task(f"local:train={tmp_path},text=t,label=l"))
    spec = local(tmp_path, "train.csv", "text,label\nx,1\ny," + "9z" * 100_000 + "\n",
                 "text=text,label=label,head=regression")
    assert len(error(spec)) < 300  # a 200 KB cell is clipped in the message


def test_jsonl_text_may_hold_line_separator_characters(tmp_path):
    # json.dumps(ensure_ascii=False) writes U+2028 raw; splitlines() used to cut the record there
    rows = [{"text": "a\u2028b\x85c", "label": "x"}, {"text": "d", "label": "y"}]
    spec = local(tmp_path, "train.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    assert get_task(spec).load("train", None)[0]["text_a"] == "a\u2028b\x85c"


def test_csv_written_by_the_csv_module_round_trips(tmp_path):
    rows = [["text", "label"], ['say "hi",\nthen go', "a"], ["", "b"], ["\u00e9\U0001f600", "a"]]
    with open(tmp_path / "train.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    task = get_task(f"local:train={tmp_path / 'train.csv'},text=text,label=label")
    assert [e["text_a"] for e in task.load("train", None)] == [r[0] for r in rows[1:]]
