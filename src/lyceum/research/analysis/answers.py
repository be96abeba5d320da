"""Direct answers: the numbers a question names, each stated next to its entity and period.

The standard analyses describe a window of years; a question often asks for something narrower or of another
form: the value in each year it names, how much larger one entity was than another (difference and ratio), a
share of an aggregate ("world"), the change between two named years in absolute and percent terms, an average
over a named span ("2015-2019", "since 2020", "the last five years"), the month of a year with the highest
value, the spread of the observations (standard deviation), or the latest value against a year earlier. Each
rule here answers one such form for every panel, whatever the table or measure.
"""

from __future__ import annotations

import re

from lyceum.research.analysis.panels import Panel, complete_years, is_aggregate, yearly
from lyceum.research.analysis.wording import join_names, lower_words, possessive, with_unit
from lyceum.research.catalog import matched_entities
from lyceum.research.numbers import fmt_pct
from lyceum.research.question import Scope
from lyceum.research.records import Finding
from lyceum.tables import fmt, is_missing

_YEAR = r"(1[5-9]\d\d|20\d\d)"
_AVERAGE = re.compile(r"\b(?:average|averaged|mean|on average|typical(?:ly)?|per year on average)\b", re.IGNORECASE)
_SPREAD = re.compile(r"volatil|standard deviation|\bstd\b|dispersion|variab|fluctuat|stable|stability", re.IGNORECASE)
_LATEST = re.compile(r"\b(?:latest|most recent|current(?:ly)?|today|now|newest|last (?:value|observation|reading))\b",
                     re.IGNORECASE)
_COMPARE = re.compile(r"\btimes\b|larger|bigger|higher|lower|smaller|more than|less than|fewer|greater|compar|gap|"
                      r"differ|versus|\bvs\b|ratio|exceed|ahead|behind|richer|poorer|\bthan\b|expensive|cheaper",
                      re.IGNORECASE)
_HOW_MUCH = re.compile(r"\bhow (?:much|many|far)\b|\bby what\b|\bdifference\b|\babsolute\b", re.IGNORECASE)
_ORDER = re.compile(r"\brank|\border\b|\bhighest\b|\blowest\b|\blargest\b|\bsmallest\b|\bricher|\bpoorer|"
                    r"\bmost\b|\bleast\b", re.IGNORECASE)
_MONTH = re.compile(r"\bmonths?\b|\bmonthly\b", re.IGNORECASE)
_QUARTER = re.compile(r"\bquarters?\b|\bquarterly\b|\bQ[1-4]\b", re.IGNORECASE)
_LOW_WORDS = re.compile(r"lowest|cheapest|coldest|coolest|smallest|weakest|bottom|minimum|least", re.IGNORECASE)
_HIGH_WORDS = re.compile(r"highest|most expensive|warmest|hottest|largest|biggest|strongest|peak|maximum|top|record",
                         re.IGNORECASE)
MAX_PANELS = 3


def answer_findings(panels: list[Panel], scope: Scope, question: str) -> list[Finding]:
    """One finding per panel (the first few) holding the direct answers its question form calls for."""
    out = []
    for panel in [p for p in panels if not p.data.empty][:MAX_PANELS]:
        ordered = _question_order(panel, question)
        sentences: list[str] = []
        numbers: dict[str, float] = {}
        for rule in (named_years, named_months, span_averages, month_extremes, spread, latest_value, threshold_years,
                     peak_year, correlation_within):
            sentences += rule(panel, ordered, scope, question, numbers)
        if sentences:
            out.append(Finding(title=f"Direct answers: {_measure(panel)}", sentences=sentences,
                               numbers=numbers, sources=list(panel.tables), kind="answer"))
    cross = ratio_across_panels(panels, scope, question)
    return ([cross] if cross else []) + out


_RATIO = re.compile(r"\bratio\b|\btimes\b|how many [\w ]+? (?:could|can|would|did) [\w ]*?buy|relative to|"
                    r"\bin terms of\b|\bdivided by\b", re.IGNORECASE)


