"""What a question asks for, read by rules: the period, and which standard analyses it stresses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "fifty": 50}
_YEAR = r"(1[5-9]\d\d|20\d\d)"

# Currencies a question may ask for: name -> (ISO code, issuing country as exchange-rate tables name it).
CURRENCIES = {"yen": ("JPY", "Japan"), "euro": ("EUR", "Euro"), "euros": ("EUR", "Euro"),
              "pound sterling": ("GBP", "United Kingdom"), "sterling": ("GBP", "United Kingdom"),
              "british pounds": ("GBP", "United Kingdom"), "yuan": ("CNY", "China"), "renminbi": ("CNY", "China"),
              "rupee": ("INR", "India"), "rupees": ("INR", "India"), "swiss franc": ("CHF", "Switzerland"),
              "swiss francs": ("CHF", "Switzerland"), "canadian dollar": ("CAD", "Canada"),
              "canadian dollars": ("CAD", "Canada"), "australian dollar": ("AUD", "Australia"),
              "australian dollars": ("AUD", "Australia"), "won": ("KRW", "South Korea"),
              "rand": ("ZAR", "South Africa"), "krona": ("SEK", "Sweden"), "kronor": ("SEK", "Sweden"),
              "krone": ("NOK", "Norway"), "ringgit": ("MYR", "Malaysia"), "danish krone": ("DKK", "Denmark"),
              "mexican peso": ("MXN", "Mexico"), "mexican pesos": ("MXN", "Mexico"), "baht": ("THB", "Thailand"),
              "new zealand dollar": ("NZD", "New Zealand"), "singapore dollar": ("SGD", "Singapore"),
              "hong kong dollar": ("HKD", "Hong Kong"), "brazilian real": ("BRL", "Brazil"),
              "taiwan dollar": ("TWD", "Taiwan")}
# Currency names that are also common English words: they name a currency only with their country's adjective.
_AMBIGUOUS_CURRENCY = {"won", "rand", "euros"}


def currencies_named(question: str) -> list[str]:
    """The issuing countries of the currencies a question names ("the Indian rupee and the Swiss franc")."""
    q = question.lower()
    out = []
    for name, (_, country) in sorted(CURRENCIES.items(), key=lambda x: -len(x[0])):
        if name not in _AMBIGUOUS_CURRENCY and re.search(rf"\b{re.escape(name)}\b", q) and country not in out:
            out.append(country)
            q = q.replace(name, " ")
    return out


INTENT_WORDS = {
    "growth": r"grow|growth|rising|rise|rose|increase|fast|rate|expand|evolv|change|trend|moved|move",
    "accelerate": r"accelerat|speed(ing)? up|faster|slow(ing)? down|decelerat",
    "peaks": r"peak|shock|spike|crash|collapse|high|low|record|extreme|volatil|boom|bust|rally|plunge|surge|fall|fell|"
             r"drop|declin|trough",
    "compare": r"compar|relative|versus|\bvs\.?\b|against|gap|differ|catch(ing)? up|overtake",
    "share": r"share|dominat|proportion|concentrat|portion",
    "rank": r"largest|biggest|top|rank|most|leading|smallest|which",
    "correlation": r"correlat|relationship|associat|linked|co-?move|together",
    "unusual": r"unusual|unprecedented|historic|exceptional|normal|typical|rare|how big|how large",
    "valuation": r"valuation|price/earnings|p/e|multiple|ratio",
}


_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_ORDINAL_QUARTER = {"first": 1, "second": 2, "third": 3, "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4}


@dataclass(frozen=True)
class NamedDate:
    """A part of a year a question names: a quarter ("Q4 2019"), a month ("March 2020"), or a year's end."""

    year: int
    first_month: int
    last_month: int
    label: str
    at_end: bool = False  # "the end of 2024": the last observation of the span, not its average
    day: int | None = None  # "on 20 April 2020": that day's observation (the last one before it, if none)


