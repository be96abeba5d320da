"""`lyceum lab reproduce`: the OPD paper's contrasts on the lab's tiny models, as a markdown report with plots.

    report = reproduce("runs/lab-reproduce")                 # ~8 OPD runs of the demo recipe; see docs/lab.md
    report = reproduce("/tmp/r", quick=True)                 # a few steps per arm: plumbing only

Every arm is one ``lyceum.train.distill.distill`` run of the lab student against one teacher with the demo's
recipe, changing one thing. Arms that coincide (the compatible teacher with the default support appears in
every contrast) run once. The report states the paper's claim next to the measured numbers and says, by a
rule written next to each claim, whether they agree; it never hides a disagreement.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lyceum.lab import models

# Accuracy differences below this are treated as ties (200 held-out prompts: one standard error is ~3.5 points).
TIE = 0.05


@dataclass(frozen=True)
class Arm:
    label: str
    teacher: str  # lab model name
    overrides: tuple[tuple[str, Any], ...] = ()  # OPDConfig changes against the base recipe

    @property
    def key(self) -> str:
        return self.teacher + "".join(f"-{k}={v}" for k, v in self.overrides)


@dataclass
class Contrast:
    name: str
    title: str
    claim: str  # what the paper reports
    arms: list[Arm]
    judge: Callable[[dict[str, dict]], tuple[str, str]]  # arm label -> outcome  =>  (verdict, reading)
    plot_metric: tuple[str, str] = ("overlap_ratio", "overlap ratio (top-k, student states)")


@dataclass
class Outcome:
    """What one arm measured."""

    label: str
    key: str
    teacher: str
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    teacher_accuracy: float | None = None
    gap_recovery: float | None = None
    initial: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)
    patterns_after: dict = field(default_factory=dict)  # share of the final student's greedy answers per pattern
    loss_mean: float | None = None
    grad_norm_mean: float | None = None
    seconds: float = 0.0
    run: str = ""
    error: str | None = None

    def as_dict(self) -> dict:
        return dict(vars(self))


# ------------------------------------------------------------------------------------------------ judging
# Each judge takes {arm label: outcome dict} and returns (verdict, reading). A claim made of two parts gets
# "partly agrees" when one part holds; "n/a" when the numbers cannot decide it.


def _get(o: dict, key: str) -> float:
    v = o.get(key)
    return float("nan") if v is None else float(v)


def _verdict(*parts: bool) -> str:
    if all(parts):
        return "agrees"
    return "partly agrees" if any(parts) else "does not agree"


def _judge_patterns(out: dict[str, dict]) -> tuple[str, str]:
    c, i = out["compatible (pattern R)"], out["incompatible (pattern L)"]
    ov_c, ov_i = c["initial"].get("overlap_ratio", math.nan), i["initial"].get("overlap_ratio", math.nan)
    why = (f"initial overlap {ov_c:.3f} (R) vs {ov_i:.3f} (L); final accuracy {_get(c, 'accuracy_after'):.3f} vs "
           f"{_get(i, 'accuracy_after'):.3f}; teachers {_get(c, 'teacher_accuracy'):.3f} vs "
           f"{_get(i, 'teacher_accuracy'):.3f}")
    return _verdict(ov_i < ov_c, _get(i, "accuracy_after") < _get(c, "accuracy_after") - TIE), why


def _judge_capability(out: dict[str, dict]) -> tuple[str, str]:
    n, b = out["new capability (R, harder data)"], out["bigger, student's data only"]
    gn, gb = _get(n, "gap_recovery"), _get(b, "gap_recovery")
    why = f"gap recovery {gn:.1%} (new capability) vs {gb:.1%} (bigger model, same data)"
    if math.isnan(gn) or math.isnan(gb):
        return "n/a", why + " (undefined: a teacher is not above the student)"
    return _verdict(gn > gb + TIE), why


def _judge_mechanism(out: dict[str, dict]) -> tuple[str, str]:
    full, inter = out["student top-k"], out["overlap only (intersection)"]
    sym = out["symmetric difference only"]
    if sym.get("error"):
        return "n/a", "the symmetric-difference support is not available in this build"
    af, ai, asym = (_get(x, "accuracy_after") for x in (full, inter, sym))
    why = f"final accuracy: top-k {af:.3f}, overlap only {ai:.3f}, symmetric difference only {asym:.3f}"
    return _verdict(abs(ai - af) <= TIE, asym < min(af, ai) - TIE), why


def _judge_granularity(out: dict[str, dict]) -> tuple[str, str]:
    t1, tk, s = out["top-1"], out["top-k"], out["sampled token"]
    a1, ak, asamp = (_get(x, "accuracy_after") for x in (t1, tk, s))
    why = f"final accuracy: top-1 {a1:.3f}, top-k {ak:.3f}, sampled token {asamp:.3f}"
    if abs(_get(t1, "loss_mean")) < 1e-6:
        why += (" (top-1 renormalised on one token is a point mass on both sides, so its loss and gradient are 0: "
                "the student never moves, rather than moving unstably)")
    return _verdict(abs(asamp - ak) <= TIE, a1 < min(ak, asamp) - TIE), why


def contrasts() -> list[Contrast]:
    base = Arm("compatible (pattern R)", "teacher")
    return [
        Contrast("patterns", "Compatible vs incompatible thinking pattern (teachers of similar accuracy)",
                 "A teacher with similar scores but a different thinking pattern gives lower initial overlap and a "
                 "worse student.",
                 [base, Arm("incompatible (pattern L)", "teacher_l")], _judge_patterns),
        Contrast("capability", "New capability vs a bigger model trained on the student's data",
                 "Gap recovery is far higher from a teacher with genuinely new capability (58.6% for an RL-trained "
                 "teacher) than from a same-family larger model (15.6%).",
                 [Arm("new capability (R, harder data)", "teacher"), Arm("bigger, student's data only", "teacher_big")],
                 _judge_capability, ("gap_recovery", "gap recovery")),
        Contrast("mechanism", "Mechanism ablation: which part of the top-k support carries the signal",
                 "Training only on the overlap of the two top-k sets is about as good as the full student top-k; "
                 "training only on their symmetric difference is clearly worse.",
                 [Arm("student top-k", "teacher"),
                  Arm("overlap only (intersection)", "teacher", (("support", "intersection"),)),
                  Arm("symmetric difference only", "teacher", (("support", "symmetric_difference"),))],
                 _judge_mechanism),
        Contrast("granularity", "Top-1 vs top-k vs the sampled token",
                 "The sampled-token estimate is about as good as top-k (k = 4/16/64); top-1 is unstable.",
                 [Arm("top-1", "teacher", (("k", 1),)), Arm("top-k", "teacher"),
                  Arm("sampled token", "teacher", (("support", "sampled"),))],
                 _judge_granularity, ("grad_norm", "gradient norm")),
    ]


# ------------------------------------------------------------------------------------------------ running


def base_config(quick: bool, steps: int | None, seed: int) -> dict:
    """The demo's recipe (one recipe for demo and lab), shortened under ``quick``."""
    from lyceum.train.demo import DEMO_CONFIG

    cfg = {**DEMO_CONFIG, "seed": seed, "max_new_tokens": models.max_new_tokens(models.EVAL_DIGITS),
           "checkpoint_every": 0}
    if quick:
        cfg.update(steps=1, prompts_per_step=4, n=2, eval_every=0, warmup_steps=0, eval_batch_size=8)
    if steps is not None:
        cfg["steps"] = steps
    return cfg


