"""Plots and a markdown report of an on-policy run, from its ``metrics.jsonl``.

    paths = plot_run(run)            # PNGs of the diagnostics over steps, in the run folder
    text = summary_table(result)     # before/after accuracy, gap recovery, initial vs final diagnostics
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from lyceum.runs import RunDir
from lyceum.tables import fmt_share, markdown_table

# (file, [(panel title, [(metric key, label)], y label)]): a figure of several panels gives each its own y axis,
# so quantities of different scale (a loss near 0.2, a gradient norm near 45) are never drawn on one; {k} is the
# diagnostics' top-k (the loss's own top-k may differ)
PANELS = [
    ("overlap.png", [("Top-{k} overlap between student and teacher",
                      [("overlap_ratio", "overlap ratio"), ("overlap_mass_student", "overlap mass (student)"),
                       ("overlap_mass_teacher", "overlap mass (teacher)")], "share")]),
    ("entropy.png", [("Next-token entropy at student-visited states",
                      [("entropy_student", "student H(p)"), ("entropy_teacher", "teacher H(q)"),
                       ("entropy_gap", "|H(q) - H(p)|")], "nats")]),
    ("advantage.png", [("Top-{k} overlap-token advantage (near 0 is healthy)",
                        [("overlap_advantage", "overlap advantage"),
                         ("sequence_reward", "sequence reward mean_t(log q - log p)")], "nats")]),
    ("loss.png", [("Loss", [("loss", "loss")], "loss"),
                  ("Gradient norm (before clipping)", [("grad_norm", "grad norm")], "L2 norm")]),
    ("length.png", [("Response length", [("response_length", "mean response tokens")], "tokens")]),
    ("overlap_by_position.png", [("Top-{k} overlap ratio by position in the response",
                                  [("overlap_ratio/first", "first third"), ("overlap_ratio/middle", "middle third"),
                                   ("overlap_ratio/last", "last third")], "overlap ratio")]),
]


def plot_run(run: RunDir, *, smooth: int = 5) -> list[Path]:
    """One PNG per figure with data, plus accuracy over steps when the run was evaluated."""
    from lyceum.tables import line_figure, series

    rows = run.read_metrics()
    config = run.path / "config.yaml"
    cfg = (yaml.safe_load(config.read_text()) or {}) if config.exists() else {}
    k = cfg.get("diagnostics_k", "k")
    written = []
    for name, figure in PANELS:
        panels = []
        for title, keys, ylabel in figure:
            lines = [(label, *series(rows, key)) for key, label in keys]
            lines = [x for x in lines if x[1]]
            if lines:
                # a count starts at 0: a nearly constant length is drawn flat, not as magnified noise
                panels.append({"title": title.format(k=k), "ylabel": ylabel, "lines": lines, "smooth": smooth,
                               "floor": 0.0 if ylabel == "tokens" else None, "legend": True})
        if panels:
            title = panels[0]["title"] if len(panels) == 1 else " and ".join(p["title"] for p in panels)
            if "{k}" in figure[0][0] and "support" in cfg:  # the loss's own k is not the diagnostics' k
                title += f" (the loss: {cfg['support']}, k = {cfg.get('k')})"
            if len(panels) == 1:
                panels[0]["title"] = ""
            written.append(line_figure(run.path / name, title, panels))
    xs, ys = series(rows, "accuracy", event="eval")
    if xs:
        teacher = [r["accuracy"] for r in rows if r.get("event") == "eval_teacher"]
        written.append(line_figure(run.path / "accuracy.png", "Held-out accuracy", [{
            "title": "", "ylabel": "accuracy (greedy)", "lines": [("student (greedy)", xs, ys)], "marker": "o",
            "hlines": [("teacher (greedy)", teacher[-1])] if teacher else [], "ylim": (0, 1.02), "legend": True}]))
    return written


def summary_rows(result) -> list[tuple[str, str, str]]:
    """(quantity, before / initial, after / final) rows for the run's closing table."""
    rows = []
    if result.evals:
        rows.append(("student accuracy", fmt_share(result.accuracy_before, pct=True),
                     fmt_share(result.accuracy_after, pct=True)))
    if result.reference_accuracy is not None:
        teacher = fmt_share(result.reference_accuracy, pct=True)
        rows.append(("teacher accuracy", teacher, teacher))
    if result.gap_recovery is not None:
        rows.append(("gap recovery", "", fmt_share(result.gap_recovery, pct=True)))
    for key, label in [("overlap_ratio", "overlap ratio"), ("overlap_mass_student", "overlap mass (student)"),
                       ("overlap_mass_teacher", "overlap mass (teacher)"), ("overlap_advantage", "overlap advantage"),
                       ("entropy_gap", "entropy gap (nats)")]:
        if key in result.initial or key in result.final:
            rows.append((label, fmt_share(result.initial.get(key)), fmt_share(result.final.get(key))))
    return rows


