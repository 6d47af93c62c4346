import json

import pytest

from lntune.errors import LntuneError
from lntune.sweep.store import Store, read_records


def rec(i: int) -> dict:
    return {"key": f"k{i}", "score": i / 10}


def test_append_then_read(tmp_path):
    with Store(tmp_path) as s:
        for i in range(3):
            s.append(rec(i))
    assert read_records(tmp_path) == [rec(0), rec(1), rec(2)]
    assert (tmp_path / "records.jsonl").read_bytes().count(b"\n") == 3


def test_torn_tail_is_ignored_then_repaired(tmp_path):
    with Store(tmp_path) as s:
        s.append(rec(0))
        s.append(rec(1))
    path = tmp_path / "records.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + json.dumps(rec(2)).encode()[:9])  # a write cut short
    with pytest.warns(UserWarning, match="skipped 1 incomplete"):
        assert read_records(tmp_path) == [rec(0), rec(1)]
    with Store(tmp_path) as s:  # the next driver cuts the tail off before appending
        assert path.read_bytes() == whole
        s.append(rec(2))
    assert read_records(tmp_path) == [rec(0), rec(1), rec(2)]


def test_garbage_lines_and_duplicates_are_dropped(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join([json.dumps(rec(0)), "{not json", json.dumps(rec(0) | {"score": 9}),
                               json.dumps([1]), json.dumps(rec(1))]) + "\n")
    with pytest.warns(UserWarning):
        assert read_records(tmp_path) == [rec(0), rec(1)]
    with Store(tmp_path) as s:
        assert s.repair() == 0  # done on entry
    assert path.read_text().splitlines() == [json.dumps(rec(0), separators=(",", ":")),
                                             json.dumps(rec(1), separators=(",", ":"))]


def test_one_driver_per_results_folder(tmp_path):
    with Store(tmp_path):
        with pytest.raises(LntuneError, match="another lntune sweep"):
            Store(tmp_path).__enter__()
    with Store(tmp_path):  # released when the holder ends
        pass