def ratio_across_panels(panels: list[Panel], scope: Scope, question: str) -> Finding | None:
    """For "the ratio of gold to oil" and "how many barrels of oil could an ounce of gold buy": the first series
    of two panels from different tables, divided one by the other in each year the question names (both ways)."""
    if not _RATIO.search(question):
        return None
    pair = []
    for p in panels:
        if p.is_change or p.data.empty or p.formula or any(set(p.tables) & set(q.tables) for q in pair):
            continue
        pair.append(p)
        if len(pair) == 2:
            break
    if len(pair) < 2:
        return None
    (a, ea), (b, eb) = [(p, _question_order(p, question)[0]) for p in pair]
    years = [y for y in scope.years_named if y in set(a.data["year"]) and y in set(b.data["year"])]
    if not years:
        return None
    va, vb = _annual(a, years)[ea], _annual(b, years)[eb]
    sentences, numbers = [], {}
    for y in years:
        x, z = float(va.get(y, float("nan"))), float(vb.get(y, float("nan")))
        if is_missing(x) or is_missing(z) or x <= 0 or z <= 0:
            continue
        sentences.append(f"In {y}, {possessive(ea)} {_measure(a)} ({with_unit(x, a.unit)}) was {fmt(x / z)} times "
                         f"{possessive(eb)} {_measure(b)} ({with_unit(z, b.unit)}); {eb} to {ea} was {fmt(z / x)}.")
        numbers.update({f"{ea} {y}": x, f"{eb} {y}": z, f"{ea} over {eb} {y}": x / z, f"{eb} over {ea} {y}": z / x})
    if not sentences:
        return None
    return Finding(title=f"{ea} relative to {eb}", sentences=sentences, numbers=numbers,
                   sources=[*a.tables, *b.tables], kind="answer")


def _question_order(panel: Panel, question: str) -> list[str]:
    """The panel's entities in the order the question names them (unnamed ones after)."""
    q = question.lower()

    def pos(e: str) -> int:
        i = q.find(e.lower().split(" (")[0])
        return i if i >= 0 else len(q) + panel.entities.index(e)

    return sorted(panel.entities, key=pos)


def _measure(panel: Panel) -> str:
    """The measure's name short enough for a sentence: a dataset title used as a name is cut before its first
    qualifier ("Population figures for countries, regions (e.g. Asia) and the world" -> "population figures")."""
    name = panel.measure
    if len(name.split()) > 4:
        name = re.split(r",|\(| for | of | in | from ", name)[0].strip() or name
    name = re.sub(r"(?i)[ _]+(thousands?|millions?|billions?|trillions?)$", "", name) or name  # "GDP trillion"
    return lower_words(name)


def _annual(panel: Panel, years: list[int]):
    table = yearly(panel, years)
    return table.loc[[y for y in years if y in table.index]]


def named_years(panel: Panel, entities: list[str], scope: Scope, question: str, numbers: dict) -> list[str]:
    """The value in every year the question names; differences, ratios and shares between the entities in
    those years; and each entity's change between the first and the last named year."""
    have = set(panel.data["year"].dropna().astype(int))
    # Years named as points ("in 2010 and 2020") are answered one by one; the ends of a named span ("from 2000
    # to 2025") are the standard analyses' window, and only a question asking "how much" gets its change here.
    in_span = {y for a, b in scope.periods for y in (a, b)}
    in_span |= {int(y) for y in re.findall(rf"\b(?:since|after|from|before|until)\s+{_YEAR}", question.lower())}
    points = [y for y in scope.years_named if y in have and y not in in_span]
    ends = [y for y in scope.years_named if y in have and y in in_span] if _HOW_MUCH.search(question) else []
    years = sorted(set(points) | {ends[0], ends[-1]} if ends else set(points))
    if not years or panel.is_change and len(years) > 6:
        return []
    if ({"rank"} & scope.intents or scope.top_n) and not any(e.lower().split(" (")[0] in question.lower()
                                                                for e in entities):
        return []  # "which five countries were largest in 1990": the ranking answers; a default few would mislead
    ann = _annual(panel, years)
    unit, out = panel.unit, []
    what = _measure(panel)
    for y in [y for y in ann.index if y in points]:
        vals = [(e, float(ann.at[y, e])) for e in entities if e in ann.columns and not is_missing(ann.at[y, e])]
        if not vals:
            continue
        listed = ", ".join(f"{e} {with_unit(v, unit)}" for e, v in vals) if len(vals) > 1 else \
            f"{with_unit(vals[0][1], unit)} for {vals[0][0]}"
        out.append(f"In {y}, the {what} stood at {listed}.")
        numbers.update({f"{e} {y}": v for e, v in vals})
        if len(vals) >= 3 and _ORDER.search(question):  # "how did Germany, France, Italy and Spain rank"
            low = bool(_LOW_WORDS.search(question)) and not _HIGH_WORDS.search(question)
            ranked = sorted(vals, key=lambda x: x[1], reverse=not low)
            out.append(f"Ranked from {'lowest' if low else 'highest'} in {y}: "
                       + "; ".join(f"{i}. {e} ({with_unit(v, unit)})" for i, (e, v) in enumerate(ranked, 1)) + ".")
        if _COMPARE.search(question) or "share" in scope.intents:
            out += _pairs(vals, y, unit, numbers, what)
    if len(ann.index) >= 2 and is_yearly_rate(panel) and _IN_TOTAL.search(question):
        out += compounded(panel, entities, int(ann.index[0]), int(ann.index[-1]), numbers)
    elif len(ann.index) >= 2 and (not panel.is_change or unit == "%"):
        y0, y1 = int(ann.index[0]), int(ann.index[-1])
        for e in entities:
            if e not in ann.columns or is_missing(ann.at[y0, e]) or is_missing(ann.at[y1, e]):
                continue
            v0, v1 = float(ann.at[y0, e]), float(ann.at[y1, e])
            verb = "rose" if v1 > v0 else "fell" if v1 < v0 else "was unchanged"
            text = f"Between {y0} and {y1}, {possessive(e)} {what} {verb}"
            if v1 != v0:
                by = f"{fmt(abs(v1 - v0))} percentage points" if unit == "%" else with_unit(abs(v1 - v0), unit)
                text += f" by {by}, from {with_unit(v0, unit)} to {with_unit(v1, unit)}"
                numbers[f"{e} change {y0}-{y1}"] = v1 - v0
                if v0 > 0 and v1 > 0 and unit != "%":
                    text += f" ({fmt_pct((v1 / v0 - 1) * 100)})"
                    numbers[f"{e} change {y0}-{y1} %"] = (v1 / v0 - 1) * 100
            out.append(text + ".")
    return out


