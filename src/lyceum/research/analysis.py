"""Standard analyses computed by rules: what the offline pipeline knows how to say about tables.

For time series (a time column, optionally an entity column): levels and changes over the period, growth
rates and decade averages, peaks, troughs and the deepest falls, comparisons between entities (ratios,
correlation), and how unusual the latest move is against the table's own history. For cross-sections (no
time column): rankings and shares of a grouping column, a ratio measure by group, and correlations.

Every finding carries its figures (PNG), tables (markdown), the numbers behind its sentences and the tables
it was computed from, so the writer can cite and the number check can verify.

    findings = analyze_tables(catalog, catalog.select(question), question, out_dir)
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lyceum.research import charts
from lyceum.research.bm25 import tokenize
from lyceum.research.catalog import Catalog, TableProfile, guess_unit, matched_entities
from lyceum.research.numbers import fmt, fmt_pct, markdown_table, scale_for
from lyceum.research.question import Scope, parse_question
from lyceum.research.records import Figure, Finding, Provenance, Table
from lyceum.research.selection import is_change_table

_NOT_A_MEASURE = re.compile(r"uncertain|error|std|stdev|decimal|^extra_|number of|count|code|^id$|lat|lon|^year$",
                            re.IGNORECASE)
_RATIO_LIKE = re.compile(r"/|ratio|yield|per |margin|pct|percent|%|rate|price|eps|share|week|index|mean|average",
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


# ---------------------------------------------------------------------------------------------------------------
# Entry point


def analyze_tables(catalog: Catalog, tables: list[TableProfile], question: str, out_dir: Path) -> list[Finding]:
    """All standard analyses that apply to ``tables`` for ``question``; at least two figures when data allows."""
    scope = parse_question(question)
    sink = FigureSink(out_dir)
    findings: list[Finding] = []
    panels = build_panels(catalog, [t for t in tables if t.time_column], question, scope)
    for panel in panels:
        findings += analyze_panel(panel, scope, sink)
    for t in tables:
        if t.time_column and t.entity_column and len(t.entities) > MAX_ENTITIES and {"rank", "share"} & scope.intents \
                and not matched_entities(question, t.entities):
            f = latest_ranking_finding(catalog.frame(t.id), t, pick_measure(t, question), sink)
            if f is not None:
                findings.insert(0, f)
    for t in tables:
        if not t.time_column:
            findings += analyze_cross_section(catalog.frame(t.id), t, question, scope, sink)
    return [f for f in findings if f.sentences or f.figures or f.tables]


# ---------------------------------------------------------------------------------------------------------------
# Time series: building panels


def pick_measure(profile: TableProfile, question: str) -> str | None:
    """The numeric column the question is about (best word overlap), skipping uncertainties and codes."""
    columns = [c for c in profile.numeric_columns if not _NOT_A_MEASURE.search(c.name)]
    if not columns:
        columns = profile.numeric_columns
    if not columns:
        return None
    q = set(tokenize(question))
    return max(columns, key=lambda c: (len(q & set(tokenize(c.name + " " + c.description))), -columns.index(c))).name


_GENERIC_MEASURES = {"value", "values", "mean", "average", "avg", "amount", "data", "level", "obs", "observation"}


def measure_label(profile: TableProfile, column: str) -> str:
    """A readable name for a measured column: "gdp_trillion" -> "GDP trillion", "Mean" -> "CO2 PPM (mean)"."""
    words = column.replace("_", " ").strip()
    words = " ".join(w.upper() if re.search(rf"\b{re.escape(w.upper())}\b", profile.description + " " +
                                           profile.dataset_title) and len(w) <= 4 else w for w in words.split())
    if words.lower() in _GENERIC_MEASURES:
        return f"{short_title(profile)} ({words.lower()})"
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
    from lyceum.research.catalog import GRANULARITY_WORDS

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
                named = matched_entities(question, t.entities)
                names = named or _default_entities(frame, t, measure)
                ent = frame[t.entity_column].astype(str)
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
        panels.append(Panel(measure=measure_label(first, members[0][1]), unit=unit,
                            frequency=first.frequency or "irregular", data=data, tables=[m[0].id for m in members],
                            is_change=change, entities=[e for e in entities if e in set(data["entity"])]))
    return sorted(panels, key=lambda p: p.is_change)


# Group rows of World Bank-style country tables ("World", "High income", "IDA & IBRD total"...).
AGGREGATE = re.compile(
    r"\b(world|income|ida|ibrd|oecd|members|euro area|total|excluding|dividend|fragile|small states|developing|"
    r"developed|region|sub-saharan|east asia|south asia|latin america|middle east|north america|central asia|"
    r"arab world|european union|heavily indebted|least developed|demographic|eastern and southern|"
    r"western and central|pacific|caribbean|blend|only|classified|upper middle|lower middle|\(.*\))\b|&",
    re.IGNORECASE)


def is_aggregate(name: str) -> bool:
    return bool(AGGREGATE.search(name))


def _default_entities(frame, t: TableProfile, measure: str) -> list[str]:
    counts = frame[t.entity_column].astype(str).value_counts()
    if len(counts) <= MAX_ENTITIES:
        return list(counts.index)
    # The largest by their latest value (regional and income groups left out): what a reader of a many-country
    # table usually wants first.
    latest = frame.dropna(subset=[measure]).sort_values(t.time_column).groupby(t.entity_column)[measure].last()
    latest = latest[[not is_aggregate(str(e)) for e in latest.index]]
    return [str(e) for e in latest.sort_values(ascending=False).index[:MAX_ENTITIES]]


# ---------------------------------------------------------------------------------------------------------------
# Time series: period and yearly values


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


def _of_entities(names: list[str]) -> str:
    """" of Brent and WTI" for a title naming what is drawn; nothing for one unnamed or many series."""
    names = [n for n in names if n and n != "value"]
    return f" of {_join(names)}" if 1 <= len(names) <= 3 else ""


def _in_window(panel: Panel, w: Window, include_partial: bool = True):
    last = w.partial if (include_partial and w.partial) else w.end
    return panel.data[(panel.data["year"] >= w.start) & (panel.data["year"] <= last)]


# ---------------------------------------------------------------------------------------------------------------
# Time series: the analyses


def analyze_panel(panel: Panel, scope: Scope, sink: FigureSink) -> list[Finding]:
    w = choose_window(panel, scope)
    out = [] if panel.is_change else [levels_finding(panel, w, sink)]
    out.append(change_finding(panel, w, scope, sink))
    if not panel.is_change:
        out.append(extremes_finding(panel, w, scope))
    if len(panel.entities) >= 2:
        out.append(comparison_finding(panel, w, scope, sink))
    if not panel.is_change and ("unusual" in scope.intents or scope.last_years):
        out.append(unusual_finding(panel, w, sink))
    return [f for f in out if f is not None]


def _scale(panel: Panel, values) -> tuple[float, str, str]:
    div, word = scale_for(values, panel.unit)
    unit = panel.unit
    if word:
        unit = f"{unit} {word}".strip() if unit else word
    return div, word, unit


def _sample_years(years: list[int], keep: set[int]) -> list[int]:
    if len(years) <= 30:
        return years
    step = 5 if len(years) <= 80 else 10
    return sorted({y for y in years if y % step == 0} | {years[0], years[-1]} | (keep & set(years)))


def levels_finding(panel: Panel, w: Window, sink: FigureSink) -> Finding:
    ann = yearly(panel, w.years() + ([w.partial] if w.partial else []))
    complete = ann.loc[[y for y in ann.index if y <= w.end]]
    div, _, unit = _scale(panel, ann.values.ravel())
    keep = set()
    for e in complete.columns:
        s = complete[e].dropna()
        if not s.empty:
            keep |= {int(s.idxmax()), int(s.idxmin())}
    shown = _sample_years([int(y) for y in complete.index], keep)
    what = "value" if panel.frequency == "annual" else "average"
    rows = [[str(y)] + [fmt(ann.at[y, e] / div) for e in ann.columns] for y in shown]
    if w.partial and w.partial in ann.index:
        rows.append([f"{w.partial} (partial year)"] + [fmt(ann.at[w.partial, e] / div) for e in ann.columns])
    headers = ["Year"] + [f"{e} ({unit})" if unit else str(e) for e in ann.columns]
    numbers = {f"{e} {y}": float(ann.at[y, e]) for y in ann.index for e in ann.columns if not _nan(ann.at[y, e])}
    prov = Provenance(tables=panel.tables, method=f"annual {what} of '{panel.measure}' per year", numbers=numbers)
    sampled = " (selected years)" if len(shown) < len(complete.index) else ""
    table = Table(markdown_table(headers, rows), f"Annual {what} of {_lower(panel.measure)}"
                                                 f"{f' ({unit})' if unit else ''} by year, "
                                                 f"{w.label()}{sampled}", prov)
    # Figure: the observations themselves, at their own frequency.
    d = _in_window(panel, w)
    series = {e: (g["time"].tolist(), (g["value"] / div).tolist()) for e, g in d.sort_values("time").groupby("entity")}
    series = {e: series[e] for e in panel.entities if e in series}
    marks = []
    if not panel.is_change and len(series) <= 3:
        for e, g in d.groupby("entity"):
            for kind, row in (("high", g.loc[g["value"].idxmax()]), ("low", g.loc[g["value"].idxmin()])):
                when = f" ({row['time']:%b %Y})" if hasattr(row["time"], "strftime") and panel.frequency != "annual" else ""
                marks.append((row["time"], row["value"] / div, f"{e} {kind} {fmt(row['value'] / div)}{when}"))
    freq = panel.frequency if panel.frequency != "irregular" else ""
    last = w.partial or w.end
    fig_path = charts.line_chart(series, sink.path(f"levels-{panel.measure}"),
                                 title=f"{panel.measure}{_of_entities(list(series))}, {w.start}–{last} "
                                       f"({freq} data)".replace(" ( data)", ""),
                                 ylabel=unit or panel.measure, marks=marks, zero_line=panel.is_change)
    figure = Figure(fig_path, f"{panel.measure} of {_join(list(series))} from {w.start} to {last} "
                              f"({freq or 'as published'} observations" + ("; highs and lows marked)" if marks else ")"),
                    Provenance(tables=panel.tables, method="line chart of the observations in the period"))
    sentences = []
    for e in complete.columns:
        s = complete[e].dropna()
        if len(s) < 2:
            continue
        y0, y1 = int(s.index[0]), int(s.index[-1])
        v0, v1 = float(s.iloc[0]), float(s.iloc[-1])
        text = (f"{e} {'was' if panel.frequency == 'annual' else 'averaged'} {_v(v0, panel.unit)} in {y0} and "
                f"{_v(v1, panel.unit)} in {y1}")
        if not panel.is_change and v0 > 0 and v1 > 0:
            pct = (v1 / v0 - 1) * 100
            cagr = ((v1 / v0) ** (1 / (y1 - y0)) - 1) * 100
            text += f", a change of {fmt_pct(pct)}"
            text += f" ({fmt(v1 / v0)}× the {y0} level, {fmt_pct(cagr)} a year compounded)" if v1 / v0 >= 1.5 else \
                f" ({fmt_pct(cagr)} a year compounded)"
            numbers.update({f"{e} change {y0}-{y1} %": pct, f"{e} multiple {y0}-{y1}": v1 / v0,
                            f"{e} CAGR {y0}-{y1} %": cagr})
        sentences.append(text + ".")
        if w.partial and w.partial in ann.index and not _nan(ann.at[w.partial, e]):
            sentences.append(f"So far in {w.partial} (a partial year) {e} has averaged "
                             f"{_v(float(ann.at[w.partial, e]), panel.unit)}.")
    return Finding(title=f"Levels of {_lower(panel.measure)}", sentences=sentences, figures=[figure], tables=[table],
                   numbers=numbers, sources=list(panel.tables), kind="levels")


def _decades(years: list[int]) -> list[tuple[int, list[int]]]:
    out: dict[int, list[int]] = {}
    for y in years:
        out.setdefault(y // 10 * 10, []).append(y)
    return sorted(out.items())


def _decade_label(d: int, ys: list[int]) -> str:
    return f"{d}s" if len(ys) == 10 else f"{d}s ({ys[0]}–{ys[-1]})" if len(ys) > 1 else f"{d}s ({ys[0]} only)"


def change_finding(panel: Panel, w: Window, scope: Scope, sink: FigureSink) -> Finding | None:
    """Yearly changes, their decade averages (is it speeding up?), and the biggest single years."""
    ann = yearly(panel, w.years())
    if len(ann.index) < 3:
        return None
    numbers: dict[str, float] = {}
    sentences: list[str] = []
    relative = not panel.is_change and _relative_units(panel)
    if panel.is_change:  # the values already are yearly changes
        per_year, pct = ann, None
        what, unit = _lower(panel.measure), (panel.unit + " per year" if panel.unit else "")
    else:
        per_year = ann.diff().iloc[1:]
        pct = (ann.pct_change(fill_method=None) * 100).iloc[1:]
        what, unit = "yearly change", panel.unit
    # Decade averages: the clearest answer to "is it speeding up?" (a short period lists its years instead).
    div, word = scale_for(per_year.abs().max().tolist(), unit)
    if word:
        unit = f"{word} {unit}".strip() if unit else word
    rows, dec_means = [], {}
    decades = _decades([int(y) for y in per_year.index])
    by_year = len(decades) < 3 and len(per_year.index) <= 15
    if by_year:
        decades = [(int(y), [int(y)]) for y in per_year.index]
    for d, ys in decades:
        row = [str(d) if by_year else _decade_label(d, ys)]
        for e in per_year.columns:
            m = float(per_year.loc[ys, e].mean())
            if not by_year:
                dec_means.setdefault(e, []).append((d, ys, m))
            numbers[f"{e} {what} {d}" if by_year else f"{e} mean {what} {d}s"] = m
            row.append(fmt(m / div))
            if pct is not None:
                mp = float(pct.loc[ys, e].mean())
                numbers[f"{e} mean % change {d}s"] = mp
                row.append(fmt_pct(mp))
        rows.append(row)
    mean = "" if by_year else "mean "
    headers = ["Year" if by_year else "Decade"]
    for e in per_year.columns:
        headers.append(f"{e}: {mean}{what}{f' ({unit})' if unit else ''}")
        if pct is not None:
            headers.append(f"{e}: {mean}{what} (%)")
    of = "" if panel.is_change else f" of {_lower(panel.measure)}"
    caption = f"{what.capitalize()}{of} by year" if by_year else f"Average {what}{of} by decade"
    table = Table(markdown_table(headers, rows), f"{caption}, {w.label()}",
                  Provenance(tables=panel.tables, method=f"decade means of the {what}", numbers=dict(numbers)))
    # In percent for prices and money, in the measure's own unit for physical quantities.
    values, vunit = (pct, "%") if relative else (per_year, unit)
    for e, ms in dec_means.items():
        full = [(d, ys, m) for d, ys, m in ms if len(ys) >= 5] or ms
        if len(full) >= 2:
            (d0, ys0, m0), (d1, ys1, m1) = full[0], full[-1]
            text = (f"For {e}, the average {what} {'rose' if m1 > m0 else 'fell'} from {fmt(m0 / div)}{_u(unit)} in "
                    f"the {_decade_label(d0, ys0)} to {fmt(m1 / div)}{_u(unit)} in the {_decade_label(d1, ys1)}")
            if m0 > 0 and m1 > 0:
                text += f", {fmt(m1 / m0)} times the earlier pace"
                numbers[f"{e} decade pace ratio"] = m1 / m0
            middle = [f"{fmt(m / div)} in the {_decade_label(d, ys)}" for d, ys, m in full[1:-1]]
            sentences.append(text + (f" ({'; '.join(middle)})" if middle else "") + ".")
        series = values[e].dropna()
        if len(series) < 3:
            continue
        hi, lo = series.idxmax(), series.idxmin()
        show = fmt_pct if vunit == "%" else (lambda v: fmt(v / div) + _u(vunit))
        if panel.is_change:
            sentences.append(f"The largest {what} for {e} was {show(series[hi])} in {int(hi)}; the smallest was "
                             f"{show(series[lo])} in {int(lo)}.")
        else:
            low = "the biggest fall" if series[lo] < 0 else "the smallest rise"
            sentences.append(f"The biggest yearly rise for {e} came in {int(hi)} ({show(series[hi])}) and {low} in "
                             f"{int(lo)} ({show(series[lo])}).")
        numbers.update({f"{e} largest {what} {int(hi)}": float(series[hi]),
                        f"{e} smallest {what} {int(lo)}": float(series[lo])})
        if len(series) >= 6 and (panel.is_change or "accelerate" in scope.intents):
            slope = _slope([float(y) for y in series.index], series.tolist()) * 10
            sentences.append(f"A straight-line fit through the yearly {'values' if panel.is_change else 'changes'} "
                             f"of {e} has a slope of {show(slope)} per decade: the "
                             f"{'increase' if panel.is_change or series.mean() > 0 else 'change'} is "
                             f"{'accelerating' if slope > 0 else 'slowing'} over {w.label()}.")
            numbers[f"{e} trend slope per decade"] = slope
    if panel.is_change:
        title = f"{panel.measure} per year, {w.label()}"
    elif relative:
        title = f"Year-on-year change in {_lower(panel.measure)} (%), {w.label()}"
    else:
        title = f"Yearly change in {_lower(panel.measure)}{f' ({unit})' if unit else ''}, {w.label()}"
    fig_path = charts.grouped_lines_or_bars([int(y) for y in values.index],
                                            {str(e): values[e].tolist() for e in values.columns},
                                            sink.path(f"change-{panel.measure}"), title=title,
                                            ylabel="% change" if relative else (unit or panel.measure))
    described = (f"Yearly {_lower(panel.measure)}" if panel.is_change else
                 f"Year-on-year change {'(%) ' if relative else ''}in the annual "
                 f"{'value' if panel.frequency == 'annual' else 'average'} of {_lower(panel.measure)}")
    figure = Figure(fig_path, f"{described} for {_join([str(c) for c in values.columns])}, {w.label()}",
                    Provenance(tables=panel.tables, method="yearly values" if panel.is_change
                               else "yearly changes of annual averages"))
    return Finding(title=f"Growth and pace of change: {_lower(panel.measure)}", sentences=sentences,
                   figures=[figure], tables=[table], numbers=numbers, sources=list(panel.tables), kind="change")


def swings(times: list, values: list[float], threshold: float = 0.4) -> list[dict[str, Any]]:
    """Boom-bust cycles: alternating peaks and troughs where each move is at least ``threshold`` of the level.

    A zigzag filter: a peak is confirmed once the series falls ``threshold`` (40%) below it, a trough once it
    rises that far above it. Returns the falls, each as peak -> trough with its percentage.
    """
    if len(values) < 3:
        return []
    floor = max(1e-9, 0.05 * sorted(abs(v) for v in values)[len(values) // 2])

    def moved(a: float, b: float) -> float:
        return (b - a) / max(abs(a), floor)

    pivots: list[tuple[int, str]] = []
    hi_i = lo_i = 0
    trend = None
    for i, v in enumerate(values):
        if trend in (None, "up"):
            if v > values[hi_i]:
                hi_i = i
            if moved(values[hi_i], v) <= -threshold:
                pivots.append((hi_i, "peak"))
                trend, lo_i = "down", i
                continue
        if trend in (None, "down"):
            if v < values[lo_i]:
                lo_i = i
            if moved(values[lo_i], v) >= threshold:
                pivots.append((lo_i, "trough"))
                trend, hi_i = "up", i
    if trend == "down":
        pivots.append((lo_i, "trough"))  # the fall in progress at the end of the data
    out = []
    for (a, ka), (b, kb) in itertools.pairwise(pivots):
        if ka == "peak" and kb == "trough":
            out.append({"peak_time": times[a], "peak": values[a], "trough_time": times[b], "trough": values[b],
                        "pct": moved(values[a], values[b]) * 100})
    return out


def largest_fall(times: list, values: list[float]) -> dict[str, Any] | None:
    """The deepest peak-to-trough fall, and when (if ever) the series climbed back to that peak."""
    best, peak_i, pair = 0.0, 0, None
    for i, v in enumerate(values):
        if v > values[peak_i]:
            peak_i = i
        if values[peak_i] > 0:
            fall = v / values[peak_i] - 1
            if fall < best:
                best, pair = fall, (peak_i, i)
    if pair is None:
        return None
    p, t = pair
    recovered = next((times[i] for i in range(t + 1, len(values)) if values[i] >= values[p]), None)
    return {"peak_time": times[p], "peak": values[p], "trough_time": times[t], "trough": values[t],
            "pct": best * 100, "recovered_time": recovered}


def extremes_finding(panel: Panel, w: Window, scope: Scope) -> Finding | None:
    d = _in_window(panel, w)
    ann = yearly(panel, w.years())
    steady = all(ann[e].dropna().is_monotonic_increasing or ann[e].dropna().is_monotonic_decreasing
                 for e in ann.columns)
    if steady and "peaks" not in scope.intents:
        return None  # a steady trend: the first and last values already are the low and the high
    numbers: dict[str, float] = {}
    sentences, rows = [], []
    for e in panel.entities:
        g = d[d["entity"] == e].sort_values("time")
        if g.empty:
            continue
        hi, lo = g.loc[g["value"].idxmax()], g.loc[g["value"].idxmin()]
        whole = panel.data[panel.data["entity"] == e]["value"]
        record = " (the highest in the whole table)" if hi["value"] >= whole.max() else ""
        when = _when(panel)
        on = "in" if panel.frequency in ("annual", "monthly", "quarterly") else "on"
        sentences.append(f"{_possessive(e)} highest {when}value in the period was {_v(hi['value'], panel.unit)} {on} "
                         f"{_date(hi['time'], panel)}{record}; its lowest was {_v(lo['value'], panel.unit)} {on} "
                         f"{_date(lo['time'], panel)}.")
        numbers.update({f"{e} high": float(hi["value"]), f"{e} low": float(lo["value"])})
        dd = largest_fall(g["time"].tolist(), g["value"].astype(float).tolist())
        if dd is not None and dd["pct"] <= -10:
            text = (f"{_possessive(e)} largest fall in the period ran from {_v(dd['peak'], panel.unit)} "
                    f"({_date(dd['peak_time'], panel)}) to {_v(dd['trough'], panel.unit)} "
                    f"({_date(dd['trough_time'], panel)}), {fmt_pct(dd['pct'])}; ")
            last = float(g["value"].iloc[-1])
            gap = (last / dd["peak"] - 1) * 100
            side = f"{fmt_pct(abs(gap), signed=False)} {'above' if gap >= 0 else 'below'}"
            if dd["recovered_time"] is not None:
                text += (f"the earlier peak was regained in {_date(dd['recovered_time'], panel)} and the latest value "
                         f"({_v(last, panel.unit)}) is {side} that peak.")
            else:
                text += (f"it has not regained that peak: the latest value ({_v(last, panel.unit)}) is still "
                         f"{side} it.")
            sentences.append(text)
            numbers.update({f"{e} largest fall %": dd["pct"], f"{e} pre-fall peak": dd["peak"], f"{e} latest": last,
                            f"{e} fall trough": dd["trough"], f"{e} latest vs peak %": (last / dd["peak"] - 1) * 100})
        # Swings are read from monthly averages: daily noise would split one crash into several.
        smooth = g.set_index("time")["value"].resample("MS").mean().dropna() if panel.frequency in (
            "daily", "weekly") else g.set_index("time")["value"]
        monthly = panel.frequency in ("daily", "weekly", "monthly")
        yoy = ann[e].pct_change(fill_method=None).abs().dropna() if e in ann else None
        threshold = min(0.4, max(0.15, 2 * float(yoy.median()))) if yoy is not None and len(yoy) else 0.4
        falls = swings(list(smooth.index), smooth.astype(float).tolist(), threshold)
        numbers[f"{e} swing threshold %"] = threshold * 100
        for f in falls:
            rows.append([e, _month(f["peak_time"]) if monthly else _date(f["peak_time"], panel), fmt(f["peak"]),
                         _month(f["trough_time"]) if monthly else _date(f["trough_time"], panel), fmt(f["trough"]),
                         fmt_pct(f["pct"])])
            numbers[f"{e} fall from {_month(f['peak_time'])}"] = f["pct"]
        if len(falls) >= 2:
            worst = min(falls, key=lambda f: f["pct"])
            avg = "monthly-average " if panel.frequency in ("daily", "weekly") else ""
            sentences.append(f"{e} went through {len(falls)} boom-bust swing{'s' * (len(falls) > 1)} of "
                             f"{threshold * 100:.0f}% or more in its {avg}level; the deepest fall ran from {fmt(worst['peak'])} in "
                             f"{_month(worst['peak_time'])} to {fmt(worst['trough'])} in "
                             f"{_month(worst['trough_time'])} ({fmt_pct(worst['pct'])}).")
    tables = []
    if rows:
        avg = "monthly average, " if panel.frequency in ("daily", "weekly") else ""
        unit = f" ({avg}{panel.unit})" if panel.unit or avg else ""
        headers = ["Series", "Peak", f"Peak level{unit}", "Trough", f"Trough level{unit}", "Fall"]
        rows.sort(key=lambda r: (r[1], r[0]))
        tables.append(Table(markdown_table(headers, rows, ["l", "l", "r", "l", "r", "r"]),
                            f"Boom-bust swings: peak-to-trough falls of {threshold * 100:.0f}% or more "
                            f"(the cut-off scales with the series' volatility) in {w.label()}",
                            Provenance(tables=panel.tables, method="zigzag swings of the observations",
                                       numbers=dict(numbers))))
    return Finding(title=f"Peaks, troughs and shocks in {_lower(panel.measure)}", sentences=sentences, tables=tables,
                   numbers=numbers, sources=list(panel.tables), kind="peaks")


def comparison_finding(panel: Panel, w: Window, scope: Scope, sink: FigureSink) -> Finding | None:
    import numpy as np

    ann = yearly(panel, w.years())
    if ann.shape[1] < 2:
        return None
    a, b = ann.columns[0], ann.columns[1]
    both = ann[[a, b]].dropna()
    if len(both) < 2:
        return None
    numbers: dict[str, float] = {}
    sentences = []
    figures = []
    ratio = both[a] / both[b]
    y0, y1 = int(both.index[0]), int(both.index[-1])
    if "compare" in scope.intents or (ratio.max() / max(ratio.min(), 1e-12) > 1.5 and (ratio > 0).all()):
        sentences.append(f"{a} was {fmt_pct(ratio.iloc[0] * 100, signed=False)} of {b} in {y0} and "
                         f"{fmt_pct(ratio.iloc[-1] * 100, signed=False)} in {y1}.")
        numbers.update({f"{a}/{b} {y0}": float(ratio.iloc[0]), f"{a}/{b} {y1}": float(ratio.iloc[-1])})
        g0, g1 = both[a].iloc[-1] / both[a].iloc[0], both[b].iloc[-1] / both[b].iloc[0]
        if g0 > 0 and g1 > 0:
            sentences.append(f"Over {y0}–{y1} {a} grew {fmt(g0)}-fold against {fmt(g1)}-fold for {b}.")
            numbers.update({f"{a} multiple": float(g0), f"{b} multiple": float(g1)})
        fig_path = charts.line_chart({f"{a} / {b}": (list(both.index), (ratio * 100).tolist())},
                                     sink.path(f"ratio-{a}-{b}"), title=f"{a} as a share of {b} (%), {w.label()}",
                                     ylabel="%", xlabel="year")
        figures.append(Figure(fig_path, f"{_possessive(a)} {_lower(panel.measure)} as a percentage of {_possessive(b)}, by year",
                              Provenance(tables=panel.tables, method="ratio of annual values",
                                         numbers={f"{a}/{b} {int(y)}": float(r) for y, r in ratio.items()})))
    else:
        spread = (both[a] - both[b])
        sentences.append(f"On average over {y0}–{y1}, {a} was {_v(abs(spread.mean()), panel.unit)} "
                         f"{'above' if spread.mean() > 0 else 'below'} {b}; the gap was widest in "
                         f"{int(spread.abs().idxmax())} ({_v(spread[spread.abs().idxmax()], panel.unit)}).")
        numbers.update({f"{a}-{b} mean spread": float(spread.mean()),
                        f"{a}-{b} widest gap": float(spread[spread.abs().idxmax()])})
    if len(both) >= 4:
        r = float(np.corrcoef(both[a], both[b])[0, 1])
        dr = both.pct_change(fill_method=None).dropna()
        r_change = float(np.corrcoef(dr[a], dr[b])[0, 1]) if len(dr) >= 3 else float("nan")
        text = f"Their annual values are correlated at r = {r:.2f}"
        if not math.isnan(r_change):
            text += f" (r = {r_change:.2f} for year-on-year changes)"
        sentences.append(text + ".")
        numbers.update({f"corr {a} {b}": r, f"corr change {a} {b}": r_change})
    return Finding(title=f"Comparing {_join([str(c) for c in ann.columns])}", sentences=sentences, figures=figures,
                   numbers=numbers, sources=list(panel.tables), kind="comparison")


def unusual_finding(panel: Panel, w: Window, sink: FigureSink) -> Finding | None:
    """How the move over the period compares with every move of the same length in the table's history."""
    ann_all = panel.data.groupby(["year", "entity"])["value"].mean().unstack("entity")
    full = complete_years(panel)
    ann_all = ann_all.loc[[y for y in ann_all.index if y in full]]
    span = w.end - w.start
    if span < 1 or len(ann_all) < span + 10:
        return None
    sentences, numbers, figures = [], {}, []
    for e in panel.entities[:2]:
        s = ann_all[e].dropna() if e in ann_all else None
        if s is None or w.start not in s.index or w.end not in s.index or s[w.start] <= 0:
            continue
        moves = (s / s.shift(span) - 1).dropna() * 100
        moves = moves[s.shift(span).dropna().index.intersection(moves.index)]
        now = float((s[w.end] / s[w.start] - 1) * 100)
        rank = int((moves > now).sum()) + 1
        share = float((moves < now).mean() * 100)
        sentences.append(f"The {span}-year move of {fmt_pct(now)} for {e} ({w.start} to {w.end}) is larger than "
                         f"{share:.0f}% of all {span}-year moves since {int(s.index[0])}: rank {rank} of "
                         f"{len(moves)}.")
        bigger = moves[moves > now]
        if len(bigger):
            last_big = int(bigger.index.max())
            sentences.append(f"The last time {e} rose faster over {span} years was the period ending in {last_big} "
                             f"({fmt_pct(bigger[last_big])}).")
            numbers[f"{e} last bigger move"] = float(bigger[last_big])
        numbers.update({f"{e} move {w.start}-{w.end} %": now, f"{e} move percentile": share,
                        f"{e} move rank": float(rank), f"{e} moves counted": float(len(moves))})
        fig_path = charts.histogram(moves.tolist(), sink.path(f"moves-{e}"),
                                    title=f"All {span}-year changes in {e} {_lower(panel.measure)} since "
                                          f"{int(s.index[0])}",
                                    xlabel=f"% change over {span} years", mark=(now, f"{w.start}–{w.end}"))
        figures.append(Figure(fig_path, f"Distribution of every {span}-year percentage change in the annual "
                                        f"{_lower(panel.measure)} of {e}, with {w.start}–{w.end} marked",
                              Provenance(tables=panel.tables, method="rolling changes of annual averages",
                                         numbers={f"{e} move {w.start}-{w.end} %": now})))
    if not sentences:
        return None
    return Finding(title="How unusual is the recent move?", sentences=sentences, figures=figures, numbers=numbers,
                   sources=list(panel.tables), kind="unusual")


