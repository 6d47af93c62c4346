"""records.jsonl's one typed definition: committed version-1 stores load through the migration, lines this
version writes are refused when a key is unknown or missing, and the old dict reading still works with a note."""
import json
import warnings
from pathlib import Path

import pytest

from lntune.spec.records import VERSION, Record, RecordError, RecordKeyWarning, parse_record, read_records
from tests.report.records import record, write_store

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = [p.parent for p in sorted((ROOT / "docs" / "results").glob("*/records.jsonl"))]


@pytest.mark.parametrize("store", COMMITTED, ids=lambda p: p.name)
def test_every_committed_record_migrates_without_losing_a_value(store):
    raw = [json.loads(line) for line in (store / "records.jsonl").read_text().splitlines() if line.strip()]
    typed = read_records(store)
    assert len(typed) == len({r["key"] for r in raw}) and typed
    for before, after in zip(raw, typed):
        dumped = json.loads(json.dumps(after.model_dump(mode="json")))
        assert {k: dumped[k] for k in before} == before  # every value read back as written
        assert after.version == VERSION and after.picks_lr == bool(before.get("picks_lr"))
        assert after.spec.key() == before["key"]  # the typed spec hashes to the committed key
        assert set(dumped) - set(before) <= set(Record.model_fields)


def test_a_line_this_version_writes_refuses_an_unknown_or_missing_key(tmp_path):
    good = record().model_dump(mode="json")
    assert parse_record(good) == record()
    with pytest.raises(RecordError, match=r"records.jsonl: record .*: picks_Lr: Extra inputs"):
        parse_record({**good, "picks_Lr": True})  # a misspelt key no longer passes silently
    missing = {k: v for k, v in good.items() if k != "counts"}
    with pytest.raises(RecordError, match="counts: Field required"):
        parse_record(missing)
    store = write_store(tmp_path / "r", [record()])
    with open(store / "records.jsonl", "a") as f:
        f.write(json.dumps({**good, "key": "x", "score": "high"}) + "\n")
    with pytest.raises(RecordError, match=f"{store / 'records.jsonl'}: record x: score"):
        read_records(store)


def test_version_one_lines_migrate_and_a_newer_version_is_refused():
    v1 = record().model_dump(mode="json")
    for k in ("version", "picks_lr", "majority", "change", "best_seconds", "sizes", "curve"):
        v1.pop(k)
    migrated = parse_record(v1)
    assert migrated.picks_lr is False and migrated.sizes is None and migrated.version == VERSION
    with pytest.raises(RecordError, match="record version 3 is newer"):
        parse_record({**v1, "version": 3})


def test_reading_a_record_like_a_dict_still_works_with_a_note():
    r = record(score=0.7)
    with pytest.warns(RecordKeyWarning, match=r"read r.score, not r\['score'\]"):
        assert r["score"] == 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert r["counts"]["tuned"] == r.counts.tuned


def test_records_are_frozen():
    r = record()
    with pytest.raises(Exception, match="frozen"):
        r.score = 1.0