# A question about the level yearly rates move ("how much did prices rise in total"), not about the rate itself.
_IN_TOTAL = re.compile(r"\bin total\b|\btotal\b|\bcumulativ|\boverall\b|\baltogether\b|\bcompound", re.IGNORECASE)


def is_yearly_rate(panel: Panel) -> bool:
    """A panel of yearly percentage rates (inflation, growth): its changes compound rather than subtract."""
    return panel.unit == "%" and panel.frequency == "annual" and (
        panel.is_change or bool(re.search(r"inflation|growth|change|rate", panel.measure, re.IGNORECASE)))


def compounded(panel: Panel, entities: list[str], y0: int, y1: int, numbers: dict) -> list[str]:
    """The total rise that yearly rates add up to between two years ("how much did prices rise in total between
    2000 and 2020"): the product of (1 + rate) over the years after the first, and with the first year's too."""
    ann = yearly(panel, list(range(y0, y1 + 1)))
    out = []
    for e in entities:
        if e not in ann.columns:
            continue
        s = ann[e].dropna()
        after = s.loc[y0 + 1:y1]
        if len(after) < y1 - y0:
            continue  # a missing year would understate the total
        total = float((1 + after / 100).prod() - 1) * 100
        text = (f"Compounding the yearly rates of {y0 + 1}–{y1}, {possessive(e)} {_measure(panel)} adds up to a total "
                f"rise of {fmt_pct(total)} between {y0} and {y1}")
        numbers[f"{e} compounded {y0 + 1}-{y1} %"] = total
        if y0 in s.index:
            with_first = float((1 + s.loc[y0:y1] / 100).prod() - 1) * 100
            text += f" ({fmt_pct(with_first)} counting {y0}'s own rate as well)"
            numbers[f"{e} compounded {y0}-{y1} %"] = with_first
        out.append(text + ".")
    return out


