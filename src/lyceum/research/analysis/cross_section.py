"""Analyses of a table without a time column (and of the latest year of a wide panel): rankings and shares
by group, a ratio measure by group, the correlation between two measures, the largest rows."""

from __future__ import annotations

import re

from lyceum.research import charts
from lyceum.research.analysis.panels import NOT_A_MEASURE, RATIO_LIKE, FigureSink, is_aggregate, measure_label
from lyceum.research.analysis.wording import join_names, lower_words, possessive, scaled_amount, with_unit
from lyceum.research.bm25 import tokenize
from lyceum.research.catalog import TableProfile, guess_unit, matched_entities
from lyceum.research.numbers import fmt_pct, scale_for
from lyceum.research.question import Scope
from lyceum.research.records import Figure, Finding, Provenance, Table
from lyceum.tables import fmt, is_missing, markdown_table


def analyze_cross_section(frame, t: TableProfile, question: str, scope: Scope, sink: FigureSink) -> list[Finding]:
    q = set(tokenize(question))
    measures = [c for c in t.numeric_columns if not NOT_A_MEASURE.search(c.name)]
    if not measures:
        return [count_finding(frame, t, sink)]

    def relevance(c) -> int:
        return len(q & set(tokenize(c.name + " " + c.description)))

    additive = [c for c in measures if not RATIO_LIKE.search(c.name)]
    ratio = [c for c in measures if RATIO_LIKE.search(c.name)]
    size = max(additive, key=relevance) if additive else None
    rate = max(ratio, key=lambda c: (relevance(c), "/" in c.name)) if ratio else None
    if rate is not None and relevance(rate) == 0 and size is not None and relevance(size) > 0:
        rate = None
    out = []
    groups_named = matched_entities(question, t.entities) if t.entity_column else []
    past = threshold_count_finding(frame, t, question, max(measures, key=relevance) if relevance(
        max(measures, key=relevance)) > 0 else None, groups_named)
    if past is not None:
        out.append(past)
    if re.search(r"\b(?:average|mean|typical)\b", question, re.IGNORECASE) and not groups_named and \
            relevance(max(measures, key=relevance)) > 0:
        # "the average market capitalisation of an S&P 500 company": over all rows, before any grouping
        m = max(measures, key=relevance)
        vals = frame[m.name].dropna()
        if len(vals):
            mean, median = float(vals.mean()), float(vals.median())
            div, word = scale_for([mean], m.unit or "")
            shown = (lambda v: fmt_pct(v * 100, signed=False)) if m.unit == "fraction" else \
                (lambda v: scaled_amount(v, div, word, m.unit or ""))
            out.append(Finding(title=f"Average {lower_words(m.name)}", sentences=[
                (f"Across all {len(vals)} rows with a value, the average {lower_words(m.name)} is {shown(mean)} "
                 f"(median {shown(median)}).")], numbers={f"mean {m.name}": mean, f"median {m.name}": median,
                                                       f"rows with {m.name}": float(len(vals))},
                sources=[t.id], kind="answer"))
    if past is None and t.entity_column and \
            re.search(r"\b(?:how many|number of|most|fewest|count)\b", question, re.IGNORECASE) and \
            not re.search(r"\bmost (?:valuable|expensive|profitable)\b", question, re.IGNORECASE):
        out.append(group_sizes_finding(frame, t, question, groups_named))
    asks_groups = bool(groups_named) or (t.entity_column and t.entity_column.lower() in tokenize(question)) or \
        bool(t.entity_column and set(tokenize(t.entity_column)) & q)
    if "rank" in scope.intents and not asks_groups and size is not None and label_column(frame, t):
        # "Which five companies are the largest" (or "have the highest dividend yield"): the rows themselves,
        # ranked by the measure the question names, before any grouping.
        by = max(measures, key=relevance)
        by = by if relevance(by) > 0 else size
        by, also = ranked_by(measures, question, by)
        lowest = bool(re.search(r"\b(lowest|smallest|cheapest|least|fewest)\b", question.lower()))
        out.append(top_rows_finding(frame, t, by.name, by.unit, sink, top_n=scope.top_n, lowest=lowest,
                                    also=[c.name for c in also]))
    if "rank" in scope.intents and groups_named and size is not None and label_column(frame, t):
        # "Which semiconductor company is the largest": the rows inside each group the question names.
        by, also = ranked_by(measures, question, max(measures, key=relevance) if relevance(
            max(measures, key=relevance)) > 0 else size)
        lowest = bool(re.search(r"\b(lowest|smallest|cheapest|least|fewest)\b", question.lower()))
        for g in groups_named[:2]:
            inside = frame[frame[t.entity_column].astype(str) == g]
            if inside[by.name].notna().any():
                f = top_rows_finding(inside, t, by.name, by.unit, sink, top_n=scope.top_n, lowest=lowest,
                                     also=[c.name for c in also])
                f.sentences = [f"Within {g}, {x[:1].lower()}{x[1:]}" for x in f.sentences]
                f.title, f.kind = f"{f.title} within {g}", "answer"
                out.append(f)
    if t.entity_column and size is not None:
        out.append(ranking_finding(frame, t, size.name, size.unit, sink, named=groups_named))
    if t.entity_column and rate is not None:
        out.append(group_ratio_finding(frame, t, rate.name, size.name if size else None, sink,
                                       named=groups_named, mean_first=bool(re.search(r"\b(average|mean)\b",
                                                                                      question.lower()))))
    named = sorted((c for c in measures if relevance(c) > 0), key=lambda c: -relevance(c))
    if "correlation" in scope.intents and len(named) >= 2:
        pair = (named[0].name, named[1].name)  # the two measures the question asks about
    else:
        pair = (size.name, rate.name) if size is not None and rate is not None else None
    if pair is not None:
        f = correlation_finding(frame, t, *pair, sink)
        if f:
            out.append(f)
    if len([f for f in out for _ in f.figures]) < 2 and size is not None and not any(
            f.title.startswith(("The largest by", "The smallest by", "The highest by", "The lowest by")) for f in out):
        out.append(top_rows_finding(frame, t, size.name, size.unit, sink))
    return out


