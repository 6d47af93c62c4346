"""Label sets of users' classification files: one order whatever the hash seed; silent extra classes refused."""
import csv
import json
import math
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lntune.data import get_task
from lntune.errors import DataError


def test_label_order_does_not_depend_on_the_hash_seed(tmp_path):
    """Two processes with different PYTHONHASHSEED read one label set in one order (issue 24, 4)."""
    import subprocess
    import sys

    train = tmp_path / "t.csv"
    train.write_text("text,label\n" + "".join(f"row {i},{lab}\n" for i, lab in enumerate(["1", "1.0", "0", "2", "10"] * 3)))
    code = ("from lntune.data import get_task; import sys; "
            f"print(get_task('local:train={train},dev={train},text=text,label=label').labels)")
    outs = {subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed, "PATH": ""}, capture_output=True,
                           text=True, check=True).stdout for seed in ("0", "5", "17")}
    assert outs == {"('0', '1', '1.0', '2', '10')\n"}


@pytest.mark.parametrize("label, message", [("nan", "not a class"), ("inf", "not a class"), ("1 ", "spaces around")])
def test_labels_that_would_be_silent_extra_classes_are_refused(tmp_path, label, message):
    train = tmp_path / "t.csv"
    train.write_text(f"text,label\na,0\nb,1\nc,{label}\n")
    with pytest.raises(DataError, match=message) as e:
        get_task(f"local:train={train},dev={train},text=text,label=label")
    assert f"{train}:" in str(e.value)


# --- property: any label set is refused with its file and line, or read as stripped strings in one order ----------

_LABEL = st.one_of(
    st.integers(-3, 12), st.floats(allow_nan=True, allow_infinity=True, width=32), st.booleans(), st.none(),
    st.sampled_from(["1", "1.0", "01", "1 ", " 1", "", " ", "nan", "NaN", "-inf", "1e3", "-0", "a", "B", "b ", "\t"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
)


def _write(path, kind: str, labels: list) -> None:
    if kind == "jsonl":
        path.write_text("".join(json.dumps({"text": f"row {i}", "label": v}) + "\n" for i, v in enumerate(labels)))
    else:  # CSV holds text: what a user's spreadsheet would export
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows([f"row {i}", "" if v is None else str(v)] for i, v in enumerate(labels))


def _read(path):
    try:
        return get_task(f"local:train={path},dev={path},text=text,label=label").labels
    except DataError as e:
        return e


@settings(max_examples=120, deadline=None)
@given(labels=st.lists(_LABEL, min_size=1, max_size=10), kind=st.sampled_from(["jsonl", "csv"]),
       order=st.randoms(use_true_random=False))
def test_any_label_set_is_refused_by_line_or_read_in_one_order(labels, kind, order):
    shuffled = list(labels)
    order.shuffle(shuffled)
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / f"a.{kind}", Path(tmp) / f"b.{kind}"
        _write(a, kind, labels)
        _write(b, kind, shuffled)
        got, again = _read(a), _read(b)
    if isinstance(got, DataError):  # one line naming the file; a row's problem also names its line
        message = str(got)
        assert "\n" not in message and str(a) in message
        assert re.search(rf"{re.escape(str(a))}:\d+: ", message) or "nothing to learn" in message
        assert isinstance(again, DataError)
        return
    assert got == again  # the order does not depend on the rows' order
    assert None not in labels  # JSON null, an empty CSV cell
    assert kind == "csv" or not any(isinstance(v, bool) for v in labels)  # JSON true/false (a CSV's "True" is text)
    assert all(math.isfinite(float(x)) for x in got if _is_number(x))  # nan and inf are not classes
    assert all(isinstance(x, str) and x == x.strip() and x for x in got)
    texts = {str(v) for v in labels}  # what the file says, as text: one class per distinct value
    assert len(got) == len(texts) and set(got) == texts
    numbers = [float(x) for x in got] if all(_is_number(x) for x in got) else None
    assert numbers is None or numbers == sorted(numbers)  # numeric sets by value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("value, message", [
    ("true", "label 'label' is JSON true; write the class as a string (\"true\") or a number"),
    ("null", "label 'label' is null; every row needs a label"),
])
def test_json_true_and_null_labels_are_refused_by_line(tmp_path, value, message):
    train = tmp_path / "t.jsonl"
    train.write_text(f'{{"text": "a", "label": 0}}\n{{"text": "b", "label": {value}}}\n')
    with pytest.raises(DataError) as e:
        get_task(f"local:train={train},dev={train},text=text,label=label")
    assert str(e.value) == f"{train}:2: {message}"


def test_a_json_true_score_is_refused(tmp_path):
    train = tmp_path / "t.jsonl"
    train.write_text('{"text": "a", "label": 0.5}\n{"text": "b", "label": true}\n')
    task = get_task(f"local:train={train},dev={train},text=text,label=label,head=regression")
    with pytest.raises(DataError, match=rf"{train}:2: label True is not a number \(head=regression\)"):
        task.read_local(train)
