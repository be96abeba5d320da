"""The markdown report and the bar chart of exam scores against the medal cut-offs.

Exams have different full marks (25 for F=MA, 320 for CPhO), so the chart shows every score and cut-off as a
percentage of the exam's full mark for the model; the markdown tables keep the raw points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MEDAL_COLORS = {"bronze": "#cd7f32", "silver": "#9e9e9e", "gold": "#d4af37"}
CHART_NAME = "exam_scores.png"


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}".rstrip("0").rstrip(".") if isinstance(x, float) else str(x)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _medal_text(exam: dict[str, Any]) -> str:
    if exam["cutoffs"] is None:
        return "n/a (no cut-offs)"
    if not exam["complete"]:
        return f"– (partial: {exam['graded']}/{exam['problems']} problems)"
    return exam["medal"]


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
    lines += _table(["Exam", "Score", "Full mark", "%", "Medal", "Bronze", "Silver", "Gold", "Problems"], rows)
    if chart:
        lines += ["", f"![Exam scores against the medal cut-offs]({chart})"]
    for key, label in (("fields", "By field"), ("modalities", "By modality")):
        lines += ["", f"## {label}", ""]
        lines += _table([label.split()[-1].capitalize(), "Score", "Full mark", "%", "Problems"],
                        [[k, _fmt(b["score"]), _fmt(b["full_mark"]), _fmt(b["percent"]),
                          f"{b['graded']}/{b['problems']}"] for k, b in summary[key].items()])
    lines += ["", "## Answer level by answer type", ""]
    lines += _table(["Answer type", "Correct", "Checked", "Accuracy", "Not checked (judge only)"],
                    [[k, str(t["correct"]), str(t["checked"]),
                      "–" if t["accuracy"] is None else f"{100 * t['accuracy']:.1f}%", str(t["unchecked"])]
                     for k, t in summary["answer_types"].items()])
    tokens = {k: e["tokens"] for k, e in summary["exams"].items() if e.get("tokens")}
    if tokens:
        lines += ["", "## Tokens", ""]
        lines += _table(["Exam", "Calls", "Prompt tokens", "Completion tokens"],
                        [[k, str(t.get("calls", 0)), str(t.get("prompt_tokens", 0)), str(t.get("completion_tokens", 0))]
                         for k, t in tokens.items()])
    if summary.get("judge_usage"):
        j = summary["judge_usage"].get("total", {})
        lines += ["", (f"Judge: {j.get('calls', 0)} calls ({j.get('cached_calls', 0)} cached), "
                      f"{j.get('prompt_tokens', 0)} prompt and {j.get('completion_tokens', 0)} completion tokens.")]
    return "\n".join(lines) + "\n"


def plot_exam_scores(summary: dict[str, Any], path: str | Path) -> Path:
    """Bars: each exam's score in % of its full mark; ticks: the bronze/silver/gold cut-offs on the same scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exams = summary["exams"]
    names = list(exams)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(names) + 2), 4.2))
    xs = range(len(names))
    ax.bar(xs, [exams[n]["percent"] for n in names], color="#4c72b0", width=0.6, label="score", zorder=2)
    for medal_name, color in MEDAL_COLORS.items():
        points = [(i, 100 * exams[n]["cutoffs"][medal_name] / exams[n]["full_mark"]) for i, n in enumerate(names)
                  if exams[n]["cutoffs"] and exams[n]["full_mark"]]
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], marker="_", s=900, linewidths=3,
                       color=color, label=f"{medal_name} cut-off", zorder=3)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("% of the exam's full mark")
    ax.set_ylim(0, 118)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(fontsize=8, loc="upper center", ncol=4, frameon=False)
    ax.set_title("Exam scores against human medal cut-offs")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(out_dir: str | Path, summary: dict[str, Any], *, title: str = "HiPhO results",
                 notes: list[str] | None = None) -> Path:
    """Write ``report.md`` and the chart into ``out_dir``; returns the report's path."""
    out_dir = Path(out_dir)
    chart = None
    if summary["exams"]:
        plot_exam_scores(summary, out_dir / CHART_NAME)
        chart = CHART_NAME
    path = out_dir / "report.md"
    path.write_text(render_markdown(summary, title=title, chart=chart, notes=notes), encoding="utf-8")
    return path