# ---------------------------------------------------------------------------------------------------------------
# Cross-sections


def analyze_cross_section(frame, t: TableProfile, question: str, scope: Scope, sink: FigureSink) -> list[Finding]:
    q = set(tokenize(question))
    measures = [c for c in t.numeric_columns if not _NOT_A_MEASURE.search(c.name)]
    if not measures:
        return [_count_finding(frame, t, sink)]

    def relevance(c) -> int:
        return len(q & set(tokenize(c.name + " " + c.description)))

    additive = [c for c in measures if not _RATIO_LIKE.search(c.name)]
    ratio = [c for c in measures if _RATIO_LIKE.search(c.name)]
    size = max(additive, key=relevance) if additive else None
    rate = max(ratio, key=lambda c: (relevance(c), "/" in c.name)) if ratio else None
    if rate is not None and relevance(rate) == 0 and size is not None and relevance(size) > 0:
        rate = None
    out = []
    if t.entity_column and size is not None:
        out.append(ranking_finding(frame, t, size.name, size.unit, sink))
    if t.entity_column and rate is not None:
        out.append(group_ratio_finding(frame, t, rate.name, size.name if size else None, sink))
    named = sorted((c for c in measures if relevance(c) > 0), key=lambda c: -relevance(c))
    if "correlation" in scope.intents and len(named) >= 2:
        pair = (named[0].name, named[1].name)  # the two measures the question asks about
    else:
        pair = (size.name, rate.name) if size is not None and rate is not None else None
    if pair is not None:
        f = correlation_finding(frame, t, *pair, sink)
        if f:
            out.append(f)
    if len([f for f in out for _ in f.figures]) < 2 and size is not None:
        out.append(top_rows_finding(frame, t, size.name, size.unit, sink))
    return out


