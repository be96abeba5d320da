"""Which tables answer a question: the rule-based analyst's retrieval, explained step by step.

BM25 finds the right dataset easily; the hard part is choosing *inside* a dataset, where files are variants of
one another (brent-daily / wti-daily, real_index / nominal_index, co2-gr-mlo / co2-annmean-gl). The rules:

1. keep the best-scoring dataset (and a second one scoring nearly as well, for cross-dataset questions);
2. drop exact copies, filtered subsets, and tables whose columns are a subset of another table's;
3. *facets*: file names that differ by one word swap ("brent"<->"wti", "mlo"<->"gl") form a facet; when the
   question names some values of a facet (directly or through an abbreviation the dataset spells out, such as
   "mlo" = "Mauna Loa Observatory"), tables with the other values go;
4. tables holding one series at several frequencies collapse to the finest one (every coarser view can be
   computed from it), unless the question names a frequency;
5. a published year-on-year change table goes when its level table stays (changes are computed from levels);
6. a change table (annual increase, growth) is shown with the level table it changes;
7. without a facet naming, only series scoring close to the best one stay.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from lyceum.research.bm25 import tokenize
from lyceum.research.question import INTENT_WORDS, currencies_named

if TYPE_CHECKING:  # selection works on profiles; the catalog calls it, never the other way round
    from lyceum.research.catalog import Catalog, TableProfile

# Words that name a sampling frequency: tables that differ only by them hold the same series.
GRANULARITY_WORDS = {"daily", "day", "weekly", "week", "monthly", "month", "quarterly", "quarter", "annual",
                     "annually", "yearly", "year", "processed", "raw", "clean", "data"}

_FREQ_RANK = {"daily": 0, "weekly": 1, "monthly": 2, "quarterly": 3, "annual": 4, "irregular": 5, None: 6}
_CHANGE_COLUMN = re.compile(r"\b(increase|growth|changes?|difference|delta|returns?)\b", re.IGNORECASE)
_PERCENT_CHANGE = re.compile(r"year-on-year|year over year|\byoy\b|percentage change|per ?cent change", re.IGNORECASE)


def is_change_table(p: TableProfile) -> bool:
    """A table whose measured values are changes (an annual increase, a growth rate), not levels."""
    values = [c.name for c in p.numeric_columns]
    return any(_CHANGE_COLUMN.search(v) for v in values[:1]) or bool(_PERCENT_CHANGE.search(p.description))


def select_tables(catalog: Catalog, question: str, *, max_tables: int = 3, embed=None,
                  notes: list[str] | None = None) -> list[TableProfile]:
    """The tables to analyse; ``notes`` (when given) receives a sentence for each table left out because another
    holds the same measure (see ``one_table_per_measure``)."""
    from lyceum.research.analysis.derived import INFLATION, REAL_TERMS, price_index

    ranked = catalog.search(_with_implied_measure(question), k=len(catalog.profiles), embed=embed)
    if not ranked:
        return []
    scores = {p.id: s for p, s in ranked}
    best_by_dataset: dict[str, float] = {}
    for p, s in ranked:
        best_by_dataset[p.dataset] = max(best_by_dataset.get(p.dataset, 0.0), s)
    top = ranked[0][1]
    query = set(tokenize(question))
    order = [d for d, _ in sorted(best_by_dataset.items(), key=lambda x: -x[1])]
    # A best dataset that names none of the question's subjects, only its form ("the largest fall in WTI prices"
    # finding the ten largest economies), yields to a close one that does.
    form = _alias_terms() | {t for w in re.findall(r"[a-z]+", question.lower())
                             if any(re.match(p, w) for p in INTENT_WORDS.values()) for t in tokenize(w)}

    def names_subject(d: str) -> bool:
        return bool(_covered_terms(catalog, d, query) & _subject_terms(question) - form - _entity_terms(catalog, d))

    if not names_subject(order[0]):
        better = next((d for d in order[1:4] if best_by_dataset[d] >= 0.5 * top and names_subject(d)), None)
        if better is not None:
            order.remove(better)
            order.insert(0, better)
    from lyceum.research.analysis.derived import asks_real_terms

    index = price_index(catalog) if asks_real_terms(question) else None
    if index is not None and index[0].dataset == order[0]:
        # "Adjusting for US inflation, what was Brent in 2000 dollars": the price index only deflates (it is found
        # on its own); the subject is the best dataset naming what the index does not.
        own = _covered_terms(catalog, order[0], query)
        subject = next((d for d in order[1:6] if _covered_terms(catalog, d, query) & _subject_terms(question) - own
                        - form - _entity_terms(catalog, d)), None)
        if subject is not None:
            order.remove(subject)
            order.insert(0, subject)
    datasets = order[:1]
    # A second dataset joins only when it scores nearly as well *and* covers question words the first does not
    # (a cross-dataset question such as "CO2 and temperature"), not merely the same words again.
    covered = _covered_terms(catalog, order[0], query)
    # A question about how two things relate ("CO2 and temperature correlated") names two subjects: the second
    # dataset's bar is lower, as long as it brings the words the first lacks.
    relation = bool(_RELATION.search(question))
    # Entity names the first dataset holds and words of the question's form ("compare", "rate") are no second
    # subject: "India's population compared with China's" needs no exchange-rate table that also lists India.
    ordinary = _entity_terms(catalog, order[0]) | _alias_terms() | {t for w in re.findall(r"[a-z]+", question.lower()) if any(
        re.match(p, w) for p in INTENT_WORDS.values()) for t in tokenize(w)}
    # The name of what a table's rows are ("country", "sector") is no subject either: "which countries had the
    # lowest inflation" is not about a table because it lists countries.
    ordinary |= set(tokenize(" ".join(p.entity_column or "" for p in catalog.profiles if p.dataset == order[0])))
    # "Oil in real terms": the words asking for a deflated measure name no second subject (the real house price
    # index), since the price index that deflates is found on its own.
    ordinary |= set(tokenize(" ".join(m.group(0) for m in REAL_TERMS.finditer(question))))

    if INFLATION.search(question) and not _subject_terms(question) & covered - ordinary:
        # The best dataset matched only on country names and question-form words ("inflation in Brazil" finding
        # an exchange-rate table that lists Brazil): an inflation question is answered by the price index.
        found = price_index(catalog)
        if found is not None and found[0].dataset != order[0]:
            return [found[0]]
    second = _second_dataset(catalog, order, best_by_dataset, query, question, covered | ordinary)
    for d in ([second] if second else []) + order[1:4 if relation else 2]:
        if best_by_dataset[d] >= (0.4 if relation else 0.6 if d == second else 0.8) * top and \
                _covered_terms(catalog, d, query) & _subject_terms(question) - covered - ordinary:
            datasets.append(d)
            break
    chosen: list[TableProfile] = []
    for i, d in enumerate(datasets):
        members = [p for p in catalog.profiles if p.dataset == d]
        picks = _select_in_dataset(members, query, scores, question)
        # Keep room for the second subject's table.
        chosen += picks[: max_tables - 1] if i == 0 and len(datasets) > 1 else picks
    kept, choices = one_table_per_measure(chosen, question)
    if notes is not None:
        notes += choices
    return kept[:max_tables]


def _same_measure_narrower(small: TableProfile, large: TableProfile) -> bool:
    """``small`` holds the measure ``large`` holds, for a subset of its entities: two tables of one dataset, each
    a panel of entities over time, the smaller's entities (nearly) all among the larger's, and far fewer of them
    (GDP of the ten largest economies beside GDP of every country). Real and nominal indexes of the same
    countries are two measures, not one: their entity lists are the same size."""
    if small is large or small.dataset != large.dataset or is_change_table(small) or is_change_table(large):
        return False
    if not (small.time_column and small.entity_column and large.time_column and large.entity_column):
        return False
    a, b = set(small.entities), set(large.entities)
    return bool(a) and len(a) <= 0.5 * len(b) and len(a & b) >= 0.8 * len(a)


def _same_series_other_frequency(a: TableProfile, b: TableProfile) -> bool:
    """``a`` and ``b`` hold one series at two sampling frequencies: two tables of one dataset without entities,
    file names differing by one word each ("co2-mm-mlo" / "co2-annmean-mlo"), levels in the same units."""
    if a is b or a.dataset != b.dataset or a.entity_column or b.entity_column or not (a.time_column and b.time_column):
        return False
    if is_change_table(a) or is_change_table(b) or not a.frequency or not b.frequency or a.frequency == b.frequency:
        return False
    wa, wb = set(a.name_words), set(b.name_words)
    from lyceum.research.catalog import guess_unit

    def units(p: TableProfile) -> set[str]:
        return {c.unit or guess_unit(c.description) or guess_unit(p.description) for c in p.numeric_columns} - {""}

    return len(wa - wb) == 1 and len(wb - wa) == 1 and bool(units(a) & units(b))


def _years(p: TableProfile) -> tuple[int, int] | None:
    try:
        return int(str(p.time_start)[:4]), int(str(p.time_end)[:4])
    except (TypeError, ValueError):
        return None


def one_table_per_measure(tables: list[TableProfile], question: str) -> tuple[list[TableProfile], list[str]]:
    """One table per measure: where two chosen tables hold the same measure for nested sets of entities, every
    number would be stated twice, in two units; keep the one that covers more of the entities and years the
    question asks about (the wider one on a tie). Returns the tables kept and a sentence per choice made."""
    from lyceum.research.catalog import matched_entities
    from lyceum.research.question import parse_question

    scope = parse_question(question)
    asked_years = scope.years_named or [y for y in (scope.start_year, scope.end_year) if y]

    def coverage(p: TableProfile) -> tuple:
        span = _years(p)
        years = sum(1 for y in asked_years if span and span[0] <= y <= span[1])
        return len(matched_entities(question, p.entities)), years, len(p.entities), span[1] - span[0] if span else 0

    kept, notes = list(tables), []
    wanted = named_frequency(question) or ("annual" if scope.ranked_years else None)
    for a in tables:
        for b in tables:
            if a in kept and b in kept and _same_series_other_frequency(a, b):
                # The frequency the question names, else the finer one (every coarser view is computed from it).
                keep, drop = sorted((a, b), key=lambda p: _grain_rank(p, wanted))
                kept.remove(drop)
                notes.append(f"`{keep.id}` and `{drop.id}` hold the same series, {keep.frequency} and "
                             f"{drop.frequency}; it is taken from `{keep.id}` only, so that each number is stated "
                             f"once.")
    for small in tables:
        for large in tables:
            if small in kept and large in kept and _same_measure_narrower(small, large):
                keep, drop = (large, small) if coverage(large) >= coverage(small) else (small, large)
                kept.remove(drop)
                notes.append(f"`{keep.id}` and `{drop.id}` hold the same measure ({len(keep.entities)} and "
                             f"{len(drop.entities)} entities, "
                             f"{_span(keep)} and {_span(drop)}); it is taken from `{keep.id}` only, which covers "
                             f"{'more of' if coverage(keep)[:2] > coverage(drop)[:2] else 'as much of'} what the "
                             f"question asks, so that each number is stated once.")
    return kept, notes


def _span(p: TableProfile) -> str:
    span = _years(p)
    return f"{span[0]}–{span[1]}" if span else "no time span"


def _second_dataset(catalog: Catalog, order: list[str], best: dict[str, float], query: set[str], question: str,
                    known: set[str]) -> str | None:
    """Of the next datasets scoring at least 60% of the best, the one naming the most question subjects the first
    dataset lacks, when it names more of them than the runner-up: "Brent crude in constant dollars deflated with
    the CPI" needs the oil prices (Brent, crude) beside the CPI, not the house price indexes that merely score
    higher on "real" and "prices"."""
    if len(order) < 3:
        return None
    subjects = _subject_terms(question)

    def weight(d: str) -> int:  # a subject naming one of the dataset's tables ("brent-year") counts twice
        terms = _covered_terms(catalog, d, query) & subjects - known
        names = set(tokenize(" ".join(" ".join(p.name_words) + " " + p.title for p in catalog.profiles
                                      if p.dataset == d)))
        return len(terms) + len(terms & names)

    new = {d: weight(d) for d in order[1:4] if best[d] >= 0.6 * best[order[0]]}
    if not new:
        return None
    d = max(new, key=lambda d: (new[d], best[d]))
    return d if d != order[1] and new[d] > new.get(order[1], 0) else None


_RELATION = re.compile(r"correlat|relationship|related to|associat|co-?move|track(?:ed|s)? each other|"
                       r"\blag|\bvs\.?\b|versus", re.IGNORECASE)


def _with_implied_measure(question: str) -> str:
    """A question naming currencies without asking for values in them ("the Indian rupee against the US dollar")
    asks about exchange rates, though it may never say so."""
    from lyceum.research.analysis.derived import asked_currency

    if currencies_named(question) and asked_currency(question) is None and not re.search(
            r"exchange|currenc", question, re.IGNORECASE):
        return f"{question} (foreign exchange rate of the currency)"
    return question


def _subject_terms(question: str) -> set[str]:
    from lyceum.research.answer_check import question_subjects

    return set(tokenize(" ".join(question_subjects(question))))


def _alias_terms() -> set[str]:
    """Short names of countries ("UK", "US"): a dataset mentioning them is no more about the subject."""
    from lyceum.research.catalog import COUNTRY_ALIASES

    return set(tokenize(" ".join(COUNTRY_ALIASES)))


def _entity_terms(catalog: Catalog, dataset: str) -> set[str]:
    return set(tokenize(" ".join(e for p in catalog.profiles if p.dataset == dataset for e in p.entities)))


def _covered_terms(catalog: Catalog, dataset: str, query: set[str]) -> set[str]:
    """Question words a dataset's tables mention, leaving out frequency words and years."""
    words = set()
    for p in catalog.profiles:
        if p.dataset == dataset:
            words |= set(tokenize(p.search_text))
    return {t for t in query & words if t not in GRANULARITY_WORDS and not t.isdigit()}


