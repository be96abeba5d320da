"""Measures derived from two tables: a panel joined with another table on entity and year.

Per capita: "GDP per capita in India and China" has no table of its own; it is GDP (one table) divided by
population (another), joined on country and year. The derived panel carries the formula, both tables and both
columns in its provenance, and then goes through the same analyses as any panel (levels, changes, peaks,
comparisons), so every number it produces is traceable to the two published series.

    panels += per_capita_panels(catalog, panels, question)
"""

from __future__ import annotations

import re

from lyceum.research.analysis.panels import Panel
from lyceum.research.catalog import Catalog, TableProfile

PER_CAPITA = re.compile(r"\bper[ -](capita|person|head|inhabitant|resident)\b", re.IGNORECASE)
_SCALE_WORDS = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}


def asks_per_capita(question: str) -> bool:
    return bool(PER_CAPITA.search(question))


def unit_scale(unit: str, measure: str = "") -> tuple[float, str]:
    """(multiplier, base unit) of a unit like "USD trillion" or a measure named "gdp_trillion"."""
    text = f"{unit} {measure}".lower()
    for word, factor in _SCALE_WORDS.items():
        if re.search(rf"\b{word}s?\b|_{word}", text):
            return factor, re.sub(rf"\s*\b{word}s?\b", "", unit, flags=re.IGNORECASE).strip()
    return 1.0, unit


def population_table(catalog: Catalog, entities: list[str]) -> tuple[TableProfile, str] | None:
    """The catalog's population table covering the most of ``entities``: (profile, measure column)."""
    best, best_cover = None, 0
    for p, _ in catalog.search("population total number of people", k=10, expand=False):
        if not (p.time_column and p.entity_column) or "population" not in f"{p.title} {p.dataset}".lower():
            continue
        cover = len(set(entities) & set(p.entities))
        measures = [c.name for c in p.numeric_columns if not re.search(r"code|growth|change|%", c.name, re.IGNORECASE)]
        if measures and cover > best_cover:
            best, best_cover = (p, measures[0]), cover
    return best


def per_capita_panels(catalog: Catalog, panels: list[Panel], question: str) -> list[Panel]:
    """For a per-capita question, each level panel of countries divided by population (joined on entity, year)."""
    import pandas as pd

    if not asks_per_capita(question):
        return []
    out = []
    for panel in panels:
        if panel.is_change or panel.unit.startswith("index") or panel.unit in ("%", "fraction"):
            continue
        found = population_table(catalog, panel.entities)
        if found is None:
            continue
        pop_table, pop_col = found
        frame = catalog.frame(pop_table.id)
        time = frame[pop_table.time_column]
        years = time.astype("Int64") if pop_table.column(pop_table.time_column).type == "year" else \
            pd.to_datetime(time, errors="coerce").dt.year
        population = pd.DataFrame({"year": years, "entity": frame[pop_table.entity_column].astype(str),
                                   "population": frame[pop_col].astype(float)}).dropna()
        # One value per entity and year on both sides (a daily or monthly panel is averaged to years first).
        yearly = panel.data.groupby(["entity", "year"], as_index=False)["value"].mean()
        joined = yearly.merge(population, on=["entity", "year"], how="inner")
        joined = joined[joined["population"] > 0]
        if joined.empty:
            continue
        factor, base_unit = unit_scale(panel.unit, panel.measure)
        joined["value"] = joined["value"] * factor / joined["population"]
        joined["time"] = pd.to_datetime(joined["year"].astype(int).astype(str) + "-07-01")
        measure = re.sub(r"\s*\b(trillions?|billions?|millions?)\b", "", panel.measure, flags=re.IGNORECASE).strip()
        formula = (f"{panel.measure} ({', '.join(panel.tables)}) x {factor:g} / {pop_col} "
                   f"({pop_table.id}), joined on {pop_table.entity_column.lower()} and year")
        out.append(Panel(measure=f"{measure} per capita", unit=base_unit, frequency="annual",
                         data=joined[["time", "year", "entity", "value"]], tables=[*panel.tables, pop_table.id],
                         is_change=False, entities=[e for e in panel.entities if e in set(joined["entity"])],
                         formula=formula))
    return out