_RANK_WORD = {"by", "largest", "biggest", "highest", "lowest", "smallest", "most", "least", "top", "bottom",
              "greatest", "fewest"}


def ranked_by(measures, question: str, default):
    """The measure rows are ranked by, and the other measures the question asks for on those rows: "the three
    most valuable companies by market capitalisation, and their price/earnings ratios" ranks by the measure named
    first (market cap) and reports the later one (P/E) for the ranked rows, never ranks by it."""
    words = tokenize(question)

    def named(c) -> tuple[int, int]:  # (how many of the column name's words the question uses, where first)
        own = [w for w in tokenize(c.name) if w in words]
        return len(own), min((words.index(w) for w in own), default=len(words))

    hits = [c for c in measures if named(c)[0]]
    if len(hits) < 2:
        return default, []
    # A measure right after "by" or a superlative is the ranking one wherever it comes ("the P/E ratios of the
    # three largest by market cap"); otherwise the one named first.
    raw = re.findall(r"[a-z0-9/&]+", question.lower())

    def after_rank_word(c) -> bool:
        own = set(tokenize(c.name))
        return any(set(tokenize(w)) & own and _RANK_WORD.intersection(raw[max(0, j - 3):j])
                   for j, w in enumerate(raw))

    first = min(hits, key=lambda c: (not after_rank_word(c), named(c)[1], -named(c)[0]))
    rest = [c for c in hits if c is not first]
    most = max(named(c)[0] for c in rest)
    return first, [c for c in rest if named(c)[0] == most][:2]