def _select_in_dataset(members: list[TableProfile], query: set[str], scores: dict[str, float],
                       question: str) -> list[TableProfile]:
    members = drop_redundant(members)
    common = set.intersection(*(set(p.name_words) for p in members)) if members else set()
    words = {p.id: set(p.name_words) - common for p in members}
    restricted, named = _apply_facets(members, words, query | _implied_facet_terms(question))
    wanted = named_frequency(question)
    if wanted is None:
        from lyceum.research.question import ranked_years

        # "The five warmest years": years are ranked by their annual values, as published where a table has them.
        wanted = "annual" if ranked_years(question.lower()) else None
    groups: dict[tuple, list[TableProfile]] = {}
    for p in restricted:
        key = (tuple(sorted(c.name.lower() for c in p.numeric_columns)),
               tuple(sorted(w for w in words[p.id] if w not in GRANULARITY_WORDS and not w.isdigit())),
               p.entity_column)
        groups.setdefault(key, []).append(p)
    picks = [min(g, key=lambda p: (_grain_rank(p, wanted), -scores.get(p.id, 0.0))) for g in groups.values()]
    # Published year-on-year tables go when the level table with the same layout stays.
    levels = [p for p in picks if not is_change_table(p)]
    picks = [p for p in picks if not (_PERCENT_CHANGE.search(p.description) and any(
        _same_layout(p, q) for q in levels))]
    if not named and picks:
        best = max(scores.get(p.id, 0.0) for p in picks)
        picks = [p for p in picks if scores.get(p.id, 0.0) >= 0.75 * best]
    # A change table comes with the level table it changes.
    for p in [p for p in picks if is_change_table(p)]:
        partner = _level_partner(p, members, words)
        if partner is not None and partner not in picks:
            picks.append(partner)
    picks.sort(key=lambda p: (is_change_table(p), -scores.get(p.id, 0.0)))
    return picks


