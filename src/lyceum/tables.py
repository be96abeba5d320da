"""Numbers, markdown tables and series for reports: the one place every system formats them.

    markdown_table(["exam", "score"], [["IPhO 2025", fmt(23.4)]])
    xs, ys = series(metrics_rows, "loss")
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


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
    esc = lambda c: str(c).replace("|", "\\|")
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


# ------------------------------------------------------------------------------------------------ plots
# Line plots for reports. matplotlib is imported only when a figure is drawn.


def mean_band(runs: list[list[dict[str, Any]]], key: str, event: str = "train") -> tuple[list, list, list, list]:
    """(steps, mean, low, high) of one metric over several runs' metrics rows, at the steps all runs logged.
    One run gives its own series with low = high = the values."""
    per_run = [dict(zip(*series(rows, key, event))) for rows in runs]
    per_run = [s for s in per_run if s]
    if not per_run:
        return [], [], [], []
    steps = sorted(set.intersection(*(set(s) for s in per_run)))
    cols = [[s[x] for s in per_run] for x in steps]
    return steps, [sum(c) / len(c) for c in cols], [min(c) for c in cols], [max(c) for c in cols]


def readable_ylim(ys: list[float], *, floor: float | None = None) -> tuple[float, float] | None:
    """Limits that keep a nearly constant series flat: matplotlib would stretch a 0.1% wobble over the whole
    axis (and print an offset like '+2.4e1'). With a ``floor`` (0 for counts) a series that varies by less than
    half its height is drawn from the floor. None when the data vary enough for autoscaling."""
    vals = [y for y in ys if not is_missing(y)]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    scale = max(abs(lo), abs(hi), 1e-12)
    if floor is not None and lo >= floor and hi - lo < 0.5 * (hi - floor):
        return floor, hi + 0.1 * (hi - floor)  # a count that barely moves: show it against its zero
    if hi - lo > 0.05 * scale:
        return None
    pad = 0.25 * scale
    bottom = lo - pad if floor is None else max(floor, lo - pad)
    return bottom, hi + pad


def line_figure(path, title: str, panels: list[dict[str, Any]], *, note: str = "", panel_width: float = 5.6,
                height: float = 3.8, dpi: int = 110):
    """One PNG of side-by-side panels, each with its own y axis and label; returns the path.

    A panel is a dict: ``title``, ``ylabel`` (required: a reader must know what the axis is), ``lines`` as
    ``(label, xs, ys)`` or ``(label, xs, ys, low, high)`` (a shaded band), optional ``hlines`` as
    ``(line label, y)`` (dashed, in that line's colour; a label of no line gets a legend entry), ``ylim``, ``marker``, ``smooth`` (a trailing moving
    average drawn bold over the faint raw line), ``xlabel`` (default "step"), ``floor`` (lowest y limit a
    nearly constant series may get, e.g. 0 for counts).
    """
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_width * len(panels), height), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        colours, all_ys = {}, []
        for line in panel["lines"]:
            label, xs, ys = line[:3]
            if not xs:
                continue
            width = panel.get("smooth", 1)
            drawn = smooth(list(ys), width) if width > 1 else ys
            marker = panel.get("marker") or ("o" if len(xs) == 1 else None)  # a lone point needs a marker
            (handle,) = ax.plot(xs, drawn, label=label, marker=marker, markersize=4)
            colours[label] = handle.get_color()
            if width > 1:
                ax.plot(xs, ys, color=handle.get_color(), alpha=0.2, linewidth=0.8)
            if len(line) == 5 and line[3] != line[4]:
                ax.fill_between(xs, line[3], line[4], color=handle.get_color(), alpha=0.15, linewidth=0)
            all_ys += list(ys)
        for label, y in panel.get("hlines", []):
            # in the colour of the line it belongs to; a line of its own (with a legend entry) otherwise
            ax.axhline(y, color=colours.get(label, "gray"), linestyle="--", linewidth=1,
                       label=None if label in colours else label)
            all_ys.append(y)
        ax.set(title=panel["title"], xlabel=panel.get("xlabel", "step"), ylabel=panel["ylabel"])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and rollouts are counts
        xs_all = {x for line in panel["lines"] for x in line[1]}
        if len(xs_all) == 1:  # one step: a window around it, not matplotlib's +-5% of nothing
            (x,) = xs_all
            ax.set_xlim(x - 1, x + 1)
        ax.ticklabel_format(axis="y", useOffset=False)
        ylim = panel.get("ylim") or readable_ylim(all_ys, floor=panel.get("floor"))
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        if len(colours) > 1 or panel.get("legend"):
            ax.legend(fontsize=8)
    fig.suptitle(title + note, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
