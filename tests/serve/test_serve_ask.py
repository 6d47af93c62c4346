"""`lntune ask`: one skin answering from the terminal, checked against the skin applied the normal way
(load_skin) for classification, pairs and regression, and against SkinBank for the other kinds."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from lntune.cli import app
from lntune.serve import SkinBank
from lntune.serve.generate import Sampling

from .conftest import TEXTS, make_skin, reference_logits


def ask(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, ["ask", *map(str, args)], input=stdin)


def test_classification_answers_equal_the_skin_applied_alone(module_skins, module_bank):
    base, skins = module_skins
    texts = [t for t in TEXTS if isinstance(t, str)][:3]
    r = ask(skins["three"], *texts)
    assert r.exit_code == 0, r.output
    probs = torch.softmax(reference_logits(module_bank, skins["three"], base, texts), -1)
    for line, text, p in zip(r.output.splitlines(), texts, probs):
        label, prob, echoed = line.split("\t")
        assert (label, echoed) == ("abc"[int(p.argmax())], text)
        assert float(prob) == pytest.approx(float(p.max()), abs=1e-3)


def test_pairs_from_stdin_and_json_out(module_skins, module_bank):
    base, skins = module_skins
    pairs = [t for t in TEXTS if isinstance(t, tuple)]
    r = ask(skins["all"], "--json", stdin="".join(f"{a}\t{b}\n" for a, b in pairs))
    assert r.exit_code == 0, r.output
    answers = [json.loads(line) for line in r.output.splitlines()]
    want = reference_logits(module_bank, skins["all"], base, pairs)
    assert torch.allclose(torch.tensor([a["logits"] for a in answers]), want, atol=1e-5)
    assert {a["task"] for a in answers} == {"all"}  # the skin's folder name


def test_regression_prints_the_value(module_skins, module_bank):
    base, skins = module_skins
    r = ask(skins["reg"], TEXTS[1])
    assert r.exit_code == 0, r.output
    want = reference_logits(module_bank, skins["reg"], base, [TEXTS[1]])[0, 0].item()
    assert float(r.output.split("\t")[0]) == pytest.approx(want, abs=1e-4)


def test_multiple_choice_and_token_skins(tiny_dir, tmp_path):
    base = tiny_dir("bert")
    mc = make_skin(base, tmp_path / "mc", seed=1, labels=("A", "B", "C"), head="multiple-choice", scale=0.8)
    question = {"question": "where is paris ?", "choices": ["france", "spain", "a cat"]}
    r = ask(mc, "--json", "where is paris ?\tfrance\tspain\ta cat")
    assert r.exit_code == 0, r.output
    bank = SkinBank(str(base), head="multiple-choice")
    bank.add_skin("mc", mc)
    assert json.loads(r.output)["logits"] == pytest.approx(bank.predict([("mc", question)])[0]["logits"], abs=1e-5)
    r = ask(mc, "where is paris ?\tfrance")
    assert r.exit_code == 2 and "QUESTION<TAB>CHOICE<TAB>CHOICE" in r.output
    ner = make_skin(base, tmp_path / "ner", seed=2, labels=("O", "B-PER", "I-PER"), head="token-classification")
    r = ask(ner, "john lives in paris")
    tags = SkinBank(str(base), head="token-classification")
    tags.add_skin("ner", ner)
    want = tags.predict([("ner", "john lives in paris")])[0]
    assert r.exit_code == 0 and r.output.split("\t")[0] == " ".join(
        f"{w}/{t}" for w, t in zip(want["words"], want["labels"]))


@pytest.fixture
def chat_skin(tiny_dir, tmp_path):
    from transformers import AutoTokenizer

    from tests.data.test_local_gen import CHATML

    base = tiny_dir("llama", causal=True)
    tok = AutoTokenizer.from_pretrained(base)
    tok.chat_template = CHATML
    tok.save_pretrained(base)
    return base, make_skin(base, tmp_path / "gen", seed=0, labels=(), head="causal-lm", scale=0.5)


def test_a_causal_lm_skin_generates_what_the_bank_generates(chat_skin):
    base, skin = chat_skin
    bank = SkinBank(str(base), head="causal-lm")
    bank.add_skin("gen", skin)
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the cat sat on"}]
    want = bank.decode(bank.generate([("gen", chat, Sampling(max_tokens=6))])[0].tokens)
    r = ask(skin, "--chat", "--system", "be brief", "--max-tokens", "6", "the cat sat on")
    assert r.exit_code == 0, r.output
    assert r.output == want + "\n"  # streamed piece by piece, then a newline
    free = bank.generate([("gen", "the cat", Sampling(max_tokens=8))])[0].text
    r = ask(skin, "--max-tokens", "8", "--stop", free[3:5], "the cat")
    assert r.exit_code == 0 and r.output == free[: free.find(free[3:5])] + "\n"
    seeded = ["--temperature", "1.2", "--seed", "3", "--max-tokens", "6", "--json", "the cat", "a dog"]
    first, again = ask(skin, *seeded), ask(skin, *seeded)
    assert first.exit_code == 0 and first.output == again.output
    rows = [json.loads(line) for line in first.output.splitlines()]
    assert [r["prompt"] for r in rows] == ["the cat", "a dog"] and all(r["tokens"] == 6 for r in rows)


@pytest.mark.parametrize("args, stdin, match", [
    ((), "", "no inputs"),
    (("--chat", "hi"), None, "--chat is for causal-LM skins"),
    (("a\tb\tc",), None, "3 tab-separated fields"),
])
def test_bad_asks_say_what_to_do(module_skins, args, stdin, match):
    r = ask(module_skins[1]["all"], *args, stdin=stdin)
    assert r.exit_code == 2 and match in r.output


def test_a_folder_that_is_no_skin(tmp_path):
    r = ask(tmp_path, "hello")
    assert r.exit_code == 2 and "no skin.json" in r.output