def _implied_facet_terms(question: str) -> set[str]:
    """Facet words a question names without saying them: "after inflation" or "inflation-adjusted" asks for the
    real variant of a series (real_index beside nominal_index)."""
    from lyceum.research.analysis.derived import asks_real_terms

    terms = set(tokenize("real")) if asks_real_terms(question) else set()
    # "nominally", "seasonally": the adverb names its adjective's variant
    return terms | set(tokenize(" ".join(w[:-2] for w in re.findall(r"[a-z]+ally\b", question.lower()))))


def drop_redundant(members: list[TableProfile]) -> list[TableProfile]:
    """Drop exact copies, self-declared filtered subsets, and tables whose columns another table covers."""
    out: list[TableProfile] = []
    seen: set[tuple] = set()
    for p in sorted(members, key=lambda p: (len(Path(p.id).name), p.id)):
        if len(members) > 1 and re.search(r"\b(filtered|subset|excerpt)\b", p.description, re.IGNORECASE):
            continue
        sig = (p.n_rows, tuple(round(c.mean, 6) if c.mean is not None else None for c in p.numeric_columns))
        if p.numeric_columns and sig in seen:
            continue
        seen.add(sig)
        out.append(p)
    cols = {p.id: {c.name.lower() for c in p.columns} for p in out}
    kept = []
    for p in out:
        covered = any(q is not p and cols[p.id] < cols[q.id] and p.n_rows <= q.n_rows for q in out)
        useless = not p.numeric_columns and any(q.numeric_columns for q in out)
        if not (covered or useless):
            kept.append(p)
    return kept or out


