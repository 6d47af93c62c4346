"""Batched generation equals one-by-one generation (left padding), for every method; prompts stripped."""
import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from lntune.cli import app
from lntune.data import get_task
from lntune.evaluate.generate import generate, generation_metrics
from lntune.method import build_method, prepare

# Lengths differ so that the batch needs padding on the left.
PROMPTS = [
    "Table: name[Alimentum], area[city centre]\nText:",
    "Table: name[X]\nText:",
    "Table: name[The Eagle], food[French], priceRange[cheap], area[riverside], near[Burger King]\nText:",
]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("method", [None, "ln", "prefix"])
def test_batched_greedy_equals_one_by_one(make_lm, arch, method):
    lm = make_lm(arch, "causal-lm")
    if method:
        tuning = prepare(lm, build_method(method, **({"length": 4} if method == "prefix" else {})))
        with torch.no_grad():  # move the tuned tensors off their neutral start
            for p in tuning.parameters():
                p.add_(torch.randn_like(p) * 0.5)
    batched = generate(lm.model, lm.tokenizer, PROMPTS, max_new_tokens=8, batch_size=3)
    alone = [generate(lm.model, lm.tokenizer, [p], max_new_tokens=8)[0] for p in PROMPTS]
    assert batched == alone
    assert all(batched)


def test_beam_search_runs_and_keeps_order(make_lm):
    lm = make_lm("llama", "causal-lm")
    beams = generate(lm.model, lm.tokenizer, PROMPTS, max_new_tokens=6, num_beams=3, batch_size=2)
    assert len(beams) == 3 and all(isinstance(b, str) and b for b in beams)
    assert beams[1] == generate(lm.model, lm.tokenizer, PROMPTS[1:2], max_new_tokens=6, num_beams=3)[0]


class Echo(nn.Module):
    """A stand-in decoder whose generate() returns the prompt, then "hello world", EOS and padding."""

    def __init__(self, tokenizer):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.answer = tokenizer("hello world", add_special_tokens=False)["input_ids"]
        self.eos, self.pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        self.seen = []

    def generate(self, input_ids, attention_mask, **kwargs):
        self.seen.append((input_ids, attention_mask, kwargs))
        tail = torch.tensor(self.answer + [self.eos, self.pad, self.pad]).expand(input_ids.shape[0], -1)
        return torch.cat([input_ids, tail], dim=1)


def test_prompt_is_stripped_left_padded_and_cut_at_eos(tokenizer):
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = Echo(tokenizer)
    assert generate(model, tokenizer, PROMPTS[:2], max_new_tokens=35) == ["hello world", "hello world"]
    ids, mask, kwargs = model.seen[0]
    short = len(tokenizer(PROMPTS[1], add_special_tokens=False)["input_ids"])
    assert mask[1].tolist() == [0] * (ids.shape[1] - short) + [1] * short  # padded on the left
    assert ids[1, -short:].tolist() == tokenizer(PROMPTS[1], add_special_tokens=False)["input_ids"]
    assert kwargs["max_new_tokens"] == 35 and kwargs["do_sample"] is False


def test_generation_metrics_on_grouped_dev_inputs(make_lm, data_dir, tmp_path):
    lm, task = make_lm("gpt2", "causal-lm"), get_task("e2e")
    dev = task.load("dev", data_dir)[:40]  # a few MRs, several references each
    out = generation_metrics(lm, task, dev, limit=2, seed=0, batch_size=2, predictions=tmp_path / "p.jsonl")
    assert out["settings"]["inputs"] == 2 and out["settings"]["max_new_tokens"] == 35
    assert set(out["metrics"]) == set(task.gen_metrics)
    assert all(v is not None or k in out["unavailable"] for k, v in out["metrics"].items())
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(len(x["references"]) > 1 for x in lines)


def test_cli_train_generate_then_eval_reproduces(tiny_dir, data_dir, tmp_path):
    runner = CliRunner()
    skin = tmp_path / "s"
    args = ["train", "--task", "e2e", "--model", tiny_dir("llama", causal=True), "--max-steps", 1,
            "--train-limit", 16, "--eval-limit", 8, "--batch-size", 8, "--no-progress", "--generate", 3,
            "--data-dir", data_dir, "--out", skin]
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    assert "generation on 3 dev inputs" in res.output and "bleu:" in res.output
    saved = json.loads((skin / "skin.json").read_text())["generation"]
    assert saved["settings"]["inputs"] == 3
    res = runner.invoke(app, ["eval", "--skin", str(skin), "--data-dir", str(data_dir)])
    assert res.exit_code == 0, res.output
    n_scored = sum(v is not None for v in saved["metrics"].values())
    assert res.output.count("(same as saved)") == 2 + n_scored, res.output


def test_generate_needs_a_generation_task(tiny_dir, data_dir, tmp_path):
    res = CliRunner().invoke(app, ["train", "--task", "sst2", "--model", str(tiny_dir("bert")), "--generate", "5",
                                   "--no-progress", "--data-dir", str(data_dir), "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and "does not generate text" in res.output