def run_arm(arm: Arm, student: Path, teacher: Path, rows: list[dict], evals: list[dict], out: Path,
            cfg_values: dict) -> Outcome:
    from lyceum.errors import UserError
    from lyceum.train.config import OPDConfig
    from lyceum.train.distill import distill

    outcome = Outcome(arm.label, arm.key, arm.teacher, run=str(out))
    started = time.time()
    try:
        cfg = OPDConfig(**{**cfg_values, **dict(arm.overrides)})
        result = distill(student, teacher, rows, out, cfg, eval_rows=evals, resume=False, desc=arm.key)
    except UserError as e:  # e.g. a support this build's losses do not have
        outcome.error = str(e)
        return outcome
    outcome.seconds = round(time.time() - started, 1)
    outcome.accuracy_before, outcome.accuracy_after = result.accuracy_before, result.accuracy_after
    outcome.teacher_accuracy, outcome.gap_recovery = result.reference_accuracy, result.gap_recovery
    outcome.initial, outcome.final = result.initial, result.final
    outcome.patterns_after = final_patterns(out, evals)
    train = [r for r in _metrics(str(out)) if r.get("event") == "train"]
    if train:
        outcome.loss_mean = sum(r.get("loss", 0.0) for r in train) / len(train)
        outcome.grad_norm_mean = sum(r.get("grad_norm", 0.0) for r in train) / len(train)
    return outcome