def latest_ranking_finding(frame, t: TableProfile, measure: str | None, sink: FigureSink) -> Finding | None:
    """For "which are the largest" questions on a panel: rank the entities in the latest year with data."""
    if measure is None:
        return None
    d = frame.dropna(subset=[measure])
    if t.column(t.time_column).type == "date":
        d = d.assign(_year=d[t.time_column].dt.year)
    else:
        d = d.assign(_year=d[t.time_column].astype(int))
    counts = d.groupby("_year")[t.entity_column].nunique()
    year = int(counts[counts >= 0.8 * counts.max()].index.max())  # the latest year most entities report
    latest = d[d["_year"] == year].groupby(t.entity_column)[measure].mean()
    groups = latest[[is_aggregate(str(e)) for e in latest.index]]
    latest = latest[[not is_aggregate(str(e)) for e in latest.index]].sort_values(ascending=False)
    if latest.empty:
        return None
    col = t.column(measure)
    unit = col.unit or guess_unit(col.description)
    total = float(groups["World"]) if "World" in groups.index else float(latest.sum())
    base = "the World total" if "World" in groups.index else f"the {len(latest)} listed"
    top = latest.head(10)
    div, word = scale_for(top.tolist(), unit)
    unit_label = " ".join(x for x in (word, unit) if x)
    rows = [[str(k), fmt(v / div), fmt_pct(v / total * 100, signed=False)] for k, v in top.items()]
    numbers = {f"{k} {year}": float(v) for k, v in top.items()}
    numbers.update({f"{k} share {year}": float(v / total * 100) for k, v in top.items()})
    numbers.update({"total": total, "entities ranked": float(len(latest))})
    table = Table(markdown_table([t.entity_column, f"{measure} {year}" + (f" ({unit_label})" if unit_label else ""),
                                  f"Share of {base}"], rows),
                  f"The 10 largest by {_lower(measure_label(t, measure))} in {year} (groups and regions left out)",
                  Provenance(tables=[t.id], method=f"ranking of '{measure}' in {year}", numbers=dict(numbers)))
    fig_path = charts.bar_chart([str(k) for k in top.index], (top / div).tolist(), sink.path(f"ranking-{measure}"),
                                title=f"The 10 largest in {year}", ylabel=unit_label or measure, horizontal=True)
    names = list(top.index[:3])
    sentences = [(f"In {year}, the largest were {_join([f'{n} ({_v(top[n], unit)})' for n in names])}; together "
                  f"the top three account for {fmt_pct(top.head(3).sum() / total * 100, signed=False)} of {base}.")]
    numbers["top3 share"] = float(top.head(3).sum() / total * 100)
    return Finding(title=f"Ranking in {year}", sentences=sentences,
                   figures=[Figure(fig_path, f"The 10 largest by {_lower(measure_label(t, measure))} in {year}",
                                   Provenance(tables=[t.id], method="bar chart of the latest ranking"))],
                   tables=[table], numbers=numbers, sources=[t.id], kind="ranking")