def _pairs(vals: list[tuple[str, float]], y, unit: str, numbers: dict, what: str = "value") -> list[str]:
    """How much larger the first-named entity is than each other one (larger first, so that "how much lower" and
    "how many times larger" read off the same sentence), and each entity's share of an aggregate ("World")."""
    out = []
    # Series of two tables carry their table's word ("Spain (Nominal)"): each is compared with its own kind.
    kinds = list(dict.fromkeys(_kind(e) for e, _ in vals))
    if len(kinds) > 1:
        return [s for k in kinds for s in _pairs([(e, v) for e, v in vals if _kind(e) == k], y, unit, numbers, what)]
    # Only a whole ("World") holds the others; a region or union beside a country is compared with it, not a total.
    aggregates = [(e, v) for e, v in vals if _WHOLE.search(e)]
    members = [(e, v) for e, v in vals if not _WHOLE.search(e)]
    first = members[0] if members else None
    for e, v in members[1:]:
        (a, va), (b, vb) = sorted([first, (e, v)], key=lambda x: -x[1])
        gap = f"{fmt(va - vb)} percentage points" if unit == "%" else with_unit(va - vb, unit)
        text = f"In {y}, {possessive(a)} {what} was {gap} higher than {possessive(b)}"
        numbers[f"{a} minus {b} {y}"] = va - vb
        if vb > 0 and unit != "%":  # rates are compared in points, not as ratios
            text += f" ({fmt_pct((va / vb - 1) * 100, signed=False)} more; {fmt(va / vb)} times as large)"
            numbers[f"{a} over {b} {y}"] = va / vb
            numbers[f"{a} over {b} {y} %"] = (va / vb - 1) * 100
        out.append(text + ".")
    for g, total in aggregates:
        if total <= 0:
            continue
        for e, v in members:
            out.append(f"In {y}, {e} accounted for {fmt_pct(v / total * 100, signed=False)} of the {g} total "
                       f"({with_unit(v, unit)} of {with_unit(total, unit)}).")
            numbers[f"{e} share of {g} {y} %"] = v / total * 100
        if len(members) >= 2:  # "what share did the United States and China produce together"
            together = sum(v for _, v in members)
            out.append(f"In {y}, {join_names([e for e, _ in members])} together accounted for "
                       f"{fmt_pct(together / total * 100, signed=False)} of the {g} total ({with_unit(together, unit)}).")
            numbers[f"members share of {g} {y} %"] = together / total * 100
            numbers[f"members total {y}"] = together
    return out


_WHOLE = re.compile(r"\b(?:world|global|total|all countries)\b", re.IGNORECASE)


def _kind(entity: str) -> str:
    m = re.search(r"\(([^()]*)\)$", entity)
    return m.group(1) if m else ""


def asked_spans(scope: Scope, question: str, last_year: int) -> list[tuple[int, int, str]]:
    """Spans of years a question asks an average over: named ranges, "since 2020" (to the latest complete year)
    and "the last five years": (start, end, label)."""
    q = question.lower()
    spans = [(a, b, f"{a}–{b}") for a, b in scope.periods if b > a]
    for y in re.findall(rf"\b(?:since|after|from)\s+{_YEAR}(?!\s*(?:[-–—]|to|and|until|through)\s*\d)", q):
        y = int(y)
        if y < last_year and all(a != y for a, _, _ in spans):
            spans.append((y, last_year, f"{y}–{last_year}"))
    if scope.last_years:
        start = last_year - scope.last_years + 1
        spans.append((start, last_year, f"the last {scope.last_years} years of data ({start}–{last_year})"))
    return spans


def span_averages(panel: Panel, entities: list[str], scope: Scope, question: str, numbers: dict) -> list[str]:
    """The average of the annual values over each span the question asks an average for."""
    if not _AVERAGE.search(question):
        return []
    full = complete_years(panel)
    if not full:
        return []
    out = []
    for a, b, label in asked_spans(scope, question, max(full)):
        ann = yearly(panel, [y for y in range(a, b + 1) if y in full])
        if ann.empty:
            continue
        for e in entities:
            if e not in ann.columns:
                continue
            s = ann[e].dropna()
            if s.empty:
                continue
            first, last = int(s.index.min()), int(s.index.max())
            span = label if (first, last) == (a, b) else f"{first}–{last}"
            out.append(f"Over {span}, {possessive(e)} {_measure(panel)} averaged {with_unit(float(s.mean()), panel.unit)} "
                       f"({len(s)} annual values).")
            numbers.update({f"{e} mean {first}-{last}": float(s.mean()), f"{e} years {first}-{last}": len(s)})
        means = [(e, float(ann[e].dropna().mean())) for e in entities if e in ann.columns and ann[e].notna().any()]
        if len(means) >= 2 and _COMPARE.search(question):
            out += _pairs(means, label, panel.unit, numbers, f"average {_measure(panel)}")
    return out


