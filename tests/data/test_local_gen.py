"""Users' own generation and multiple-choice files (local: specs with prompt=/messages= or question=/choices=)."""
from __future__ import annotations

import copy
import json

import pytest

from lntune.data import get_task
from lntune.data.local_choice import LocalChoiceTask
from lntune.data.local_gen import LocalGenTask
from lntune.errors import DataError
from lntune.heads import IGNORE, encode

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def chat_tokenizer(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template, tok.eos_token = CHATML, "<|im_end|>"
    return tok


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


CHATS = [
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "capital of france ?"},
     {"role": "assistant", "content": "paris"}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"},
     {"role": "user", "content": "two plus two ?"}, {"role": "assistant", "content": "four"}],
]


def test_prompt_target_files_train_on_the_target_only(tmp_path, tokenizer):
    train = jsonl(tmp_path / "train.jsonl", [{"q": "question : who ?\nanswer :", "a": " nobody"},
                                             {"q": "question : why ?\nanswer :", "a": " because"}])
    t = get_task(f"local:train={train},dev={train},prompt=q,target=a,metrics=bleu,max_new_tokens=9")
    assert isinstance(t, LocalGenTask) and t.head == "causal-lm" and t.gen_metrics == ("bleu",)
    assert t.max_new_tokens == 9
    rows = t.load("train", None)
    assert rows[0] == {"prompt": "question : who ?\nanswer :", "target": " nobody"}
    (enc,) = encode(rows[:1], tokenizer, "causal-lm", 64)
    prompt = tokenizer(rows[0]["prompt"], add_special_tokens=False)["input_ids"]
    target = tokenizer(rows[0]["target"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert enc["input_ids"] == prompt + target and enc["labels"] == [IGNORE] * len(prompt) + target


def test_csv_prompt_target(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text('prompt,target\n"a, b",c\n', encoding="utf-8")
    assert get_task(f"local:train={f},prompt=prompt,target=target").load("train", None) == [
        {"prompt": "a, b", "target": "c"}]


def test_chat_files_put_the_loss_on_assistant_turns(tmp_path, chat_tokenizer):
    train = jsonl(tmp_path / "chats.jsonl", [{"messages": m} for m in CHATS])
    t = get_task(f"local:train={train},messages=messages")
    rows = t.load("train", None)
    assert rows[1]["messages"] == CHATS[1]
    enc = encode(rows, chat_tokenizer, "causal-lm", 256)
    for e, chat in zip(enc, CHATS):
        trained = chat_tokenizer.decode([t for t, y in zip(e["input_ids"], e["labels"]) if y != IGNORE])
        want = "".join(m["content"] + "<|im_end|>\n" for m in chat if m["role"] == "assistant")
        assert "".join(trained.split()) == "".join(want.split())  # BERT's tokens drop and add whitespace
        assert e["input_ids"] == chat_tokenizer(chat_tokenizer.apply_chat_template(chat, tokenize=False),
                                                add_special_tokens=False)["input_ids"]


def test_chat_in_csv_cells_as_json(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("conv\n" + '"' + json.dumps(CHATS[0]).replace('"', '""') + '"\n', encoding="utf-8")
    assert get_task(f"local:train={f},messages=conv").load("train", None) == [{"messages": CHATS[0]}]


def test_generation_metrics_score_chat_answers(tmp_path, chat_tokenizer, make_lm):
    from lntune.evaluate.generate import generation_metrics

    dev = jsonl(tmp_path / "dev.jsonl", [{"messages": m} for m in CHATS])
    t = get_task(f"local:train={dev},dev={dev},messages=messages,metrics=bleu,max_new_tokens=3")
    lm = make_lm("llama", "causal-lm")
    lm.tokenizer = chat_tokenizer
    lm.model.resize_token_embeddings(len(chat_tokenizer))
    out = generation_metrics(lm, t, t.load("dev", None), predictions=tmp_path / "p.jsonl")
    assert out["settings"]["inputs"] == 2 and out["metrics"]["bleu"] is not None
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [x["references"] for x in lines] == [["paris"], ["four"]]
    assert lines[1]["prompt"].endswith("<|im_start|>assistant\n") and "hello there" in lines[1]["prompt"]


@pytest.mark.parametrize("rows, spec, match", [
    ([{"q": "x", "a": ""}], "prompt=q,target=a", "target 'a' is empty"),
    ([{"q": "x"}], "prompt=q,target=a", "missing key"),
    ([{"q": None, "a": "y"}], "prompt=q,target=a", "text 'q' is null"),
    ([{"m": "not json"}], "messages=m", "not JSON"),
    ([{"m": [{"role": "user", "content": "hi"}]}], "messages=m", "ends with the assistant"),
    ([{"m": [{"role": "robot", "content": "hi"}]}], "messages=m", "role 'robot'"),
    ([{"m": [{"role": "user"}]}], "messages=m", "string \"role\" and \"content\""),
    ([{"q": "x", "a": "y"}], "prompt=q", "give prompt= and target="),
    ([{"q": "x", "a": "y"}], "prompt=q,target=a,messages=m", "give prompt= and target="),
    ([{"q": "x", "a": "y"}], "prompt=q,target=a,metrics=bleu+wer", "metrics= takes"),
    ([{"q": "x", "a": "y"}], "prompt=q,target=a,max_new_tokens=0", "max_new_tokens"),
    ([{"q": "x", "a": "y"}], "prompt=q,target=a,colour=red", "unknown keys"),
])
def test_bad_generation_files_name_the_line_and_fix(tmp_path, rows, spec, match):
    f = jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=match):
        get_task(f"local:train={f},{spec}").load("train", None)


def test_chat_needs_a_template(tmp_path, tokenizer):
    f = jsonl(tmp_path / "c.jsonl", [{"messages": CHATS[0]}])
    rows = get_task(f"local:train={f},messages=messages").load("train", None)
    with pytest.raises(DataError, match="no chat template"):
        encode(rows, tokenizer, "causal-lm", 64)


# --- multiple choice ------------------------------------------------------------------------------------------


def test_choice_list_answer_by_index_text_or_letter(tmp_path, tokenizer):
    rows = [{"q": "sky ?", "opts": ["green", "blue", "red"], "gold": 1},
            {"q": "grass ?", "opts": ["green", "blue", "red"], "gold": "green"},
            {"q": "blood ?", "opts": ["green", "blue", "red"], "gold": "C"}]
    f = jsonl(tmp_path / "mc.jsonl", rows)
    t = get_task(f"local:train={f},dev={f},question=q,choices=opts,answer=gold")
    assert isinstance(t, LocalChoiceTask) and t.head == "multiple-choice" and t.labels == ("A", "B", "C")
    got = t.load("dev", None)
    assert [e["label"] for e in got] == [1, 0, 2] and got[0]["choices"] == ["green", "blue", "red"]
    (enc,) = encode(got[:1], tokenizer, "multiple-choice", 32)
    assert len(enc["input_ids"]) == 3 and enc["labels"] == 1


def test_choice_columns_and_context_from_csv(tmp_path):
    f = tmp_path / "mc.csv"
    f.write_text("passage,q,a,b,gold\nthe sky is blue .,colour ?,blue,red,0\n", encoding="utf-8")
    t = get_task(f"local:train={f},question=q,choices=a+b,answer=gold,context=passage")
    assert t.load("train", None) == [{"context": "the sky is blue .", "question": "colour ?",
                                      "choices": ["blue", "red"], "label": 0}]


@pytest.mark.parametrize("rows, match", [
    ([{"q": "x", "c": ["a", "b"], "g": 0}, {"q": "y", "c": ["a", "b", "c"], "g": 0}], "3 choices; every row needs 2"),
    ([{"q": "x", "c": ["a", "b"], "g": 5}], "not a choice's 0-based index"),
    ([{"q": "x", "c": ["a", "b"], "g": "zebra"}], "not a choice's 0-based index"),
    ([{"q": "x", "c": ["a"], "g": 0}], "at least two strings"),
    ([{"q": "x", "c": "a;b", "g": 0}], "not a JSON list"),
    ([{"q": "x", "c": ["a", None], "g": 0}], "is null"),
])
def test_bad_choice_files(tmp_path, rows, match):
    f = jsonl(tmp_path / "mc.jsonl", rows)
    with pytest.raises(DataError, match=match):
        get_task(f"local:train={f},question=q,choices=c,answer=g")


def test_cli_trains_and_generates_on_local_files(tiny_dir, tmp_path):
    from tests.test_cli import run

    f = jsonl(tmp_path / "qa.jsonl", [{"q": f"question {i} ?\nanswer :", "a": f" answer {i % 3}"} for i in range(12)])
    spec = f"local:train={f},dev={f},prompt=q,target=a,metrics=bleu+rouge_l,max_new_tokens=4"
    code, out = run("train", "--task", spec, "--model", tiny_dir("llama", causal=True), "--max-steps", 2,
                    "--lr", 1e-3, "--batch-size", 4, "--generate", 3, "--no-progress", "--out", tmp_path / "s")
    assert code == 0, out
    meta = json.loads((tmp_path / "s" / "skin.json").read_text())
    assert meta["task"]["head"] == "causal-lm" and meta["head"] == []
    assert "bleu" in out and "rouge_l" in out
    code, out = run("eval", "--skin", tmp_path / "s")
    assert code == 0 and "(same as saved)" in out, out


def test_cli_trains_multiple_choice_on_local_files(tiny_dir, tmp_path):
    from tests.test_cli import run

    f = jsonl(tmp_path / "mc.jsonl", [{"q": f"q {i}", "c": ["yes", "no", "maybe"], "g": i % 3} for i in range(12)])
    code, out = run("train", "--task", f"local:train={f},dev={f},question=q,choices=c,answer=g", "--model",
                    tiny_dir("bert"), "--max-steps", 2, "--batch-size", 4, "--no-progress", "--out", tmp_path / "s")
    assert code == 0, out
    meta = json.loads((tmp_path / "s" / "skin.json").read_text())
    assert meta["task"]["labels"] == ["A", "B", "C"] and meta["task"]["head"] == "multiple-choice"