def _label_column(frame, t: TableProfile) -> str | None:
    texts = [c for c in t.columns if c.type == "text" and c.name != t.entity_column and not c.name.lower().endswith(
        ("url", "filings", "link"))]
    if not texts:
        return None
    return max(texts, key=lambda c: (c.distinct, frame[c.name].dropna().astype(str).str.len().mean())).name


def ranking_finding(frame, t: TableProfile, size: str, unit: str, sink: FigureSink) -> Finding:
    g = frame.groupby(t.entity_column)[size].agg(["sum", "count"]).sort_values("sum", ascending=False)
    total = float(g["sum"].sum())
    div, word = scale_for(g["sum"].tolist(), unit)
    unit_label = " ".join(x for x in (unit, word) if x)
    top = g.head(10)
    rows = [[str(k), str(int(r["count"])), fmt(r["sum"] / div), fmt_pct(r["sum"] / total * 100, signed=False)]
            for k, r in top.iterrows()]
    headers = [t.entity_column, "Members", f"Total {size} ({unit_label})" if unit_label else f"Total {size}",
               "Share of total"]
    numbers = {f"{k} total {size}": float(r["sum"]) for k, r in top.iterrows()}
    numbers.update({f"{k} share": float(r["sum"] / total * 100) for k, r in top.iterrows()})
    numbers.update({"rows": float(len(frame)), "groups": float(len(g)), f"total {size}": total})
    table = Table(markdown_table(headers, rows), f"The 10 largest {t.entity_column.lower()} values by total "
                                                 f"{_lower(size)}", Provenance(tables=[t.id], method=f"sum of "
                                                 f"'{size}' by '{t.entity_column}'", numbers=dict(numbers)))
    fig_path = charts.bar_chart([str(k) for k in top.index], (top["sum"] / div).tolist(), sink.path(f"rank-{size}"),
                                title=f"Total {_lower(size)} by {t.entity_column.lower()} (top 10)",
                                ylabel=unit_label or size, horizontal=True)
    figure = Figure(fig_path, f"Total {_lower(size)} of the 10 largest {t.entity_column.lower()} groups",
                    Provenance(tables=[t.id], method="bar chart of group totals", numbers={}))
    names = list(top.index[:3])
    share3 = float(top["sum"].head(3).sum() / total * 100)
    share10 = float(top["sum"].sum() / total * 100)
    numbers.update({"top3 share": share3, "top10 share": share10})
    sentences = [
        (f"The table lists {len(frame)} rows in {len(g)} {t.entity_column.lower()} groups, with a combined "
         f"{_lower(size)} of {_amount(total, div, word, unit)}."),
        (f"{names[0]} is the largest group with {_amount(top['sum'].iloc[0], div, word, unit)} "
         f"({fmt_pct(top['sum'].iloc[0] / total * 100, signed=False)} of the total)"
         + (f", followed by {names[1]} ({_amount(top['sum'].iloc[1], div, word, unit)})" if len(names) > 1 else "")
         + (f" and {names[2]} ({_amount(top['sum'].iloc[2], div, word, unit)})" if len(names) > 2 else "") + "."),
        (f"The three largest groups hold {fmt_pct(share3, signed=False)} of the total and the ten largest "
         f"{fmt_pct(share10, signed=False)}."),
    ]
    return Finding(title=f"Which {t.entity_column.lower()} groups dominate by {_lower(size)}", sentences=sentences,
                   figures=[figure], tables=[table], numbers=numbers, sources=[t.id], kind="ranking")


