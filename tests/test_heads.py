"""Token-classification and multiple-choice heads end to end: task -> train -> skin -> eval."""
import json

import pytest

from lntune.api import evaluate_skin, train_task
from lntune.skin import load_skin
from lntune.train import TrainConfig

FAST = TrainConfig(lr=3e-2, epochs=1, batch_size=8, eval_batch_size=16, max_length=128, progress=False)


@pytest.mark.parametrize("task,head,model_class,metrics", [
    ("conll04", "token-classification", "BertForTokenClassification", {"f1", "precision", "recall", "word_accuracy"}),
    ("socialiqa", "multiple-choice", "BertForMultipleChoice", {"accuracy"}),
])
def test_train_save_and_reproduce(tiny_dir, data_dir, tmp_path, task, head, model_class, metrics):
    base = tiny_dir("bert")
    rec = train_task(task, str(base), "ln", {}, FAST, tmp_path / "skin", data_dir, 40, 24)
    assert rec.data.train_size == 40 and rec.steps == 5
    assert metrics | {"loss", "step", "epoch"} == set(rec.metrics)
    meta = json.loads((tmp_path / "skin" / "skin.json").read_text())
    assert meta["base"]["head"] == head and meta["task"]["head"] == head
    assert meta["head"] == ["classifier.bias", "classifier.weight"]
    tuning, _ = load_skin(tmp_path / "skin")
    assert type(tuning.lm.model).__name__ == model_class
    got = evaluate_skin(tmp_path / "skin", data_dir)
    saved = {k: v for k, v in rec.metrics.items() if k not in ("step", "epoch")}
    assert got == saved


def test_own_conll_files_end_to_end(tiny_dir, tmp_path):
    data = tmp_path / "mine"
    data.mkdir()
    sentences = ["Ann\tB-PER\nlives\tO\nin\tO\nOslo\tB-LOC\n", "Bob\tB-PER\nSmith\tI-PER\nleft\tO\n"]
    (data / "train.conll").write_text("\n".join(sentences * 10))
    (data / "dev.conll").write_text("\n".join(sentences * 2))
    rec = train_task(f"conll:{data}", str(tiny_dir("bert")), "ln", {}, FAST, tmp_path / "skin", None, None, None)
    assert rec.task.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    got = evaluate_skin(tmp_path / "skin")
    assert got["f1"] == rec.metrics["f1"] and got["loss"] == rec.metrics["loss"]


def test_zero_epochs_scores_the_untrained_model(tiny_dir, data_dir, tmp_path):
    cfg = TrainConfig(**{**FAST.__dict__, "epochs": 0})
    rec = train_task("socialiqa", str(tiny_dir("bert")), "ln", {}, cfg, tmp_path / "base", data_dir, 16, 24)
    assert rec.steps == 0 and rec.metrics["step"] == 0 and rec.metrics["epoch"] == 0
    got = evaluate_skin(tmp_path / "base", data_dir)
    assert got["accuracy"] == rec.metrics["accuracy"]
