"""Model cards: every skin gets a README.md with YAML front matter (huggingface_hub's ModelCardData), so the
Hub lists it with its base model, task and metrics, and a reader sees the #Para. counts and the command."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lntune.heads import HEADS
from lntune.model.embedded import LICENSES, hub_id
from lntune.data import TASKS

if TYPE_CHECKING:
    from lntune.skin_schema import SkinRecord

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


def hub_tag(method: str) -> str:
    """The Hub tag of a method's cards: the first tag a part declares (Method.hub_tag), else the method's name."""
    from lntune.method import METHODS  # here, not at the top: importing skin_card (Hub code) stays torch-free

    return next((t for p in method.split("+") if (t := getattr(METHODS.get(p), "hub_tag", None))), method)


def model_card(meta: SkinRecord, repo: str | None = None) -> str:
    """README.md text for a skin's record (skin.json, typed); `repo` (user/name[@revision]) once it is on the Hub.

    >>> from lntune.skin import read_skin
    >>> from lntune.interop import model_card
    >>> model_card(read_skin("runs/sst2-ln")).splitlines()[0]  # doctest: +SKIP
    '---'
    """
    base, task = meta.base, meta.task
    source = base.source or {}
    tags = ["lntune", "peft", hub_tag(meta.method)]
    data = card_data(base_model=hub_id(source), library="lntune", tags=tags, model=base.model, head=base.head,
                     method=meta.method, task=task.name if task else None, metrics=meta.metrics)
    return f"---\n{data.to_yaml()}\n---\n\n{_body(meta, source, repo)}"


def _origin(model: str, source: dict) -> str:
    """Where the base's weights came from, in words (`source` is model/load's record of it)."""
    kind = source.get("kind")
    if kind == "embedded":
        dequantised = "" if source.get("same_weights", True) else ", dequantised from a Q4_1 GGUF"
        return (f"the embedded `{model}` ({source.get('package')} {source.get('version')}, packaging "
                f"{source.get('hub_id')}{dequantised})")
    if kind == "hub":
        return f"{source.get('hub_id')} at revision {source.get('revision') or 'unknown'}"
    if kind == "local":
        return f"a local folder ({source.get('path')})"
    return f"`{model}`"


def _body(meta: SkinRecord, source: dict, repo: str | None) -> str:
    task, c = meta.task, meta.counts or {}
    name, labels = (task.name, task.labels) if task else (None, [])
    lines = [
        f"# {name or 'A'} skin: {meta.method}",
        "",
        "An [lntune](https://github.com/lntune/lntune) skin: only the tensors the method trained, applied to a",
        "frozen base model at load time.",
        "",
        "| | |",
        "|---|---|",
        f"| method | `{meta.method}` {meta.options or ''} |",
        f"| base model | {_origin(meta.base.model, source)} |",
        f"| task | {name or '?'} ({meta.base.head}; labels: {', '.join(labels) or '-'}) |",
    ]
    if c:
        lines.append(f"| #Para. | {c.get('tuned', 0):,} tuned = {c.get('tuned_pct', 0):.4f}% of the base's "
                     f"{c.get('base', 0):,} (head excluded); head {c.get('head', 0):,} |")
    for metric, value in (meta.metrics or {}).items():
        if isinstance(value, float):
            lines.append(f"| dev {metric} | {value:.4f} |")
    if meta.command:
        lines.append(f"| made with | `{meta.command}` |")
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