def group_ratio_finding(frame, t: TableProfile, rate: str, size: str | None, sink: FigureSink) -> Finding:
    d = frame.dropna(subset=[rate])
    overall = float(d[rate].median())
    g = d.groupby(t.entity_column)[rate].agg(["median", "count"])
    g = g[g["count"] >= 3].sort_values("median", ascending=False)
    numbers = {f"median {rate}": overall}
    rows = []
    for label, part in (("highest", g.head(5)), ("lowest", g.tail(5).iloc[::-1])):
        for k, r in part.iterrows():
            rows.append([str(k), label, str(int(r["count"])), fmt(r["median"])])
            numbers[f"{k} median {rate}"] = float(r["median"])
    table = Table(markdown_table([t.entity_column, "Rank", "Members", f"Median {rate}"], rows, ["l", "l", "r", "r"]),
                  f"{t.entity_column} groups with the highest and lowest median {rate} (groups with 3 or more members)",
                  Provenance(tables=[t.id], method=f"median of '{rate}' by '{t.entity_column}'", numbers=dict(numbers)))
    if size is not None:
        biggest = frame.groupby(t.entity_column)[size].sum().sort_values(ascending=False).head(10).index
        show = d[d[t.entity_column].isin(biggest)].groupby(t.entity_column)[rate].median().reindex(biggest)
        title = f"Median {rate} of the 10 largest {t.entity_column.lower()} groups by {_lower(size)}"
    else:
        show = g["median"].head(10)
        title = f"Median {rate} by {t.entity_column.lower()} (highest 10)"
    for k, v in show.items():
        if not _nan(v):
            numbers[f"{k} median {rate}"] = float(v)
    fig_path = charts.bar_chart([str(k) for k in show.index], show.fillna(0).tolist(), sink.path(f"ratio-{rate}"),
                                title=title, ylabel=rate, horizontal=True, reference=(overall, "median of all rows"))
    figure = Figure(fig_path, title + "; the dashed line is the median over all rows",
                    Provenance(tables=[t.id], method=f"median of '{rate}' by group", numbers={}))
    sentences = [f"The median {rate} across all {len(d)} rows with a value is {fmt(overall)}."]
    numbers["rows with a value"] = float(len(d))
    if len(g) >= 2:
        hi, lo = g.index[0], g.index[-1]
        sentences.append(f"Among groups with at least 3 members, {hi} has the highest median {rate} "
                         f"({fmt(g.at[hi, 'median'])}) and {lo} the lowest ({fmt(g.at[lo, 'median'])}).")
    if size is not None and len(show.dropna()):
        top = show.dropna()
        sentences.append(f"Among the largest groups by {_lower(size)}, the median {rate} ranges from "
                         f"{fmt(top.min())} ({top.idxmin()}) to {fmt(top.max())} ({top.idxmax()}).")
    return Finding(title=f"{rate} by {t.entity_column.lower()}", sentences=sentences, figures=[figure],
                   tables=[table], numbers=numbers, sources=[t.id], kind="valuation")


