"""Numbers in reports: write them readably, read them back, and check them against computed values.

The same reader serves the writer's number check (is every number a report states backed by an analysis?)
and the benchmark's numeric fact recall (does the report state each key fact within its tolerance?), so both
see a report the same way: "1.21 trillion" is 1.21 and 1.21e12, "69.5%" is 69.5 and 0.695, "1,799.60" is 1799.6.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from lyceum.tables import fmt, is_missing

_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "k": 1e3, "m": 1e6, "bn": 1e9,
           "tn": 1e12}
_NUMBER_RE = re.compile(
    r"(?<![\w.])([-+\u2212]?)\$?((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?![\d])"
    r"(\s*%|\s*(?:thousand|million|billion|trillion|bn|tn)\b)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class StatedNumber:
    text: str  # as written
    value: float  # as written, without scale words ("1.21 trillion" -> 1.21)
    candidates: tuple[float, ...]  # every reading of it: scaled, percent as a fraction
    start: int
    kind: str = "value"  # value | year | date | label (a "Figure 2", "Table 1" or "[3]" reference)

    @property
    def is_value(self) -> bool:
        return self.kind == "value"


_DATE_RE = re.compile(r"(?<![\w.])(1[5-9]|20)\d\d-[01]\d(?:-[0-3]\d)?(?![\w])")
_LABEL_RE = re.compile(r"(?:\b(?:Figure|Fig\.|Table|Section|Step|Appendix)\s+\d+|\[\d+(?:[,\u2013-]\s*\d+)*\])", re.IGNORECASE)


def extract_numbers(text: str) -> list[StatedNumber]:
    """Every number stated in ``text`` (markdown or plain), with the readings a fact could match."""
    out = []
    skip = [(m.start(), m.end(), "date") for m in _DATE_RE.finditer(text)]
    skip += [(m.start(), m.end(), "label") for m in _LABEL_RE.finditer(text)]
    for m in _NUMBER_RE.finditer(text):
        kind = next((k for s, e, k in skip if s <= m.start(2) < e), None)
        sign, digits, suffix = m.group(1), m.group(2), (m.group(3) or "").strip().lower()
        try:
            value = float(digits.replace(",", ""))
        except ValueError:
            continue
        if sign in ("-", "\u2212"):
            value = -value
        candidates = {value}
        if suffix == "%":
            candidates.add(value / 100)
        elif suffix in _SCALES:
            candidates.add(value * _SCALES[suffix])
        if kind is None:
            kind = "year" if re.fullmatch(r"(1[5-9]|20)\d\d", digits) and not suffix and not sign else "value"
        out.append(StatedNumber(m.group(0), value, tuple(sorted(candidates)), m.start(), kind))
    return out


def close(a: float, b: float, rel_tol: float, abs_tol: float = 0.0) -> bool:
    if math.isnan(a) or math.isnan(b):
        return False
    return abs(a - b) <= max(rel_tol * abs(b), abs_tol)


def stated(value: float, numbers: list[StatedNumber], rel_tol: float) -> StatedNumber | None:
    """The first stated number that reads as ``value`` within ``rel_tol`` (relative to ``value``)."""
    for n in numbers:
        if any(close(c, value, rel_tol, abs_tol=1e-9) for c in n.candidates):
            return n
    return None


# ---------------------------------------------------------------------------------------------------------------
# Writing numbers


def scale_for(values, unit: str = "") -> tuple[float, str]:
    """A common scale for a column of money-like values: (divisor, word) such as (1e12, "trillion")."""
    finite = [abs(float(v)) for v in values if v is not None and not is_missing(v)]
    if not finite or unit.startswith(("%", "index", "°", "ppm", "fraction")):
        return 1.0, ""
    top = max(finite)
    for div, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if top >= div:
            return div, word
    return 1.0, ""


def fmt_scaled(v: float | None, unit: str = "", *, divisor: float | None = None, word: str | None = None) -> str:
    """``1.2113e12`` USD -> "1.21 trillion USD"; 96.94 USD/bbl -> "96.94 USD/bbl"; 4.2 % -> "4.2%"."""
    if v is None or is_missing(v):
        return "–"
    if divisor is None:
        divisor, word = scale_for([v], unit)
    text = fmt(float(v) / divisor)
    if word:
        text += f" {word}"
    if unit == "%":
        return text + "%"
    if unit and unit != "fraction":
        text += f" {unit}"
    return text


def fmt_pct(v: float | None, *, signed: bool = True) -> str:
    if v is None or is_missing(v):
        return "–"
    # Under 1% one decimal rounds away most of the number ("-0.5%" for -0.46%): keep two significant digits.
    digits = 1 if abs(v) >= 1 or v == 0 else 2 if abs(v) >= 0.1 else 3
    return f"{v:+.{digits}f}%" if signed else f"{v:.{digits}f}%"
