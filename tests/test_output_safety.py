"""Never lose a finished result: --out is checked before training, an existing skin is only replaced with
--overwrite, and the skin files are fsynced with skin.json last."""
import os

import pytest
from typer.testing import CliRunner

from lntune import api
from lntune.cli import app
from lntune.errors import DiskError, SkinError
from lntune.method import build_method, prepare
from lntune.skin import SKIN_JSON, TENSORS, load_skin, read_skin, save_skin
from lntune.interop.card import CARD


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output  # click 8.2+: output holds stderr too


def fast(data_dir, out):
    return ["--train-limit", 32, "--eval-limit", 32, "--epochs", 1, "--batch-size", 16,
            "--no-progress", "--data-dir", data_dir, "--out", out]


@pytest.fixture
def no_training(monkeypatch):
    """Refusals must come before training: a call to train fails the test."""
    def fail(*a, **k):
        raise AssertionError("trained before the output folder was checked")

    monkeypatch.setattr(api, "train", fail)
    monkeypatch.setattr(api, "load_split", fail)


@pytest.fixture
def skin(tiny_dir, data_dir, tmp_path):
    """A finished skin: (model folder, skin folder, its files' bytes)."""
    model, out = tiny_dir("bert"), tmp_path / "skin"
    code, text = run("train", "--model", model, "--seed", 1, *fast(data_dir, out))
    assert code == 0, text
    return model, out, snapshot(out)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.usefixtures("no_training")
def test_out_is_a_file(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    code, text = run("train", "--model", tiny_dir("bert"), *fast(data_dir, out))
    assert code == 2 and "Traceback" not in text, text
    assert f"--out {out}: a file is there" in text
    assert out.read_text() == "keep me"
    with pytest.raises(SkinError, match="a file is there"):
        api.train_task("sst2", str(tiny_dir("bert")), out=out, data_dir=data_dir)


@pytest.mark.usefixtures("no_training")
def test_out_under_a_file(tiny_dir, data_dir, tmp_path):
    (tmp_path / "f").write_text("")
    code, text = run("train", "--model", tiny_dir("bert"), *fast(data_dir, tmp_path / "f" / "skin"))
    assert code == 2 and "is a file, so no folder can be made under it" in text, text


@pytest.mark.usefixtures("no_training")
def test_out_not_writable(tiny_dir, data_dir, tmp_path, monkeypatch):
    parent = tmp_path / "locked"
    parent.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(parent) else real(p, mode))
    code, text = run("train", "--model", tiny_dir("bert"), *fast(data_dir, parent / "new" / "skin"))
    assert code == 2 and f"cannot write in {parent}" in text, text


def test_existing_skin_is_refused_without_overwrite(skin, data_dir, monkeypatch):
    model, out, before = skin
    monkeypatch.setattr(api, "train", lambda *a, **k: pytest.fail("trained over a finished skin"))
    code, text = run("train", "--model", model, "--seed", 2, *fast(data_dir, out))
    assert code == 2 and "Traceback" not in text, text
    assert f"--out {out}: a finished skin is already there" in text and "--overwrite" in text
    assert snapshot(out) == before
    with pytest.raises(SkinError, match="--overwrite"):
        api.train_task("sst2", str(model), out=out, data_dir=data_dir)
    assert snapshot(out) == before


def test_overwrite_replaces_the_skin(skin, data_dir):
    model, out, before = skin
    code, text = run("train", "--model", model, "--seed", 2, "--overwrite", *fast(data_dir, out))
    assert code == 0, text
    after = snapshot(out)
    assert after[TENSORS] != before[TENSORS]  # another seed: another head
    assert read_skin(out).train.seed == 2
    load_skin(out)  # whole and consistent


def test_a_folder_without_skin_json_is_not_a_finished_skin(tiny_dir, data_dir, tmp_path):
    """An interrupted save (tensors, no skin.json) or a folder of other files is written into."""
    out = tmp_path / "partial"
    out.mkdir()
    (out / TENSORS).write_bytes(b"half")
    code, text = run("train", "--model", tiny_dir("bert"), *fast(data_dir, out))
    assert code == 0, text
    load_skin(out)


@pytest.fixture
def tuning(make_lm):
    return prepare(make_lm("bert"), build_method("ln"))


def test_skin_files_are_fsynced_before_skin_json(tuning, tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    out = tmp_path / "new" / "skin"
    save_skin(out, tuning, {"train": {}})
    pid = os.getpid()
    tensors, meta = str(out / f".{TENSORS}.tmp-{pid}"), str(out / f".{SKIN_JSON}.tmp-{pid}")
    assert tensors in synced and meta in synced, synced
    i, j = synced.index(tensors), synced.index(meta)
    assert i < synced.index(str(out), i) < j  # the tensors' rename is on disk before skin.json is written
    assert synced[-1] == str(out)  # and skin.json's rename too
    assert str(tmp_path) in synced and str(tmp_path / "new") in synced  # the new folders' entries
    assert sorted(p.name for p in out.iterdir()) == [CARD, SKIN_JSON, TENSORS]  # the card comes after skin.json


def test_a_crash_while_writing_skin_json_leaves_no_skin(tuning, tmp_path, monkeypatch):
    out = tmp_path / "skin"
    save_skin(out, tuning, {"train": {}})
    real = os.replace

    def crash(src, dst):
        if str(dst).endswith(SKIN_JSON):
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(DiskError, match=r"could not write .*skin.json \(disk full\)"):
        save_skin(out, tuning, {"train": {}})
    assert sorted(p.name for p in out.iterdir()) == [TENSORS]  # no temp file, and no skin.json vouching for it
    with pytest.raises(SkinError, match="no skin.json"):
        read_skin(out)


def test_save_skin_names_a_file_in_the_way(tuning, tmp_path):
    (tmp_path / "x").write_text("")
    with pytest.raises(SkinError, match="a file is there"):
        save_skin(tmp_path / "x", tuning, {"train": {}})