def correlation_finding(frame, t: TableProfile, size: str, rate: str, sink: FigureSink) -> Finding | None:
    d = frame[[size, rate]].dropna()
    d = d[(d[size] > 0)]
    if len(d) < 10:
        return None
    spearman = float(d[size].rank().corr(d[rate].rank()))
    pearson = float(d[size].corr(d[rate]))
    lo, hi = d[rate].quantile(0.01), d[rate].quantile(0.99)
    shown = d[(d[rate] >= lo) & (d[rate] <= hi)]
    div, word = scale_for(shown[size].tolist(), "USD")
    fig_path = charts.scatter_chart((shown[size] / div).tolist(), shown[rate].tolist(), sink.path(f"scatter-{rate}"),
                                    title=f"{rate} against {_lower(size)} (each point a row)",
                                    xlabel=f"{size} ({word})" if word else size, ylabel=rate, logx=True)
    figure = Figure(fig_path, f"{rate} against {_lower(size)} for every row (1st–99th percentile of {rate}; "
                              "log scale)", Provenance(tables=[t.id], method="scatter of two columns", numbers={}))
    strength = "weak" if abs(spearman) < 0.3 else "moderate" if abs(spearman) < 0.6 else "strong"
    return Finding(title=f"{size} and {rate}", sentences=[
        (f"Across {len(d)} rows the rank correlation between {_lower(size)} and {rate} is {spearman:.2f} "
         f"(Pearson r = {pearson:.2f}): a {strength} relationship.")],
        figures=[figure], numbers={f"spearman {size} {rate}": spearman, f"pearson {size} {rate}": pearson,
                                   "rows": float(len(d))},
        sources=[t.id], kind="correlation")