def final_patterns(run: Path, evals: list[dict]) -> dict:
    """Which thinking pattern the distilled student's greedy answers start in (share of R / L / other)."""
    from lyceum.models.local import load_local

    final = Path(run) / "checkpoint" / "model"  # where the engine leaves the student at the end of a run
    if not final.exists():
        return {}
    return models.accuracy(load_local(final, device="cpu", dtype="fp32"), evals)["patterns"]


def _metrics(run: str) -> list[dict]:
    path = Path(run) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def plot_contrast(c: Contrast, outcomes: dict[str, Outcome], path: Path) -> Path:
    """Held-out accuracy over steps (teachers dashed) and one diagnostic over steps, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    metric, label = c.plot_metric
    for arm in c.arms:
        o = outcomes[arm.label]
        rows = _metrics(o.run)
        ev = [(r["step"], r["accuracy"]) for r in rows if r.get("event") == "eval"]
        if ev:
            (line,) = ax1.plot(*zip(*ev), marker="o", label=arm.label)
            if o.teacher_accuracy is not None and c.name in ("patterns", "capability"):
                ax1.axhline(o.teacher_accuracy, color=line.get_color(), linestyle="--", linewidth=1)
        event = "eval" if metric == "gap_recovery" else "train"
        pts = [(r["step"], r[metric]) for r in rows if r.get("event") == event and isinstance(r.get(metric), float)
               and not math.isnan(r[metric])]
        if pts:
            xs, ys = zip(*pts)
            ax2.plot(xs, _smooth(list(ys), 1 if event == "eval" else 5), label=arm.label,
                     marker="o" if event == "eval" else None)
    ax1.set(title="held-out accuracy (greedy); teachers dashed", xlabel="step", ylabel="accuracy", ylim=(0, 1.02))
    ax2.set(title=label, xlabel="step")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(c.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _smooth(ys: list[float], width: int) -> list[float]:
    return [sum(ys[max(0, i - width + 1): i + 1]) / len(ys[max(0, i - width + 1): i + 1]) for i in range(len(ys))]


# ------------------------------------------------------------------------------------------------ the report


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def arm_table(c: Contrast, outcomes: dict[str, Outcome]) -> str:
    header = ["arm", "teacher", "teacher acc", "student before", "student after", "gap recovery",
              "initial overlap", "final overlap", "initial entropy gap", "mean loss", "mean grad norm",
              "final answers R / L / other", "seconds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in c.arms:
        o = outcomes[arm.label]
        if o.error:
            lines.append(f"| {arm.label} | {arm.teacher} | not run: {o.error} |" + " |" * (len(header) - 3))
            continue
        cells = [arm.label, arm.teacher, _pct(o.teacher_accuracy), _pct(o.accuracy_before), _pct(o.accuracy_after),
                 _pct(o.gap_recovery), _num(o.initial.get("overlap_ratio")), _num(o.final.get("overlap_ratio")),
                 _num(o.initial.get("entropy_gap")), _num(o.loss_mean), _num(o.grad_norm_mean),
                 " / ".join(_pct(o.patterns_after.get(p, 0.0)) for p in ("R", "L", "other")) if o.patterns_after
                 else "-", f"{o.seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def models_table(names: list[str], dirs: dict[str, Path]) -> str:
    lines = ["| model | recipe | architecture | accuracy on 1-4 digit sums (by digits) |", "|---|---|---|---|"]
    for name in names:
        r = models.recipe(name)
        m = (models.read_record(dirs[name]) or {}).get("measured", {})
        by = ", ".join(f"{d}: {v:.2f}" for d, v in m.get("by_digits", {}).items())
        lines.append(f"| {name} | {r.description} | {r.arch} h{r.hidden} L{r.layers}, pattern {r.pattern} | "
                     f"{_pct(m.get('accuracy'))} ({by}) |")
    return "\n".join(lines)


def signature_table(c: Contrast, outcomes: dict[str, Outcome]) -> str:
    """The paper's success signature per arm: first steps -> last steps of each diagnostic."""
    keys = [("overlap_ratio", "overlap ratio"), ("overlap_mass_student", "overlap mass (student)"),
            ("overlap_advantage", "overlap-token advantage"), ("entropy_gap", "entropy gap")]
    lines = ["| arm | " + " | ".join(label for _, label in keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for arm in c.arms:
        o = outcomes[arm.label]
        if not o.error:
            cells = [f"{_num(o.initial.get(k))} -> {_num(o.final.get(k))}" for k, _ in keys]
            lines.append(f"| {arm.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reproduce(out: str | Path, *, models_dir: Path | None = None, quick: bool = False, only: list[str] | None = None,
              steps: int | None = None, seed: int = 0, log: Callable[[str], None] = print) -> Path:
    """Run the contrasts (all, or ``only``), write ``<out>/numbers.json``, then the report; returns its path."""
    import torch

    from lyceum.errors import UserError
    from lyceum.train.demo import demo_rows

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = contrasts()
    extra_names = _extra_contrasts()
    if only:
        unknown = sorted(set(only) - {c.name for c in chosen} - set(extra_names))
        if unknown:
            raise UserError(f"unknown contrast(s) {', '.join(unknown)}; choose from "
                            f"{', '.join([c.name for c in chosen] + list(extra_names))}")
        chosen = [c for c in chosen if c.name in only]
    started = time.time()
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 8)))

    # the demo's prompts (4-digit sums, training and held-out disjoint); the models by name
    rows, evals = demo_rows(16 if quick else 1000, 8 if quick else 200, seed=seed)
    needed = ["student"] + sorted({a.teacher for c in chosen for a in c.arms})
    dirs = {n: models.lab_model_dir(n, root=models_dir, log=log) for n in needed}
    cfg_values = base_config(quick, steps, seed)

    outcomes: dict[str, Outcome] = {}  # by arm key: a coinciding arm runs once
    for c in chosen:
        for arm in c.arms:
            if arm.key not in outcomes:
                log(f"[{c.name}] {arm.label}: OPD from '{arm.teacher}' {dict(arm.overrides) or ''}")
                outcomes[arm.key] = run_arm(arm, dirs["student"], dirs[arm.teacher], rows, evals,
                                            out / "runs" / arm.key, cfg_values)
                o = outcomes[arm.key]
                log(f"  -> {o.error or f'accuracy {_pct(o.accuracy_before)} -> {_pct(o.accuracy_after)}'}")
    extra_sections = _run_extra_contrasts(extra_names, only, models_dir, out, seed, quick, log)
    (out / "numbers.json").write_text(json.dumps({
        "config": cfg_values, "quick": quick, "eval_prompts": len(evals), "seconds": round(time.time() - started, 1),
        "models": {n: str(p) for n, p in dirs.items()}, "contrasts": [c.name for c in chosen],
        "outcomes": {k: o.as_dict() for k, o in outcomes.items()}, "extra_sections": extra_sections}, indent=2))
    report = write_report(out)
    log(f"wrote {report} ({time.time() - started:.0f} s)")
    return report