def latest_ranking_finding(frame, t: TableProfile, measure: str | None, sink: FigureSink, *,
                           year: int | None = None, top_n: int | None = None, named: list[str] = (),
                           lowest: bool = False) -> Finding | None:
    """For "which are the largest" questions on a panel: rank the entities in ``year`` (a year the question
    names) or else the latest year with data; ``top_n`` is the size of the group the question asks about."""
    if measure is None:
        return None
    d = frame.dropna(subset=[measure])
    if t.column(t.time_column).type == "date":
        d = d.assign(_year=d[t.time_column].dt.year)
    else:
        d = d.assign(_year=d[t.time_column].astype(int))
    counts = d.groupby("_year")[t.entity_column].nunique()
    if year is None or year not in counts.index:
        year = int(counts[counts >= 0.8 * counts.max()].index.max())  # the latest year most entities report
    latest = d[d["_year"] == year].groupby(t.entity_column)[measure].mean()
    groups = latest[[is_aggregate(str(e)) for e in latest.index]]
    latest = latest[[not is_aggregate(str(e)) for e in latest.index]].sort_values(ascending=lowest)
    if latest.empty:
        return None
    col = t.column(measure)
    unit = col.unit or guess_unit(col.description)
    total = float(groups["World"]) if "World" in groups.index else float(latest.sum())
    # Rates, prices and indexes do not add up: their ranking shows no shares of a total ("9227% of the World").
    additive = not (unit in ("%", "fraction") or unit.startswith("index") or RATIO_LIKE.search(f"{measure} {unit}")
                    or RATIO_LIKE.search(measure_label(t, measure)))
    base = "the World total" if "World" in groups.index else f"the {len(latest)} listed"
    # Shares of a total exist only for amounts that add up (GDP, people); an index, a rate or a ratio has none
    # ("the top three account for 468.4%" of a house price index).
    if unit.startswith("index") or unit in ("%", "fraction") or RATIO_LIKE.search(measure) or \
            re.search(r"\bindex\b|\brate\b|\bratio\b", f"{measure} {col.description} {t.title}", re.IGNORECASE):
        return _ranking_without_shares(latest, t, measure, unit, year, sink, top_n=top_n, named=named,
                                       lowest=lowest)
    top = latest.head(10)
    div, word = scale_for(top.tolist(), unit)
    unit_label = " ".join(x for x in (word, unit) if x)
    rows = [[str(k), fmt(v / div)] + ([fmt_pct(v / total * 100, signed=False)] if additive else []) for k, v in top.items()]
    numbers = {f"{k} {year}": float(v) for k, v in top.items()}
    numbers.update({f"{k} share {year}": float(v / total * 100) for k, v in top.items()})
    numbers.update({"total": total, "entities ranked": float(len(latest))})
    table = Table(markdown_table([t.entity_column, f"{measure} {year}" + (f" ({unit_label})" if unit_label else "")]
                                 + ([f"Share of {base}"] if additive else []), rows),
                  f"The 10 largest by {lower_words(measure_label(t, measure))} in {year} (groups and regions left out)",
                  Provenance(tables=[t.id], method=f"ranking of '{measure}' in {year}", numbers=dict(numbers)))
    fig_path = charts.bar_chart([str(k) for k in top.index], (top / div).tolist(), sink.path(f"ranking-{measure}"),
                                title=f"The 10 {'lowest' if lowest else 'largest'} in {year}", ylabel=unit_label or measure, horizontal=True)
    names = list(top.index[:3])
    if lowest:  # "which three countries had the lowest inflation": the bottom of the ranking, no shares of a total
        k = top_n or 3
        listed = join_names([f"{n} ({with_unit(top[n], unit)})" for n in latest.index[:k]])
        table.caption = table.caption.replace("The 10 largest", "The 10 lowest")
        return Finding(title=f"Lowest in {year}", sentences=[(f"In {year}, the lowest {lower_words(measure_label(t, measure))} "
                                                            f"{'were' if k > 1 else 'was'} {listed}.")],
                       figures=[Figure(fig_path, f"The 10 lowest by {lower_words(measure_label(t, measure))} in {year}",
                                       Provenance(tables=[t.id], method="bar chart of the ranking"))],
                       tables=[table], numbers=numbers, sources=[t.id], kind="ranking")
    if not additive:  # "which ten countries had the highest inflation": the leaders and their values
        k = top_n or 3
        listed = join_names([f"{n} ({with_unit(top[n], unit)})" for n in latest.index[:k]])
        return Finding(title=f"Ranking in {year}", sentences=[(f"In {year}, the highest {lower_words(measure_label(t, measure))} "
                                                             f"{'were' if k > 1 else 'was'} {listed}.")],
                       figures=[Figure(fig_path, f"The 10 highest by {lower_words(measure_label(t, measure))} in {year}",
                                       Provenance(tables=[t.id], method="bar chart of the latest ranking"))],
                       tables=[table], numbers=numbers, sources=[t.id], kind="ranking")
    sentences = [(f"In {year}, the largest were {join_names([f'{n} ({with_unit(top[n], unit)})' for n in names])}; together "
                  f"the top three account for {fmt_pct(top.head(3).sum() / total * 100, signed=False)} of {base}.")]
    numbers["top3 share"] = float(top.head(3).sum() / total * 100)
    if top_n and top_n != 3 and top_n <= len(latest):
        share = float(latest.head(top_n).sum() / total * 100)
        listed = join_names([f"{k} ({with_unit(latest[k], unit)})" for k in latest.index[:top_n]])
        sentences.append(f"The top {top_n} in {year} were {listed}; together they account for "
                         f"{fmt_pct(share, signed=False)} of {base}.")
        numbers[f"top{top_n} share"] = share
    # The entities the question names, after the leaders: their value, share and rank are the direct answer.
    for k in reversed([k for k in named if k in latest.index]):
        rank = list(latest.index).index(k) + 1
        share_k = fmt_pct(latest[k] / total * 100, signed=False)
        sentences.insert(1, f"In {year}, {k} had {with_unit(latest[k], unit)}, {share_k} of {base} (number {rank} "
                            f"of {len(latest)}).")
        numbers.update({f"{k} {year}": float(latest[k]), f"{k} share {year}": float(latest[k] / total * 100),
                        f"{k} rank {year}": float(rank)})
    return Finding(title=f"Ranking in {year}", sentences=sentences,
                   figures=[Figure(fig_path, f"The 10 largest by {lower_words(measure_label(t, measure))} in {year}",
                                   Provenance(tables=[t.id], method="bar chart of the latest ranking"))],
                   tables=[table], numbers=numbers, sources=[t.id], kind="ranking")


