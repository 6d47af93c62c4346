"""Property-based tests of every users'-file loader (local: CSV/TSV/JSONL, classification and
regression, with and without a header; conll:): random bytes and odd-but-well-formed rows give
either valid examples or a one-line DataError, never another exception."""
import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lntune.data import get_task
from lntune.errors import DataError

# A few seconds by default; LNTUNE_FUZZ_EXAMPLES=1000 for a deeper search. No example database on disk.
FUZZ = settings(max_examples=int(os.environ.get("LNTUNE_FUZZ_EXAMPLES", 60)), deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

# (file name, the rest of the task spec); each loader reads train at spec time (labels) and at load
LOADERS = [
    ("train.csv", "text=text,label=label"),
    ("train.csv", "text=text+extra,label=label,head=regression"),
    ("train.tsv", "text=text,label=label"),
    ("train.tsv", "text=text,label=label,head=regression"),
    ("train.jsonl", "text=text,label=label"),
    ("train.jsonl", "text=text+extra,label=label,head=regression"),
    ("train.csv", "header=none,text=0,label=1"),
    ("train.tsv", "header=none,text=2+0,label=1,head=regression"),
    ("train.csv", "text=text,label=label,encoding=latin-1"),
    ("train.conll", None),
]

# Cells that have broken parsers: quotes, delimiters, line breaks, BOMs, non-numbers that float() reads.
ODD = ["", " ", '"', '""', "a,b", "a\tb", "a\nb", "a\r\nb", "\r", "\ufeff", "nan", "inf", "-1e999", "1_0", "None",
       "null", "\u2028", "\x85", "-DOCSTART-", "B-PER", "O", "é", "\U0001f600", "text", "label"]
plain = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)  # NUL: binary
good_label = st.sampled_from(["a", "b", "0", "1", "1.5", "-2"])
cell = st.one_of(
    good_label, good_label, good_label, plain, plain, st.sampled_from(ODD),
    st.text(min_size=1, max_size=2).map(lambda s: s * 70_000),  # beyond csv's default field limit
)
header = st.sampled_from([["text", "label", "extra"], ["extra", "label", "text"], ["text", "label"], ["text"],
                          ["txt", "label", "extra"], [], ["text", "label", "text"], ["\ufefftext", "label", "extra"]])


def rows_of(width: int):
    """Mostly rows of the right width (so some files are valid), some short or long."""
    right = st.lists(cell, min_size=width, max_size=width)
    return st.lists(st.one_of(right, right, right, st.lists(cell, max_size=width + 1)), max_size=6)


def csv_text(head: list[str], rows: list[list[str]], delimiter: str) -> str:
    buf = io.StringIO(newline="")
    if delimiter == "\t":  # GLUE-style TSV: no quoting, cells written as they are
        buf.write("".join("\t".join(r) + "\n" for r in ([head] if head else []) + rows))
    else:
        csv.writer(buf).writerows(([head] if head else []) + rows)
    return buf.getvalue()


json_value = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), cell,
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
record = st.fixed_dictionaries(
    {"text": st.one_of(plain, plain, cell, json_value), "label": st.one_of(good_label, good_label, json_value)},
    optional={"extra": st.one_of(plain, json_value), "x": json_value},
)
json_line = st.one_of(
    st.builds(lambda r, a: json.dumps(r, ensure_ascii=a), record, st.booleans()),
    st.builds(lambda r, a: json.dumps(r, ensure_ascii=a), record, st.booleans()),
    st.builds(json.dumps, st.dictionaries(st.sampled_from(["text", "label", "extra"]), json_value, max_size=3)),
    st.builds(json.dumps, json_value),  # not an object
    st.text(max_size=20),  # not JSON
)
good_tag = st.sampled_from(["O", "B-PER", "I-PER", "L-LOC", "U-ORG", "E-X", "S-X"])
tag = st.one_of(good_tag, good_tag, good_tag, st.sampled_from(["B-", "PER", "X-Y", "", "O "]), st.text(max_size=5))
word = st.one_of(plain.filter(lambda w: "\n" not in w and "\r" not in w), st.sampled_from(ODD))
conll_line = st.one_of(
    st.builds(lambda w, s, t: f"{w}{s}{t}", word, st.sampled_from(["\t", "\t", " ", "\t\t", " NN "]), tag),
    st.builds(lambda w, s, t: f"{w}{s}{t}", word, st.sampled_from(["\t", " "]), good_tag),
    st.sampled_from(["", " ", "\t", " \t ", "-DOCSTART-", "-DOCSTART- -X- -X- O", "\r"]),
    word,
)


