"""Measures derived from two tables: a panel joined with another table on entity and year.

Real terms: a money series divided by its country's consumer price index (a currency's country for a series
without entities: gold in USD uses the United States' CPI), in the prices of the latest year. Per capita: "GDP per capita in India and China" has no table of its own; it is GDP (one table) divided by
population (another), joined on country and year. The derived panel carries the formula, both tables and both
columns in its provenance, and then goes through the same analyses as any panel (levels, changes, peaks,
comparisons), so every number it produces is traceable to the two published series.

    panels += per_capita_panels(catalog, panels, question)
"""

from __future__ import annotations

import re

from lyceum.research.analysis.panels import Panel
from lyceum.research.catalog import Catalog, TableProfile
from lyceum.research.question import CURRENCIES

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


REAL_TERMS = re.compile(r"\breal terms\b|\bin real\b|inflation[- ]adjusted|adjust(?:ed|ing|s)? for (?:[\w-]+ ){0,3}?inflation|"
                        r"relative to inflation|\bdeflated\b|constant (?:prices|dollars)|after inflation", re.IGNORECASE)
_CURRENCY_COUNTRY = {"USD": "United States", "GBP": "United Kingdom", "JPY": "Japan", "CNY": "China",
                     "INR": "India", "CAD": "Canada", "AUD": "Australia", "CHF": "Switzerland"}


def asks_real_terms(question: str) -> bool:
    return bool(REAL_TERMS.search(question)) or asked_base_year(question) is not None


def price_index(catalog: Catalog) -> tuple[TableProfile, str] | None:
    """The catalog's consumer price index table (per country and year): (profile, measure column)."""
    for p, _ in catalog.search("consumer price index CPI inflation", k=10, expand=False):
        text = f"{p.title} {p.description}".lower()
        if p.time_column and p.entity_column and "consumer price" in text:
            cols = [c.name for c in p.numeric_columns if not re.search(r"code", c.name, re.IGNORECASE)]
            if cols:
                return p, cols[0]
    return None


def price_index_years(catalog: Catalog, cpi_table: TableProfile, cpi_col: str):
    """The price index as rows of (year, country, cpi), its time column read as calendar years."""
    import pandas as pd

    frame = catalog.frame(cpi_table.id)
    year_col = cpi_table.time_column
    years = frame[year_col].astype("Int64") if cpi_table.column(year_col).type == "year" else \
        pd.to_datetime(frame[year_col], errors="coerce").dt.year
    return pd.DataFrame({"year": years, "country": frame[cpi_table.entity_column].astype(str),
                         "cpi": frame[cpi_col].astype(float)}).dropna()


def price_index_rows(catalog: Catalog):
    """The catalog's price index and its rows by calendar year: (profile, measure column, rows), or None."""
    found = price_index(catalog)
    if found is None:
        return None
    return (*found, price_index_years(catalog, *found))


def index_levels(values, description: str) -> tuple[object, str]:
    """A price index as levels, and how it was read.

    A table described as an index ("2005 = 100") whose values are nowhere near 100 in that year, and small
    (a median under 30), holds yearly percentage changes (the World Bank's FP.CPI.TOTL.ZG is published under
    the index's name); those are chained into an index, and the report says so.
    """
    m = re.search(r"(?:reference|base) year is (\d{4})|(\d{4}) ?= ?100|base year (\d{4})", description, re.IGNORECASE)
    base = int(next(g for g in m.groups() if g)) if m else None
    if base in values.index and 50 <= values[base] <= 150:
        return values, f"index levels ({base} = 100)"
    if values.abs().median() < 30:
        chained = (1 + values / 100).cumprod()
        chained = chained / chained[base] * 100 if base in chained.index else chained / chained.iloc[-1] * 100
        return chained, ("yearly percentage changes (though described as an index), chained into an index"
                         + (f" with {base} = 100" if base in chained.index else ""))
    return values, "index levels"


_BASE_YEAR = re.compile(r"\b(?:constant|in|at)\s+(1[5-9]\d\d|20\d\d)\s+(?:u\.?s\.?\s+|us\s+)?(?:dollars|prices|usd|"
                        r"euros|pounds|yen|money)\b|\b(1[5-9]\d\d|20\d\d)\s*(?:dollars|prices)\b", re.IGNORECASE)


