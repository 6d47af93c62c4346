"""A head kind is one class and one registration: a toy head registered in a test trains, evaluates with its own
metric, gives the Fisher its own log-likelihood and answers served inputs, with nothing else edited; every hook it
does not define is an error that names it (nothing is inherited silently)."""
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from lntune.data import TASKS
from lntune.data.task import Task
from lntune.errors import LntuneError
from lntune.heads import DEFAULT, HEADS, Head, get_head, head_of_config, peft_head
from lntune.heads.base import class_log_likelihood, gather_rows, majority_share, row_losses

WORDS = ["zero", "one", "two", "three"]


class Ordinal(Head):
    """Four ordered grades; scored by the share of predictions within one grade of the truth."""

    name = "toy-ordinal"
    auto_class = "AutoModelForSequenceClassification"
    bank_head = "toy-ordinal"
    named_labels = True

    def model_kwargs(self, num_labels: int) -> dict:
        return {"num_labels": num_labels}

    def encode(self, examples, tokenizer, max_length):
        return [{**tokenizer(e["text_a"], truncation=True, max_length=max_length), "labels": int(e["label"])}
                for e in examples]

    def loss_terms(self, labels) -> int:
        return labels.shape[0]

    def example_losses(self, logits, labels):
        return row_losses(logits, labels, "ce")

    def collect(self, logits, labels, accelerator, label_names):
        return gather_rows(logits, labels, accelerator)

    def metrics(self, collected, mean_loss, label_names):
        import numpy as np

        preds = np.concatenate([c[0] for c in collected]).argmax(-1)
        gold = np.concatenate([c[1] for c in collected])
        return {"within_one": float((abs(preds - gold) <= 1).mean())}

    def log_likelihood(self, logits, label):
        return class_log_likelihood(logits, label)

    def majority(self, examples):
        return majority_share(examples)

    def check_outputs(self, labels, outputs):
        return None if len(labels) == outputs else "grades and outputs differ"


@dataclass(frozen=True)
class Grades(Task):
    """Sentences graded by the number word they start with: an in-memory task."""

    name: str = "toy-grades"
    head: str = "toy-ordinal"
    labels: tuple[str, ...] = tuple(WORDS)
    metric: str = "within_one"

    def load(self, split: str, data_dir) -> list[dict]:
        rows = 48 if split == "train" else 16
        return [{"text_a": f"{WORDS[i % 4]} of the films was fine", "label": i % 4} for i in range(rows)]


@pytest.fixture
def ordinal(monkeypatch):
    monkeypatch.setitem(HEADS, Ordinal.name, Ordinal())
    monkeypatch.setitem(TASKS, "toy-grades", Grades())
    return HEADS[Ordinal.name]


def test_the_api_trains_and_scores_it_with_its_own_metric(ordinal, tiny_dir):
    from lntune.api import train_task
    from lntune.train import TrainConfig

    record = train_task("toy-grades", str(tiny_dir("bert")), "ln", out=None, train_limit=0,
                        config=TrainConfig(epochs=1, batch_size=8, progress=False))
    assert set(record.metrics) >= {"loss", "within_one"} and "accuracy" not in record.metrics
    assert 0.0 <= record.metrics["within_one"] <= 1.0
    assert record.data.majority == {"dev": 0.25}  # its own baseline hook
    assert record.task.head == "toy-ordinal"


def test_the_cli_lists_it_with_its_task_and_trains_on_it(ordinal, tiny_dir, tmp_path):
    from typer.testing import CliRunner

    from lntune.cli import app

    listing = CliRunner().invoke(app, ["tasks"]).output
    assert "toy-grades\ttoy-ordinal\twithin_one" in listing
    from lntune.serve.cli import _bank_heads  # what `lntune serve --help` lists, read from the registry

    assert _bank_heads().endswith("multiple-choice, toy-ordinal") and "classification (also regression)" in _bank_heads()
    run = CliRunner().invoke(app, ["train", "--task", "toy-grades", "--model", str(tiny_dir("bert")),
                                   "--train-limit", "0", "--epochs", "1", "--batch-size", "8", "--no-progress",
                                   "--out", str(tmp_path / "skin")])
    assert run.exit_code == 0, run.output
    assert "within_one" in run.output
    from lntune.skin import read_skin

    assert read_skin(tmp_path / "skin").base.head == "toy-ordinal"


