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

    ax.set_title("\n".join(textwrap.wrap(title, 72)), fontsize=12)
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
        ax.plot(list(x), list(y), label=name, color=_COLORS[i % len(_COLORS)], linewidth=1.3 if len(series) == 1 else 1.0,
                alpha=1.0 if len(series) == 1 else 0.85)
    labels = []
    for x, y, label in marks:
        ax.scatter([x], [y], color="black", s=18, zorder=5)
        labels.append(ax.annotate(label, (x, y), textcoords="offset points", xytext=(8, 0), va="center", fontsize=8,
                                  zorder=6, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none",
                                                  "alpha": 0.85}))
    if zero_line:
        ax.axhline(0, color="black", linewidth=0.8)
    if labels:
        ax.margins(y=0.08)
        fig.tight_layout()
        separate_labels(fig, ax, labels)
    return _finish(fig, ax, path, title, xlabel, ylabel, legend=len(series) > 1)


def separate_labels(fig, ax, labels, *, pad_px: float = 2.0, rounds: int = 40) -> None:
    """Move annotation labels apart vertically until none overlaps another or leaves the axes.

    Two series peaking on the same day ("Brent high" and "WTI high") put their labels on one spot; each label
    that overlaps an earlier one is pushed below it (or above, where there is no room below).
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_points = 72.0 / fig.dpi
    frame = ax.get_window_extent(renderer)
    placed = []
    for label in sorted(labels, key=lambda t: -t.xy[1] if isinstance(t.xy[1], (int, float)) else 0):
        for _ in range(rounds):
            box = label.get_window_extent(renderer)
            hit = next((b for b in placed if box.overlaps(b)), None)
            dx, dy = label.xyann
            if hit is None:
                # Keep the label inside the axes: put it left of its point when it runs off the right edge.
                if box.x1 > frame.x1 and label.get_ha() != "right":
                    label.set_ha("right")
                    label.set_position((-abs(dx), dy))
                    continue
                if box.y0 < frame.y0:
                    label.set_position((dx, dy + (frame.y0 - box.y0 + pad_px) * to_points))
                    continue
                if box.y1 > frame.y1:
                    label.set_position((dx, dy - (box.y1 - frame.y1 + pad_px) * to_points))
                    continue
                break
            below = hit.y0 - box.height - pad_px
            if below >= frame.y0:
                dy -= (box.y1 - hit.y0 + pad_px) * to_points
            else:
                dy += (hit.y1 - box.y0 + pad_px) * to_points
            label.set_position((dx, dy))
        placed.append(label.get_window_extent(renderer))


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
