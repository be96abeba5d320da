"""The report of an RL run: per-stage table, reward plot, and the engine's report around them."""

from __future__ import annotations

import itertools
from pathlib import Path


def stage_table(stages: list[dict]) -> str:
    """The per-stage summary as a markdown table."""
    lines = ["| stage | open buckets | first step | steps | reward | zero-variance groups | response length |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for s in stages:
        cells = [s["stage"], s["open_buckets"], s["first_step"], s["steps"], s["reward"],
                 s["zero_variance_share"], s["response_length"]]
        lines.append("| " + " | ".join("-" if c is None else (f"{c:.3f}" if isinstance(c, float) else str(c))
                                       for c in cells) + " |")
    return "\n".join(lines)


def plot_rl(run, *, smooth: int = 5) -> list[Path]:
    """``reward.png``: training reward and zero-variance group share over steps, stage changes marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lyceum.tables import series
    from lyceum.tables import smooth as smoothed

    rows = run.read_metrics()
    xs, ys = series(rows, "reward")
    if not xs:
        return []
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    (line,) = ax.plot(xs, smoothed(ys, smooth), label="training reward")
    ax.plot(xs, ys, color=line.get_color(), alpha=0.2, linewidth=0.8)
    zx, zy = series(rows, "zero_variance_share")
    if zx:
        ax.plot(zx, smoothed(zy, smooth), label="zero-variance groups", linestyle=":")
    stages = [(r["step"], r["stage"]) for r in rows if r.get("event") == "train" and "stage" in r]
    # a row's stage is the one after that step was observed: the next step is the first of the new stage
    for (_, before), (step, after) in itertools.pairwise(stages):
        if after != before:
            ax.axvline(step + 0.5, color="gray", linestyle="--", linewidth=0.8)
            ax.text(step + 0.5, 1.0, f" stage {after}", fontsize=7, va="top")
    ax.set(title="RL: training reward", xlabel="step", ylabel="share", ylim=(-0.02, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(run.path / "reward.png", dpi=110)
    plt.close(fig)
    return [run.path / "reward.png"]


def write_rl_report(result, *, title: str) -> Path:
    """``report.md`` of an RL run: the engine's summary, the pass-rate filter, the stages, the plots."""
    from lyceum.train.report import plot_run, write_report

    f = result.filter
    intro = []
    if f:
        intro.append(f"Pass-rate filter ({f['rollouts']} rollouts): kept {f['kept']} of {f['total']} prompts, "
                     f"dropped {f['too_easy']} too easy and {f['unsolved']} never solved.")
    intro += ["", "### Curriculum stages", "", stage_table(result.curriculum.stage_summaries())]
    plots = plot_rl(result.run) + plot_run(result.run)
    return write_report(result.run, result.train, title=title, intro="\n".join(intro), plots=plots)