def _ranking_without_shares(latest, t: TableProfile, measure: str, unit: str, year: int, sink: FigureSink, *,
                            top_n: int | None, named: list[str], lowest: bool = False) -> Finding:
    """The ranking of a measure that does not add up (an index, a rate): values and ranks, no shares. ``latest``
    comes sorted from the end the question asks about (the lowest first for a "lowest" question)."""
    top = latest.head(10)
    end = "lowest" if lowest else "highest"
    label = lower_words(measure_label(t, measure))
    k = top_n or 3
    numbers = {f"{e} {year}": float(v) for e, v in top.items()}
    numbers["entities ranked"] = float(len(latest))
    leaders = join_names([f"{e} ({with_unit(v, unit)})" for e, v in latest.head(k).items()])
    sentences = [(f"In {year}, the {f'{k} ' if k > 1 else ''}{end} by {label} of the {len(latest)} ranked "
                  f"{'were' if k > 1 else 'was'} {leaders}.")]
    for e in [e for e in named if e in latest.index]:
        rank = list(latest.index).index(e) + 1
        sentences.append(f"In {year}, {e} had {with_unit(latest[e], unit)} (number {rank} of {len(latest)}).")
        numbers.update({f"{e} {year}": float(latest[e]), f"{e} rank {year}": float(rank)})
    rows = [[str(i + 1), str(e), fmt(float(v))] for i, (e, v) in enumerate(top.items())]
    prov = Provenance(tables=[t.id], method=f"ranking of '{measure}' in {year}", numbers=dict(numbers))
    table = Table(markdown_table(["Rank", t.entity_column, f"{measure} {year}" + (f" ({unit})" if unit else "")], rows),
                  f"The 10 {end} by {label} in {year} (groups and regions left out)", prov)
    path = charts.bar_chart([str(e) for e in top.index], top.tolist(), sink.path(f"ranking-{measure}"),
                            title=f"The 10 {end} in {year}", ylabel=unit or measure, horizontal=True)
    return Finding(title=f"{'Lowest' if lowest else 'Ranking'} in {year}", sentences=sentences, tables=[table],
                   figures=[Figure(path, f"The 10 {end} by {label} in {year}", prov)], numbers=numbers,
                   sources=[t.id], kind="ranking")