def month_extremes(panel: Panel, entities: list[str], scope: Scope, question: str, numbers: dict) -> list[str]:
    """For "in which month of 2022 was Brent highest": the monthly averages of each named year, highest and
    lowest month."""
    quarters = bool(_QUARTER.search(question))
    if not (_MONTH.search(question) or quarters) or panel.frequency in ("annual", "irregular") or \
            (panel.frequency == "quarterly" and not quarters):
        return []
    years = [y for y in scope.years_named if y in set(panel.data["year"].dropna().astype(int))] or \
        [int(panel.data["year"].max())]
    want_low, want_high = bool(_LOW_WORDS.search(question)), bool(_HIGH_WORDS.search(question))
    out = []
    for y in years[:3]:
        d = panel.data[panel.data["year"] == y]
        for e in entities:
            g = d[d["entity"] == e]
            if g.empty:
                continue
            step = g["time"].dt.quarter if quarters else g["time"].dt.month
            months = g.groupby(step)["value"].mean()
            hi, lo = int(months.idxmax()), int(months.idxmin())
            name = (lambda m: f"Q{m}") if quarters else \
                (lambda m, g=g: g[g["time"].dt.month == m]["time"].iloc[0].strftime("%B"))
            parts = []
            if want_high or not want_low:
                parts.append(f"highest in {name(hi)} {y} ({with_unit(float(months[hi]), panel.unit)})")
            if want_low or not want_high:
                parts.append(f"lowest in {name(lo)} {y} ({with_unit(float(months[lo]), panel.unit)})")
            what = "quarterly" if quarters else "monthly"
            out.append(f"{possessive(e)} {what} average {_measure(panel)} in {y} was " + " and ".join(parts) + ".")
            numbers.update({f"{e} {y}-{hi:02d}": float(months[hi]), f"{e} {y}-{lo:02d}": float(months[lo])})
    return out


def spread(panel: Panel, entities: list[str], scope: Scope, question: str, numbers: dict) -> list[str]:
    """Standard deviation of the observations (at their own frequency) in each named year, or over the period."""
    if not _SPREAD.search(question):
        return []
    years = [y for y in scope.years_named if y in set(panel.data["year"].dropna().astype(int))]
    spans = [(y, y, str(y)) for y in years] if len(years) <= 3 and not scope.periods else []
    if not spans:
        a = scope.start_year or int(panel.data["year"].min())
        b = scope.end_year or int(panel.data["year"].max())
        spans = [(a, b, f"{a}–{b}")]
    freq = panel.frequency if panel.frequency != "irregular" else ""
    out = []
    for a, b, label in spans:
        d = panel.data[(panel.data["year"] >= a) & (panel.data["year"] <= b)]
        for e in entities:
            s = d[d["entity"] == e].sort_values("time")["value"]
            if len(s) < 3:
                continue
            sd, mean = float(s.std()), float(s.mean())
            text = (f"In {label}, {possessive(e)} {freq + ' ' if freq else ''}{_measure(panel)} had a standard deviation "
                    f"of {with_unit(sd, panel.unit)} around a mean of {with_unit(mean, panel.unit)}")
            numbers.update({f"{e} sd {label}": sd, f"{e} mean {label}": mean})
            if mean > 0:
                text += f" (coefficient of variation {fmt_pct(sd / mean * 100, signed=False)})"
                numbers[f"{e} cv {label} %"] = sd / mean * 100
            changes = s.pct_change().dropna() * 100
            if len(changes) >= 3 and (s > 0).all():
                text += f"; its {freq + ' ' if freq else ''}percentage changes had a standard deviation of " \
                        f"{fmt(float(changes.std()))} points"
                numbers[f"{e} sd of changes {label}"] = float(changes.std())
            out.append(text + ".")
    return out


def latest_value(panel: Panel, entities: list[str], scope: Scope, question: str, numbers: dict) -> list[str]:
    """The latest observation of each entity, and the observation closest to a year before it."""
    if not _LATEST.search(question):
        return []
    out = []
    for e in entities:
        g = panel.data[panel.data["entity"] == e].sort_values("time")
        if g.empty:
            continue
        last = g.iloc[-1]
        when = _when(last["time"], panel)
        text = f"The latest {_measure(panel)} for {e} is {with_unit(float(last['value']), panel.unit)} ({when})"
        numbers[f"{e} latest"] = float(last["value"])
        earlier = g[g["time"] <= _a_year_before(last["time"])]
        if not earlier.empty:
            prev = earlier.iloc[-1]
            v0, v1 = float(prev["value"]), float(last["value"])
            text += f"; a year earlier ({_when(prev['time'], panel)}) {e} was {with_unit(v0, panel.unit)}"
            numbers[f"{e} a year before latest"] = v0
            if v0 > 0 and v1 > 0:
                text += f", a change of {fmt_pct((v1 / v0 - 1) * 100)}"
                numbers[f"{e} change over the latest year %"] = (v1 / v0 - 1) * 100
        out.append(text + ".")
    return out


