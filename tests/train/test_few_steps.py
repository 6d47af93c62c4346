"""A run that will take fewer than about 100 optimizer steps says so, and what to raise; the schedule stays."""
import warnings

import pytest

from lntune.cli import _one_line
from lntune.errors import FewStepsWarning
from lntune.spec.train import TrainConfig
from lntune.train.loop import FEW_STEPS, few_steps


def test_few_steps_warn_and_name_the_epochs_that_would_reach_a_hundred():
    with pytest.warns(FewStepsWarning, match=r"takes 4 optimizer steps \(4 per epoch at batch size 16\).*"
                                             r"raise epochs to 25 \(--epochs\)"):
        few_steps(4, 4, TrainConfig(epochs=1, batch_size=16))
    with pytest.warns(FewStepsWarning, match=r"raise max_steps"):
        few_steps(10, 50, TrainConfig(max_steps=10))


@pytest.mark.parametrize("total", [0, FEW_STEPS, 5000])
def test_enough_steps_or_a_baseline_run_is_quiet(total):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        few_steps(total, 10, TrainConfig())


def test_train_warns_once_for_a_tiny_file(make_lm):
    from lntune import build_method, prepare, train
    from lntune.heads import encode

    lm = make_lm("bert")
    rows = [{"text_a": t, "label": y} for t, y in [("a great film", 1), ("an awful plot", 0)] * 8]
    feats = encode(rows, lm.tokenizer, "classification", 16)
    with pytest.warns(FewStepsWarning) as caught:
        result = train(prepare(lm, build_method("ln")), feats, feats, TrainConfig(epochs=2, batch_size=8,
                                                                                   progress=False))
    assert result.steps == 4 and len([w for w in caught if w.category is FewStepsWarning]) == 1


def test_the_command_line_prints_lntune_warnings_as_one_line():
    assert _one_line(FewStepsWarning("this run takes 4 steps"), FewStepsWarning, "loop.py", 1) == \
        "warning: this run takes 4 steps\n"
    assert "UserWarning" in _one_line(UserWarning("x"), UserWarning, "f.py", 3)  # others as Python prints them