def top_rows_finding(frame, t: TableProfile, size: str, unit: str, sink: FigureSink) -> Finding:
    label = _label_column(frame, t) or frame.columns[0]
    top = frame.dropna(subset=[size]).sort_values(size, ascending=False).head(10)
    div, word = scale_for(top[size].tolist(), unit)
    unit_label = " ".join(x for x in (unit, word) if x)
    rows = [[str(r[label]), str(r[t.entity_column]) if t.entity_column else "", fmt(r[size] / div)]
            for _, r in top.iterrows()]
    numbers = {f"{r[label]} {size}": float(r[size]) for _, r in top.iterrows()}
    table = Table(markdown_table([label, t.entity_column or "", f"{size} ({unit_label})"], rows, ["l", "l", "r"]),
                  f"The 10 largest rows by {_lower(size)}", Provenance(tables=[t.id], method="top rows",
                                                                       numbers=dict(numbers)))
    fig_path = charts.bar_chart([str(x) for x in top[label]], (top[size] / div).tolist(), sink.path(f"top-{size}"),
                                title=f"The 10 largest by {_lower(size)}", ylabel=unit_label or size, horizontal=True)
    return Finding(title=f"The largest by {_lower(size)}", sentences=[
        f"The largest single row is {top[label].iloc[0]} with {_amount(top[size].iloc[0], div, word, unit)}."],
        figures=[Figure(fig_path, f"The 10 largest rows by {_lower(size)}",
                        Provenance(tables=[t.id], method="bar chart of the largest rows"))],
        tables=[table], numbers=numbers, sources=[t.id], kind="ranking")


