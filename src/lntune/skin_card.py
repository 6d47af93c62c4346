"""Model cards: every skin gets a README.md with YAML front matter (huggingface_hub's ModelCardData), so the
Hub lists it with its base model, task and metrics, and a reader sees the #Para. counts and the command."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from lntune.heads import HEADS
from lntune.model.embedded import hub_id

CARD = "README.md"


def invocation(call: str) -> str:
    """The command that made a skin: the `lntune` command line when there was one, else CALL (Python)."""
    if Path(sys.argv[0]).name == "lntune":
        return shlex.join(["lntune", *sys.argv[1:]])
    return call


def model_card(meta: dict) -> str:
    """README.md text for a skin's skin.json contents.

    >>> from lntune.interop import model_card
    >>> meta = {"method": "ln", "base": {"model": "minilm", "head": "classification", "source": {}},
    ...         "counts": {"tuned": 9984, "tuned_pct": 0.0439, "head": 770, "base": 22713216}}
    >>> model_card(meta).splitlines()[0]
    '---'
    """
    from huggingface_hub import EvalResult, ModelCardData

    base, task = meta["base"], meta.get("task") or {}
    source = base.get("source") or {}
    pipeline = HEADS[base["head"]].pipeline_tag if base["head"] in HEADS else None
    results = []
    for name, value in (meta.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and name not in ("step", "epoch") and pipeline and task.get("name"):
            results.append(EvalResult(task_type=pipeline, dataset_type=task["name"], dataset_name=task["name"],
                                      dataset_split="validation", metric_type=name, metric_value=value))
    data = ModelCardData(
        base_model=hub_id(source), library_name="lntune", pipeline_tag=pipeline,
        tags=["lntune", "peft", "layernorm-tuning" if "ln" in meta["method"].split("+") else meta["method"]],
        model_name=f"{task.get('name', 'skin')}-{meta['method']}" if results else None, eval_results=results or None,
    )
    return f"---\n{data.to_yaml()}\n---\n\n{_body(meta, source)}"


def _body(meta: dict, source: dict) -> str:
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
    lines += ["", "## Use", "", "```python", "from lntune import load_skin", "",
              'tuning, meta = load_skin("THIS_REPO_ID")  # or a local folder; the base model loads first',
              "```", "", "or serve it beside other skins: `lntune serve --skin name=THIS_REPO_ID`.", ""]
    return "\n".join(lines)