def test_a_sweep_plans_it_from_yaml_and_picks_lrs_by_its_metric(ordinal, tiny_dir, data_dir, tmp_path):
    import copy

    from lntune.spec.metrics import greater_is_better
    from lntune.sweep.config import load_config
    from lntune.sweep.grid import expand
    from tests.sweep.conftest import tiny_sweep, write_yaml

    cfg = tiny_sweep(str(tiny_dir("bert")), data_dir, tasks=["toy-grades"], efficiency=None,
                     runs=[{"method": "ln"}, {"method": "bitfit"}])
    runs = expand(load_config(write_yaml(tmp_path / "toy.yaml", copy.deepcopy(cfg))), str(data_dir))
    assert runs and {r.spec.task for r in runs} == {"toy-grades"} and {r.metric for r in runs} == {"within_one"}
    assert greater_is_better("within_one")  # a metric the registry does not know counts as higher-is-better


def test_the_fisher_differentiates_its_log_likelihood(ordinal, tiny_dir, monkeypatch):
    from lntune.analyse.fisher import FisherConfig, task_fisher

    calls = []
    original = Ordinal.log_likelihood
    monkeypatch.setattr(Ordinal, "log_likelihood", lambda self, lg, y: calls.append(1) or original(self, lg, y))
    result = task_fisher("toy-grades", str(tiny_dir("bert")), FisherConfig(examples=8, batch_size=4, ln_only=True,
                                                                           progress=False))
    assert calls and result.ln and all(torch.isfinite(v).all() for v in result.ln.values())
    assert sum(float(v.sum()) for v in result.ln.values()) > 0


def test_a_missing_hook_is_an_error_that_names_the_head():
    class Half(Head):
        name = "half"

    with pytest.raises(NotImplementedError, match="half"):
        Half().metrics([], 0.0, ())
    with pytest.raises(NotImplementedError, match="half"):
        Half().serve_encode(0, "text", None)


def test_names_resolve_through_the_registry_only():
    with pytest.raises(LntuneError, match="unknown head 'clasification': choose one of classification, regression"):
        get_head("clasification")
    assert head_of_config(["LlamaForCausalLM"], None).name == "causal-lm"
    assert head_of_config(["BertForSequenceClassification"], "regression").name == "regression"
    assert head_of_config(None, None).name == DEFAULT
    # PEFT's SEQ_CLS holds both sequence heads: one saved output is a regression head
    assert [peft_head(t, n).name for t, n in [("SEQ_CLS", 1), ("SEQ_CLS", 3), (None, 1), ("TOKEN_CLS", 5),
                                              ("CAUSAL_LM", None), ("UNKNOWN", 2)]] == \
        ["regression", "classification", "regression", "token-classification", "causal-lm", "classification"]


def test_no_code_outside_the_registry_names_a_head_kind():
    """Head names appear as string literals only in heads/ and in declarations of which head a task or method
    uses (a task's `head=` field, a method's `heads` tuple), never in a comparison."""
    import ast

    src = Path(__file__).resolve().parents[2] / "src" / "lntune"
    names = set(HEADS) - {Ordinal.name}
    found = []
    for path in src.rglob("*.py"):
        if path.parent.name == "heads":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                literals = [n for n in ast.walk(node) if isinstance(n, ast.Constant) and n.value in names]
                found += [f"{path.relative_to(src)}:{n.lineno}" for n in literals]
    assert found == [], f"compare heads through lntune.heads, not by name: {found}"