def write_report(out: str | Path) -> Path:
    """``report.md`` and one PNG per contrast from ``<out>/numbers.json`` and the arms' run folders."""
    out = Path(out)
    data = json.loads((out / "numbers.json").read_text())
    cfg, quick = data["config"], data["quick"]
    outcomes = {k: Outcome(**v) for k, v in data["outcomes"].items()}
    sections, verdicts = [], []
    for c in [c for c in contrasts() if c.name in data["contrasts"]]:
        by_label = {a.label: _relabel(outcomes[a.key], a.label) for a in c.arms}
        verdict, why = c.judge({k: v.as_dict() for k, v in by_label.items()}) if not quick else ("n/a", "quick run")
        verdicts.append(f"| {c.title} | {c.claim} | {why} | **{verdict}** |")
        plot = plot_contrast(c, by_label, out / f"{c.name}.png")
        sections += [f"## {c.title}", "", f"*Paper:* {c.claim}", "", arm_table(c, by_label), "",
                     f"*Measured:* {why}. **{verdict.capitalize()}** with the paper.", "",
                     ("Diagnostics, first 5 steps -> last 5 steps (the paper's success signature: overlap rising, "
                     "overlap-token advantage towards 0, entropy gap shrinking):"), "", signature_table(c, by_label), "",
                     f"![{c.name}]({plot.name})", ""]
    dirs = {n: Path(p) for n, p in data["models"].items()}
    intro = [
        "# The OPD paper's phenomena at lab scale", "",
        (f"Tiny character-level models doing multi-digit addition with a scratchpad (lyceum.lab). The student "
         f"was trained on 1-3 digit sums and glanced at 4-digit ones; every arm distils it on-policy on 4-digit sums "
         f"with the demo's recipe ({cfg['steps']} steps x {cfg['prompts_per_step']} prompts x {cfg['n']} rollouts, "
         f"{cfg['kind']} on the student's top-{cfg['k']}, lr {cfg['lr']}, seed {cfg['seed']}), changing one thing per "
         f"arm. Accuracy is greedy on {data['eval_prompts']} held-out 4-digit sums; overlap/entropy are token means "
         f"at student-visited states (top-{cfg['diagnostics_k']}), averaged over the first and last 5 steps. "
         f"Differences under {TIE:.0%} count as ties. Wall time {data['seconds']:.0f} s."
         + (" **Quick run: a few steps per arm, the numbers mean nothing.**" if quick else "")), "",
        "## Models", "", models_table(list(dirs), dirs), "",
        "## Summary", "", "| contrast | paper | measured | verdict |", "|---|---|---|---|", *verdicts, "",
    ]
    if data.get("extra_sections"):
        intro += [("The recovery-recipe and curriculum contrasts (lyceum.train.recipes) follow the four above, each "
                  "with its own reading."), ""]
    report = out / "report.md"
    report.write_text("\n".join(intro + sections + data.get("extra_sections", [])))
    return report


def _relabel(o: Outcome, label: str) -> Outcome:
    d = o.as_dict()
    d["label"] = label
    return Outcome(**d)


# ------------------------------------------------------------------------------------------------ issue-6 contrasts


def _extra_contrasts() -> dict[str, Any]:
    """The recipes' lab contrasts (cold start, prompt templates, curriculum), when that part is installed."""
    try:
        from lyceum.train.recipes.lab_contrasts import CONTRASTS
    except ImportError:
        return {}
    return dict(CONTRASTS)


def _run_extra_contrasts(names: dict[str, Any], only, models_dir, out: Path, seed: int, quick: bool,
                         log: Callable[[str], None]) -> list[str]:
    sections = []
    for name, fn in names.items():
        if only and name not in only:
            continue
        log(f"[{name}] running the recipe contrast")
        result = fn(out / name, root=models_dir, seed=seed, quick=quick, log=log)
        sections += [f"## {result.title}", "", result.markdown, ""]
        sections += [f"![{p.stem}]({Path(p).relative_to(out) if Path(p).is_relative_to(out) else p})"
                     for p in result.plots]
        sections.append("")
    return sections
