"""Records that cross module lines in the research pipeline: findings with their figures, tables and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Provenance:
    """Where a figure, table or insight came from: the source tables, the code or rule, the numbers it computed."""

    tables: list[str]
    method: str  # a rule name ("annual levels") or "generated code"
    code: str = ""
    numbers: dict[str, float] = field(default_factory=dict)
    stdout: str = ""


@dataclass
class Figure:
    path: Path
    caption: str
    provenance: Provenance


@dataclass
class Table:
    markdown: str
    caption: str
    provenance: Provenance


@dataclass
class Finding:
    """One analysis result: a titled piece of the report with its own evidence."""

    title: str
    sentences: list[str]
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # table ids (and document ids) it draws on
    kind: str = ""

    def all_numbers(self) -> dict[str, float]:
        out = dict(self.numbers)
        for item in [*self.figures, *self.tables]:
            out.update(item.provenance.numbers)
        return out


@dataclass
class Note:
    """A passage from a document that supports the report, with where it came from."""

    text: str
    source_id: str  # document path or URL
    title: str = ""
    score: float = 0.0


@dataclass
class Section:
    """A section of the written report (markdown body; figures/tables referenced by their numbers)."""

    title: str
    body: str
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Report:
    question: str
    title: str
    mode: str  # "rule-based" or "agents"
    abstract: str
    introduction: str
    sections: list[Section]
    conclusion: str
    references: list[dict[str, Any]] = field(default_factory=list)
    unsupported_numbers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