def _a_year_before(ts):
    import pandas as pd

    return ts - pd.DateOffset(years=1) + pd.Timedelta(days=3)  # a few days' slack: dated observations drift


def _when(ts, panel: Panel) -> str:
    if panel.frequency == "annual":
        return str(ts.year)
    if panel.frequency in ("monthly", "quarterly"):
        return ts.strftime("%B %Y")
    return ts.strftime("%Y-%m-%d")


_THRESHOLD = re.compile(
    r"\b(above|over|more than|exceed(?:ed|s|ing)?|higher than|greater than|top(?:ped)?|cross(?:ed)?|pass(?:ed)?|"
    r"reach(?:ed)?|hit|below|under|less than|lower than|fell below)\s+(?:the\s+|a\s+)?(?:\$|usd\s*|us\$)?"
    r"(-?\d[\d,]*(?:\.\d+)?|zero)(?!\d)\s*(thousand|million|billion|trillion|bn|%|percent)?", re.IGNORECASE)
_SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "bn": 1e9, "trillion": 1e12}


def asked_threshold(question: str) -> tuple[float, bool, str] | None:
    """A threshold the question names ("above 100 dollars", "first exceed 7 billion", "below 2%"): (value, whether
    it is a floor crossed upwards, the words as written). A bare year ("after 2000") is not a threshold."""
    for m in _THRESHOLD.finditer(question):
        number = 0.0 if m.group(2).lower() == "zero" else float(m.group(2).replace(",", ""))
        scale = (m.group(3) or "").lower()
        if not scale and re.fullmatch(r"(1[5-9]|20)\d\d", m.group(2)):
            continue
        value = number * _SCALE.get(scale, 1.0)
        upward = not re.match(r"below|under|less|lower|fell", m.group(1), re.IGNORECASE)
        return value, upward, m.group(0).strip()
    return None


def threshold_years(panel: Panel, entities: list[str], scope: Scope, question: str, numbers: dict) -> list[str]:
    """For "in how many years was Brent above 100 dollars" and "when did CO2 first exceed 400 ppm": the years of
    the period whose annual value (or average) is past the threshold, how many they are, and the first of them."""
    asked = asked_threshold(question)
    if asked is None:
        return []
    value, upward, _words = asked
    if not panel.data["value"].min() < value < panel.data["value"].max():
        return []  # a threshold outside the series' range is about another measure (2.5 ppm a year, not 420 ppm)
    full = complete_years(panel)
    if not full:
        return []
    start = scope.start_year or min(full)
    end = min(scope.end_year or max(full), max(full))
    ann = yearly(panel, [y for y in sorted(full) if start <= y <= end])
    what = "annual value" if panel.frequency == "annual" else "annual average"
    out = []
    for e in entities:
        if e not in ann.columns:
            continue
        s = ann[e].dropna()
        if s.empty:
            continue
        past = s[s > value] if upward else s[s < value]
        side = "above" if upward else "below"
        text = (f"{possessive(e)} {what} was {side} {with_unit(value, panel.unit)} in {len(past)} of the {len(s)} years "
                f"{int(s.index.min())}–{int(s.index.max())}")
        numbers.update({f"{e} years {side} threshold": len(past), f"{e} years counted": len(s), f"{e} threshold": value})
        if not past.empty:
            first = int(past.index.min())
            listed = f" ({', '.join(str(int(y)) for y in past.index)})" if len(past) <= 12 else ""
            text += f"{listed}; the first was {first}, at {with_unit(float(past.iloc[0]), panel.unit)}"
            numbers[f"{e} first year {side} threshold"] = float(past.iloc[0])
        out.append(text + ".")
        if panel.frequency != "annual":
            for y in [y for y in scope.years_named if y in s.index][:4]:
                obs = panel.data[(panel.data["entity"] == e) & (panel.data["year"] == y)]["value"]
                n = int((obs > value).sum() if upward else (obs < value).sum())
                out.append(f"In {y}, {possessive(e)} {panel.frequency} {_measure(panel)} was {side} "
                           f"{with_unit(value, panel.unit)} in {n} of its {len(obs)} observations.")
                numbers.update({f"{e} {y} observations {side}": n, f"{e} {y} observations": len(obs)})
            obs = panel.data[(panel.data["entity"] == e) & (panel.data["year"] >= start)].sort_values("time")
            hit = obs[obs["value"] > value] if upward else obs[obs["value"] < value]
            if not hit.empty:
                row = hit.iloc[0]
                out.append(f"The first {panel.frequency} observation of {e} {side} {with_unit(value, panel.unit)} "
                           f"since {start} was {with_unit(float(row['value']), panel.unit)} ({_when(row['time'], panel)}).")
                numbers[f"{e} first observation {side} threshold"] = float(row["value"])
    return out