def assert_valid(task, examples: list[dict]) -> None:
    """What a training loop may rely on: examples with str texts and labels the head can take."""
    assert isinstance(examples, list) and examples
    for ex in examples:
        if task.head == "token-classification":
            assert ex["tokens"] and len(ex["tokens"]) == len(ex["tags"])
            assert all(isinstance(w, str) for w in ex["tokens"])
            assert all(0 <= t < len(task.labels) for t in ex["tags"]) and len(task.labels) >= 3
            continue
        for key in ("text_a", "text_b"):
            assert isinstance(ex.get(key, ""), str)
            ex.get(key, "").encode("utf-8")  # no lone surrogates
        assert ("text_b" in ex) == (len(task.text_columns) == 2)
        if task.head == "regression":
            assert isinstance(ex["label"], float) and math.isfinite(ex["label"])
        else:
            assert len(task.labels) >= 2 and ex["label"] in range(len(task.labels))


def load(folder: Path, name: str, extra: str | None, body: bytes):
    """The train and dev examples of one loader over `body`; a DataError must be one line."""
    path = folder / name
    path.write_bytes(body)
    spec = f"conll:train={path},dev={path}" if extra is None else f"local:train={path},dev={path},{extra}"
    try:
        task = get_task(spec)
        train, dev = task.load("train", None), task.load("dev", None)
    except DataError as e:
        assert "\n" not in str(e) and str(e)
        return None
    assert_valid(task, train)
    assert train == dev
    return train


def every_loader(body: bytes, names=None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name, extra in LOADERS:
            if names is None or name.rsplit(".", 1)[1] in names:
                load(Path(folder), name, extra, body)


@FUZZ
@given(st.one_of(
    st.binary(max_size=600),
    st.binary(max_size=300).map(lambda b: b"text,label,extra\n" + b),
    st.binary(max_size=300).map(lambda b: b'{"text": "a", "label": "b", "extra": "c"}\n' + b),
    st.binary(max_size=300).map(lambda b: b"Ann\tB-PER\n\n" + b),
))
def test_random_bytes_give_examples_or_a_data_error(body):
    every_loader(body)


@FUZZ
@given(header, rows_of(3), st.sampled_from([",", "\t"]))
def test_odd_delimited_rows_give_examples_or_a_data_error(head, rows, delimiter):
    body = csv_text(head, rows, delimiter).encode("utf-8")
    every_loader(body, names={"csv"} if delimiter == "," else {"tsv"})


@FUZZ
@given(st.lists(json_line, max_size=6), st.sampled_from(["\n", "\r\n", "\n\n"]))
def test_odd_jsonl_records_give_examples_or_a_data_error(lines, newline):
    every_loader(newline.join(lines).encode("utf-8"), names={"jsonl"})


@FUZZ
@given(st.lists(conll_line, max_size=12), st.sampled_from(["\n", "\r\n"]))
def test_odd_conll_lines_give_examples_or_a_data_error(lines, newline):
    every_loader(newline.join(lines).encode("utf-8"), names={"conll"})


# Well-formed files must load, and give back exactly what was written.
clean = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
tsv_clean = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\t\r\n"), max_size=30)


def labelled(texts):
    """Rows with both labels present, so the training file has something to learn."""
    return st.lists(st.tuples(texts, st.sampled_from(["a", "b"])), min_size=2, max_size=8).filter(
        lambda rows: {r[1] for r in rows} == {"a", "b"})


@FUZZ
@given(labelled(st.one_of(clean, st.sampled_from(ODD))), st.sampled_from(["csv", "jsonl"]))
def test_well_formed_files_round_trip(rows, kind):
    if kind == "csv":
        body = csv_text(["text", "label"], [list(r) for r in rows], ",")
    else:
        body = "".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows)
    with tempfile.TemporaryDirectory() as folder:
        got = load(Path(folder), f"train.{kind}", "text=text,label=label", body.encode("utf-8"))
    assert got == [{"text_a": t, "label": "ab".index(y)} for t, y in rows]


@FUZZ
@given(labelled(tsv_clean))
def test_well_formed_headerless_tsv_round_trips(rows):
    body = "".join(f"{y}\t{t}\n" for t, y in rows).encode("utf-8")
    with tempfile.TemporaryDirectory() as folder:
        got = load(Path(folder), "train.tsv", "header=none,text=1,label=0", body)
    assert got == [{"text_a": t, "label": "ab".index(y)} for t, y in rows]