def label_column(frame, t: TableProfile) -> str | None:
    texts = [c for c in t.columns if c.type == "text" and c.name != t.entity_column and not c.name.lower().endswith(
        ("url", "filings", "link"))]
    if not texts:
        return None
    return max(texts, key=lambda c: (c.distinct, frame[c.name].dropna().astype(str).str.len().mean())).name


def ranking_finding(frame, t: TableProfile, size: str, unit: str, sink: FigureSink, *,
                    named: list[str] = ()) -> Finding:
    """Group totals and shares of an additive column, the largest groups first; the groups the question names
    are stated whether or not they are among the largest."""
    g = frame.groupby(t.entity_column)[size].agg(["sum", "count"]).sort_values("sum", ascending=False)
    members = frame[t.entity_column].astype(str).value_counts()
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
                                                 f"{lower_words(size)}", Provenance(tables=[t.id], method=f"sum of "
                                                 f"'{size}' by '{t.entity_column}'", numbers=dict(numbers)))
    fig_path = charts.bar_chart([str(k) for k in top.index], (top["sum"] / div).tolist(), sink.path(f"rank-{size}"),
                                title=f"Total {lower_words(size)} by {t.entity_column.lower()} (top 10)",
                                ylabel=unit_label or size, horizontal=True)
    figure = Figure(fig_path, f"Total {lower_words(size)} of the 10 largest {t.entity_column.lower()} groups",
                    Provenance(tables=[t.id], method="bar chart of group totals", numbers={}))
    names = list(top.index[:3])
    share3 = float(top["sum"].head(3).sum() / total * 100)
    share10 = float(top["sum"].sum() / total * 100)
    numbers.update({"top3 share": share3, "top10 share": share10})
    sentences = [
        (f"The table lists {len(frame)} rows in {len(g)} {t.entity_column.lower()} groups, with a combined "
         f"{lower_words(size)} of {scaled_amount(total, div, word, unit)}."),
        (f"{names[0]} is the largest group with {scaled_amount(top['sum'].iloc[0], div, word, unit)} "
         f"({fmt_pct(top['sum'].iloc[0] / total * 100, signed=False)} of the total)"
         + (f", followed by {names[1]} ({scaled_amount(top['sum'].iloc[1], div, word, unit)})" if len(names) > 1 else "")
         + (f" and {names[2]} ({scaled_amount(top['sum'].iloc[2], div, word, unit)})" if len(names) > 2 else "") + "."),
        (f"The three largest groups hold {fmt_pct(share3, signed=False)} of the total and the ten largest "
         f"{fmt_pct(share10, signed=False)}."),
    ]
    for k in [k for k in named if k in g.index]:
        total_k, rank = float(g.at[k, "sum"]), int(list(g.index).index(k)) + 1
        numbers.update({f"{k} total {size}": total_k, f"{k} share": total_k / total * 100,
                        f"{k} members": float(members.get(k, 0)), f"{k} rank": float(rank)})
        sentences.insert(1, f"{k} has {int(members.get(k, 0))} members (rows) with a combined {lower_words(size)} "
                            f"of {scaled_amount(total_k, *scale_for([total_k], unit), unit)}, "
                            f"{fmt_pct(total_k / total * 100, signed=False)} of the total (number {rank} of {len(g)} "
                            f"groups).")
        values = frame[frame[t.entity_column].astype(str) == k][size].dropna()
        if len(values):  # "the average EBITDA of Semiconductors companies": per row, not combined
            mean_k = float(values.mean())
            numbers.update({f"{k} mean {size}": mean_k, f"{k} median {size}": float(values.median())})
            sentences.insert(2, f"{possessive(k)} {len(values)} rows with a value average "
                                f"{scaled_amount(mean_k, *scale_for([mean_k], unit), unit)} of {lower_words(size)} each "
                                f"(median {scaled_amount(float(values.median()), *scale_for([mean_k], unit), unit)}).")
    return Finding(title=f"Which {t.entity_column.lower()} groups dominate by {lower_words(size)}", sentences=sentences,
                   figures=[figure], tables=[table], numbers=numbers, sources=[t.id], kind="ranking")


