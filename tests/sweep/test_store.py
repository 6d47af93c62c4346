import json

import pytest

from lntune.errors import LntuneError, LntuneWarning
from lntune.spec.records import Record
from lntune.sweep.store import Store, read_records
from tests.report.records import record


def rec(i: int) -> Record:
    return record(seed=i, score=i / 10)


def line(r: Record, **changes) -> str:
    return json.dumps({**r.model_dump(mode="json"), **changes}, separators=(",", ":"))


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
    path.write_bytes(whole + line(rec(2)).encode()[:9])  # a write cut short
    with pytest.warns(LntuneWarning, match="skipped 1 incomplete"):
        assert read_records(tmp_path) == [rec(0), rec(1)]
    with Store(tmp_path) as s:  # the next driver cuts the tail off before appending
        assert path.read_bytes() == whole
        s.append(rec(2))
    assert read_records(tmp_path) == [rec(0), rec(1), rec(2)]


def test_garbage_lines_and_duplicates_are_dropped(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join([line(rec(0)), "{not json", line(rec(0), score=9),
                               json.dumps([1]), line(rec(1))]) + "\n")
    with pytest.warns(UserWarning):
        assert read_records(tmp_path) == [rec(0), rec(1)]
    with Store(tmp_path) as s:
        assert s.repair() == 0  # done on entry
    assert path.read_text().splitlines() == [line(rec(0)), line(rec(1))]


def test_one_driver_per_results_folder(tmp_path):
    with Store(tmp_path):
        with pytest.raises(LntuneError, match="another lntune sweep"):
            Store(tmp_path).__enter__()
    with Store(tmp_path):  # released when the holder ends
        pass


def test_the_commit_is_read_from_a_clone_and_from_a_worktree(tmp_path):
    import subprocess

    from lntune.sweep.driver import git_commit

    def git(*args, cwd=tmp_path / "repo"):
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()

    (tmp_path / "repo").mkdir()
    git("init", "-q", "-b", "main")
    (tmp_path / "repo" / "f").write_text("x")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git("rev-parse", "HEAD")
    assert git_commit(tmp_path / "repo") == head
    git("worktree", "add", "-q", "--detach", str(tmp_path / "wt"))
    assert git_commit(tmp_path / "wt") == head  # detached: HEAD holds the sha
    git("worktree", "add", "-q", "-b", "side", str(tmp_path / "wt2"))
    assert git_commit(tmp_path / "wt2") == head  # a branch: its ref lives in the shared folder
    git("pack-refs", "--all")
    assert git_commit(tmp_path / "wt2") == head and git_commit(tmp_path / "repo") == head
    assert git_commit(tmp_path / "nothing") is None