def asked_base_year(question: str) -> int | None:
    """The year whose prices a real-terms question asks for ("in constant 2000 US dollars", "at 2010 prices")."""
    m = _BASE_YEAR.search(question)
    return int(m.group(1) or m.group(2)) if m else None


def deflated_panels(catalog: Catalog, panels: list[Panel], question: str) -> list[Panel]:
    """For a real-terms question, each money panel divided by its country's CPI, in the latest year's prices."""
    import pandas as pd

    if not asks_real_terms(question):
        return []
    found = price_index_rows(catalog)
    if found is None:
        return []
    cpi_table, cpi_col, cpi = found
    out = []
    for panel in panels:
        money = re.match(r"([A-Z]{3})\b", panel.unit or "")
        if panel.is_change or not money or "real" in panel.measure.lower() or \
                any("real" in t.lower() for t in panel.tables):
            continue
        yearly = panel.data.groupby(["entity", "year"], as_index=False)["value"].mean()
        country_of = {e: e if e in set(cpi["country"]) else _CURRENCY_COUNTRY.get(money.group(1))
                      for e in yearly["entity"].unique()}
        parts, how = [], ""
        for entity, country in country_of.items():
            series = cpi[cpi["country"] == country].set_index("year")["cpi"].sort_index()
            if series.empty:
                continue
            levels, how = index_levels(series, cpi_table.description)
            rows = yearly[yearly["entity"] == entity].merge(levels.rename("cpi").reset_index(), on="year")
            if rows.empty:
                continue
            base_year = int(rows["year"].max())
            asked = asked_base_year(question)
            if asked is not None and asked in levels.index:  # "in constant 2000 US dollars"
                base_year = asked
            rows["value"] = rows["value"] * float(levels[base_year]) / rows["cpi"]
            parts.append(rows.assign(base_year=base_year, country=country))
        if not parts:
            continue
        joined = pd.concat(parts, ignore_index=True)
        base_year = int(joined["base_year"].min())
        joined["time"] = pd.to_datetime(joined["year"].astype(int).astype(str) + "-07-01")
        # The series' name says it is deflated: beside the published one, "Brent was 57.05 USD/bbl in 1990" would
        # read as a second, contradicting nominal price.
        label = f" (in constant {base_year} {money.group(1)})"
        joined["entity"] = joined["entity"] + label
        formula = (f"{panel.measure} ({', '.join(panel.tables)}, yearly averages) deflated: "
                   f"x CPI({base_year}) / CPI(year) "
                   f"from {cpi_table.id} '{cpi_col}' of {', '.join(sorted(set(joined['country'])))}, read as {how}")
        out.append(Panel(measure=f"{panel.measure} in constant {base_year} {money.group(1)}", unit=panel.unit,
                         frequency="annual", data=joined[["time", "year", "entity", "value"]],
                         tables=[*panel.tables, cpi_table.id], is_change=False,
                         entities=[e + label for e in panel.entities if e + label in set(joined["entity"])],
                         formula=formula, definitions=panel.definitions))
    return out


INFLATION = re.compile(r"\binflation\b|\bconsumer prices\b|\bcost of living\b", re.IGNORECASE)


def inflation_panels(catalog: Catalog, panels: list[Panel], question: str) -> list[Panel]:
    """For a question that sets a series against inflation ("US house prices vs inflation"): the yearly
    consumer price inflation of the countries concerned, from the catalog's price index, as a panel of its own.

    The countries are those the question names, else those of the other panels' entities or currencies. A
    real-terms question ("adjusted for inflation") is answered by deflating instead (``deflated_panels``).
    """
    import pandas as pd

    from lyceum.research.catalog import matched_entities

    if not INFLATION.search(question) or asks_real_terms(question):
        return []
    found = price_index_rows(catalog)
    if found is None:
        return []
    cpi_table, cpi_col, cpi = found
    known = set(cpi["country"])
    countries = [c for c in matched_entities(question, sorted(known)) if c in known]
    if not countries:
        for panel in panels:
            money = re.match(r"([A-Z]{3})\b", panel.unit or "")
            for e in panel.entities:
                country = e if e in known else _CURRENCY_COUNTRY.get(money.group(1)) if money else None
                if country and country not in countries:
                    countries.append(country)
    parts, how = [], ""
    for country in countries:
        series = cpi[cpi["country"] == country].set_index("year")["cpi"].sort_index()
        levels, how = index_levels(series, cpi_table.description)
        rate = series if how.startswith("yearly percentage changes") else levels.pct_change() * 100
        rate = rate.dropna()
        parts.append(pd.DataFrame({"year": rate.index.astype(int), "entity": country, "value": rate.values}))
    if not parts:
        return []
    joined = pd.concat(parts, ignore_index=True)
    joined["time"] = pd.to_datetime(joined["year"].astype(str) + "-07-01")
    formula = (f"the yearly percentage changes that {cpi_table.id} '{cpi_col}' holds (though described as an index)"
               if how.startswith("yearly percentage changes") else
               f"the year-on-year percentage change of {cpi_table.id} '{cpi_col}'")
    return [Panel(measure="consumer price inflation", unit="%", frequency="annual",
                  data=joined[["time", "year", "entity", "value"]], tables=[cpi_table.id], is_change=True,
                  entities=countries, formula=formula)]