def named_dates(question: str) -> list[NamedDate]:
    """Quarters, months and year-ends a question names, in order: "from Q4 2019 to Q4 2024", "2020Q1", "the
    fourth quarter of 2008", "in March 2020", "at the end of 2024 (Q4)"."""
    q = question.lower()
    found: list[tuple[int, NamedDate]] = []
    quarter = r"q([1-4])"
    for m in re.finditer(rf"\b{quarter}\s*[-/]?\s*{_YEAR}\b|\b{_YEAR}\s*[-/]?\s*\(?{quarter}\b|"
                         rf"\b(first|second|third|fourth|1st|2nd|3rd|4th) quarter (?:of )?{_YEAR}\b|"
                         rf"\bend of {_YEAR}\s*\(q([1-4])\)", q):
        g = m.groups()
        if g[0]:
            n, y = int(g[0]), int(g[1])
        elif g[2]:
            y, n = int(g[2]), int(g[3])
        elif g[4]:
            n, y = _ORDINAL_QUARTER[g[4]], int(g[5])
        else:
            y, n = int(g[6]), int(g[7])
        found.append((m.start(), NamedDate(y, 3 * n - 2, 3 * n, f"Q{n} {y}")))
    months = "|".join(_MONTHS)
    days = []
    for m in re.finditer(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+({months})\s*,?\s*{_YEAR}\b|"
                         rf"\b({months})\s+(\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s*{_YEAR}\b|"
                         rf"\b{_YEAR}-(\d\d)-(\d\d)\b", q):
        g = m.groups()
        if g[0]:
            day, k, y = int(g[0]), _MONTHS.index(g[1]) + 1, int(g[2])
        elif g[3]:
            day, k, y = int(g[4]), _MONTHS.index(g[3]) + 1, int(g[5])
        else:
            y, k, day = int(g[6]), int(g[7]), int(g[8])
        if 1 <= k <= 12 and 1 <= day <= 31:
            days.append(m.span())
            found.append((m.start(), NamedDate(y, k, k, f"{y}-{k:02d}-{day:02d}", day=day)))
    for m in re.finditer(rf"\b({months})\s+(?:of\s+)?{_YEAR}\b", q):
        if any(a <= m.start() < b for a, b in days):
            continue
        k = _MONTHS.index(m.group(1)) + 1
        found.append((m.start(), NamedDate(int(m.group(2)), k, k, f"{m.group(1).title()} {m.group(2)}")))
    for m in re.finditer(rf"\b(?:the )?end of {_YEAR}\b(?!\s*\(q)", q):
        found.append((m.start(), NamedDate(int(m.group(1)), 1, 12, f"the end of {m.group(1)}", at_end=True)))
    out: list[NamedDate] = []
    for _, d in sorted(found, key=lambda x: x[0]):
        if d not in out:
            out.append(d)
    return out


@dataclass
class Scope:
    """The period a question covers and the analyses it stresses."""

    text: str
    start_year: int | None = None
    end_year: int | None = None
    last_years: int | None = None
    intents: set[str] = field(default_factory=set)
    years_named: list[int] = field(default_factory=list)
    top_n: int | None = None  # "the top 5", "the ten largest"
    periods: list[tuple[int, int]] = field(default_factory=list)  # every span named: "2008-09", "2014 to 2016"
    ranked_years: tuple[int, str] | None = None  # "the five warmest years": (5, "highest"); "coldest year": (1, "lowest")
    decades: list[tuple[int, int]] = field(default_factory=list)  # "the 1990s" -> (1990, 1999)
    dates: list[NamedDate] = field(default_factory=list)  # parts of a year named: "Q4 2019", "March 2020"

    def describe(self) -> str:
        if self.last_years:
            return f"the last {self.last_years} years"
        if self.start_year and self.end_year:
            return f"{self.start_year}–{self.end_year}"
        if self.start_year:
            return f"since {self.start_year}"
        return "the full period available"