_PEAK = re.compile(r"\bpeak(?:ed|s)?\b|\btop(?:ped)? out\b|\bbottom(?:ed)? out\b|\btrough\b|\ball-time\b|\brecord\b|"
                   r"\bhighest\b|\blowest\b|\bmaximum\b|\bminimum\b|\bbottom\b|cheapest|most expensive|warmest|"
                   r"hottest|coldest|coolest|strongest|weakest", re.IGNORECASE)
_WHEN = re.compile(r"\bwhen\b|\b(?:which|what) year\b|\byear\b", re.IGNORECASE)
_LOW_END = re.compile(r"\bbottom|\btrough|\blowest\b|\bminimum\b|record low|all-time low|cheapest|coldest|weakest",
                      re.IGNORECASE)


def peak_year(panel: Panel, entities: list[str], scope: Scope, question: str, numbers: dict) -> list[str]:
    """For "when did US house prices peak" and "in which year was Brent cheapest": the year of the highest (or
    lowest) annual value or average in the period, and the single highest (lowest) observation."""
    if not (_PEAK.search(question) and _WHEN.search(question)) or _MONTH.search(question):
        return []
    full = complete_years(panel)
    if not full:
        return []
    start = max(scope.start_year or min(full), min(full))
    end = min(scope.end_year or max(full), max(full))
    ann = yearly(panel, [y for y in sorted(full) if start <= y <= end])
    low = bool(_LOW_END.search(question))
    high = not low or bool(re.search(r"\bpeak|\bhighest\b|\bmaximum\b|record high|all-time high|most expensive|"
                                     r"warmest|hottest|strongest", question, re.IGNORECASE))
    # The measure by name ("United Kingdom's consumer price inflation was highest in 1975"), not "annual value".
    what = _measure(panel) if panel.frequency == "annual" else f"{_measure(panel)} (annual average)"
    out = []
    for e in entities:
        if e not in ann.columns:
            continue
        s = ann[e].dropna()
        if len(s) < 2:
            continue
        for wanted, word in ((high, "highest"), (low, "lowest")):
            if not wanted:
                continue
            y = int(s.idxmax() if word == "highest" else s.idxmin())
            text = (f"Over {int(s.index.min())}–{int(s.index.max())}, {possessive(e)} {what} was {word} in {y}, at "
                    f"{with_unit(float(s[y]), panel.unit)}")
            numbers[f"{e} {word} year {y}"] = float(s[y])
            if panel.frequency != "annual":
                d = panel.data[(panel.data["entity"] == e) & panel.data["year"].between(start, end)]
                row = d.loc[d["value"].idxmax() if word == "highest" else d["value"].idxmin()]
                text += (f"; its {word} single {panel.frequency} observation was "
                         f"{with_unit(float(row['value']), panel.unit)} ({_when(row['time'], panel)})")
                numbers[f"{e} {word} observation"] = float(row["value"])
            out.append(text + ".")
    return out


_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_MONTH_NAMED = re.compile(rf"\b({'|'.join(m[:3] for m in _MONTHS)})[a-z]*\.?\s+{_YEAR}\b", re.IGNORECASE)


def named_months(panel: Panel, entities: list[str], scope: Scope, question: str, numbers: dict) -> list[str]:
    """For "the price in April 2020" on a daily, weekly or monthly table: each entity's average in that month."""
    if panel.frequency in ("annual", "quarterly", "irregular"):
        return []
    out = []
    for abbr, year in _MONTH_NAMED.findall(question):
        month = [m[:3] for m in _MONTHS].index(abbr.lower()) + 1
        d = panel.data[(panel.data["year"] == int(year)) & (panel.data["time"].dt.month == month)]
        for e in entities:
            g = d[d["entity"] == e]["value"]
            if g.empty:
                continue
            name = _MONTHS[month - 1].capitalize()
            what = "was" if len(g) == 1 else "averaged"
            out.append(f"In {name} {year}, {possessive(e)} {_measure(panel)} {what} {with_unit(float(g.mean()), panel.unit)}"
                       + (f" over {len(g)} observations, ranging from {with_unit(float(g.min()), panel.unit)} to "
                          f"{with_unit(float(g.max()), panel.unit)}" if len(g) > 1 else "") + ".")
            numbers.update({f"{e} {year}-{month:02d}": float(g.mean()), f"{e} {year}-{month:02d} min": float(g.min()),
                            f"{e} {year}-{month:02d} max": float(g.max()), f"{e} {year}-{month:02d} n": len(g)})
    return out