_AGAINST = re.compile(r"compar|relative|\bvs\.?\b|versus|against|outpac|kept up|keep up|keeping up|beat|"
                      r"faster|slower|than", re.IGNORECASE)


def against_inflation(catalog: Catalog, panels: list[Panel], question: str, scope, sink) -> list:
    """"US house prices vs inflation": each published level series set against its country's consumer prices
    over the same years: the series' change, the cumulative inflation (the price index chained into levels) and
    the change in real terms, (1 + change) / (1 + inflation) - 1. Series already in real terms are left out."""
    from lyceum.research.analysis.panels import choose_window, yearly
    from lyceum.research.analysis.wording import with_unit
    from lyceum.research.numbers import fmt_pct
    from lyceum.research.records import Finding, Provenance, Table
    from lyceum.tables import fmt, markdown_table

    if not INFLATION.search(question) or asks_real_terms(question) or not _AGAINST.search(question):
        return []
    found = price_index_rows(catalog)
    if found is None:
        return []
    cpi_table, cpi_col, cpi = found
    known = set(cpi["country"])
    out = []
    for panel in panels:
        if panel.is_change or cpi_table.id in panel.tables or re.search(r"\breal\b", panel.measure, re.IGNORECASE):
            continue
        money = re.match(r"([A-Z]{3})\b", panel.unit or "")
        w = choose_window(panel, scope)
        ann = yearly(panel, w.years())
        sentences, rows, numbers, how = [], [], {}, ""
        for e in ann.columns:
            if re.search(r"\breal\b", str(e), re.IGNORECASE):
                continue  # already deflated: set against inflation it would be counted twice
            base = str(e).split(" (")[0]
            country = base if base in known else _CURRENCY_COUNTRY.get(money.group(1)) if money else None
            if country is None:
                continue
            levels, how = index_levels(cpi[cpi["country"] == country].set_index("year")["cpi"].sort_index(),
                                       cpi_table.description)
            s = ann[e].dropna()
            years = [int(y) for y in s.index if int(y) in levels.index]
            if len(years) < 2 or s[years[0]] <= 0:
                continue
            y0, y1 = years[0], years[-1]
            change = (s[y1] / s[y0] - 1) * 100
            inflation = (levels[y1] / levels[y0] - 1) * 100
            real = ((1 + change / 100) / (1 + inflation / 100) - 1) * 100
            pace = "faster than" if real > 0 else "slower than"
            sentences.append(f"From {y0} to {y1}, {e} went from {with_unit(float(s[y0]), panel.unit)} to "
                             f"{with_unit(float(s[y1]), panel.unit)}, a change of {fmt_pct(change)}, while consumer "
                             f"prices in {country} rose {fmt_pct(inflation)} in total: {e} rose {pace} inflation, a "
                             f"change of {fmt_pct(real)} in real terms.")
            numbers.update({f"{e} change {y0}-{y1} %": change, f"{country} cumulative inflation {y0}-{y1} %": inflation,
                            f"{e} real change {y0}-{y1} %": real})
            for y in (y0, y1):
                rows.append([str(e), str(y), fmt(float(s[y])), fmt(float(levels[y] / levels[y0] * 100))])
        if not sentences:
            continue
        read = "chained from the yearly percentage changes it holds" if how.startswith("yearly") else "as published"
        formula = (f"change of the annual {'value' if panel.frequency == 'annual' else 'average'} of {panel.measure} "
                   f"({', '.join(panel.tables)}) between the first and last year both series cover, against the "
                   f"change of the consumer price index ({cpi_table.id} '{cpi_col}', {read}) of the same country; real "
                   f"change = (1 + change) / (1 + inflation) - 1")
        prov = Provenance(tables=[*panel.tables, cpi_table.id], method=formula, numbers=dict(numbers))
        table = Table(markdown_table(["Series", "Year", f"{panel.measure}{f' ({panel.unit})' if panel.unit else ''}",
                                      "Consumer price level (first year = 100)"], rows, ["l", "l", "r", "r"]),
                      f"{panel.measure} and consumer prices in the first and last year", prov)
        sentences.append(f"This comparison is computed here as the {formula}.")
        out.append(Finding(title=f"{panel.measure} against consumer price inflation", sentences=sentences,
                           tables=[table], numbers=numbers, sources=[*panel.tables, cpi_table.id], kind="comparison"))
    return out


