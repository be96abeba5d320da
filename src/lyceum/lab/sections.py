"""A recipe contrast's report section: its result record, and the line plots and metric series it draws."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lyceum.tables import line_figure, series


@dataclass
class ContrastResult:
    name: str
    title: str
    markdown: str  # a report section: what was run, the table, the reading
    numbers: dict[str, float] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)


def metric_series(run_path: Path, key: str, event: str = "train") -> tuple[list[float], list[float]]:
    from lyceum.runs import read_jsonl

    return series(read_jsonl(run_path / "metrics.jsonl"), key, event)


def plot_lines(path: Path, title: str, ylabel: str, lines: list[tuple[str, list[float], list[float]]], *,
               xlabel: str = "step", marker: str | None = None, ylim: tuple[float, float] | None = None) -> Path:
    panel = {"title": "", "ylabel": ylabel, "xlabel": xlabel, "lines": lines, "marker": marker,
             "smooth": 1 if marker else 5, "ylim": ylim, "legend": True}
    return line_figure(path, title, [panel], panel_width=6.4, height=3.6)