def correlation_within(panel: Panel, entities: list[str], scope: Scope, question: str, numbers: dict) -> list[str]:
    """For "how closely did US and UK house prices move together": the correlation of two entities' annual values
    (and of their year-on-year changes) over the period."""
    if "correlation" not in scope.intents or len(entities) < 2:
        return []
    named = matched_entities(question, [e.split(" (")[0] for e in entities])
    entities = [e for e in entities if e.split(" (")[0] in named]
    if len(entities) < 2:  # series the question does not name are the standard analyses' business
        return []
    full = complete_years(panel)
    start = max(scope.start_year or min(full or {0}), min(full or {0}))
    end = min(scope.end_year or max(full or {0}), max(full or {0}))
    ann = yearly(panel, [y for y in sorted(full) if start <= y <= end])
    a, b = entities[:2]
    if a not in ann.columns or b not in ann.columns:
        return []
    both = ann[[a, b]].dropna()
    if len(both) < 4:
        return []
    r, rd = float(both[a].corr(both[b])), float(both.diff()[a].corr(both.diff()[b]))
    y0, y1 = int(both.index.min()), int(both.index.max())
    numbers.update({f"{a} {b} r {y0}-{y1}": r, f"{a} {b} r changes {y0}-{y1}": rd, f"{a} {b} years": len(both)})
    changes = "" if is_missing(rd) else f" and {fmt(rd)} in year-on-year changes"
    return [(f"Over {y0}–{y1}, the annual {_measure(panel)} of {a} and {b} have a correlation of {fmt(r)} in levels"
             f"{changes} ({len(both)} years).")]


_HOW_MANY = re.compile(r"\bhow many\b|\bnumber of\b|\bcount\b", re.IGNORECASE)


def entities_past_threshold(frame, t, measure: str, question: str, scope: Scope) -> Finding | None:
    """For "how many countries had inflation above 10% in 2022": the entities of a wide table (groups and regions
    left out) whose value in the named year (else the latest year most report) is past the threshold."""
    asked = asked_threshold(question)
    if asked is None or not _HOW_MANY.search(question) or measure is None:
        return None
    value, upward, _ = asked
    import pandas as pd

    time = frame[t.time_column]
    years = time.astype("Int64") if t.column(t.time_column).type == "year" else pd.to_datetime(time, errors="coerce").dt.year
    d = pd.DataFrame({"year": years, "entity": frame[t.entity_column].astype(str), "value": frame[measure]}).dropna()
    counts = d.groupby("year")["entity"].nunique()
    named = [y for y in scope.years_named if y in counts.index]
    year = named[-1] if named else int(counts[counts >= 0.8 * counts.max()].index.max())
    at = d[d["year"] == year].groupby("entity")["value"].mean()
    members = at[[not is_aggregate(e) for e in at.index]]
    past = members[members > value] if upward else members[members < value]
    side = "above" if upward else "below"
    past = past.sort_values(ascending=not upward)
    listed = join_names([f"{e} ({fmt(v)})" for e, v in past.head(5).items()])
    groups = at[[is_aggregate(e) for e in at.index]]
    text = (f"In {year}, {len(past)} of the {len(members)} {t.entity_column.lower()} values with data (groups and "
            f"regions left out) had {lower_words(measure)} {side} {fmt(value)}")
    text += f"; the furthest {side} it were {listed}." if listed else "."
    numbers = {f"count {side} {year}": len(past), f"count {year}": len(members), "threshold": value}
    numbers.update({f"{e} {year}": float(v) for e, v in past.head(5).items()})
    if len(groups):
        all_past = int((at > value).sum() if upward else (at < value).sum())
        text += f" Counting groups and regions too, {all_past} of {len(at)} were."
        numbers.update({f"count {side} with groups {year}": all_past, f"count with groups {year}": len(at)})
    return Finding(title=f"How many were {side} {fmt(value)} in {year}", sentences=[text], numbers=numbers,
                   sources=[t.id], kind="answer")
