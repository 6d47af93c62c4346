"""One file is enough (issue 25 #9): a local task without dev= holds out a seeded slice of its training file for
early stopping, says so, records it in the skin, and lntune eval scores the same rows again."""
import json

import pytest

from lntune.api import CARVED_SHARE, evaluate_skin, train_task
from lntune.data import get_task
from lntune.train import TrainConfig

FAST = TrainConfig(lr=1e-2, epochs=1, batch_size=8, eval_batch_size=16, max_length=32, progress=False)


def _csv(path, n=60):
    rows = ["sentence,label"] + [f"{'a fine' if i % 2 else 'a dull'} film number {i},{'pos' if i % 2 else 'neg'}"
                                 for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_training_file_alone_trains_on_a_carved_validation_slice(tiny_dir, tmp_path, capsys):
    train = _csv(tmp_path / "train.csv")
    spec = f"local:train={train},text=sentence,label=label"
    config = TrainConfig(**{**FAST.__dict__, "progress": True})
    res = train_task(spec, str(tiny_dir("bert")), "ln", {}, config, tmp_path / "skin", train_limit=None)
    said = capsys.readouterr().err
    assert "no dev file, so 6 of the training file's 60 rows" in said and "add dev=PATH" in said
    assert res.data.carved and res.data.val_limit == CARVED_SHARE
    assert (res.data.train_size, res.data.dev_size) == (54, 6)  # 10% held out, the rest trained on
    meta = json.loads((tmp_path / "skin" / "skin.json").read_text())
    assert meta["data"]["carved"] is True and meta["data"]["val_limit"] == CARVED_SHARE
    got = evaluate_skin(tmp_path / "skin")  # the same held-out rows: the saved numbers again
    assert got == {k: v for k, v in res.metrics.items() if k not in ("step", "epoch")}


def test_a_dev_file_is_used_as_before(tiny_dir, tmp_path):
    train, dev = _csv(tmp_path / "train.csv", 24), _csv(tmp_path / "dev.csv", 8)
    spec = f"local:train={train},dev={dev},text=sentence,label=label"
    res = train_task(spec, str(tiny_dir("bert")), "ln", {}, FAST, None, train_limit=None)
    assert res.data.carved is None and (res.data.train_size, res.data.dev_size) == (24, 8)


@pytest.mark.parametrize("kind,header,row,columns", [
    ("classification", "t,y", "good,1", "text=t,label=y"),
    ("regression", "t,y", "good,0.5", "text=t,label=y,head=regression"),
    ("generation", "p,r", "hello,world", "prompt=p,target=r"),
    ("multiple choice", "q,a,b,g", "which,x,y,0", "question=q,choices=a+b,answer=g"),
])
def test_every_local_kind_accepts_a_training_file_alone(tmp_path, kind, header, row, columns):
    path = tmp_path / "train.csv"
    other = row.replace("good,1", "bad,0")
    path.write_text(f"{header}\n{row}\n{other}\n")
    t = get_task(f"local:train={path},{columns}")
    assert "dev" not in t.splits  # so train_task carves (api.train_task: carved)


def test_conll_files_without_dev_too(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text("EU B-ORG\nrejects O\nGerman B-MISC\n\nPeter B-PER\nBlackburn I-PER\n\n")
    t = get_task(f"conll:train={path}")
    assert "dev" not in t.splits and t.labels


def test_the_carved_slice_draws_from_every_class():
    from lntune.api import _by_class

    rows = [{"label": 0}] * 45 + [{"label": 1}] * 5  # a rare class: a plain 5-row draw often misses it
    held = _by_class(rows, 5)
    assert {rows[i]["label"] for i in held} == {0, 1} and len(held) == 5
    assert held == _by_class(rows, 5)  # seeded: lntune eval finds the same rows
    lone = [{"label": 0}] * 9 + [{"label": 1}]  # a class of one row stays in training
    assert all(lone[i]["label"] == 0 for i in _by_class(lone, 1))
