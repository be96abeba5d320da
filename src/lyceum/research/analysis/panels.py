"""Panels: one measure over time for one or more entities, read from the selected tables, and the window
of years a question asks about."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lyceum.research.bm25 import tokenize
from lyceum.research.catalog import Catalog, TableProfile, guess_unit, matched_entities
from lyceum.research.numbers import scale_for
from lyceum.research.question import Scope
from lyceum.research.selection import GRANULARITY_WORDS, is_change_table

NOT_A_MEASURE = re.compile(r"uncertain|error|std|stdev|decimal|^extra_|number of|count|code|^id$|lat|lon|^year$",
                            re.IGNORECASE)


RATIO_LIKE = re.compile(r"/|ratio|yield|per |margin|pct|percent|%|rate|price|eps|share|week|index|mean|average",
                         re.IGNORECASE)


MAX_ENTITIES = 6


@dataclass
class Panel:
    """Observations of one measure for one or more entities: columns time, year, entity, value."""

    measure: str
    unit: str
    frequency: str
    data: Any  # pandas DataFrame
    tables: list[str]
    is_change: bool
    entities: list[str] = field(default_factory=list)
    formula: str = ""  # for a measure derived from several tables: how it was computed (into provenance)
    definitions: dict[str, str] = field(default_factory=dict)  # entity codes the tables spell out: GCAG -> ...

    @property
    def label(self) -> str:
        return f"{self.measure} ({self.unit})" if self.unit else self.measure


class FigureSink:
    """Hands out numbered figure paths inside the run folder."""

    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir) / "figures"
        self.n = 0

    def path(self, slug: str) -> Path:
        self.n += 1
        return self.dir / f"fig-{self.n:02d}-{re.sub(r'[^a-z0-9]+', '-', slug.lower()).strip('-')[:40]}.png"


def pick_measure(profile: TableProfile, question: str) -> str | None:
    """The numeric column the question is about (best word overlap), skipping uncertainties and codes."""
    columns = [c for c in profile.numeric_columns if not NOT_A_MEASURE.search(c.name)]
    if not columns:
        columns = profile.numeric_columns
    if not columns:
        return None
    q = set(tokenize(question))
    return max(columns, key=lambda c: (len(q & set(tokenize(c.name + " " + c.description))), -columns.index(c))).name


GENERIC_MEASURES = {"value", "values", "mean", "average", "avg", "amount", "data", "level", "obs", "observation"}


def measure_label(profile: TableProfile, column: str) -> str:
    """A readable name for a measured column: "gdp_trillion" -> "GDP trillion", "Mean" -> "CO2 PPM (mean)"."""
    words = column.replace("_", " ").strip()
    words = " ".join(w.upper() if re.search(rf"\b{re.escape(w.upper())}\b", profile.description + " " +
                                           profile.dataset_title) and len(w) <= 4 else w for w in words.split())
    if words.lower() in GENERIC_MEASURES:
        title = short_title(profile)
        # A long title with an acronym names its measure by it ("Country, Regional and World GDP (Gross Domestic
        # Product)" -> "GDP"); a bare "value" adds nothing to it.
        acronyms = re.findall(r"\b[A-Z][A-Z0-9]{1,5}\b", re.sub(r"\(.*?\)", "", title))
        if len(title.split()) > 4 and acronyms:
            title = " ".join(dict.fromkeys(acronyms))
        return title if words.lower() in ("value", "values") else f"{title} ({words.lower()})"
    return words[:1].upper() + words[1:]


def short_title(profile: TableProfile) -> str:
    title = profile.dataset_title or profile.dataset
    return re.split(r"\s+[-–—:]\s+|:\s", title)[0].strip()


def series_label(profile: TableProfile, panel_tables: list[TableProfile], selected: list[TableProfile],
                 dataset_tables: list[TableProfile], measure: str = "") -> str:
    """A short name for a table holding one series.

    Against other tables in the same panel, the file-name word that sets it apart ('brent' vs 'wti'); otherwise
    the word it shares with the other chosen tables ('mlo', spelled out as 'Mauna Loa Observatory'); otherwise
    the dataset's title.
    """

    def usable(words):
        return [w for w in words if w not in GRANULARITY_WORDS and not w.isdigit()]

    everywhere = set.intersection(*(set(t.name_words) for t in dataset_tables)) if dataset_tables else set()
    others = [t for t in panel_tables if t is not profile]
    if others:
        common = set.intersection(*(set(t.name_words) for t in others))
        words = usable([w for w in profile.name_words if w not in common])
    else:
        siblings = [t for t in selected if t is not profile and t.dataset == profile.dataset]
        shared = set.union(*(set(t.name_words) for t in siblings)) if siblings else set()
        words = usable([w for w in profile.name_words if w in shared and w not in everywhere])
    if not words and not others:
        # Alone, but the dataset's title names its sibling series too ("Brent and WTI Spot Prices" for the WTI
        # file): the file-name word that sets this table apart in its dataset names it.
        own = usable([w for w in profile.name_words if w not in everywhere])
        title_words = set(tokenize(short_title(profile)))
        sibling_words = {w for t in dataset_tables if t is not profile for w in usable(t.name_words)
                         if w not in everywhere and w not in own}
        if own and title_words & set(tokenize(" ".join(sibling_words))):
            words = own
            if len(own) == 1 and re.search(rf"\b{re.escape(own[0].upper())}\b", profile.description):
                return own[0].upper()  # as the description writes it ("WTI"), not spelled out
    if not words:
        # The dataset's name, without the measure it repeats ("Gold Prices" measuring "Price" -> "Gold").
        title = short_title(profile).split()
        if len(title) > 1 and tokenize(title[-1]) == tokenize(measure):
            title = title[:-1]
        return " ".join(title)
    if len(words) == 1 and words[0] in profile.name_aliases and not others:
        return profile.name_aliases[words[0]]
    shown = []
    for w in words:
        if re.search(rf"\b{re.escape(w.upper())}\b", profile.description):
            shown.append(w.upper())
        else:
            shown.append(w.capitalize() if not shown else w)
    return " ".join(shown)


def build_panels(catalog: Catalog, tables: list[TableProfile], question: str, scope: Scope) -> list[Panel]:
    import pandas as pd

    # Tables measuring the same thing in the same unit share a panel (Brent and WTI prices).
    keyed: dict[tuple, list[tuple[TableProfile, str, str]]] = {}
    for t in tables:
        measure = pick_measure(t, question)
        if measure is None:
            continue
        col = t.column(measure)
        unit = col.unit or guess_unit(col.description) or guess_unit(t.description)
        if t.entity_column and re.search(r"exchange rate", f"{measure} {col.description}", re.IGNORECASE):
            unit = ""  # each country's rate is in its own currency (per US dollar, or dollars per unit)
        keyed.setdefault((measure.lower(), unit, is_change_table(t)), []).append((t, measure, unit))
    panels = []
    for (_, unit, change), members in keyed.items():
        frames, entities = [], []
        for t, measure, _ in members:
            frame = catalog.frame(t.id)
            time = frame[t.time_column]
            if t.column(t.time_column).type == "year":
                years = time.astype("Int64")
                times = pd.to_datetime(years.astype(str) + "-07-01", errors="coerce")
            else:
                times = pd.to_datetime(time, errors="coerce")
                years = times.dt.year
            if t.entity_column:
                named = entities_named(question, t)
                named += [e for e in coded_entities(frame, t, question) if e not in named]
                names = named or default_entities(frame, t, measure)
                ent = frame[t.entity_column].astype(str)
                # Codes the description spells differently ("gcag" is "GCAG" there) take its spelling.
                spelled = {n: written_as(n, t.description) for n in names}
                ent = ent.replace(spelled)
                names = [spelled[n] for n in names]
                if sum(1 for m in members if m[0].entity_column) > 1:
                    # Two tables of one panel hold the same entities (real and nominal house price indexes):
                    # each entity is named with its table's word, or the two series would merge into one.
                    dataset_tables = [p for p in catalog.profiles if p.dataset == t.dataset]
                    label = series_label(t, [m[0] for m in members], tables, dataset_tables, measure)
                    ent = ent.where(~ent.isin(names), ent + f" ({label})")
                    names = [f"{n} ({label})" for n in names]
            else:
                dataset_tables = [p for p in catalog.profiles if p.dataset == t.dataset]
                names = [series_label(t, [m[0] for m in members], tables, dataset_tables, measure)]
                ent = pd.Series(names[0], index=frame.index)
            data = pd.DataFrame({"time": times, "year": years, "entity": ent, "value": frame[measure].astype(float)})
            frames.append(data[data["entity"].isin(names)].dropna(subset=["time", "value"]))
            entities += [e for e in names if e not in entities]
        data = pd.concat(frames, ignore_index=True)
        if data.empty:
            continue
        first = members[0][0]
        present = [e for e in entities if e in set(data["entity"])]
        fx_text = f"{members[0][1]} {first.column(members[0][1]).description}"
        if not unit and first.entity_column and re.search(r"exchange rate", fx_text, re.IGNORECASE):
            # Each country's rate is in its own unit, as the table's notes quote it: one series is stated in it
            # ("Japanese yen per US dollar"), several carry it in their names.
            from lyceum.research.analysis.currency import quote_unit

            units = {e: quote_unit(e, f"{first.description} {fx_text}") for e in present}
            if len(present) == 1:
                unit = units[present[0]]
            else:
                renamed = {e: f"{e} ({u})" for e, u in units.items() if u}
                data["entity"] = data["entity"].replace(renamed)
                entities, present = [renamed.get(e, e) for e in entities], [renamed.get(e, e) for e in present]
        definitions = abbreviation_definitions([e for e in present if e.isupper()],
                                               " ".join(m[0].description for m in members))
        panels.append(Panel(measure=measure_label(first, members[0][1]), unit=unit, definitions=definitions,
                            frequency=first.frequency or "irregular", data=data, tables=[m[0].id for m in members],
                            is_change=change, entities=[e for e in entities if e in set(data["entity"])]))
    return sorted(panels, key=lambda p: p.is_change)


def entities_named(question: str, t: TableProfile) -> list[str]:
    """The table's entities the question names; in an exchange-rate table a currency names its country ("the yen"
    is Japan's rate, "the Swiss franc" Switzerland's)."""
    from lyceum.research.question import currencies_named

    if re.search(r"exchange rate|currenc", f"{t.title} {t.description}", re.IGNORECASE):
        named = matched_entities(question, t.entities)
        return named or [c for c in currencies_named(question) if c in t.entities]
    # Elsewhere a currency is a unit: "GDP in US dollars" names no United States, "in Swiss francs" no Switzerland.
    return matched_entities(_CURRENCY_PHRASE.sub(" ", question), t.entities)


_CURRENCY_PHRASE = re.compile(r"\b(?:U\.?S\.?|US|American|Canadian|Australian|Swiss|Japanese|Chinese|Indian|British|"
                              r"Hong Kong|Singapore|New Zealand|Mexican|Brazilian|Danish|Swedish|Norwegian)[- ]"
                              r"(?:dollars?|francs?|yen|yuan|rupees?|pounds?|pesos?|reals?|krone|kroner|krona|"
                              r"kronor)\b",
                              re.IGNORECASE)


AGGREGATE = re.compile(
    r"\b(world|income|ida|ibrd|oecd|members|euro area|total|excluding|dividend|fragile|small states|developing|"
    r"developed|region|sub-saharan|east asia|south asia|latin america|middle east|north america|central asia|"
    r"arab world|european union|heavily indebted|least developed|demographic|eastern and southern|"
    r"western and central|pacific|caribbean|blend|only|classified|upper middle|lower middle|\(.*\))\b|&",
    re.IGNORECASE)


def written_as(value: str, text: str) -> str:
    """An entity code as the table's own description writes it ("gcag" -> "GCAG"), else unchanged."""
    if not value or not value.isalnum():
        return value
    m = re.search(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", text, re.IGNORECASE)
    return m.group(0) if m and m.group(0) != value and m.group(0).isupper() else value


def abbreviation_definitions(names: list[str], text: str) -> dict[str, str]:
    """Long forms the text gives for abbreviations, written "long form (ABBR)" (Schwartz and Hearst's rule:
    the long form is the shortest run of words before the parenthesis holding the abbreviation's letters in
    order, the first letter starting a word)."""
    out = {}
    for name in names:
        m = re.search(rf"((?:[\w-]+\s+){{1,{min(len(name) + 5, 10)}}})\({re.escape(name)}\)", text)
        if not m or len(name) < 2:
            continue
        words = m.group(1).split()
        for start in range(len(words) - 1, -1, -1):
            candidate = " ".join(words[start:])
            if candidate[0].lower() == name[0].lower() and _letters_in_order(name.lower(), candidate.lower()):
                out[name] = candidate
                break
    return out


def _letters_in_order(abbr: str, text: str) -> bool:
    i = 0
    for ch in text:
        if i < len(abbr) and ch == abbr[i]:
            i += 1
    return i == len(abbr)


def coded_entities(frame, t: TableProfile, question: str) -> list[str]:
    """Entities a question names by a code the table itself holds ("DEU and FRA" in a table with a "Country Code"
    column), in the order the question names them."""
    tokens = re.findall(r"\b[A-Z]{2,3}\b", question)
    if not tokens or not t.entity_column:
        return []
    for c in t.columns:
        if c.name != t.entity_column and c.type == "text" and re.search(r"code|iso", c.name, re.IGNORECASE):
            pairs = frame[[c.name, t.entity_column]].dropna().astype(str).drop_duplicates(c.name)
            by_code = dict(zip(pairs[c.name], pairs[t.entity_column]))
            found = [by_code[x] for x in dict.fromkeys(tokens) if x in by_code]
            if found:
                return found
    return []


def is_aggregate(name: str) -> bool:
    return bool(AGGREGATE.search(name))


def default_entities(frame, t: TableProfile, measure: str) -> list[str]:
    counts = frame[t.entity_column].astype(str).value_counts()
    if len(counts) <= MAX_ENTITIES:
        return list(counts.index)
    # The largest by their latest value (regional and income groups left out): what a reader of a many-country
    # table usually wants first.
    latest = frame.dropna(subset=[measure]).sort_values(t.time_column).groupby(t.entity_column)[measure].last()
    latest = latest[[not is_aggregate(str(e)) for e in latest.index]]
    return [str(e) for e in latest.sort_values(ascending=False).index[:MAX_ENTITIES]]


@dataclass
class Window:
    start: int
    end: int
    partial: int | None = None  # a later, incomplete year shown separately

    def years(self) -> list[int]:
        return list(range(self.start, self.end + 1))

    def label(self) -> str:
        return f"{self.start}–{self.end}" if self.end != self.start else str(self.start)


def complete_years(panel: Panel) -> set[int]:
    """Years with (nearly) the usual number of observations for every entity."""
    counts = panel.data.groupby(["entity", "year"]).size()
    complete: set[int] | None = None
    for _, c in counts.groupby(level=0):
        c = c.droplevel(0)
        typical = float(c.median())
        years = {int(y) for y, n in c.items() if n >= 0.8 * typical}
        if len(c) >= 2 and int(c.index.max()) in years and c.iloc[-1] < typical and panel.frequency != "annual":
            years.discard(int(c.index.max()))
        complete = years if complete is None else complete & years
    return complete or set()


def choose_window(panel: Panel, scope: Scope) -> Window:
    full = complete_years(panel)
    years = sorted({int(y) for y in panel.data["year"].dropna()})
    first, last_any = years[0], years[-1]
    last = max(full) if full else last_any
    if scope.last_years:
        end = last
        start = max(first, end - scope.last_years + 1)
    else:
        start = max(first, scope.start_year or first)
        end = min(last_any, scope.end_year) if scope.end_year else last
        if start > end:  # the question asks for years the table does not have
            start, end = first, last
        elif start == end:  # "in 2008": show the year with three years of context on each side
            start, end = max(first, start - 3), min(last, end + 3)
    partial = last_any if last_any > end and last_any not in full and scope.end_year is None else None
    return Window(start, end, partial)


def yearly(panel: Panel, years: list[int]):
    """Annual averages (or the annual value), years x entities."""
    d = panel.data[panel.data["year"].isin(years)]
    table = d.groupby(["year", "entity"])["value"].mean().unstack("entity")
    return table.reindex(columns=[e for e in panel.entities if e in table.columns])


def in_window(panel: Panel, w: Window, include_partial: bool = True):
    last = w.partial if (include_partial and w.partial) else w.end
    return panel.data[(panel.data["year"] >= w.start) & (panel.data["year"] <= last)]


def panel_scale(panel: Panel, values) -> tuple[float, str, str]:
    div, word = scale_for(values, panel.unit)
    unit = panel.unit
    if word:
        unit = f"{unit} {word}".strip() if unit else word
    return div, word, unit


def sample_years(years: list[int], keep: set[int]) -> list[int]:
    if len(years) <= 30:
        return years
    step = 5 if len(years) <= 80 else 10
    return sorted({y for y in years if y % step == 0} | {years[0], years[-1]} | (keep & set(years)))


def relative_units(panel: Panel) -> bool:
    """Prices, money and indexes are compared in percent; physical quantities (ppm, °C) in their own unit."""
    return bool(re.search(r"USD|EUR|GBP|index|\$|\bper US dollar\b|^US dollars per\b", panel.unit)) or not panel.unit