def group_ratio_finding(frame, t: TableProfile, rate: str, size: str | None, sink: FigureSink, *,
                        named: list[str] = (), mean_first: bool = False) -> Finding:
    """The ratio's median by group (a few extreme rows do not move it), and for the groups the question names,
    their mean and median side by side (the mean first when the question asks for an average)."""
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
        title = f"Median {rate} of the 10 largest {t.entity_column.lower()} groups by {lower_words(size)}"
    else:
        show = g["median"].head(10)
        title = f"Median {rate} by {t.entity_column.lower()} (highest 10)"
    for k, v in show.items():
        if not is_missing(v):
            numbers[f"{k} median {rate}"] = float(v)
    fig_path = charts.bar_chart([str(k) for k in show.index], show.fillna(0).tolist(), sink.path(f"ratio-{rate}"),
                                title=title, ylabel=rate, horizontal=True, reference=(overall, "median of all rows"))
    figure = Figure(fig_path, title + "; the dashed line is the median over all rows",
                    Provenance(tables=[t.id], method=f"median of '{rate}' by group", numbers={}))
    # The groups the question names, in one sentence: the direct answer to "how does A's ratio compare with B's".
    stat, other = ("mean", "median") if mean_first else ("median", "mean")
    word = {"mean": "average", "median": "median"}
    parts = []
    for k in named:
        part = d[d[t.entity_column] == k][rate]
        if part.empty:
            continue
        v = {"mean": float(part.mean()), "median": float(part.median())}
        numbers.update({f"{k} mean {rate}": v["mean"], f"{k} median {rate}": v["median"],
                        f"{k} rows": float(len(part))})
        parts.append((k, v, len(part)))
    sentences = []
    if parts:
        listed = [f"{fmt(v[stat])} for {k} ({word[other]} {fmt(v[other])}, {n} rows with a value)" for k, v, n in parts]
        text = f"The {word[stat]} {rate} is " + join_names(listed)
        if len(parts) >= 2 and min(parts[0][1][stat], parts[1][1][stat]) > 0:
            (a, va, _), (b, vb, _) = parts[0], parts[1]
            hi, lo = (a, b) if va[stat] >= vb[stat] else (b, a)
            times = max(va[stat], vb[stat]) / min(va[stat], vb[stat])
            numbers[f"{hi} / {lo} {stat} {rate}"] = times
            text += f": {fmt(times)} times as high for {hi} as for {lo}"
        sentences.append(text + ".")
    sentences.append(f"The median {rate} across all {len(d)} rows with a value is {fmt(overall)}.")
    numbers["rows with a value"] = float(len(d))
    if len(g) >= 2:
        hi, lo = g.index[0], g.index[-1]
        sentences.append(f"Among groups with at least 3 members, {hi} has the highest median {rate} "
                         f"({fmt(g.at[hi, 'median'])}) and {lo} the lowest ({fmt(g.at[lo, 'median'])}).")
    if mean_first and len(g) >= 2:  # "which sector has the highest average yield": ranked by the mean as asked
        means = d.groupby(t.entity_column)[rate].mean()[g.index].sort_values(ascending=False)
        hi, lo = means.index[0], means.index[-1]
        numbers.update({f"{hi} mean {rate}": float(means[hi]), f"{lo} mean {rate}": float(means[lo])})
        sentences.insert(0, f"Among groups with at least 3 members, {hi} has the highest average {rate} "
                            f"({fmt(means[hi])}) and {lo} the lowest ({fmt(means[lo])}).")
    if size is not None and len(show.dropna()):
        top = show.dropna()
        sentences.append(f"Among the largest groups by {lower_words(size)}, the median {rate} ranges from "
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
                                    title=f"{rate} against {lower_words(size)} (each point a row)",
                                    xlabel=f"{size} ({word})" if word else size, ylabel=rate, logx=True)
    figure = Figure(fig_path, f"{rate} against {lower_words(size)} for every row (1st–99th percentile of {rate}; "
                              "log scale)", Provenance(tables=[t.id], method="scatter of two columns", numbers={}))
    strength = "weak" if abs(spearman) < 0.3 else "moderate" if abs(spearman) < 0.6 else "strong"
    return Finding(title=f"{size} and {rate}", sentences=[
        (f"Across {len(d)} rows the rank correlation between {lower_words(size)} and {rate} is {spearman:.2f} "
         f"(Pearson r = {pearson:.2f}): a {strength} relationship.")],
        figures=[figure], numbers={f"spearman {size} {rate}": spearman, f"pearson {size} {rate}": pearson,
                                   "rows": float(len(d))},
        sources=[t.id], kind="correlation")


