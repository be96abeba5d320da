"""Analyses of a panel over time: levels, changes and growth, highs and lows and the deepest falls, boom-bust
swings, comparisons between entities, and how unusual the latest move is."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

from lyceum.research import charts
from lyceum.research.analysis.panels import (
    FigureSink,
    Panel,
    Window,
    choose_window,
    complete_years,
    in_window,
    panel_scale,
    relative_units,
    sample_years,
    yearly,
)
from lyceum.research.analysis.wording import (
    date_text,
    frequency_word,
    join_names,
    lower_words,
    month_text,
    of_entities,
    possessive,
    unit_after_number,
    with_unit,
)
from lyceum.research.numbers import fmt_pct, scale_for
from lyceum.research.question import Scope
from lyceum.research.records import Figure, Finding, Provenance, Table
from lyceum.tables import fmt, is_missing, markdown_table


def analyze_panel(panel: Panel, scope: Scope, sink: FigureSink) -> list[Finding]:
    w = choose_window(panel, scope)
    out = [] if panel.is_change else [levels_finding(panel, w, sink, scope.years_named)]
    if scope.ranked_years and not panel.is_change:
        out.insert(0, ranked_years_finding(panel, w, *scope.ranked_years))
    if scope.decades:
        out.insert(0, decade_means_finding(panel, scope.decades))
    out.append(change_finding(panel, w, scope, sink))
    if not panel.is_change:
        out.append(extremes_finding(panel, w, scope))
    if len(panel.entities) >= 2:
        out.append(comparison_finding(panel, w, scope, sink))
    if ("share" in scope.intents or _SHARE_OF.search(scope.text)) and not panel.is_change:
        out.insert(0, share_of_total_finding(panel, w, scope))
    if scope.dates and panel.frequency not in ("annual", "irregular"):
        out.insert(0, named_dates_finding(panel, scope))
    if asks_month(scope) and panel.frequency in ("daily", "weekly", "monthly") and not panel.is_change:
        out.insert(0, month_extremes_finding(panel, scope))
    if not panel.is_change and ("unusual" in scope.intents or scope.last_years):
        out.append(unusual_finding(panel, w, sink))
    out = [f for f in out if f is not None]
    if out and panel.definitions:
        out[0].sentences.append(" ".join(f"{k} is the {v}." for k, v in panel.definitions.items()))
    if panel.formula:
        # A derived measure says how it was computed, next to its numbers and in every figure's and table's
        # provenance (report.html, provenance.json).
        for f in out:
            for item in [*f.figures, *f.tables]:
                item.provenance.method += f"; derived measure: {panel.formula}"
        if out:
            out[0].sentences.append(f"{panel.measure[:1].upper()}{panel.measure[1:]} is not published as such; "
                                    f"it is computed here as {panel.formula}.")
    return out


def levels_finding(panel: Panel, w: Window, sink: FigureSink, named_years: list[int] = ()) -> Finding:
    ann = yearly(panel, w.years() + ([w.partial] if w.partial else []))
    complete = ann.loc[[y for y in ann.index if y <= w.end]]
    div, _, unit = panel_scale(panel, ann.values.ravel())
    keep = set(named_years)  # every year the question names is shown
    for e in complete.columns:
        s = complete[e].dropna()
        if not s.empty:
            keep |= {int(s.idxmax()), int(s.idxmin())}
    shown = sample_years([int(y) for y in complete.index], keep)
    what = "value" if panel.frequency == "annual" else "average"
    rows = [[str(y)] + [fmt(ann.at[y, e] / div) for e in ann.columns] for y in shown]
    if w.partial and w.partial in ann.index:
        rows.append([f"{w.partial} (partial year)"] + [fmt(ann.at[w.partial, e] / div) for e in ann.columns])
    headers = ["Year"] + [f"{e} ({unit})" if unit else str(e) for e in ann.columns]
    numbers = {f"{e} {y}": float(ann.at[y, e]) for y in ann.index for e in ann.columns if not is_missing(ann.at[y, e])}
    prov = Provenance(tables=panel.tables, method=f"annual {what} of '{panel.measure}' per year", numbers=numbers)
    sampled = " (selected years)" if len(shown) < len(complete.index) else ""
    table = Table(markdown_table(headers, rows), f"Annual {what} of {lower_words(panel.measure)}"
                                                 f"{f' ({unit})' if unit else ''} by year, "
                                                 f"{w.label()}{sampled}", prov)
    # Figure: the observations themselves, at their own frequency.
    d = in_window(panel, w)
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
                                 title=f"{panel.measure}{of_entities(list(series))}, {w.start}–{last} "
                                       f"({freq} data)".replace(" ( data)", ""),
                                 ylabel=unit or panel.measure, marks=marks, zero_line=panel.is_change)
    figure = Figure(fig_path, f"{panel.measure} of {join_names(list(series))} from {w.start} to {last} "
                              f"({freq or 'as published'} observations" + ("; highs and lows marked)" if marks else ")"),
                    Provenance(tables=panel.tables, method="line chart of the observations in the period"))
    sentences = []
    for e in complete.columns:
        s = complete[e].dropna()
        if len(s) < 2:
            continue
        y0, y1 = int(s.index[0]), int(s.index[-1])
        v0, v1 = float(s.iloc[0]), float(s.iloc[-1])
        # A derived measure in a bare currency ("GDP per capita" in USD, like GDP itself) is named in its sentence.
        subject = f"{possessive(e)} {lower_words(panel.measure)}" if panel.formula and \
            re.fullmatch(r"[A-Z]{3}", panel.unit or "") else e
        text = (f"{subject} {'was' if panel.frequency == 'annual' else 'averaged'} {with_unit(v0, panel.unit)} in {y0} "
                f"and {with_unit(v1, panel.unit)} in {y1}")
        if not panel.is_change and v0 > 0 and v1 > 0:
            pct = (v1 / v0 - 1) * 100
            cagr = ((v1 / v0) ** (1 / (y1 - y0)) - 1) * 100
            text += f", a change of {fmt_pct(pct)}"
            text += f" ({fmt(v1 / v0)}× the {y0} level, {rate_pct(cagr)} a year compounded)" if v1 / v0 >= 1.5 else \
                f" ({rate_pct(cagr)} a year compounded)"
            numbers.update({f"{e} change {y0}-{y1} %": pct, f"{e} multiple {y0}-{y1}": v1 / v0,
                            f"{e} CAGR {y0}-{y1} %": cagr})
        sentences.append(text + ".")
        if w.partial and w.partial in ann.index and not is_missing(ann.at[w.partial, e]):
            sentences.append(f"So far in {w.partial} (a partial year) {e} has averaged "
                             f"{with_unit(float(ann.at[w.partial, e]), panel.unit)}.")
    return Finding(title=f"Levels of {lower_words(panel.measure)}", sentences=sentences, figures=[figure], tables=[table],
                   numbers=numbers, sources=list(panel.tables), kind="levels")


def rate_pct(v: float) -> str:
    """A yearly rate in per cent to three significant digits under 10% a year (a population growing 0.557% or
    1.45% a year, not "0.6%" or "1.4%", which are 8% and 3% off)."""
    return f"{v:+.3g}%" if 0.01 <= abs(v) < 10 else fmt_pct(v)


def ranked_years_finding(panel: Panel, w: Window, k: int, end: str) -> Finding | None:
    """The k complete years with the highest (or lowest) annual average of each series: "the five warmest years".

    A partial latest year is left out: its average covers only some months."""
    ann = yearly(panel, w.years())
    ann = ann.loc[[y for y in ann.index if y <= w.end]]
    if ann.empty:
        return None
    what = "value" if panel.frequency == "annual" else "average"
    sentences, rows, numbers = [], [], {}
    for e in ann.columns:
        s = ann[e].dropna()
        if len(s) < 2:
            continue
        top = s.sort_values(ascending=(end == "lowest")).head(k)
        listed = ", ".join(f"{int(y)} ({with_unit(float(v), panel.unit)})" for y, v in top.items())
        n = f"{k} years" if k > 1 else "year"
        sentences.append(f"The {n} with the {end} annual {what} of {e} in {int(s.index[0])}–{int(s.index[-1])} "
                         f"{'were' if k > 1 else 'was'} {listed}.")
        rows += [[str(i + 1), str(e), str(int(y)), fmt(float(v))] for i, (y, v) in enumerate(top.items())]
        numbers.update({f"{e} {int(y)}": float(v) for y, v in top.items()})
    if not sentences:
        return None
    unit = f" ({panel.unit})" if panel.unit else ""
    prov = Provenance(tables=panel.tables, method=f"annual {what} of '{panel.measure}' per year, complete years "
                                                  f"ranked ({end} first)", numbers=numbers)
    table = Table(markdown_table(["Rank", "Series", "Year", f"Annual {what}{unit}"], rows),
                  f"Years with the {end} annual {what} of {lower_words(panel.measure)}, {w.label()}", prov)
    return Finding(title=f"Years with the {end} {lower_words(panel.measure)}", sentences=sentences, tables=[table],
                   numbers=numbers, sources=list(panel.tables), kind="ranking")


def decade_means_finding(panel: Panel, decades: list[tuple[int, int]]) -> Finding | None:
    """The average over each decade the question names ("the average in the 1990s", "how much warmer were the
    2010s"), from the annual values of the years the data holds in it, and the difference between the first and
    the last decade named."""
    ann = yearly(panel, [y for a, b in decades for y in range(a, b + 1)])
    what = lower_words(panel.measure)
    sentences, rows, numbers = [], [], {}
    for e in ann.columns:
        means = []
        for a, b in decades:
            s = ann[e].loc[[y for y in ann.index if a <= y <= b]].dropna()
            if s.empty:
                continue
            label = f"{a}s" if len(s) == 10 else f"{a}s ({int(s.index[0])}–{int(s.index[-1])} only)"
            means.append((a, label, float(s.mean()), len(s)))
            numbers[f"{e} mean {a}s"] = float(s.mean())
            rows.append([str(e), label, str(len(s)), fmt(float(s.mean()))])
        if not means:
            continue
        text = f"{e} averaged " + " and ".join(f"{with_unit(m, panel.unit)} over the {label}"
                                                for _, label, m, _ in means)
        if len(means) >= 2:
            (a0, _, m0, _), (a1, _, m1, _) = means[0], means[-1]
            diff = m1 - m0
            numbers[f"{e} {a1}s minus {a0}s"] = diff
            text += (f", {with_unit(abs(diff), panel.unit)} {'more' if diff >= 0 else 'less'} in the {a1}s than in "
                     f"the {a0}s")
            if not panel.is_change and relative_units(panel) and m0 > 0 and m1 > 0:
                numbers[f"{e} {a1}s vs {a0}s %"] = (m1 / m0 - 1) * 100
                text += f" ({fmt_pct((m1 / m0 - 1) * 100)})"
        sentences.append(text)
    if not sentences:
        return None
    # Up to three series in one sentence: the direct answer names them all.
    sentences = ["; ".join(sentences) + "."] if len(sentences) <= 3 else [x + "." for x in sentences]
    unit = f" ({panel.unit})" if panel.unit else ""
    prov = Provenance(tables=panel.tables, method=f"mean of the annual values of '{panel.measure}' over each decade "
                                                  "the question names", numbers=dict(numbers))
    table = Table(markdown_table(["Series", "Decade", "Years", f"Average {what}{unit}"], rows, ["l", "l", "r", "r"]),
                  f"Average {what} in each decade named", prov)
    return Finding(title=f"Average {what} by decade", sentences=sentences, tables=[table], numbers=numbers,
                   sources=list(panel.tables), kind="levels")


def decades_of(years: list[int]) -> list[tuple[int, list[int]]]:
    out: dict[int, list[int]] = {}
    for y in years:
        out.setdefault(y // 10 * 10, []).append(y)
    return sorted(out.items())


def decade_label(d: int, ys: list[int]) -> str:
    return f"{d}s" if len(ys) == 10 else f"{d}s ({ys[0]}–{ys[-1]})" if len(ys) > 1 else f"{d}s ({ys[0]} only)"


def change_finding(panel: Panel, w: Window, scope: Scope, sink: FigureSink) -> Finding | None:
    """Yearly changes, their decade averages (is it speeding up?), and the biggest single years."""
    ann = yearly(panel, w.years())
    if len(ann.index) < 3:
        return None
    numbers: dict[str, float] = {}
    sentences: list[str] = []
    relative = not panel.is_change and relative_units(panel)
    if panel.is_change:  # the values already are yearly changes
        per_year, pct = ann, None
        what, unit = lower_words(panel.measure), (panel.unit + " per year" if panel.unit else "")
    else:
        per_year = ann.diff().iloc[1:]
        pct = (ann.pct_change(fill_method=None) * 100).iloc[1:]
        if (panel.data["value"] <= 0).mean() > 0.05:
            pct = None  # an anomaly around zero: a change of "-233.6%" from 0.0342 °C says nothing
        what, unit = "yearly change", panel.unit
    if panel.is_change:
        # The years the question names, as published ("inflation in 1990 and 2020").
        named = [y for y in scope.years_named if y in ann.index]
        for e in ann.columns if named else []:
            stated = [(y, float(ann.at[y, e])) for y in named if not is_missing(ann.at[y, e])]
            if stated:
                sentences.append(f"The {what} of {e} was " + " and ".join(
                    f"{with_unit(v, panel.unit)} in {y}" for y, v in stated) + ".")
                numbers.update({f"{e} {what} {y}": v for y, v in stated})
    # Decade averages: the clearest answer to "is it speeding up?" (a short period lists its years instead).
    div, word = scale_for(per_year.abs().max().tolist(), unit)
    if word:
        unit = f"{word} {unit}".strip() if unit else word
    rows, dec_means = [], {}
    decades = decades_of([int(y) for y in per_year.index])
    by_year = len(decades) < 3 and len(per_year.index) <= 15
    if by_year:
        decades = [(int(y), [int(y)]) for y in per_year.index]
    for d, ys in decades:
        row = [str(d) if by_year else decade_label(d, ys)]
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
    of = "" if panel.is_change else f" of {lower_words(panel.measure)}"
    caption = f"{what.capitalize()}{of} by year" if by_year else f"Average {what}{of} by decade"
    table = Table(markdown_table(headers, rows), f"{caption}, {w.label()}",
                  Provenance(tables=panel.tables, method=f"decade means of the {what}", numbers=dict(numbers)))
    # In percent for prices and money, in the measure's own unit for physical quantities.
    values, vunit = (pct, "%") if relative and pct is not None else (per_year, unit)
    for e, ms in dec_means.items():
        full = [(d, ys, m) for d, ys, m in ms if len(ys) >= 5] or ms
        if len(full) >= 2:
            m0, m1 = full[0][2], full[-1][2]
            # Decade by decade, in order, as a reader would say it; the comparison is in words, not as a ratio
            # of two paces (which reads as a riddle when either is small or negative).
            parts = [f"{fmt(m / div)}{unit_after_number(unit)} in the {decade_label(d, ys)}" for d, ys, m in full]
            faster = "faster" if m1 > m0 else "slower"
            if len(parts) > 6:
                # Two centuries of decades in one sentence is a number dump: the latest five, against the first;
                # the table lists them all.
                listed = ", ".join(parts[-5:-1]) + f" and {parts[-1]}"
                sentences.append(f"The average {what} of {e} was {listed}: {faster} in the latest decade than in "
                                 f"the first, the {decade_label(*full[0][:2])} ({fmt(m0 / div)}"
                                 f"{unit_after_number(unit)}; every decade is in the table).")
            else:
                listed = ", ".join(parts[:-1]) + f" and {parts[-1]}"
                sentences.append(f"The average {what} of {e} was {listed}: {faster} in the latest decade than in "
                                 f"the first.")
        series = values[e].dropna()
        if len(series) < 3:
            continue
        hi, lo = series.idxmax(), series.idxmin()
        show = fmt_pct if vunit == "%" else (lambda v: fmt(v / div) + unit_after_number(vunit))
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
            slope = fitted_slope([float(y) for y in series.index], series.tolist()) * 10
            sentences.append(f"A straight-line fit through the yearly {'values' if panel.is_change else 'changes'} "
                             f"of {e} has a slope of {show(slope)} per decade: the "
                             f"{'increase' if panel.is_change or series.mean() > 0 else 'change'} is "
                             f"{'accelerating' if slope > 0 else 'slowing'} over {w.label()}.")
            numbers[f"{e} trend slope per decade"] = slope
    if panel.is_change:
        title = f"{panel.measure} per year, {w.label()}"
    elif relative:
        title = f"Year-on-year change in {lower_words(panel.measure)} (%), {w.label()}"
    else:
        title = f"Yearly change in {lower_words(panel.measure)}{f' ({unit})' if unit else ''}, {w.label()}"
    fig_path = charts.grouped_lines_or_bars([int(y) for y in values.index],
                                            {str(e): values[e].tolist() for e in values.columns},
                                            sink.path(f"change-{panel.measure}"), title=title,
                                            ylabel="% change" if relative else (unit or panel.measure))
    described = (f"Yearly {lower_words(panel.measure)}" if panel.is_change else
                 f"Year-on-year change {'(%) ' if relative else ''}in the annual "
                 f"{'value' if panel.frequency == 'annual' else 'average'} of {lower_words(panel.measure)}")
    figure = Figure(fig_path, f"{described} for {join_names([str(c) for c in values.columns])}, {w.label()}",
                    Provenance(tables=panel.tables, method="yearly values" if panel.is_change
                               else "yearly changes of annual averages"))
    return Finding(title=f"Growth and pace of change: {lower_words(panel.measure)}", sentences=sentences,
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


MINOR_DIP = 0.9  # a fall ends a cycle only when it took the series below 90% of its peak


def largest_fall(times: list, values: list[float]) -> dict[str, Any] | None:
    """The deepest fall from a peak to the trough that follows it, and when (if ever) that peak was regained.

    A fall ends at its trough once the series has climbed back at least half of what it lost: a new cycle has
    begun, so a fall never spans several boom-bust cycles (2008 peak -> 2020 trough). Percentages are against
    the peak; a trough below zero (a price that went negative) is flagged rather than read as a percentage.
    """
    episodes, peak_i, trough_i = [], 0, None
    for i, v in enumerate(values):
        if trough_i is not None and values[peak_i] > values[trough_i] and \
                v - values[trough_i] >= 0.5 * (values[peak_i] - values[trough_i]):
            if values[trough_i] <= MINOR_DIP * values[peak_i]:
                episodes.append((peak_i, trough_i))
                peak_i = i
            trough_i = None  # a dip of a few percent is noise inside one move, not a cycle of its own
        if v >= values[peak_i] and trough_i is None:
            peak_i = i
        elif v > values[peak_i] and values[trough_i] >= values[peak_i]:
            peak_i, trough_i = i, None
        elif trough_i is None or v < values[trough_i]:
            trough_i = i
    if trough_i is not None and values[peak_i] > values[trough_i]:
        episodes.append((peak_i, trough_i))
    episodes = [(p, t) for p, t in episodes if values[p] > 0]
    if not episodes:
        return None
    p, t = min(episodes, key=lambda e: values[e[1]] / values[e[0]])
    recovered = next((times[i] for i in range(t + 1, len(values)) if values[i] >= values[p]), None)
    return {"peak_time": times[p], "peak": values[p], "trough_time": times[t], "trough": values[t],
            "pct": (values[t] / values[p] - 1) * 100, "below_zero": values[t] < 0, "recovered_time": recovered}


def extremes_finding(panel: Panel, w: Window, scope: Scope) -> Finding | None:
    d = in_window(panel, w)
    ann = yearly(panel, w.years())
    steady = all(ann[e].dropna().is_monotonic_increasing or ann[e].dropna().is_monotonic_decreasing
                 for e in ann.columns)
    if steady and "peaks" not in scope.intents and len(scope.periods) < 2:
        return None  # a steady trend: the first and last values already are the low and the high
    numbers: dict[str, float] = {}
    sentences, rows = period_sentences(panel, scope.periods, numbers) if len(scope.periods) >= 2 else [], []
    for e in panel.entities:
        g = d[d["entity"] == e].sort_values("time")
        if g.empty:
            continue
        hi, lo = g.loc[g["value"].idxmax()], g.loc[g["value"].idxmin()]
        whole = panel.data[panel.data["entity"] == e]["value"]
        record = " (the highest in the whole table)" if hi["value"] >= whole.max() else ""
        when = frequency_word(panel)
        on = "in" if panel.frequency in ("annual", "monthly", "quarterly") else "on"
        sentences.append(f"{possessive(e)} highest {when}value in the period was {with_unit(hi['value'], panel.unit)} {on} "
                         f"{date_text(hi['time'], panel)}{record}; its lowest was {with_unit(lo['value'], panel.unit)} {on} "
                         f"{date_text(lo['time'], panel)}.")
        numbers.update({f"{e} high": float(hi["value"]), f"{e} low": float(lo["value"])})
        if (g["value"] <= 0).mean() > 0.05:
            # Not a level with a true zero (a temperature anomaly, a balance): falls as percentages of a peak near
            # zero read "-4489%", and its wobbles around zero are no boom-bust cycles. A price that dipped below
            # zero on one day (WTI, April 2020) is still a level.
            continue
        dd = largest_fall(g["time"].tolist(), g["value"].astype(float).tolist())
        if dd is not None and dd["pct"] <= -10:
            size = (f"a fall of {with_unit(dd['peak'] - dd['trough'], panel.unit)} that took it below zero"
                    if dd["below_zero"] else fmt_pct(dd["pct"]))
            text = (f"{possessive(e)} largest fall in the period ran from {with_unit(dd['peak'], panel.unit)} "
                    f"({date_text(dd['peak_time'], panel)}) to {with_unit(dd['trough'], panel.unit)} "
                    f"({date_text(dd['trough_time'], panel)}), {size}; ")
            last = float(g["value"].iloc[-1])
            gap = (last / dd["peak"] - 1) * 100
            side = f"{fmt_pct(abs(gap), signed=False)} {'above' if gap >= 0 else 'below'}"
            if dd["recovered_time"] is not None:
                text += (f"the earlier peak was regained in {date_text(dd['recovered_time'], panel)} and the latest value "
                         f"({with_unit(last, panel.unit)}) is {side} that peak.")
            else:
                text += (f"it has not regained that peak: the latest value ({with_unit(last, panel.unit)}) is still "
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
            rows.append([e, month_text(f["peak_time"]) if monthly else date_text(f["peak_time"], panel), fmt(f["peak"]),
                         month_text(f["trough_time"]) if monthly else date_text(f["trough_time"], panel), fmt(f["trough"]),
                         fmt_pct(f["pct"])])
            numbers[f"{e} fall from {month_text(f['peak_time'])}"] = f["pct"]
        if len(falls) >= 2:
            worst = min(falls, key=lambda f: f["pct"])
            avg = "monthly-average " if panel.frequency in ("daily", "weekly") else ""
            sentences.append(f"{e} went through {len(falls)} boom-bust swing{'s' * (len(falls) > 1)} of "
                             f"{threshold * 100:.0f}% or more in its {avg}level; the deepest fall ran from {fmt(worst['peak'])} in "
                             f"{month_text(worst['peak_time'])} to {fmt(worst['trough'])} in "
                             f"{month_text(worst['trough_time'])} ({fmt_pct(worst['pct'])}).")
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
    return Finding(title=f"Peaks, troughs and shocks in {lower_words(panel.measure)}", sentences=sentences, tables=tables,
                   numbers=numbers, sources=list(panel.tables), kind="peaks")


def period_sentences(panel: Panel, periods: list[tuple[int, int]], numbers: dict[str, float]) -> list[str]:
    """Each period the question names, side by side: its deepest fall (peak to following trough), or its change
    when nothing fell ("the 2014-16 crash against the 2008-09 one")."""
    out = []
    for e in panel.entities:
        parts = []
        for start, end in periods:
            g = panel.data[(panel.data["entity"] == e) & panel.data["year"].between(start, end)].sort_values("time")
            if len(g) < 2:
                continue
            label = f"{start}–{end}"
            dd = largest_fall(g["time"].tolist(), g["value"].astype(float).tolist())
            if dd is not None and dd["pct"] <= -5:
                size = "below zero" if dd["below_zero"] else fmt_pct(dd["pct"])
                parts.append(f"in {label} it fell from {with_unit(dd['peak'], panel.unit)} "
                             f"({date_text(dd['peak_time'], panel)}) to {with_unit(dd['trough'], panel.unit)} "
                             f"({date_text(dd['trough_time'], panel)}), {size}")
                numbers.update({f"{e} {label} peak": dd["peak"], f"{e} {label} trough": dd["trough"],
                                f"{e} {label} fall %": dd["pct"]})
            else:
                v0, v1 = float(g["value"].iloc[0]), float(g["value"].iloc[-1])
                parts.append(f"in {label} it went from {with_unit(v0, panel.unit)} to {with_unit(v1, panel.unit)}")
                numbers.update({f"{e} {label} first": v0, f"{e} {label} last": v1})
        if parts:
            out.append(f"For {e}, {'; '.join(parts)}.")
    return out


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
    # Exchange rates are each quoted in their own currency: their levels do not compare, their changes do.
    own_units = bool(re.search(r"exchange rate|currenc", panel.measure, re.IGNORECASE))
    if own_units:
        g0, g1 = both[a].iloc[-1] / both[a].iloc[0] - 1, both[b].iloc[-1] / both[b].iloc[0] - 1
        sentences.append(f"Each rate is quoted in its own currency, so their levels do not compare; from {y0} to "
                         f"{y1} the rate of {a} changed by {fmt_pct(g0 * 100)} and that of {b} by {fmt_pct(g1 * 100)}.")
        numbers.update({f"{a} change {y0}-{y1} %": float(g0 * 100), f"{b} change {y0}-{y1} %": float(g1 * 100)})
    elif panel.unit.startswith("index") and (both > 0).all().all():
        # Two indexes each read against their own base (a real and a nominal index): the ratio of their levels
        # says nothing ("5.62 times ... in 1970"); their changes over the same years do.
        g0, g1 = both[a].iloc[-1] / both[a].iloc[0] - 1, both[b].iloc[-1] / both[b].iloc[0] - 1
        sentences.append(f"From {y0} to {y1}, {a} changed by {fmt_pct(g0 * 100)} and {b} by {fmt_pct(g1 * 100)}.")
        numbers.update({f"{a} change {y0}-{y1} %": float(g0 * 100), f"{b} change {y0}-{y1} %": float(g1 * 100)})
    elif (ratio > 0).all() and not panel.is_change and panel.unit != "%" and not asks_difference(scope.text) and (
            "compare" in scope.intents or ratio.max() / max(ratio.min(), 1e-12) > 1.5):
        # A ratio of two rates (inflation, growth) or of values of either sign says nothing: their gap does.
        # "30.2 times", not "3020.0%", once one is several times the other; both years in the same form.
        times = max(ratio.iloc[0], ratio.iloc[-1]) >= 3

        def as_share(r: float) -> str:
            return f"{fmt(r)} times" if times else fmt_pct(r * 100, signed=False)

        first = as_share(ratio.iloc[0]) + ("" if times else " of")
        sentences.append(f"{a} was {first} {b} in {y0} and {as_share(ratio.iloc[-1])} in {y1}.")
        numbers.update({f"{a}/{b} {y0}": float(ratio.iloc[0]), f"{a}/{b} {y1}": float(ratio.iloc[-1])})
        g0, g1 = both[a].iloc[-1] / both[a].iloc[0], both[b].iloc[-1] / both[b].iloc[0]
        if g0 > 0 and g1 > 0:
            sentences.append(f"Over {y0}–{y1} {a} grew {fmt(g0)}-fold against {fmt(g1)}-fold for {b}.")
            numbers.update({f"{a} multiple": float(g0), f"{b} multiple": float(g1)})
        fig_path = charts.line_chart({f"{a} / {b}": (list(both.index), (ratio * 100).tolist())},
                                     sink.path(f"ratio-{a}-{b}"), title=f"{a} as a share of {b} (%), {w.label()}",
                                     ylabel="%", xlabel="year")
        figures.append(Figure(fig_path, f"{possessive(a)} {lower_words(panel.measure)} as a percentage of {possessive(b)}, by year",
                              Provenance(tables=panel.tables, method="ratio of annual values",
                                         numbers={f"{a}/{b} {int(y)}": float(r) for y, r in ratio.items()})))
    else:
        spread = (both[a] - both[b])
        # The gap between two rates is in percentage points, not percent.
        gap = (lambda v: f"{fmt(v)} percentage points") if panel.unit == "%" else (lambda v: with_unit(v, panel.unit))
        sentences.append(f"On average over {y0}–{y1}, {a} was {gap(abs(spread.mean()))} "
                         f"{'above' if spread.mean() > 0 else 'below'} {b}; the gap was widest in "
                         f"{int(spread.abs().idxmax())} ({gap(spread[spread.abs().idxmax()])}).")
        numbers.update({f"{a}-{b} mean spread": float(spread.mean()),
                        f"{a}-{b} widest gap": float(spread[spread.abs().idxmax()])})
    # The years the question names, first: "the gap between Brent and WTI in 2011" is answered in 2011, not at
    # the ends of the window shown around it.
    named = [y for y in scope.years_named if y in both.index][:3]
    levels_stated = bool(named) and not own_units
    if levels_stated:
        gap_of = (lambda v: f"{fmt(v)} percentage points") if panel.unit == "%" else \
            (lambda v: with_unit(v, panel.unit))
        parts = []
        for y in named:
            va, vb = float(both.at[y, a]), float(both.at[y, b])
            parts.append(f"in {y}, {a} was {gap_of(abs(va - vb))} {'above' if va >= vb else 'below'} {b} "
                         f"({with_unit(va, panel.unit)} against {with_unit(vb, panel.unit)})")
            numbers.update({f"{a} {y}": va, f"{b} {y}": vb, f"{a}-{b} gap {y}": va - vb})
        text = "; ".join(parts)
        sentences.insert(0, text[:1].upper() + text[1:] + ".")
    if asks_difference(scope.text) and not own_units:
        # "Brent minus WTI in 2011 and in 2015": the signed difference in each year the question names, in the
        # order the question names the two.
        spread = both[a] - both[b]
        gap = (lambda v: f"{fmt(v)} percentage points") if panel.unit == "%" else (lambda v: with_unit(v, panel.unit))
        named = [y for y in scope.years_named if y in spread.index] or sorted({y0, y1})
        first, second, sign = (b, a, -1) if re.search(
            rf"\b{re.escape(str(b))}\s+(?:minus|over|less|above|below)\s+(?:the\s+)?{re.escape(str(a))}\b",
            scope.text, re.IGNORECASE) else (a, b, 1)
        # After the named years' levels and gap where those were stated, else first.
        sentences.insert(1 if levels_stated else 0, f"{first} minus {second} was " + join_names(
            [f"{gap(sign * float(spread[y]))} in {y}" for y in named]) + ".")
        numbers.update({f"{first}-{second} {y}": sign * float(spread[y]) for y in named})
    if len(both) >= 4:
        r = float(np.corrcoef(both[a], both[b])[0, 1])
        dr = both.pct_change(fill_method=None).dropna()
        r_change = float(np.corrcoef(dr[a], dr[b])[0, 1]) if len(dr) >= 3 else float("nan")
        text = f"Their annual values are correlated at r = {r:.2f}"
        if not math.isnan(r_change):
            text += f" (r = {r_change:.2f} for year-on-year changes)"
        sentences.append(text + ".")
        numbers.update({f"corr {a} {b}": r, f"corr change {a} {b}": r_change})
    return Finding(title=f"Comparing {join_names([str(c) for c in ann.columns])}", sentences=sentences, figures=figures,
                   numbers=numbers, sources=list(panel.tables), kind="comparison")


_DIFFERENCE = re.compile(r"\b(gap|gaps|difference|differences|minus|spread|premium|discount|wider|narrower|"
                         r"widen|widened|narrowed)\b|"
                         r"\bhow much (?:higher|lower|more|less|above|below|cheaper|dearer)\b",
                         re.IGNORECASE)


def asks_difference(question: str) -> bool:
    """The question asks how far apart two series are ("the gap between", "Brent minus WTI", "the spread"),
    which is their difference in their own unit, not one as a percentage of the other."""
    return bool(_DIFFERENCE.search(question))


_MONTH_ASKED = re.compile(r"\b(?:which|what|the) months?\b|\bmonths? (?:of|in) (?:1[5-9]|20)\d\d\b|"
                          r"\bmonthly (?:mean|average|value|reading|price|rate|high|low|record)|"
                          r"\b(?:which|what)\b[^?.;]{0,60}\bmonths?\b|"
                          r"\b(?:\w+est|most \w+|least \w+) (?:calendar )?months?\b", re.IGNORECASE)
_EXTREME = re.compile(r"high|low|peak|record|most|least|max|min|weak|strong|warm|cold|cheap|expensive|"
                      r"large|small|big", re.IGNORECASE)
_YEARS_EARLIER = re.compile(r"\b(\d+|a|one|two|three|four|five|six|seven|eight|nine|ten|twenty|thirty|fifty)"
                            r"\s+years?\s+"
                            r"(?:earlier|before|prior|previously|ago)\b", re.IGNORECASE)
_WORD_NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9,
                 "ten": 10, "twenty": 20, "thirty": 30, "fifty": 50}


def asks_month(scope: Scope) -> bool:
    """A question about months: "which month of 2024 was the highest", "the highest monthly mean on record"."""
    return bool(_MONTH_ASKED.search(scope.text) and _EXTREME.search(scope.text))


def month_extremes_finding(panel: Panel, scope: Scope) -> Finding | None:
    """The highest and the lowest month (monthly averages of finer data) in each year the question names, or
    over the whole record when it names none; with "the same month ten years earlier", that month's reading."""
    m = _YEARS_EARLIER.search(scope.text)
    lag = (int(m.group(1)) if m.group(1).isdigit() else _WORD_NUMBERS[m.group(1).lower()]) if m else None
    d = panel.data.assign(month=panel.data["time"].dt.to_period("M"))
    monthly = d.groupby(["entity", "month"])["value"].mean()
    years = [y for y in scope.years_named if y in set(d["year"])]
    first, last = int(d["year"].min()), int(d["year"].max())
    spans = [(y, y, f"In {y}") for y in years] or [(first, last, f"Over the whole record ({first}–{last})")]
    avg = "monthly average" if panel.frequency in ("daily", "weekly") else "monthly value"
    numbers: dict[str, float] = {}
    sentences, rows = [], []
    for e in panel.entities:
        if e not in monthly.index.get_level_values(0):
            continue
        s = monthly.loc[e]
        for y0, y1, lead in spans:
            part = s[[y0 <= p.year <= y1 for p in s.index]]
            if part.empty:
                continue
            hi, lo = part.idxmax(), part.idxmin()
            name = f"{possessive(str(e))} " if len(panel.entities) > 1 else "the "
            text = (f"{lead}, {name}highest {avg} was {with_unit(float(part[hi]), panel.unit)} in "
                    f"{hi.strftime('%B %Y')} and the lowest {with_unit(float(part[lo]), panel.unit)} in "
                    f"{lo.strftime('%B %Y')}")
            numbers.update({f"{e} highest month {hi}": float(part[hi]), f"{e} lowest month {lo}": float(part[lo])})
            rows += [[str(e), "highest", hi.strftime("%Y-%m"), fmt(float(part[hi]))],
                     [str(e), "lowest", lo.strftime("%Y-%m"), fmt(float(part[lo]))]]
            if lag:
                earlier = [(k, p - 12 * lag) for k, p in (("highest", hi), ("lowest", lo)) if (p - 12 * lag) in s.index]
                if earlier:
                    years_ago = f"{lag} year{'s' * (lag != 1)} before the"
                    text += "; " + "; ".join(f"{years_ago} {k}, in {p.strftime('%B %Y')}, it was "
                                             f"{with_unit(float(s[p]), panel.unit)}" for k, p in earlier)
                    for k, p in earlier:
                        numbers[f"{e} {p} ({years_ago} {k})"] = float(s[p])
                        rows.append([str(e), f"{years_ago} {k}", p.strftime("%Y-%m"), fmt(float(s[p]))])
            sentences.append(text + ".")
    if not sentences:
        return None
    table = Table(markdown_table(["Series", "Month", "Date", f"{avg[:1].upper()}{avg[1:]}" +
                                  (f" ({panel.unit})" if panel.unit else "")], rows, ["l", "l", "l", "r"]),
                  f"Highest and lowest months of {lower_words(panel.measure)}",
                  Provenance(tables=panel.tables, method=f"{avg} per calendar month; highest and lowest month",
                             numbers=dict(numbers)))
    return Finding(title=f"Highest and lowest months of {lower_words(panel.measure)}", sentences=sentences,
                   tables=[table], numbers=numbers, sources=list(panel.tables), kind="peaks")


def named_dates_finding(panel: Panel, scope: Scope) -> Finding | None:
    """The value at each quarter, month or year-end the question names ("from Q4 2019 to Q4 2024", "at the end of
    2024"), read from the observations inside it, and the change between the first and the last: a yearly
    average would answer a different question."""
    import pandas as pd

    numbers: dict[str, float] = {}
    values: dict[str, dict[str, float]] = {}
    coarse = panel.frequency in ("quarterly",)
    d = panel.data.assign(month=panel.data["time"].dt.month)
    for date in scope.dates:
        inside = d[(d["year"] == date.year) & d["month"].between(date.first_month, date.last_month)]
        if date.day is not None:  # that day, or the last observation in the week before it (a weekend, a holiday)
            day = pd.Timestamp(date.year, date.first_month, date.day)
            inside = d[(d["time"] <= day + pd.Timedelta(hours=23)) & (d["time"] > day - pd.Timedelta(days=7))]
            inside = inside.sort_values("time").groupby("entity").tail(1)
        for e, g in inside.sort_values("time").groupby("entity"):
            v = float(g["value"].iloc[-1]) if (date.at_end or coarse) else float(g["value"].mean())
            values.setdefault(str(e), {})[date.label] = v
            numbers[f"{e} {date.label}"] = v
    labels = [date.label for date in scope.dates if any(date.label in v for v in values.values())]
    on = {date.label: "on" if date.day is not None else "at" if date.at_end else "in" for date in scope.dates}
    entities = [str(e) for e in panel.entities if str(e) in values]
    if not labels or not entities:
        return None
    sentences = []
    if len(labels) >= 2:
        for e in entities:
            got = [(lab, values[e][lab]) for lab in labels if lab in values[e]]
            if len(got) < 2:
                continue
            (l0, v0), (l1, v1) = got[0], got[-1]
            text = f"{e} was " + join_names([f"{with_unit(v, panel.unit)} {on[lab]} {lab}" for lab, v in got])
            if v0 > 0 and v1 > 0 and not panel.is_change and panel.unit != "%":
                pct = (v1 / v0 - 1) * 100
                text += f", a change of {fmt_pct(pct)} from {l0} to {l1}"
                numbers[f"{e} change {l0}-{l1} %"] = pct
            sentences.append(text + ".")
    else:
        lab = labels[0]
        sentences.append(f"{on[lab].title()} {lab}, " + join_names([f"{e} was {with_unit(values[e][lab], panel.unit)}"
                                                    for e in entities if lab in values[e]]) + ".")
    if _YEAR_ON_YEAR.search(scope.text) and not panel.is_change and panel.unit != "%":
        # "How fast were prices rising year on year in Q4 2021": each named period against the same period a year
        # earlier, read the same way.
        for date in [x for x in scope.dates if x.label in labels and x.day is None]:
            before = d[(d["year"] == date.year - 1) & d["month"].between(date.first_month, date.last_month)]
            parts = []
            for e, g in before.sort_values("time").groupby("entity"):
                e = str(e)
                if date.label not in values.get(e, {}):
                    continue
                v0 = float(g["value"].iloc[-1]) if (date.at_end or coarse) else float(g["value"].mean())
                v1 = values[e][date.label]
                if v0 > 0:
                    pct = (v1 / v0 - 1) * 100
                    numbers[f"{e} year-on-year {date.label} %"] = pct
                    parts.append(f"{e} {fmt_pct(pct)} ({with_unit(v0, panel.unit)} a year earlier)")
            if parts:
                sentences.insert(0, f"Year on year, {on[date.label]} {date.label}: " + join_names(parts) + ".")
    how = "the last observation" if coarse else "the average of the observations"
    rows = [[lab] + [fmt(values[e][lab]) if lab in values[e] else "" for e in entities] for lab in labels]
    table = Table(markdown_table(["Period"] + [f"{e} ({panel.unit})" if panel.unit else e for e in entities], rows),
                  f"{panel.measure} in the periods the question names",
                  Provenance(tables=panel.tables, method=f"{how} inside each named quarter or month",
                             numbers=dict(numbers)))
    when = join_names([f"{on[x]} {x}" for x in labels])
    return Finding(title=f"{panel.measure[:1].upper()}{panel.measure[1:]} {when}", sentences=sentences,
                   tables=[table], numbers=numbers, sources=list(panel.tables), kind="levels")


_YEAR_ON_YEAR = re.compile(r"\byear[- ](?:on|over)[- ]year\b|\byoy\b|\bfrom a year (?:earlier|before)\b|"
                           r"\b(?:twelve|12)[- ]months? (?:earlier|before)\b|\bannual (?:growth|change|increase|rise) rate\b",
                           re.IGNORECASE)


_SHARE_OF = re.compile(r"\b(?:fraction|per ?cent(?:age)?)\s+of\s+(?:the\s+)?(?:world|global|total)", re.IGNORECASE)


def share_of_total_finding(panel: Panel, w: Window, scope: Scope) -> Finding | None:
    """"What share of the world's population did India and China have": when the panel holds a total (the World,
    a region, an income group) next to its members, each member's share of it in the years the question names
    (the latest year of the window otherwise)."""
    from lyceum.research.analysis.panels import is_aggregate

    totals = [e for e in panel.entities if is_aggregate(str(e))]
    # The World is the total of every region in it ("Sub-Saharan Africa's share of the world").
    totals = [e for e in totals if str(e) == "World"] or totals
    members = [e for e in panel.entities if e not in totals]
    if len(totals) != 1 or not members or panel.unit == "%":
        return None
    total = totals[0]
    ann = yearly(panel, sorted(set(w.years()) | set(scope.years_named)))
    years = [y for y in scope.years_named if y in ann.index] or [w.end]
    numbers: dict[str, float] = {}
    rows, by_year = [], {}
    for y in years:
        if y not in ann.index or is_missing(ann.at[y, total]) or not ann.at[y, total]:
            continue
        shares = {e: float(ann.at[y, e] / ann.at[y, total] * 100) for e in members if not is_missing(ann.at[y, e])}
        if not shares:
            continue
        by_year[y] = shares
        numbers.update({f"{e} share of {total} {y} %": v for e, v in shares.items()})
        rows.append([str(y)] + [fmt_pct(shares[e], signed=False) if e in shares else "" for e in members])
    if not by_year:
        return None
    if len(by_year) == 1:  # "In 2024, India held 17.8% and China 17.3% of the World total."
        (y, shares), = by_year.items()
        held = [f"{e} {'held ' if i == 0 else ''}{fmt_pct(v, signed=False)}" for i, (e, v) in enumerate(shares.items())]
        sentences = [f"In {y}, {join_names(held)} of the {total} total."]
    else:  # "China held 22.1% of the World total in 1980 and 18.0% in 2020."
        sentences = []
        for e in members:
            got = [(y, shares[e]) for y, shares in by_year.items() if e in shares]
            if got:
                sentences.append(f"{e} held {fmt_pct(got[0][1], signed=False)} of the {total} total in {got[0][0]}"
                                 + "".join(f", {fmt_pct(v, signed=False)} in {y}" for y, v in got[1:-1])
                                 + (f" and {fmt_pct(got[-1][1], signed=False)} in {got[-1][0]}" if len(got) > 1
                                    else "") + ".")
    prov = Provenance(tables=panel.tables, method=f"each entity's value divided by the {total} value, same year",
                      numbers=dict(numbers))
    table = Table(markdown_table(["Year"] + [f"{e} (% of {total})" for e in members], rows),
                  f"Shares of the {total} total of {lower_words(panel.measure)}", prov)
    return Finding(title=f"Shares of the {total} total", sentences=sentences, tables=[table], numbers=numbers,
                   sources=list(panel.tables), kind="ranking")


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
                                    title=f"All {span}-year changes in {e} {lower_words(panel.measure)} since "
                                          f"{int(s.index[0])}",
                                    xlabel=f"% change over {span} years", mark=(now, f"{w.start}–{w.end}"))
        figures.append(Figure(fig_path, f"Distribution of every {span}-year percentage change in the annual "
                                        f"{lower_words(panel.measure)} of {e}, with {w.start}–{w.end} marked",
                              Provenance(tables=panel.tables, method="rolling changes of annual averages",
                                         numbers={f"{e} move {w.start}-{w.end} %": now})))
    if not sentences:
        return None
    return Finding(title="How unusual is the recent move?", sentences=sentences, figures=figures, numbers=numbers,
                   sources=list(panel.tables), kind="unusual")


def fitted_slope(x: list[float], y: list[float]) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    den = sum((a - mx) ** 2 for a in x)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / den if den else 0.0
