"""train_task's typed result: the keys skin.json gets from a run, unknown keys refused, the old dict reading kept
with a note, and the skin written by train_task holding exactly what the result says."""
import json
import warnings

import pytest
from pydantic import ValidationError

from lntune.api import train_task
from lntune.spec.results import ResultKeyWarning, RunRecord, RunResult
from lntune.train import TrainConfig

RUN = {"command": "lntune train", "task": {"name": "sst2", "head": "classification", "labels": ["neg", "pos"],
                                           "metric": "accuracy"},
       "data": {"train_limit": None, "eval_limit": 8, "train_size": 16, "dev_size": 8},
       "train": {"lr": 0.01}, "metrics": {"loss": 0.5, "accuracy": 0.75, "step": 4, "epoch": 1}, "steps": 4,
       "train_seconds": 1.5, "best_seconds": 1.2}


def test_skin_json_has_what_the_run_produced_and_nulls_it_was_given():
    rec = RunRecord(**RUN)
    assert rec.skin_json() == RUN  # no curve, test or generation keys; train_limit stays null
    assert list(rec.skin_json()) == list(RUN)  # skin.json's key order, as before the type
    assert isinstance(rec.metrics["step"], int)  # a step stays an int


def test_a_misspelt_or_missing_key_is_refused_where_it_is_written():
    with pytest.raises(ValidationError, match="metircs"):
        RunRecord(**RUN, metircs={})
    with pytest.raises(ValidationError, match="steps"):
        RunRecord(**{k: v for k, v in RUN.items() if k != "steps"})
    with pytest.raises(ValidationError, match="frozen"):
        RunRecord(**RUN).steps = 5


def test_scored_is_the_test_split_when_there_is_one_with_generation_metrics():
    assert RunRecord(**RUN).scored == RUN["metrics"]
    gen = {"settings": {"limit": 2}, "metrics": {"bleu": 30.0, "meteor": None}, "unavailable": {"meteor": "no"}}
    rec = RunRecord(**RUN, test={"loss": 0.7, "accuracy": 0.6}, generation=gen)
    assert rec.scored == {"loss": 0.7, "accuracy": 0.6, "bleu": 30.0}  # None: not computed, not reported


def test_reading_the_result_like_a_dict_still_works_with_a_note():
    res = RunResult(**RUN, counts={"tuned": 1, "head": 2, "base": 3, "tuned_pct": 0.1, "tuned_with_head_pct": 0.2},
                    out="runs/x")
    with pytest.warns(ResultKeyWarning, match=r"read rec.out, not rec\['out'\]"):
        assert res["out"] == "runs/x"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert res["counts"]["tuned"] == res.counts.tuned == 1


def test_train_task_returns_what_its_skin_json_holds(tiny_dir, data_dir, tmp_path):
    config = TrainConfig(lr=1e-2, epochs=1, batch_size=8, eval_batch_size=16, max_length=32, progress=False)
    res = train_task("sst2", str(tiny_dir("bert")), "ln", {}, config, tmp_path / "skin", data_dir, 16, 8)
    meta = json.loads((tmp_path / "skin" / "skin.json").read_text())
    run = res.skin_json()
    for key in ("counts", "out"):
        run.pop(key)
    assert {k: meta[k] for k in run} == json.loads(json.dumps(run))
    assert meta["counts"] == res.counts.model_dump() and res.out == str(tmp_path / "skin")
    assert set(meta) - set(run) == {"format", "lntune", "method", "options", "rebuild", "base", "tuned", "head",
                                    "counts", "tensors_sha256"}  # the skin's own keys