def top_rows_finding(frame, t: TableProfile, size: str, unit: str, sink: FigureSink, *,
                     top_n: int | None = None, lowest: bool = False, also: list[str] = ()) -> Finding:
    """The largest rows by ``size`` (the smallest with ``lowest``); for "which five are the largest", those five
    by name with their values and, for an additive measure, their share of the column's total."""
    label = label_column(frame, t) or frame.columns[0]
    rows_with = frame.dropna(subset=[size])
    top = rows_with.sort_values(size, ascending=lowest).head(max(10, top_n or 0))
    div, word = scale_for(top[size].tolist(), unit)
    rate_like = bool(RATIO_LIKE.search(size)) or unit in ("fraction", "%")
    end = ("lowest" if lowest else "highest") if rate_like else ("smallest" if lowest else "largest")

    def amount(v: float) -> str:  # a fraction reads as a percentage ("7.53%")
        return f"{v * 100:.2f}%" if unit == "fraction" else scaled_amount(v, div, word, unit)
    unit_label = " ".join(x for x in (unit, word) if x)
    # Each cell carries its scale word ("4.22 trillion"): a row read on its own still says what it holds.
    rows = [[str(r[label]), str(r[t.entity_column]) if t.entity_column else "",
             f"{r[size] * 100:.2f}%" if unit == "fraction" else scaled_amount(r[size], div, word, "")]
            for _, r in top.iterrows()]
    numbers = {f"{r[label]} {size}": float(r[size]) for _, r in top.iterrows()}
    # The other measures the question asks for, on the ranked rows ("and their price/earnings ratios").
    also = [c for c in also if c in frame.columns and c != size]
    for row, (_, r) in zip(rows, top.iterrows()):
        row += [fmt(r[c]) if not is_missing(r[c]) else "" for c in also]
    numbers.update({f"{r[label]} {c}": float(r[c]) for _, r in top.iterrows() for c in also if not is_missing(r[c])})
    table = Table(markdown_table([label, t.entity_column or "", f"{size} ({unit})" if unit else size, *also], rows,
                                 ["l", "l", "r"] + ["r"] * len(also)),
                  f"The {len(top)} {end} rows by {lower_words(size)}", Provenance(tables=[t.id], method="top rows",
                                                                       numbers=dict(numbers)))
    fig_path = charts.bar_chart([str(x) for x in top[label]], (top[size] / div).tolist(), sink.path(f"top-{size}"),
                                title=f"The {len(top)} {end} by {lower_words(size)}", ylabel=unit_label or size, horizontal=True)
    numbers["rows with a value"] = float(len(rows_with))
    sentences = [f"The {end} single row is {top[label].iloc[0]} with {amount(top[size].iloc[0])}."]
    if top_n and top_n > 1:
        head = top.head(top_n)
        total = float(rows_with[size].sum())
        share = float(head[size].sum()) / total * 100 if total > 0 and not rate_like else None
        # Name and value side by side, separated by semicolons: names such as "Apple Inc." end in a full stop.
        listed = "; ".join(f"{r[label]}, {amount(r[size])}" + "".join(
            f" ({c} {fmt(r[c])})" for c in also if not is_missing(r[c])) for _, r in head.iterrows())
        sentences = [f"The {top_n} {end} by {lower_words(size)} are: {listed}."]
        if share is not None:
            numbers[f"top{top_n} share"] = share
            numbers[f"total {size}"] = total
            sentences[0] = sentences[0][:-1] + (
                f"; together they hold {fmt_pct(share, signed=False)} of the "
                f"{scaled_amount(total, *scale_for([total], unit), unit)} total {lower_words(size)} of all "
                f"{len(rows_with)} rows with a value.")
    return Finding(title=f"The {end} by {lower_words(size)}", sentences=sentences,
        figures=[Figure(fig_path, f"The {len(top)} {end} rows by {lower_words(size)}",
                        Provenance(tables=[t.id], method="bar chart of the largest rows"))],
        tables=[table], numbers=numbers, sources=[t.id], kind="ranking")


