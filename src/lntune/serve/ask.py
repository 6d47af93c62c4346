"""`lntune ask SKIN [INPUT ...]`: answer inputs with one LN skin from the terminal, without a server.

    lntune ask runs/sst2-ln "a charming film" "a dull mess"        # label, probability, input
    printf 'He left.\tHe went away.\n' | lntune ask runs/rte-ln    # stdin: one input per line
    lntune ask runs/faq-ln --chat "How do I reset it?"              # a causal-LM skin streams its answer

An input's fields are separated by tabs, as in a TSV file: "text<TAB>text_pair" for two-sentence skins,
"question<TAB>choice<TAB>choice..." for multiple choice. It runs on the serving path (SkinBank), so it
answers exactly what `lntune serve` would; --json prints the same objects the server returns.
"""
from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from lntune.errors import LntuneError
from lntune.heads import get_head


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def parse_input(head: str, line: str, sentences: int | None) -> object:
    """One input line as SkinBank.predict/generate take it, for a skin of kind `head`."""
    return get_head(head).parse_line(line, sentences)


def describe(answer: dict) -> str:
    """A predict answer in one line: what a person reading a terminal wants first."""
    if "value" in answer:
        return f"{answer['value']:.4f}"
    if "words" in answer:
        return " ".join(f"{w}/{label}" for w, label in zip(answer["words"], answer["labels"]))
    label = answer["choice"] if "choice" in answer else answer["label"]
    return f"{label}\t{answer['probabilities'][answer['label']]:.3f}"


def ask_cmd(
    skin: str = typer.Argument(..., help="skin folder, or a Hub repo id user/name[@revision]"),
    inputs: list[str] = typer.Argument(None, help="inputs (fields separated by tabs); none or '-': stdin lines"),
    chat: bool = typer.Option(False, "--chat", help="causal-LM skins: each input is a user message"),
    system: Optional[str] = typer.Option(None, help="with --chat: a system message first"),
    max_tokens: int = typer.Option(64, help="causal-LM skins: new tokens at most"),
    temperature: float = typer.Option(0.0, help="causal-LM skins: 0 is greedy"),
    top_p: float = typer.Option(1.0, help="causal-LM skins: nucleus sampling"),
    seed: Optional[int] = typer.Option(None, help="causal-LM skins: seeded sampling repeats"),
    stop: list[str] = typer.Option([], "--stop", help="causal-LM skins: the answer ends before this string "
                                                      "(repeatable, at most 4)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per input, as the server answers"),
    model: Optional[str] = typer.Option(None, help="base model (default: the one the skin was trained on)"),
) -> None:
    """Answer inputs with one LN skin (classify, score, tag, choose or generate), as lntune serve would."""
    try:
        from lntune.interop.hub import resolve_skin
        from lntune.skin import read_skin

        path = resolve_skin(skin)
        meta = read_skin(path)
        head = meta.base.head
        lines = [x for x in (sys.stdin.read().splitlines() if not inputs or inputs == ["-"] else inputs) if x]
        if not lines:
            raise LntuneError("no inputs: give them as arguments, or one per line on stdin")
        from lntune.serve.generate import Sampling

        if chat and not get_head(head).generates:
            raise LntuneError(f"--chat: this is a {head} skin; --chat is for causal-LM skins")
        from lntune.serve.bank import _NAME, BASE, SkinBank

        bank = SkinBank(model or meta.base.model, head=get_head(head).bank_head)
        name = path.name if _NAME.fullmatch(path.name) and path.name != BASE else "skin"  # "task" in --json
        bank.add_skin(name, path)
        if bank.generates:
            sampling = Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                                stop=tuple(stop)).check("options")
            _generate(bank, name, lines, chat, system, sampling, as_json)
        else:
            sentences = bank.skins()[0]["sentences"]
            answers = bank.predict([(name, parse_input(head, x, sentences)) for x in lines])
            for line, answer in zip(lines, answers):
                typer.echo(json.dumps(answer) if as_json else f"{describe(answer)}\t{line}")
    except LntuneError as e:
        _fail(str(e))


def _generate(bank, name: str, lines: list[str], chat: bool, system: str | None, sampling, as_json: bool) -> None:
    turns = [{"role": "system", "content": system}] if system else []
    prompts = [turns + [{"role": "user", "content": x}] if chat else x for x in lines]
    stream = len(lines) == 1 and not as_json  # one answer: show it as it comes

    def on_text(row: int, piece: str) -> None:
        typer.echo(piece, nl=False)

    gens = bank.generate([(name, p, sampling) for p in prompts], on_text=on_text if stream else None)
    if stream:
        typer.echo()
        return
    for line, g in zip(lines, gens):
        typer.echo(json.dumps({"prompt": line, "text": g.text, "finish_reason": g.finish_reason,
                               "tokens": len(g.tokens)}) if as_json else f"> {line}\n{g.text}\n")
