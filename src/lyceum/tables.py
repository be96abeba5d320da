"""Numbers, markdown tables and series for reports: the one place every system formats them.

    markdown_table(["exam", "score"], [["IPhO 2025", fmt(23.4)]])
    xs, ys = series(metrics_rows, "loss")
"""

from __future__ import annotations

import math
from typing import Any, Iterable


def is_missing(x: Any) -> bool:
    """None, NaN or something that is not a number."""
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def fmt(x: Any, *, digits: int = 2) -> str:
    """A number as a reader wants it: thousands separators, ``digits`` decimals, 3 significant digits when small."""
    if is_missing(x):
        return "–"
    v = float(x)
    if v == 0:
        return "0"
    if abs(v) >= 1e6:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:,.{digits}f}"
    return f"{v:.3g}"


def fmt_share(x: Any, *, pct: bool = False, digits: int = 3) -> str:
    """A rate or diagnostic: ``0.723`` or, with ``pct``, ``72.3%``; a dash when missing."""
    if is_missing(x):
        return "-"
    return f"{100 * float(x):.1f}%" if pct else f"{float(x):.{digits}f}"


def markdown_table(header: list[str], rows: Iterable[Iterable[Any]], align: list[str] | None = None) -> str:
    """A GitHub-style table; ``align`` is "l"/"r" per column (first column left, the rest right by default)."""
    header = [str(h) for h in header]
    align = align or ["l"] + ["r"] * (len(header) - 1)
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731 - a cell is text; a bare | would split it
    lines = ["| " + " | ".join(map(esc, header)) + " |",
             "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


def series(rows: Iterable[dict[str, Any]], key: str, event: str = "train") -> tuple[list[float], list[float]]:
    """(steps, values) of one metric from metrics.jsonl rows of one event kind, skipping missing values."""
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if r.get("event") == event and isinstance(v, (int, float)) and not math.isnan(v):
            xs.append(r["step"])
            ys.append(v)
    return xs, ys


def smooth(ys: list[float], width: int) -> list[float]:
    """Trailing moving average over ``width`` points (shorter at the start)."""
    out, acc = [], 0.0
    for i, y in enumerate(ys):
        acc += y
        if i >= width:
            acc -= ys[i - width]
        out.append(acc / min(i + 1, width))
    return out


def fmt_points(x: Any, *, digits: int = 2) -> str:
    """Points as a marker writes them: at most ``digits`` decimals, no trailing zeros (``3``, ``2.5``)."""
    if is_missing(x):
        return "–"
    text = f"{float(x):.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
