"""Markdown: GitHub pipe tables; bold for the best value, <ins> (GitHub's underline) for the second."""

from __future__ import annotations

from lntune.report.document import Document
from lntune.report.tables import BEST, SECOND, Table, Value


def _esc(text: str) -> str:
    return text.replace("|", "\\|")


def value_md(v: Value) -> str:
    text = _esc(v.text) + v.note
    if v.mark == BEST:
        text = f"**{text}**"
    elif v.mark == SECOND:
        text = f"<ins>{text}</ins>"
    return text + (f" ({v.delta_text})" if v.delta_text else "")


def table_md(t: Table) -> str:
    lines = [f"**{_esc(t.title)}**", "",
             "| " + " | ".join(_esc(c) for c in [t.label_header, *t.columns]) + " |",
             "|" + "|".join([":---"] + ["---:"] * len(t.columns)) + "|"]
    for r in t.rows:
        if r.section:
            lines.append(f"| **{_esc(r.label)}** |" + " |" * len(t.columns))
            continue
        label = f"*{_esc(r.label)}*" if r.italic else _esc(r.label)
        lines.append("| " + " | ".join([label, *(value_md(v) for v in r.values)]) + " |")
    lines.append("")
    lines += [f"- {_esc(n)}" for n in t.notes]
    return "\n".join(lines) + "\n"


def render(doc: Document) -> str:
    out = [f"# {doc.title}", ""]
    out += [f"- **{k}**: {v}" for k, v in doc.header]
    for s in doc.sections:
        out += ["", f"## {s.title}", ""]
        for t in s.tables:
            out += [table_md(t)]
        for f in s.figures:
            out += [f"![{f.caption}]({f.file})", "", f"*{f.caption}*", ""]
        out += [f"- {n}" for n in s.notes]
    return "\n".join(out).rstrip() + "\n"
