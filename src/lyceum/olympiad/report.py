"""The markdown report and the bar chart of exam scores against the medal cut-offs.

Exams have different full marks (25 for F=MA, 320 for CPhO), so the chart shows every score and cut-off as a
percentage of the exam's full mark for the model; the markdown tables keep the raw points.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lyceum.tables import fmt_points as _fmt
from lyceum.tables import markdown_table

MEDAL_COLORS = {"bronze": "#cd7f32", "silver": "#9e9e9e", "gold": "#d4af37"}
CHART_NAME = "exam_scores.png"


def _medal_text(exam: dict[str, Any]) -> str:
    if exam["cutoffs"] is None:
        return "n/a (no cut-offs)"
    if not exam["complete"]:
        return f"– (partial: {exam['graded']}/{exam['problems']} problems)"
    return exam["medal"]


def _table_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    return markdown_table(header, rows).splitlines()


def render_markdown(summary: dict[str, Any], *, title: str = "HiPhO results", chart: str | None = CHART_NAME,
                    notes: list[str] | None = None) -> str:
    o = summary["overall"]
    m = summary["medals"]
    lines = [f"# {title}", ""]
    lines += [(f"Overall: **{_fmt(o['score'])} / {_fmt(o['full_mark'])}** points ({_fmt(o['percent'])}%) over "
              f"{o['problems_graded']} problems; medals: gold {m['gold']}, silver {m['silver']}, "
              f"bronze {m['bronze']}, none {m['none']}."), ""]
    for note in notes or []:
        lines += [note, ""]
    lines += ["## Exams", ""]
    rows = []
    for name, e in summary["exams"].items():
        c = e["cutoffs"] or {}
        rows.append([name, _fmt(e["score"]), _fmt(e["full_mark"]), _fmt(e["percent"]), _medal_text(e),
                     _fmt(c.get("bronze")), _fmt(c.get("silver")), _fmt(c.get("gold")),
                     f"{e['graded']}/{e['problems']}"])
    lines += _table_lines(["Exam", "Score", "Full mark", "%", "Medal", "Bronze", "Silver", "Gold", "Problems"], rows)
    if chart:
        lines += ["", f"![Exam scores against the medal cut-offs]({chart})"]
    for key, label in (("fields", "By field"), ("modalities", "By modality")):
        lines += ["", f"## {label}", ""]
        lines += _table_lines([label.split()[-1].capitalize(), "Score", "Full mark", "%", "Problems"],
                        [[k, _fmt(b["score"]), _fmt(b["full_mark"]), _fmt(b["percent"]),
                          f"{b['graded']}/{b['problems']}"] for k, b in summary[key].items()])
    lines += ["", "## Answer level by answer type", ""]
    undecided = any(t.get("undecided") for t in summary["answer_types"].values())
    lines += _table_lines(["Answer type", "Correct", "Checked", "Accuracy", "Not checked (judge only)"]
                          + (["Undecided (out of budget)"] if undecided else []),
                    [[k, str(t["correct"]), str(t["checked"]),
                      "–" if t["accuracy"] is None else f"{100 * t['accuracy']:.1f}%", str(t["unchecked"])]
                     + ([str(t.get("undecided", 0))] if undecided else [])
                     for k, t in summary["answer_types"].items()])
    tokens = {k: e["tokens"] for k, e in summary["exams"].items() if e.get("tokens")}
    if tokens:
        lines += ["", "## Tokens", ""]
        lines += _table_lines(["Exam", "Calls", "Prompt tokens", "Completion tokens"],
                        [[k, str(t.get("calls", 0)), str(t.get("prompt_tokens", 0)), str(t.get("completion_tokens", 0))]
                         for k, t in tokens.items()])
    if summary.get("judge_usage"):
        j = summary["judge_usage"].get("total", {})
        lines += ["", (f"Judge: {j.get('calls', 0)} calls ({j.get('cached_calls', 0)} cached), "
                      f"{j.get('prompt_tokens', 0)} prompt and {j.get('completion_tokens', 0)} completion tokens.")]
    return "\n".join(lines) + "\n"


def plot_exam_scores(summary: dict[str, Any], path: str | Path) -> Path:
    """Bars: each exam's score in % of its full mark; ticks: the bronze/silver/gold cut-offs on the same scale.

    The legend sits outside the axes (inside, it covered the bars and tick labels), and the x-axis always
    spans at least four bar slots, so one exam is one bar rather than a block filling the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exams = summary["exams"]
    names = list(exams)
    n = len(names)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * n + 3.2), 4.4))
    xs = list(range(n))
    ax.bar(xs, [exams[k]["percent"] for k in names], color="#4c72b0", width=0.6, label="score", zorder=2)
    for medal_name, color in MEDAL_COLORS.items():
        points = [(i, 100 * exams[k]["cutoffs"][medal_name] / exams[k]["full_mark"]) for i, k in enumerate(names)
                  if exams[k]["cutoffs"] and exams[k]["full_mark"]]
        if points:
            ax.hlines([p[1] for p in points], [p[0] - 0.36 for p in points], [p[0] + 0.36 for p in points],
                      colors=color, linewidth=3, label=f"{medal_name} cut-off", zorder=3)
    for i, k in enumerate(names):  # the score itself, inside the foot of its bar (clear of the cut-off ticks)
        pct = exams[k]["percent"]
        inside = pct >= 8
        ax.text(i, 1.5 if inside else pct + 1.5, f"{pct:.0f}%", ha="center", va="bottom", fontsize=7,
                color="white" if inside else "#333333", zorder=4)
    half = max(n, 4) / 2
    ax.set_xlim((n - 1) / 2 - half, (n - 1) / 2 + half)
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=35 if n > 3 else 0, ha="right" if n > 3 else "center", fontsize=8)
    ax.set_ylabel("% of the exam's full mark")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("Exam scores against human medal cut-offs", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(out_dir: str | Path, summary: dict[str, Any], *, title: str = "HiPhO results",
                 notes: list[str] | None = None) -> Path:
    """Write ``report.md`` and the chart into ``out_dir``; returns the report's path."""
    from lyceum.olympiad.private import write_private

    out_dir = Path(out_dir)
    chart = None
    notes = list(notes or [])
    if summary["exams"]:
        try:
            import matplotlib  # noqa: F401 - only to know whether the chart can be drawn
        except ImportError:  # the core install grades without the plotting extra
            message = ("the chart exam_scores.png was skipped: matplotlib is not installed "
                       "(pip install 'lyceum[olympiad]' brings it)")
            logging.getLogger(__name__).warning(message)
            print(f"note: {message}")
            notes.append(message[0].upper() + message[1:] + ".")
        else:
            plot_exam_scores(summary, out_dir / CHART_NAME)
            chart = CHART_NAME
    return write_private(out_dir / "report.md", render_markdown(summary, title=title, chart=chart, notes=notes))