def _count_finding(frame, t: TableProfile, sink: FigureSink) -> Finding:
    col = t.entity_column or next((c.name for c in t.columns if c.type == "text"), frame.columns[0])
    counts = frame[col].astype(str).value_counts().head(10)
    rows = [[str(k), str(int(v))] for k, v in counts.items()]
    fig_path = charts.bar_chart(list(counts.index), counts.tolist(), sink.path(f"count-{col}"),
                                title=f"Rows per {col.lower()} (top 10)", ylabel="rows", horizontal=True)
    return Finding(title=f"Rows by {col.lower()}", sentences=[
        f"The table lists {len(frame)} rows; the most common {col.lower()} is {counts.index[0]} ({counts.iloc[0]})."],
        figures=[Figure(fig_path, f"Rows per {col.lower()}", Provenance(tables=[t.id], method="counts"))],
        tables=[Table(markdown_table([col, "Rows"], rows), f"Rows per {col.lower()}",
                      Provenance(tables=[t.id], method="counts"))],
        numbers={"rows": float(len(frame))}, sources=[t.id], kind="ranking")


# ---------------------------------------------------------------------------------------------------------------
# Small helpers


def _relative_units(panel: Panel) -> bool:
    """Prices, money and indexes are compared in percent; physical quantities (ppm, °C) in their own unit."""
    return bool(re.search(r"USD|EUR|GBP|index|\$", panel.unit)) or not panel.unit


def _amount(v: float, div: float, word: str, unit: str) -> str:
    """A scaled amount in prose with the scale word next to the number: "9.81 trillion USD"."""
    return " ".join(x for x in (fmt(v / div), word, unit if unit != "%" else "") if x) + ("%" if unit == "%" else "")


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else ""


def _possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _lower(text: str) -> str:
    """Lower-case a column name for prose, keeping acronyms ("Annual Increase" -> "annual increase", "CO2 PPM")."""
    return " ".join(w.lower() if re.fullmatch(r"[A-Z][a-z]+", w) else w for w in text.split(" "))


def _nan(v) -> bool:
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return True


def _u(unit: str) -> str:
    """A unit after a number in prose; index levels read better bare ("97.31", not "97.31 index (2010=100)")."""
    if not unit or unit.startswith("index"):
        return ""
    return "%" if unit == "%" else f" {unit}"


def _v(v: float, unit: str) -> str:
    div, word = scale_for([v], unit)
    text = fmt(v / div) + (f" {word}" if word else "")
    return text + _u(unit)


def _when(panel: Panel) -> str:
    return {"daily": "daily ", "weekly": "weekly ", "monthly": "monthly ", "quarterly": "quarterly "}.get(
        panel.frequency, "")


def _date(ts, panel: Panel) -> str:
    if panel.frequency == "annual":
        return str(ts.year)
    if panel.frequency in ("monthly", "quarterly"):
        return ts.strftime("%Y-%m")
    return ts.strftime("%Y-%m-%d")


def _month(ts) -> str:
    return ts.strftime("%Y-%m")


def _slope(x: list[float], y: list[float]) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    den = sum((a - mx) ** 2 for a in x)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / den if den else 0.0