def count_finding(frame, t: TableProfile, sink: FigureSink) -> Finding:
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


def threshold_count_finding(frame, t: TableProfile, question: str, measure, groups: list[str]) -> Finding | None:
    """For "how many S&P 500 companies have a dividend yield above 3%": the rows (within each group the question
    names, and overall) whose measure is past the threshold, and the first few of them."""
    from lyceum.research.analysis.answers import asked_threshold

    asked = asked_threshold(question)
    if asked is None or measure is None:
        return None
    value, upward, words = asked
    if measure.unit == "fraction" and re.search(r"%|percent", words):
        value /= 100  # "3%" of a yield stored as a decimal (0.03)
    scale = re.search(r"\b(thousand|million|billion|trillion)\b", measure.unit or "", re.IGNORECASE)
    if scale and value >= 1e3:
        value /= {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}[scale.group(1).lower()]
    label = label_column(frame, t)
    side = "above" if upward else "below"
    shown = fmt_pct(value * 100, signed=False) if measure.unit == "fraction" else with_unit(value, measure.unit or "")
    sentences, numbers = [], {"threshold": value}
    scopes = [(g, frame[frame[t.entity_column].astype(str) == g]) for g in groups] + [("", frame)]
    for g, rows in scopes:
        vals = rows[measure.name].dropna()
        hit = rows.loc[vals.index][(vals > value) if upward else (vals < value)]
        where = f"of the {len(vals)} {g} rows" if g else f"of all {len(vals)} rows"
        text = f"{len(hit)} {where} with a value have {lower_words(measure.name)} {side} {shown}"
        if label and 0 < len(hit) <= 10:
            text += f" ({join_names([str(x) for x in hit[label]])})"
        sentences.append(text + ".")
        numbers.update({f"{g or 'all'} count {side}": len(hit), f"{g or 'all'} count": len(vals)})
    return Finding(title=f"Rows with {lower_words(measure.name)} {side} {shown}", sentences=sentences,
                   numbers=numbers, sources=[t.id], kind="answer")


def group_sizes_finding(frame, t: TableProfile, question: str, named: list[str]) -> Finding:
    """For "which sector has the most companies, and how many": the groups by their number of rows (the named
    groups first), largest first, or smallest first for "fewest"."""
    counts = frame[t.entity_column].astype(str).value_counts()
    fewest = bool(re.search(r"\b(fewest|least|smallest)\b", question, re.IGNORECASE))
    ordered = counts.sort_values(ascending=fewest, kind="stable")
    col = t.entity_column.lower()
    top = ordered.head(3)
    word = "fewest" if fewest else "most"
    sentences = [(f"By number of rows, the {col} with the {word} is {top.index[0]} ({top.iloc[0]} rows), followed by "
                  f"{join_names([f'{k} ({v})' for k, v in list(top.items())[1:]])}; the table has {len(frame)} rows in "
                  f"{len(counts)} {col} groups.")]
    for g in named:
        if g in counts.index:
            sentences.insert(0, f"{g} has {counts[g]} rows (number {int((counts > counts[g]).sum()) + 1} of "
                                f"{len(counts)} {col} groups by size).")
    numbers = {f"{k} rows": float(v) for k, v in ordered.head(10).items()}
    numbers.update({f"{g} rows": float(counts[g]) for g in named if g in counts.index})
    numbers.update({"rows": float(len(frame)), "groups": float(len(counts))})
    return Finding(title=f"Rows per {col}", sentences=sentences, numbers=numbers, sources=[t.id], kind="answer")
