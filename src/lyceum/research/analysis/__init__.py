"""Standard analyses computed by rules: what the offline pipeline knows how to say about tables.

For time series (a time column, optionally an entity column): levels and changes over the period, growth
rates and decade averages, peaks, troughs and the deepest falls, comparisons between entities (ratios,
correlation), and how unusual the latest move is against the table's own history. For cross-sections (no
time column): rankings and shares of a grouping column, a ratio measure by group, and correlations.

Every finding carries its figures (PNG), tables (markdown), the numbers behind its sentences and the tables
it was computed from, so the writer can cite and the number check can verify.

    findings = analyze_tables(catalog, catalog.select(question), question, out_dir)

The package is split by what it analyses: ``panels`` (building the series), ``time_series``,
``cross_section``, and ``wording`` (how numbers and names read in sentences).
"""

from __future__ import annotations

import re
from pathlib import Path

from lyceum.research.analysis.answers import answer_findings, entities_past_threshold
from lyceum.research.analysis.cross_section import analyze_cross_section, latest_ranking_finding
from lyceum.research.analysis.derived import (
    against_inflation,
    converted_panels,
    correlation_across_tables,
    deflated_panels,
    inflation_panels,
    per_capita_panels,
    per_capita_ranking,
    unit_converted_panels,
)
from lyceum.research.analysis.panels import (
    MAX_ENTITIES,
    FigureSink,
    build_panels,
    entities_named,
    pick_measure,
)
from lyceum.research.analysis.time_series import analyze_panel, largest_fall, swings
from lyceum.research.bm25 import tokenize
from lyceum.research.catalog import Catalog, TableProfile
from lyceum.research.question import parse_question
from lyceum.research.records import Finding

__all__ = ["analyze_tables", "largest_fall", "swings"]

# A ranking question asking for the bottom of the ranking ("which three countries had the lowest inflation").
LOWEST_RANK = r"\b(lowest|smallest|poorest|least|fewest|cheapest|bottom)\b"


def analyze_tables(catalog: Catalog, tables: list[TableProfile], question: str, out_dir: Path) -> list[Finding]:
    """All standard analyses that apply to ``tables`` for ``question``; at least two figures when data allows."""
    scope = parse_question(question)
    sink = FigureSink(out_dir)
    findings: list[Finding] = []
    panels = build_panels(catalog, [t for t in tables if t.time_column], question, scope)
    # A question about the change itself ("the average annual increase") is answered by the change table first.
    asked = set(tokenize(question)) - set(tokenize(" ".join(p.measure for p in panels if not p.is_change)))
    panels.sort(key=lambda p: not (p.is_change and set(tokenize(p.measure)) & asked))
    derived = (per_capita_panels(catalog, panels, question) + deflated_panels(catalog, panels, question)
               + converted_panels(catalog, panels, question) + inflation_panels(catalog, panels, question)
               + unit_converted_panels(panels, question))
    # A per-capita or real-terms question is answered by the derived panel first; the published series follow,
    # except the price index itself when its inflation panel stands in for it (it reads the index correctly).
    inflation = {t for d in derived if d.measure == "consumer price inflation" for t in d.tables}
    panels = derived + [p for p in panels if not set(p.tables) <= inflation]
    if "correlation" in scope.intents:
        findings += correlation_across_tables(panels, scope, sink)
    findings += against_inflation(catalog, panels, question, scope, sink)  # "house prices vs inflation"
    for panel in panels:
        findings += analyze_panel(panel, scope, sink)
    ranking = per_capita_ranking(catalog, tables, question, scope, sink)
    # The direct answers to the question's own form (named years, spans, months, spread, latest) come first.
    findings = ranking + answer_findings(panels, scope, question) + findings
    for t in tables:  # "how many countries had inflation above 10% in 2022": a count across a wide table
        if t.time_column and t.entity_column and len(t.entities) > MAX_ENTITIES and \
                not entities_named(question, t):
            f = entities_past_threshold(catalog.frame(t.id), t, pick_measure(t, question), question, scope)
            if f is not None:
                findings.insert(0, f)
    for t in tables if not ranking else []:  # a per-capita ranking replaces the ranking of the totals
        # "What share of the top 10's GDP did the US hold": a share question ranks even when it names entities.
        if t.time_column and t.entity_column and len(t.entities) > MAX_ENTITIES and {"rank", "share"} & scope.intents \
                and (not entities_named(question, t) or "share" in scope.intents):
            named = [y for y in scope.years_named if t.time_start and int(t.time_start[:4]) <= y]
            f = latest_ranking_finding(catalog.frame(t.id), t, pick_measure(t, question), sink,
                                       year=named[-1] if named else None, top_n=scope.top_n,
                                       named=entities_named(question, t),
                                       lowest=bool(re.search(LOWEST_RANK, question, re.IGNORECASE)))
            if f is not None:
                findings.insert(0, f)
    for t in tables:
        if not t.time_column:
            findings += analyze_cross_section(catalog.frame(t.id), t, question, scope, sink)
    return [f for f in findings if f.sentences or f.figures or f.tables]