def parse_question(question: str) -> Scope:
    q = question.lower()
    scope = Scope(text=question)
    # "from 2000 to 2020", and with a few words between ("from their 2006 peak to the 2012 trough").
    m = re.search(rf"(?:from|between)\s+{_YEAR}\s+(?:to|and|until|through)\s+{_YEAR}", q) or \
        re.search(rf"\b{_YEAR}\s*[-–—]\s*{_YEAR}\b", q) or \
        re.search(rf"\bfrom\s+(?:[a-z']+\s+){{0,2}}{_YEAR}(?:\s+[a-z']+){{0,2}}\s+(?:to|until|through)\s+"
                  rf"(?:[a-z']+\s+){{0,2}}{_YEAR}\b", q)
    if m:
        scope.start_year, scope.end_year = sorted((int(m.group(1)), int(m.group(2))))
    elif (m := re.search(rf"\b(?:since|after|from)\s+{_YEAR}", q)):
        scope.start_year = int(m.group(1))
    elif (m := re.search(rf"\b(?:until|before|through|up to)\s+{_YEAR}", q)):
        scope.end_year = int(m.group(1))
    elif (m := re.search(rf"\bin\s+{_YEAR}\b", q)):
        scope.start_year = scope.end_year = int(m.group(1))
    # Every span the question names, in order ("the 2014-16 and 2008-09 crashes" -> (2014, 2016), (2008, 2009)).
    for a, b in re.findall(rf"(?<!\d){_YEAR}\s*(?:[-–—/]|to|until|through)\s*(\d{{2}}|{_YEAR[1:-1]})(?!\d)", q):
        start = int(a)
        end = int(b) if len(b) == 4 else (start // 100) * 100 + int(b)
        if end < start:
            end += 100
        if (start, end) not in scope.periods:
            scope.periods.append((start, end))
    for a, b in re.findall(rf"between\s+{_YEAR}\s+and\s+{_YEAR}", q):
        if (int(a), int(b)) not in scope.periods:
            scope.periods.append((int(a), int(b)))
    # A decade is a span of its ten years ("the average in the 1990s", "how much warmer were the 2010s").
    for d in re.findall(r"(?<![\d'])(1[5-9]\d0|20\d0)'?s\b", q):
        span = (int(d), int(d) + 9)
        if span not in scope.decades:
            scope.decades.append(span)
        if span not in scope.periods:
            scope.periods.append(span)
    # "The 2008 crash" is an episode too: a year naming a shock spans into the next (a crash's trough often
    # falls in the following year), unless a named span already covers it.
    for y in re.findall(rf"(?<![\d-]){_YEAR}\s+(?:oil\s+|price\s+|financial\s+|market\s+)?(?:crash|collapse|crisis|"
                        rf"shock|spike|slump|recession|bust|plunge|rout)", q):
        y = int(y)
        if not any(a <= y <= b for a, b in scope.periods):
            scope.periods.append((y, y + 1))
    # Every year the question names is shown ("in 2010 and 2020", "the 2008 and 2014 crashes"), and the period
    # stretches to cover them all.
    scope.years_named = sorted({int(y) for y in re.findall(rf"(?<!\d){_YEAR}(?!\d)", q)}
                               | {y for span in scope.periods for y in span})
    if len(scope.periods) > 1 or (scope.periods and scope.start_year is None):
        scope.start_year, scope.end_year = scope.years_named[0], scope.years_named[-1]
    elif scope.years_named and scope.start_year is not None and scope.end_year is not None:
        scope.start_year = min(scope.start_year, scope.years_named[0])
        scope.end_year = max(scope.end_year, scope.years_named[-1])
    m = re.search(r"\b(?:last|past|recent|previous)\s+(\d+|" + "|".join(_NUMBER_WORDS) + r")\s+(years?|decades?)", q)
    if m:
        n = int(m.group(1)) if m.group(1).isdigit() else _NUMBER_WORDS[m.group(1)]
        scope.last_years = n * (10 if m.group(2).startswith("decade") else 1)
    elif re.search(r"\b(?:last|past)\s+decade\b", q):
        scope.last_years = 10
    n = r"(\d+|" + "|".join(_NUMBER_WORDS) + r")"
    if (m := re.search(rf"\btop[ -]{n}\b|\b{n} (?:largest|biggest|leading|richest|top)\b", q)) or \
            (m := re.search(rf"\b(?:which|what|the)\s+{n}\b(?=[^?.]*\b(?:largest|biggest|leading|richest|highest|"
                            rf"most|smallest|lowest)\b)", q)):
        word = next(g for g in m.groups() if g)
        scope.top_n = int(word) if word.isdigit() else _NUMBER_WORDS[word]
    scope.ranked_years = ranked_years(q)
    scope.dates = named_dates(question)
    if scope.start_year is None and scope.end_year is None and len({d.year for d in scope.dates}) >= 2:
        # "from Q4 2019 to Q4 2024" spans the years of its first and last named quarter
        scope.start_year, scope.end_year = min(d.year for d in scope.dates), max(d.year for d in scope.dates)
    for intent, pattern in INTENT_WORDS.items():
        if re.search(pattern, q):
            scope.intents.add(intent)
    return scope


_HIGHEST = r"warmest|hottest|highest|largest|biggest|wettest|strongest|most expensive"
_LOWEST = r"coldest|coolest|lowest|smallest|driest|weakest|cheapest"


def ranked_years(q: str) -> tuple[int, str] | None:
    """A question that ranks years by a measure ("the five warmest years on record", "which year was the
    coldest", "the years with the highest prices"): how many, and which end of the ranking."""
    n = r"(\d+|" + "|".join(_NUMBER_WORDS) + r")"
    m = re.search(rf"(?:\b{n}\s+)?\b({_HIGHEST}|{_LOWEST})\s+(years?)\b", q) or \
        re.search(rf"\b(?:which|what)\s+(?:{n}\s+)?(years?)\b[^?.]*?\b({_HIGHEST}|{_LOWEST})\b", q) or \
        re.search(rf"(?:\b{n}\s+)?\b(years?)\s+(?:with|of|when)\s+(?:the\s+)?({_HIGHEST}|{_LOWEST})\b", q)
    if not m:
        return None
    groups = [g for g in m.groups() if g]
    count = next((g for g in groups if g.isdigit() or g in _NUMBER_WORDS), None)
    word = next(g for g in groups if re.fullmatch(rf"{_HIGHEST}|{_LOWEST}", g))
    plural = any(g == "years" for g in groups)
    k = (int(count) if count.isdigit() else _NUMBER_WORDS[count]) if count else (5 if plural else 1)
    return k, "highest" if re.fullmatch(_HIGHEST, word) else "lowest"
