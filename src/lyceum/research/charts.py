"""Charts for the rule-based analyst: small matplotlib functions that each write one labelled PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

_COLORS = ["#1f5fa8", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#4b5563"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, ax, path: Path, title: str, xlabel: str, ylabel: str, legend: bool) -> Path:
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=12)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend(frameon=False, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def line_chart(series: dict[str, tuple[Sequence[Any], Sequence[float]]], path: Path, *, title: str, ylabel: str,
               xlabel: str = "", marks: Sequence[tuple[Any, float, str]] = (), zero_line: bool = False) -> Path:
    """One line per entity; ``marks`` are (x, y, label) points to annotate (peaks, troughs)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (name, (x, y)) in enumerate(series.items()):
        ax.plot(list(x), list(y), label=name, color=_COLORS[i % len(_COLORS)], linewidth=1.3)
    for x, y, label in marks:
        ax.scatter([x], [y], color="black", s=18, zorder=5)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    if zero_line:
        ax.axhline(0, color="black", linewidth=0.8)
    return _finish(fig, ax, path, title, xlabel, ylabel, legend=len(series) > 1)


def bar_chart(labels: Sequence[str], values: Sequence[float], path: Path, *, title: str, ylabel: str,
              xlabel: str = "", horizontal: bool = False, highlight: Sequence[str] = (),
              reference: tuple[float, str] | None = None) -> Path:
    """Bars (vertical or horizontal); ``highlight`` labels get the accent colour, ``reference`` a dashed line."""
    plt = _plt()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(8, max(3.5, 0.38 * n + 1.2)) if horizontal else (8, 4.5))
    colors = [_COLORS[1] if lab in highlight else (_COLORS[0] if v >= 0 else _COLORS[4])
              for lab, v in zip(labels, values)]
    if horizontal:
        ax.barh(list(labels)[::-1], list(values)[::-1], color=colors[::-1])
        if reference:
            ax.axvline(reference[0], color="black", linestyle="--", linewidth=1, label=reference[1])
        xlabel, ylabel = ylabel, xlabel
    else:
        ax.bar(list(labels), list(values), color=colors)
        if n > 12:
            step = max(1, n // 12)
            ax.set_xticks(range(0, n, step))
            ax.set_xticklabels([str(labels[i]) for i in range(0, n, step)], rotation=45, ha="right")
        if reference:
            ax.axhline(reference[0], color="black", linestyle="--", linewidth=1, label=reference[1])
        ax.axhline(0, color="black", linewidth=0.8)
    return _finish(fig, ax, path, title, xlabel, ylabel, legend=reference is not None)


def grouped_lines_or_bars(years: Sequence[int], series: dict[str, Sequence[float]], path: Path, *, title: str,
                          ylabel: str) -> Path:
    """Yearly values for one entity as bars, for several as lines (bars side by side get unreadable)."""
    if len(series) == 1:
        values = next(iter(series.values()))
        return bar_chart([str(y) for y in years], list(values), path, title=title, ylabel=ylabel, xlabel="year")
    return line_chart({k: (list(years), list(v)) for k, v in series.items()}, path, title=title, ylabel=ylabel,
                      xlabel="year", zero_line=True)


def histogram(values: Sequence[float], path: Path, *, title: str, xlabel: str, mark: tuple[float, str] | None = None,
              bins: int = 30) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(list(values), bins=bins, color=_COLORS[0], alpha=0.85)
    if mark:
        ax.axvline(mark[0], color=_COLORS[1], linewidth=2, label=mark[1])
    return _finish(fig, ax, path, title, xlabel, "count", legend=mark is not None)


def scatter_chart(x: Sequence[float], y: Sequence[float], path: Path, *, title: str, xlabel: str, ylabel: str,
                  logx: bool = False, logy: bool = False) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter(list(x), list(y), s=12, alpha=0.6, color=_COLORS[0])
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    return _finish(fig, ax, path, title, xlabel, ylabel, legend=False)


def png_is_readable(path: Path) -> bool:
    """Whether an image file exists and decodes to a real picture (not empty, not a sliver)."""
    try:
        import matplotlib.image

        arr = matplotlib.image.imread(str(path))
        return arr.size > 0 and arr.shape[0] > 10 and arr.shape[1] > 10
    except Exception:  # noqa: BLE001 - any decoder failure means a broken image
        return False
