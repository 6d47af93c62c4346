"""Model cards: every skin gets a README.md with YAML front matter (huggingface_hub's ModelCardData), so the
Hub lists it with its base model, task and metrics, and a reader sees the #Para. counts and the command."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from lntune.heads import HEADS
from lntune.model.embedded import LICENSES, hub_id
from lntune.data import TASKS

CARD = "README.md"


def invocation(call: str) -> str:
    """The command that made a skin: the `lntune` command line when there was one, else CALL (Python)."""
    if Path(sys.argv[0]).name == "lntune":
        return shlex.join(["lntune", *sys.argv[1:]])
    return call


NOT_RESULTS = ("loss", "step", "epoch")  # in the metrics dict, but not results a card should list


def card_data(*, base_model: str | None, library: str, tags: list[str], model: str, head: str, method: str,
              task: str | None, metrics: dict | None):
    """The YAML front matter every lntune card shares (skins, exported adapters, merged folders): base model,
    license (known for the embedded models), the task's Hub dataset, metric names and validation results."""
    from huggingface_hub import EvalResult, ModelCardData

    pipeline = HEADS[head].pipeline_tag if head in HEADS else None
    hub = TASKS[task].hub_dataset if task in TASKS else ()  # users' files have no Hub id
    scores = {k: v for k, v in (metrics or {}).items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in NOT_RESULTS}
    results = [EvalResult(task_type=pipeline, dataset_type=hub[0] if hub else task, dataset_name=task,
                          dataset_config=hub[1] if len(hub) > 1 else None, dataset_split="validation",
                          metric_type=name, metric_value=value)
               for name, value in scores.items()] if pipeline and task else []
    return ModelCardData(
        base_model=base_model, library_name=library, pipeline_tag=pipeline, license=LICENSES.get(model),
        datasets=[hub[0]] if hub else None, metrics=list(scores) or None, tags=tags,
        model_name=f"{task}-{method}" if results else None, eval_results=results or None,
    )


def model_card(meta: dict, repo: str | None = None) -> str:
    """README.md text for a skin's skin.json contents; `repo` (user/name[@revision]) once it is on the Hub.

    >>> from lntune.interop import model_card
    >>> meta = {"method": "ln", "base": {"model": "minilm", "head": "classification", "source": {}},
    ...         "counts": {"tuned": 9984, "tuned_pct": 0.0439, "head": 770, "base": 22713216}}
    >>> model_card(meta).splitlines()[0]
    '---'
    """
    base, task = meta["base"], meta.get("task") or {}
    source = base.get("source") or {}
    tags = ["lntune", "peft", "layernorm-tuning" if "ln" in meta["method"].split("+") else meta["method"]]
    data = card_data(base_model=hub_id(source), library="lntune", tags=tags, model=base["model"],
                     head=base["head"], method=meta["method"], task=task.get("name"), metrics=meta.get("metrics"))
    return f"---\n{data.to_yaml()}\n---\n\n{_body(meta, source, repo)}"


def _body(meta: dict, source: dict, repo: str | None) -> str:
    base, task, c = meta["base"], meta.get("task") or {}, meta.get("counts") or {}
    origin = {"embedded": f"the embedded `{base['model']}` ({source.get('package')} {source.get('version')}, "
                          f"packaging {source.get('hub_id')}"
                          + ("" if source.get("same_weights", True) else ", dequantised from a Q4_1 GGUF") + ")",
              "hub": f"{source.get('hub_id')} at revision {source.get('revision') or 'unknown'}",
              "local": f"a local folder ({source.get('path')})"}.get(source.get("kind"), f"`{base['model']}`")
    lines = [
        f"# {task.get('name', 'A')} skin: {meta['method']}",
        "",
        "An [lntune](https://github.com/lntune/lntune) skin: only the tensors the method trained, applied to a",
        "frozen base model at load time.",
        "",
        "| | |",
        "|---|---|",
        f"| method | `{meta['method']}` {meta.get('options') or ''} |",
        f"| base model | {origin} |",
        f"| task | {task.get('name', '?')} ({base['head']}; labels: {', '.join(task.get('labels') or []) or '-'}) |",
    ]
    if c:
        lines.append(f"| #Para. | {c.get('tuned', 0):,} tuned = {c.get('tuned_pct', 0):.4f}% of the base's "
                     f"{c.get('base', 0):,} (head excluded); head {c.get('head', 0):,} |")
    for name, value in (meta.get("metrics") or {}).items():
        if isinstance(value, float):
            lines.append(f"| dev {name} | {value:.4f} |")
    if meta.get("command"):
        lines.append(f"| made with | `{meta['command']}` |")
    where = repo or "PATH"  # a local card cannot know where the folder will be
    lines += ["", "## Use", "", "```python", "from lntune import load_skin", "",
              f'tuning, meta = load_skin("{where}")  # ' + ("PATH: this folder; " if repo is None else "")
              + "the base model loads first", "```", "",
              f"or serve it beside other skins: `lntune serve --skin name={where}`.", ""]
    return "\n".join(lines)


def merged_card(meta, base_id: str | None, auto_class: str) -> str:
    """README.md of `lntune merge`'s folder: a plain transformers model, the skin folded into its base."""
    task = meta.task.name if meta.task else None
    data = card_data(base_model=base_id, library="transformers", tags=["lntune", "merged", meta.method],
                     model=meta.base.model, head=meta.base.head, method=meta.method, task=task, metrics=meta.metrics)
    body = [f"# {task or 'model'}: {base_id or meta.base.model} with an lntune {meta.method} skin merged in", "",
            "A plain transformers folder: the skin's tensors are folded into the base weights, so neither lntune "
            "nor PEFT is needed to load it.", "", "```python", f"from transformers import {auto_class}", "",
            f'model = {auto_class}.from_pretrained("PATH")  # PATH: this folder', "```", ""]
    if meta.labels:
        body += [f"Labels by output index: {', '.join(f'{i} {n}' for i, n in enumerate(meta.labels))}.", ""]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)
