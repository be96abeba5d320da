"""How numbers, names, units and dates read in the analyses' sentences."""

from __future__ import annotations

import re

from lyceum.research.analysis.panels import Panel
from lyceum.research.numbers import scale_for
from lyceum.tables import fmt


def scaled_amount(v: float, div: float, word: str, unit: str) -> str:
    """A scaled amount in prose with the scale word next to the number: "9.81 trillion USD"."""
    return " ".join(x for x in (fmt(v / div), word, unit if unit != "%" else "") if x) + ("%" if unit == "%" else "")


def join_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else ""


def possessive(name: str) -> str:
    if name.endswith(")") and " (" in name:  # "WTI's (in constant 1995 USD) price", not "... USD)'s price"
        base, note = name.split(" (", 1)
        return f"{possessive(base)} ({note}"
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def lower_words(text: str) -> str:
    """Lower-case a column name for prose, keeping acronyms ("Annual Increase" -> "annual increase", "CO2 PPM")."""
    return " ".join(w.lower() if re.fullmatch(r"[A-Z][a-z]+", w) else w for w in text.split(" "))


def unit_after_number(unit: str) -> str:
    """A unit after a number in prose; index levels read better bare ("97.31", not "97.31 index (2010=100)")."""
    if not unit or unit.startswith("index"):
        return ""
    # A unit carrying a scale word ("USD trillion") puts the scale next to the number: "21.32 trillion USD".
    scaled = re.fullmatch(r"(.*?)\s*\b(thousand|million|billion|trillion)s?\b\s*(.*)", unit, re.IGNORECASE)
    if scaled and (scaled.group(1) or scaled.group(3)):
        rest = " ".join(x for x in (scaled.group(1), scaled.group(3)) if x)
        return f" {scaled.group(2).lower()} {rest}"
    return "%" if unit == "%" else f" {unit}"


def with_unit(v: float, unit: str) -> str:
    div, word = scale_for([v], unit)
    if not unit and not word and abs(v) >= 1000 and float(v) == round(v):
        return f"{v:,.0f}"  # a count of people or things: "582,000", not "582,000.00"
    text = fmt(v / div) + (f" {word}" if word else "")
    return text + unit_after_number(unit)


def frequency_word(panel: Panel) -> str:
    return {"daily": "daily ", "weekly": "weekly ", "monthly": "monthly ", "quarterly": "quarterly "}.get(
        panel.frequency, "")


def date_text(ts, panel: Panel) -> str:
    if panel.frequency == "annual":
        return str(ts.year)
    if panel.frequency in ("monthly", "quarterly"):
        return ts.strftime("%Y-%m")
    return ts.strftime("%Y-%m-%d")


def month_text(ts) -> str:
    return ts.strftime("%Y-%m")


def of_entities(names: list[str]) -> str:
    """" of Brent and WTI" for a title naming what is drawn; nothing for one unnamed or many series."""
    names = [n for n in names if n and n != "value"]
    return f" of {join_names(names)}" if 1 <= len(names) <= 3 else ""
