"""The report as data: a header, then sections of tables, figures and notes; markdown.py and html.py render it."""

from __future__ import annotations

from dataclasses import dataclass, field

from lntune.report.tables import Table


@dataclass
class Figure:
    file: str  # PNG name relative to the report folder
    caption: str


@dataclass
class Section:
    title: str
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Document:
    title: str
    header: list[tuple[str, str]]  # (field, value) lines under the title
    sections: list[Section] = field(default_factory=list)
