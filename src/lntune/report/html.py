"""One self-contained HTML page: inline CSS, figures as base64 data URIs, no scripts, no external links."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from lntune.report.document import Document
from lntune.report.tables import BEST, SECOND, Table, Value

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 78em;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
dl.header { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; font-size: 0.9em; }
dl.header dt { font-weight: 600; } dl.header dd { margin: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
caption { font-weight: 600; text-align: left; padding-bottom: 0.3em; }
th, td { padding: 0.25em 0.6em; border-top: 1px solid #ddd; white-space: nowrap; }
thead th { border-bottom: 2px solid #444; border-top: 2px solid #444; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.label { text-align: left; }
tr.section th { text-align: left; background: #f3f3f3; font-style: italic; }
.good { color: #1a7f37; } .bad { color: #cf222e; } .same { color: #777; }
.note { font-size: 0.8em; color: #555; margin: 0.2em 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { font-size: 0.85em; color: #555; }
"""


def value_html(v: Value) -> str:
    text = escape(v.text) + escape(v.note)
    if v.mark == BEST:
        text = f"<b>{text}</b>"
    elif v.mark == SECOND:
        text = f"<u>{text}</u>"
    if v.delta_text:
        cls = "same" if v.good is None else ("good" if v.good else "bad")
        text += f' <span class="delta {cls}">({escape(v.delta_text)})</span>'
    return text


def table_html(t: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in [t.label_header, *t.columns])
    body = []
    for r in t.rows:
        if r.section:
            body.append(f'<tr class="section"><th colspan="{len(t.columns) + 1}">{escape(r.label)}</th></tr>')
            continue
        label = f"<i>{escape(r.label)}</i>" if r.italic else escape(r.label)
        cells = "".join(f'<td class="num">{value_html(v)}</td>' for v in r.values)
        body.append(f'<tr><td class="label">{label}</td>{cells}</tr>')
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in t.notes)
    return (f'<table id="{escape(t.name)}"><caption>{escape(t.title)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>{notes}")


def image_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render(doc: Document, folder: Path) -> str:
    """`folder` holds the figures the document names; their bytes go inline."""
    parts = [f"<h1>{escape(doc.title)}</h1>", '<dl class="header">']
    parts += [f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in doc.header]
    parts.append("</dl>")
    for s in doc.sections:
        parts.append(f"<section><h2>{escape(s.title)}</h2>")
        parts += [table_html(t) for t in s.tables]
        for f in s.figures:
            parts.append(f'<figure><img src="{image_uri(folder / f.file)}" alt="{escape(f.caption)}">'
                         f"<figcaption>{escape(f.caption)}</figcaption></figure>")
        parts += [f'<p class="note">{escape(n)}</p>' for n in s.notes]
        parts.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(doc.title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
