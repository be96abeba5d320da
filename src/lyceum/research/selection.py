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


def select_tables(catalog: Catalog, question: str, *, max_tables: int = 3, embed=None) -> list[TableProfile]:
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
    from lyceum.research.analysis.derived import INFLATION, price_index

    if INFLATION.search(question) and not _subject_terms(question) & covered - ordinary:
        # The best dataset matched only on country names and question-form words ("inflation in Brazil" finding
        # an exchange-rate table that lists Brazil): an inflation question is answered by the price index.
        found = price_index(catalog)
        if found is not None and found[0].dataset != order[0]:
            return [found[0]]
    for d in order[1:4 if relation else 2]:
        if best_by_dataset[d] >= (0.4 if relation else 0.8) * top and \
                _covered_terms(catalog, d, query) & _subject_terms(question) - covered - ordinary:
            datasets.append(d)
            break
    chosen: list[TableProfile] = []
    for i, d in enumerate(datasets):
        members = [p for p in catalog.profiles if p.dataset == d]
        picks = _select_in_dataset(members, query, scores, question)
        # Keep room for the second subject's table.
        chosen += picks[: max_tables - 1] if i == 0 and len(datasets) > 1 else picks
    return chosen[:max_tables]


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
    restricted, named = _apply_facets(members, words, query)
    wanted = named_frequency(question)
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