def correlation_across_tables(panels: list[Panel], scope, sink) -> list:
    """For a question about how two measures from different tables relate: join their annual values on year
    and report the correlation of levels, of year-on-year changes, and of changes with one series lagging the
    other by one to three years."""
    import numpy as np
    import pandas as pd

    from lyceum.research import charts
    from lyceum.research.analysis.panels import choose_window, yearly
    from lyceum.research.analysis.wording import join_names
    from lyceum.research.records import Figure, Finding, Provenance, Table
    from lyceum.tables import fmt, markdown_table

    levels = [p for p in panels if not p.is_change and p.entities]
    pair = next(((a, b) for i, a in enumerate(levels) for b in levels[i + 1:]
                 if {t.split("/")[0] for t in a.tables}.isdisjoint(t.split("/")[0] for t in b.tables)), None)
    if pair is None:
        return []
    a, b = pair
    wa, wb = choose_window(a, scope), choose_window(b, scope)
    years = sorted(set(wa.years()) & set(wb.years()))
    ya, yb = yearly(a, years), yearly(b, years)
    ea, eb = a.entities[0], b.entities[0]
    # A series code is spelled out where its table defines it ("GCAG" -> "global component of Climate at a Glance").
    name_a, name_b = (f"{p.measure} ({p.definitions[e]}, {e})" if e in p.definitions else
                      p.measure if e.lower() in p.measure.lower() else f"{p.measure} ({e})" for p, e in ((a, ea), (b, eb)))
    both = pd.DataFrame({name_a: ya[ea], name_b: yb[eb]}).dropna()
    if len(both) < 8:
        return []
    r_levels = float(np.corrcoef(both[name_a], both[name_b])[0, 1])
    changes = both.diff().dropna()
    r_changes = float(np.corrcoef(changes[name_a], changes[name_b])[0, 1])
    lagged = {}
    for lag in (1, 2, 3):
        shifted = pd.DataFrame({"a": changes[name_a], "b": changes[name_b].shift(-lag)}).dropna()
        if len(shifted) >= 8:
            lagged[lag] = float(np.corrcoef(shifted["a"], shifted["b"])[0, 1])
    span = f"{int(both.index[0])}–{int(both.index[-1])}"
    numbers = {"correlation of levels": r_levels, "correlation of yearly changes": r_changes,
               **{f"correlation of changes, {name_b} {k} year(s) later": v for k, v in lagged.items()}}
    best_lag = max(lagged, key=lambda k: abs(lagged[k])) if lagged else None
    sentences = [f"Over {span}, the annual {name_a} and {name_b} have a correlation of {fmt(r_levels)} in "
                 f"levels and {fmt(r_changes)} in year-on-year changes"
                 + (f" ({fmt(lagged[best_lag])} when {eb} is compared {best_lag} year{'s' * (best_lag > 1)} later)"
                    if best_lag else "") + ".",
                 ("Two series that both trend over time correlate strongly in levels whether or not one drives the "
                  "other; the correlation of changes is the stricter reading.")]
    formula = (f"Pearson correlation of the annual means of {a.measure} ({', '.join(a.tables)}) and {b.measure} "
               f"({', '.join(b.tables)}), joined on year; changes are year-on-year differences, lags shift the "
               f"second series")
    sentences.append(f"The correlation is computed here as the {formula}.")  # its provenance, in the text too
    shown = list(both.index[:: max(1, len(both) // 15)])
    rows = [[str(int(y)), fmt(both.at[y, name_a]), fmt(both.at[y, name_b])] for y in shown]
    table = Table(markdown_table(["Year", name_a, name_b], rows), f"Annual {join_names([name_a, name_b])}, {span}",
                  Provenance(tables=[*a.tables, *b.tables], method=formula, numbers=dict(numbers)))
    path = charts.scatter_chart(both[name_a].tolist(), both[name_b].tolist(), sink.path("correlation"),
                                title=f"{name_b} against {name_a}, {span} (one point per year)",
                                xlabel=f"{name_a}{f' ({a.unit})' if a.unit else ''}",
                                ylabel=f"{name_b}{f' ({b.unit})' if b.unit else ''}")
    figure = Figure(path, f"{name_b} against {name_a}, one point per year, {span}",
                    Provenance(tables=[*a.tables, *b.tables], method=formula))
    return [Finding(title=f"How {a.measure} and {b.measure} move together", sentences=sentences, figures=[figure],
                    tables=[table], numbers=numbers, sources=[*a.tables, *b.tables], kind="correlation")]




def asked_currency(question: str) -> tuple[str, str, str] | None:
    """(name, ISO code, country) of a currency the question asks values in ("gold in Japanese yen")."""
    q = question.lower()
    for name, (code, country) in sorted(CURRENCIES.items(), key=lambda x: -len(x[0])):
        if re.search(rf"\bin (?:\w+ )?{re.escape(name)}\b|\b{re.escape(name)} terms\b|\b{code.lower()}\b", q):
            return name, code, country
    return None


def asked_currencies(question: str) -> list[tuple[str, str, str]]:
    """Every currency the question asks values in, in the order named ("in Swiss francs and in euros")."""
    q = question.lower()
    found: dict[str, tuple[int, tuple[str, str, str]]] = {}
    for name, (code, country) in sorted(CURRENCIES.items(), key=lambda x: -len(x[0])):
        m = re.search(rf"\bin (?:\w+ )?{re.escape(name)}\b|\b{re.escape(name)} terms\b|\b{code.lower()}\b", q)
        if m and code not in found:
            found[code] = (m.start(), (name, code, country))
    return [v for _, v in sorted(found.values(), key=lambda x: x[0])]


def exchange_rate_table(catalog: Catalog, country: str, finest: str | None) -> tuple[TableProfile, str] | None:
    """An exchange-rate table with ``country`` among its entities, at the finest frequency available."""
    rank = {"daily": 0, "weekly": 1, "monthly": 2, "quarterly": 3, "annual": 4}
    found = []
    for p, _ in catalog.search("foreign exchange rate currency", k=20, expand=False):
        text = f"{p.title} {p.description} {' '.join(c.name + ' ' + c.description for c in p.columns)}".lower()
        if p.time_column and p.entity_column and "exchange rate" in text and country in p.entities:
            cols = [c.name for c in p.numeric_columns]
            if cols:
                found.append((rank.get(p.frequency or "", 5), p, cols[0]))
    if not found:
        return None
    at_most = rank.get(finest or "", 5)
    usable = [f for f in found if f[0] >= min(at_most, 2)] or found  # no finer than needed, monthly at best
    _, p, col = min(usable, key=lambda f: f[0])
    return p, col


def converted_panels(catalog: Catalog, panels: list[Panel], question: str) -> list[Panel]:
    """For a question asking values in another currency, each USD panel converted at the monthly (or yearly)
    average exchange rate of that currency's country, joined on month."""
    out = []
    for name, code, country in asked_currencies(question):
        if code != "USD":
            out += _converted_to(catalog, panels, name, code, country)
    return out


def _converted_to(catalog: Catalog, panels: list[Panel], name: str, code: str, country: str) -> list[Panel]:
    import pandas as pd

    out = []
    for panel in panels:
        if panel.is_change or not (panel.unit or "").startswith("USD"):
            continue
        found = exchange_rate_table(catalog, country, panel.frequency)
        if found is None:
            continue
        fx_table, fx_col = found
        frame = catalog.frame(fx_table.id)
        fx = pd.DataFrame({"time": pd.to_datetime(frame[fx_table.time_column], errors="coerce"),
                           "country": frame[fx_table.entity_column].astype(str), "rate": frame[fx_col].astype(float)})
        fx = fx[(fx["country"] == country) & (fx["rate"] > 0)].dropna()
        # An annual series joins the year's average rate, never the rate of the one month its date falls in.
        monthly = fx_table.frequency in ("daily", "weekly", "monthly") and \
            panel.frequency in ("daily", "weekly", "monthly")
        key = (lambda t: t.dt.to_period("M")) if monthly else (lambda t: t.dt.year)
        rates = fx.assign(period=key(fx["time"])).groupby("period")["rate"].mean()
        data = panel.data.assign(period=key(panel.data["time"]))
        data = data.groupby(["entity", "period"], as_index=False).agg(value=("value", "mean"), time=("time", "min"))
        data = data.merge(rates.rename("rate").reset_index(), on="period")
        if data.empty:
            continue
        from lyceum.research.analysis.currency import usd_per_unit_codes

        per_unit = code in usd_per_unit_codes(fx_table.description + " " +
                                              " ".join(c.description for c in fx_table.columns))
        data["value"] = data["value"] / data["rate"] if per_unit else data["value"] * data["rate"]
        data["year"] = data["time"].dt.year
        how = "divided by the rate (quoted in USD per unit)" if per_unit else f"times the rate ({code} per USD)"
        formula = (f"{panel.measure} in USD ({', '.join(panel.tables)}) {how}, the {country} exchange rate from "
                   f"{fx_table.id} '{fx_col}', {'monthly' if monthly else 'yearly'} averages joined on "
                   f"{'month' if monthly else 'year'}")
        out.append(Panel(measure=f"{panel.measure} in {name} ({code})", unit=panel.unit.replace("USD", code, 1),
                         frequency="monthly" if monthly else "annual", data=data[["time", "year", "entity", "value"]],
                         tables=[*panel.tables, fx_table.id], is_change=False,
                         entities=[e for e in panel.entities if e in set(data["entity"])], formula=formula,
                         definitions=panel.definitions))
    return out


# Physical units a question may ask a price in: (asked unit as a question says it, the unit it divides, how many
# of the asked unit make one published unit, the asked unit as written in the result).
UNIT_CONVERSIONS = [
    (r"litres?|liters?", r"bbl|barrel", 158.987294928, "litre"),
    (r"(?:us )?gallons?", r"bbl|barrel", 42.0, "gallon"),
    (r"grams?|grammes?", r"\boz\b|ounce", 31.1034768, "gram"),
    (r"kilo(?:gram)?s?|kg", r"\boz\b|ounce", 0.0311034768, "kg"),
]


def unit_converted_panels(panels: list[Panel], question: str) -> list[Panel]:
    """For a question asking a price per another physical unit ("WTI per litre", "gold per gram"), each panel
    priced per the published unit (a barrel, a troy ounce) divided by the number of asked units in it."""
    q = question.lower()
    out = []
    for panel in panels:
        unit = panel.unit or ""
        for asked, published, per, written in UNIT_CONVERSIONS:
            if panel.is_change or not re.search(rf"\bper (?:{asked})\b|\ba (?:{asked})\b|/(?:{asked})\b", q) or \
                    not re.search(published, unit, re.IGNORECASE):
                continue
            data = panel.data.assign(value=panel.data["value"] / per)
            currency = unit.split("/")[0].strip() or "price"
            formula = (f"{panel.measure} in {unit} ({', '.join(panel.tables)}) divided by {per:g} {written}s per "
                       f"{re.search(published, unit, re.IGNORECASE).group(0)}")
            out.append(Panel(measure=f"{panel.measure} per {written}", unit=f"{currency}/{written}",
                             frequency=panel.frequency, data=data, tables=list(panel.tables), is_change=False,
                             entities=list(panel.entities), formula=formula, definitions=panel.definitions))
            break
    return out


def per_capita_ranking(catalog: Catalog, tables: list[TableProfile], question: str, scope, sink) -> list:
    """For "which countries had the highest GDP per capita in 2020": every entity of the widest table divided by
    its population, ranked in the year the question names (or the latest year most entities report), groups and
    regions left out."""
    import pandas as pd

    from lyceum.research import charts
    from lyceum.research.analysis.panels import MAX_ENTITIES, is_aggregate, measure_label, pick_measure
    from lyceum.research.analysis.wording import lower_words, with_unit
    from lyceum.research.catalog import guess_unit, matched_entities
    from lyceum.research.records import Figure, Finding, Provenance, Table
    from lyceum.tables import fmt, markdown_table

    if not asks_per_capita(question) or "rank" not in scope.intents:
        return []
    wide = [t for t in tables if t.time_column and t.entity_column and len(t.entities) > MAX_ENTITIES
            and not matched_entities(question, t.entities)]
    if not wide:
        return []
    t = max(wide, key=lambda t: len(t.entities))
    measure = pick_measure(t, question)
    found = population_table(catalog, t.entities) if measure else None
    if found is None or found[0].id == t.id:
        return []
    col = t.column(measure)
    unit = col.unit or guess_unit(col.description) or guess_unit(t.description)
    if unit.startswith("index") or unit in ("%", "fraction"):
        return []
    pop_table, pop_col = found

    def by_year(profile, column, name):
        frame = catalog.frame(profile.id)
        time = frame[profile.time_column]
        years = time.astype("Int64") if profile.column(profile.time_column).type == "year" else \
            pd.to_datetime(time, errors="coerce").dt.year
        d = pd.DataFrame({"year": years, "entity": frame[profile.entity_column].astype(str),
                          name: frame[column].astype(float)}).dropna()
        return d.groupby(["entity", "year"], as_index=False)[name].mean()

    joined = by_year(t, measure, "value").merge(by_year(pop_table, pop_col, "population"), on=["entity", "year"])
    joined = joined[(joined["population"] > 0) & ~joined["entity"].map(is_aggregate).astype(bool)]
    if joined.empty:
        return []
    factor, base_unit = unit_scale(unit, measure)
    joined["value"] = joined["value"] * factor / joined["population"]
    counts = joined.groupby("year")["entity"].nunique()
    named = [y for y in scope.years_named if y in counts.index]
    year = named[-1] if named else int(counts[counts >= 0.8 * counts.max()].index.max())
    end = "lowest" if re.search(r"\b(lowest|smallest|poorest|least)\b", question, re.IGNORECASE) else "highest"
    ranked = joined[joined["year"] == year].set_index("entity")["value"].sort_values(ascending=end == "lowest")
    k = scope.top_n or 10
    top = ranked.head(max(k, 10))
    name = f"{re.sub(r'(?i)[ _]*(trillions?|billions?|millions?)', '', measure_label(t, measure)).strip()} per capita"
    formula = (f"'{measure}' ({t.id}) x {factor:g} / '{pop_col}' ({pop_table.id}), joined on "
               f"{t.entity_column.lower()} and year; {len(ranked)} countries with both in {year}")
    numbers = {f"{e} {year}": float(v) for e, v in top.items()}
    listed = "; ".join(f"{e}, {with_unit(float(v), base_unit)}" for e, v in top.head(k).items())
    # As in every ranking, the first sentence says what is ranked and the second names the leaders.
    sentences = [f"{name[:1].upper()}{name[1:]} is not published as such; it is computed here as {formula}.",
                 f"In {year}, the {k if k > 1 else ''} {end} {lower_words(name)} of the {len(ranked)} countries "
                 f"with both figures {'were' if k > 1 else 'was'}: {listed}.".replace("the  ", "the ")]
    rows = [[str(i + 1), str(e), fmt(float(v))] for i, (e, v) in enumerate(top.items())]
    prov = Provenance(tables=[t.id, pop_table.id], method=f"ranking of a derived measure: {formula}",
                      numbers=dict(numbers))
    table = Table(markdown_table(["Rank", t.entity_column, f"{name} in {year} ({base_unit})" if base_unit else name],
                                 rows), f"The {len(top)} {end} {lower_words(name)} in {year}", prov)
    path = charts.bar_chart([str(e) for e in top.index], top.tolist(), sink.path(f"per-capita-ranking-{year}"),
                            title=f"{name}, {end} {len(top)} in {year}", ylabel=base_unit or name, horizontal=True)
    return [Finding(title=f"The {end} {lower_words(name)} in {year}", sentences=sentences, tables=[table],
                    figures=[Figure(path, f"{name}: the {len(top)} {end} in {year}", prov)],
                    numbers=numbers, sources=[t.id, pop_table.id], kind="ranking")]