def _apply_facets(members: list[TableProfile], words: dict[str, set[str]], query: set[str]):
    """Drop tables whose file-name variant the question passes over for another; returns (tables, named?)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for i, a in enumerate(members):
        for b in members[i + 1 :]:
            wa, wb = words[a.id], words[b.id]
            if len(wa) == len(wb) and len(wa ^ wb) == 2:
                (t,), (u,) = wa - wb, wb - wa
                if t not in GRANULARITY_WORDS and u not in GRANULARITY_WORDS:
                    parent[find(t)] = find(u)
    facets: dict[str, set[str]] = {}
    for t in list(parent):
        facets.setdefault(find(t), set()).add(t)
    aliases = {}
    for p in members:
        aliases.update(p.name_aliases)
    kept, named = list(members), False
    for facet in facets.values():
        hit = {t for t in facet if (set(tokenize(t)) | set(tokenize(aliases.get(t, "")))) & query}
        if hit and hit != facet:
            named = True
            kept = [p for p in kept if not (words[p.id] & (facet - hit))]
        elif hit:
            named = True
    return kept, named


def _same_layout(a: TableProfile, b: TableProfile) -> bool:
    return a is not b and a.entity_column == b.entity_column and \
        {c.name for c in a.columns} == {c.name for c in b.columns}


def _level_partner(p: TableProfile, members: list[TableProfile], words: dict[str, set[str]]) -> TableProfile | None:
    candidates = [q for q in members if q is not p and not is_change_table(q) and q.entity_column == p.entity_column
                  and q.time_column and words[q.id] & words[p.id]]
    if not candidates:
        return None
    return max(candidates, key=lambda q: (len(words[q.id] & words[p.id]), q.frequency == p.frequency,
                                          -_FREQ_RANK.get(q.frequency, 6)))


def _grain_rank(p: TableProfile, wanted: str | None) -> tuple:
    if wanted and p.frequency == wanted:
        return (0, 0)
    return (1, _FREQ_RANK.get(p.frequency, 6))


def named_frequency(question: str) -> str | None:
    """A sampling frequency the question asks for by name ("monthly", "daily"), if any."""
    q = question.lower()
    for word, grain in (("daily", "daily"), ("weekly", "weekly"), ("monthly", "monthly"), ("quarterly", "quarterly"),
                        ("annual", "annual"), ("yearly", "annual")):
        if re.search(rf"\b{word}\b", q):
            return grain
    return None