def reading(result) -> str:
    """Plain sentences comparing the run with the paper's signature of a successful OPD run (PAPERS.md §1):
    overlap rising, overlap-token advantage moving toward 0, entropy gap shrinking, accuracy rising."""
    out = []
    before, after = result.accuracy_before, result.accuracy_after
    if before is not None and after is not None:
        verb = "rose" if after > before else "fell" if after < before else "stayed"
        text = f"Student accuracy {verb} from {100 * before:.1f}% to {100 * after:.1f}%"
        gap = result.gap_recovery
        if gap is not None and not math.isnan(gap) and gap > 0:
            text += f", recovering {100 * gap:.0f}% of the gap to the teacher"
        out.append(text + ".")
    i, f = result.initial, result.final
    checks = [("overlap_ratio", "top-k overlap", "rose", lambda a, b: b > a),
              ("overlap_mass_student", "overlap mass", "rose", lambda a, b: b > a),
              ("overlap_advantage", "overlap-token advantage", "moved toward 0", lambda a, b: abs(b) < abs(a)),
              ("entropy_gap", "entropy gap", "shrank", lambda a, b: b < a)]
    # with fewer steps than two summary windows the first and last windows overlap: nothing to compare
    seen = [(label, verb, ok(i[key], f[key]), i[key], f[key]) for key, label, verb, ok in checks
            if key in i and key in f and i[key] != f[key]]
    good = [f"{label} {verb} ({a:.3f} -> {b:.3f})" for label, verb, ok, a, b in seen if ok]
    bad = [f"{label} did not ({a:.3f} -> {b:.3f})" for label, verb, ok, a, b in seen if not ok]
    if good:
        out.append("As in the paper's successful runs, " + "; ".join(good) + ".")
    if bad:
        out.append("Unlike them: " + "; ".join(bad) + ".")
    return " ".join(out)


def write_report(run: RunDir, result, *, title: str, intro: str = "", plots: list[Path] = ()) -> Path:
    """``report.md``: the summary table, what the numbers mean, the plots."""
    from lyceum.train.engine import SUMMARY_WINDOW

    parts = [f"# {title}", ""]
    if intro:
        parts += [intro, ""]
    parts += [markdown_table(["", "before / initial", "after / final"], summary_rows(result)), "", reading(result),
              "",
              (f"Accuracy is greedy, on held-out prompts, graded by the verifier. Diagnostics (PAPERS.md §1) are token "
              f"means at the student's own rollouts, averaged over the first and the last {SUMMARY_WINDOW} steps. "
              "Gap recovery = (after - before) / (teacher - before)."), ""]
    evals = result.evals
    if evals:
        parts += ["## Evaluations", "", "| step | accuracy | gap recovery | reward AUROC | response length |",
                  "|---|---|---|---|---|"]
        for e in evals:
            parts.append(f"| {e['step']} | {fmt_share(e['accuracy'], pct=True)} | "
                         f"{fmt_share(e.get('gap_recovery'), pct=True)} | {fmt_share(e.get('auroc'))} | "
                         f"{e.get('response_length', 0):.1f} |")
        parts.append("")
    if plots:
        parts += ["## Diagnostics over training", ""]
        parts += [f"![{p.stem}]({p.name})" for p in plots]
        parts.append("")
    return run.write_text("report.md", "\n".join(parts))
