"""`lyceum lab reproduce`: the lab's one harness for the papers' contrasts, run over seeds, as a report with plots.

    report = reproduce("runs/lab", seeds=[0, 1, 2])        # 7 OPD arms x 3 seeds; see docs/lab.md
    report = reproduce("/tmp/r", quick=True)                # a few steps per arm: plumbing only

The OPD paper's four contrasts (thinking patterns, new capability vs scale, which part of the top-k support
carries the signal, top-1 vs top-k vs the sampled token) are defined here: every arm is one
``lyceum.train.distill.distill`` run of the lab student against one teacher with the demo's recipe, changing
one thing. Arms that coincide (the compatible teacher with the default support appears in every contrast) run
once per seed. The recipe contrasts (cold start, prompt template, curriculum; ``lab/recipe_contrasts.py``) run
in the same harness and add their own sections.

Each seed writes ``<out>/seed-<s>/numbers.json`` (one seed alone writes ``<out>/numbers.json``). The report
states the paper's claim next to the measured numbers (mean and spread over seeds) and says, by a rule written
next to each claim, whether they agree: a difference counts when it exceeds twice its standard error, taken
from the spread over seeds and never below the sampling error of the held-out prompts. It never hides a
disagreement.
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
from lyceum.lab.stats import (  # noqa: F401 (the seed statistics; callers also reach them here)
    Z,
    accuracy_sd,
    compare,
    compare_accuracy,
    mean,
    shown,
    spread,
    standard_error,
    values,
)
from lyceum.tables import fmt_share, markdown_table


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
    judge: Callable[..., tuple[str, str]]  # ({arm label: outcome}, n_eval) => (verdict, reading)
    plot_metric: tuple[str, str] = ("overlap_ratio", "overlap ratio (top-4, student states)")


@dataclass
class Outcome:
    """What one arm measured with one seed."""

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


# ------------------------------------------------------------------------------------------------ measures
# An outcome field is a number (one seed) or a list of numbers (one per seed); judges read both.


# ------------------------------------------------------------------------------------------------ judging
# Each judge takes {arm label: outcome dict} and the number of held-out prompts and returns (verdict, reading).
# A claim made of two parts gets "partly agrees" when one part holds; "n/a" when the numbers cannot decide it.


def _verdict(*parts: bool) -> str:
    if all(parts):
        return "agrees"
    return "partly agrees" if any(parts) else "does not agree"


def _judge_patterns(out: dict[str, dict], n_eval: int = 200) -> tuple[str, str]:
    c, i = out["compatible (pattern R)"], out["incompatible (pattern L)"]
    ov_c, ov_i = c["initial"].get("overlap_ratio"), i["initial"].get("overlap_ratio")
    why = (f"initial overlap {shown(ov_c)} (R) vs {shown(ov_i)} (L); final accuracy {shown(c['accuracy_after'])} vs "
           f"{shown(i['accuracy_after'])}; teachers {shown(c['teacher_accuracy'])} vs {shown(i['teacher_accuracy'])}")
    return _verdict(compare(ov_i, ov_c) == "lower",
                    compare_accuracy(i, c, "accuracy_after", n_eval) == "lower"), why


def _gap_sd(o: dict, n_eval: int) -> float:
    """Sampling sd of a gap recovery: that of the final accuracy over the teacher-student gap."""
    gap = mean(o.get("teacher_accuracy")) - mean(o.get("accuracy_before"))
    return accuracy_sd(mean(o.get("accuracy_after")), n_eval) / gap if gap > 0 else 0.0


def _judge_capability(out: dict[str, dict], n_eval: int = 200) -> tuple[str, str]:
    n, b = out["new capability (R, harder data)"], out["bigger, student's data only"]
    why = (f"gap recovery {shown(n['gap_recovery'], pct=True)} (new capability) vs "
           f"{shown(b['gap_recovery'], pct=True)} (bigger model, same data)")
    if math.isnan(mean(n["gap_recovery"])) or math.isnan(mean(b["gap_recovery"])):
        return "n/a", why + " (undefined: a teacher is not above the student)"
    return _verdict(compare(n["gap_recovery"], b["gap_recovery"], _gap_sd(n, n_eval), _gap_sd(b, n_eval))
                    == "higher"), why


def _judge_mechanism(out: dict[str, dict], n_eval: int = 200) -> tuple[str, str]:
    full, inter = out["student top-k"], out["overlap only (intersection)"]
    sym = out["symmetric difference only"]
    if sym.get("error"):
        return "n/a", "the symmetric-difference support is not available in this build"
    why = (f"final accuracy: top-k {shown(full['accuracy_after'])}, overlap only {shown(inter['accuracy_after'])}, "
           f"symmetric difference only {shown(sym['accuracy_after'])}")
    return _verdict(compare_accuracy(inter, full, "accuracy_after", n_eval) == "tie",
                    compare_accuracy(sym, full, "accuracy_after", n_eval) == "lower"
                    and compare_accuracy(sym, inter, "accuracy_after", n_eval) == "lower"), why


def _judge_granularity(out: dict[str, dict], n_eval: int = 200) -> tuple[str, str]:
    t1, tk, s = out["top-1"], out["top-k"], out["sampled token"]
    why = (f"final accuracy: top-1 {shown(t1['accuracy_after'])}, top-k {shown(tk['accuracy_after'])}, "
           f"sampled token {shown(s['accuracy_after'])}")
    if abs(mean(t1.get("loss_mean"))) < 1e-6:
        why += (" (top-1 renormalised on one token is a point mass on both sides, so its loss and gradient are 0: "
                "the student never moves, rather than moving unstably)")
    return _verdict(compare_accuracy(s, tk, "accuracy_after", n_eval) == "tie",
                    compare_accuracy(t1, tk, "accuracy_after", n_eval) == "lower"
                    and compare_accuracy(t1, s, "accuracy_after", n_eval) == "lower"), why


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
                 _judge_capability, ("gap_recovery", "gap recovery (held-out evaluations)")),
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
                 _judge_granularity, ("grad_norm", "gradient norm (before clipping)")),
    ]


# ------------------------------------------------------------------------------------------------ running


def base_config(quick: bool, steps: int | None, seed: int) -> dict:
    """The demo's recipe (one recipe for demo and lab), shortened under ``quick``."""
    from lyceum.lab.demo import DEMO_CONFIG

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
    from lyceum.runs import read_jsonl

    path = Path(run) / "metrics.jsonl"
    return read_jsonl(path) if path.exists() else []


def run_seed(out: Path, chosen: list[Contrast], *, seed: int, quick: bool, steps: int | None,
             models_dir: Path | None, pins: dict | None, log: Callable[[str], None]) -> dict:
    """Every arm of ``chosen`` with one seed under ``out``; writes and returns ``out/numbers.json``'s content."""
    from lyceum.lab.demo import demo_rows
    from lyceum.runs import RunDir

    run = RunDir.open(out)
    cfg_values = base_config(quick, steps, seed)
    done = run.path / "numbers.json"
    if done.exists():  # rerunning the same command resumes: a seed whose arms all ran is kept
        old = json.loads(done.read_text())
        if old.get("config") == cfg_values and {c.name for c in chosen} <= set(old.get("contrasts", [])):
            log(f"seed {seed}: kept from {done} (remove that folder to run it again)")
            return old
    started = time.time()
    # the demo's prompts (4-digit sums, training and held-out disjoint); the models by name
    rows, evals = demo_rows(16 if quick else 1000, 8 if quick else 200, seed=seed)
    needed = ["student"] + sorted({a.teacher for c in chosen for a in c.arms})
    build = models_dir is None  # a folder the user named must already hold the models
    dirs = {n: models.lab_model_dir(n, root=models_dir, build=build, log=log) for n in needed}

    outcomes: dict[str, Outcome] = {}  # by arm key: a coinciding arm runs once
    for c in chosen:
        for arm in c.arms:
            if arm.key not in outcomes:
                log(f"[{c.name}, seed {seed}] {arm.label}: OPD from '{arm.teacher}' {dict(arm.overrides) or ''}")
                outcomes[arm.key] = run_arm(arm, dirs["student"], dirs[arm.teacher], rows, evals,
                                            run.path / "runs" / arm.key, cfg_values)
                o = outcomes[arm.key]
                moved = (f"accuracy {fmt_share(o.accuracy_before, pct=True)} -> "
                         f"{fmt_share(o.accuracy_after, pct=True)}")
                log(f"  -> {o.error or moved}")
    numbers = {"config": cfg_values, "quick": quick, "eval_prompts": len(evals),
               "seconds": round(time.time() - started, 1), "pins": pins or {},
               "models": {n: str(p) for n, p in dirs.items()}, "contrasts": [c.name for c in chosen],
               "outcomes": {k: o.as_dict() for k, o in outcomes.items()}}
    run.write_json("numbers.json", numbers)
    return numbers


def reproduce(out: str | Path, *, models_dir: Path | None = None, quick: bool = False, only: list[str] | None = None,
              steps: int | None = None, seed: int = 0, seeds: list[int] | None = None, pins: dict | None = None,
              log: Callable[[str], None] = print) -> Path:
    """Run the contrasts (all, or ``only``) with every seed, write the numbers, then the report; returns its path.

    One seed writes ``<out>/numbers.json``; several write ``<out>/seed-<s>/`` each (a complete single-seed
    report) and ``<out>/numbers.json`` naming them. The recipe contrasts run with the first seed only."""
    from lyceum.errors import UserError
    from lyceum.lab.demo import models_folder
    from lyceum.lab.recipe_contrasts import CONTRASTS as RECIPE_CONTRASTS
    from lyceum.runs import RunDir

    seeds = seeds or [seed]
    models_dir = models_folder(models_dir)
    chosen = contrasts()
    if only:
        unknown = sorted(set(only) - {c.name for c in chosen} - set(RECIPE_CONTRASTS))
        if unknown:
            raise UserError(f"unknown contrast(s) {', '.join(unknown)}; choose from "
                            f"{', '.join([c.name for c in chosen] + list(RECIPE_CONTRASTS))}")
        chosen = [c for c in chosen if c.name in only]
    recipe_names = [n for n in RECIPE_CONTRASTS if not only or n in only]
    run = RunDir.open(out)
    started = time.time()
    kw = {"quick": quick, "steps": steps, "models_dir": models_dir, "pins": pins, "log": log}
    if len(seeds) == 1:
        numbers = run_seed(run.path, chosen, seed=seeds[0], **kw)
    else:
        for s in seeds:
            run_seed(run.path / f"seed-{s}", chosen, seed=s, **kw)
            write_report(run.path / f"seed-{s}")
        numbers = {"seeds": seeds, "runs": {str(s): f"seed-{s}" for s in seeds}, "quick": quick,
                   "contrasts": [c.name for c in chosen]}
    numbers["extra_sections"] = recipe_sections(recipe_names, run.path, models_dir=models_dir, seed=seeds[0],
                                                quick=quick, log=log)
    numbers["seconds"] = round(time.time() - started, 1)
    run.write_json("numbers.json", numbers)
    report = write_report(run.path)
    log(f"wrote {report} ({time.time() - started:.0f} s)")
    return report


def recipe_sections(names: list[str], out: Path, *, models_dir: Path | None, seed: int, quick: bool,
                    log: Callable[[str], None]) -> list[str]:
    """Run the recipe contrasts and return their report sections (markdown lines, plots relative to ``out``)."""
    from lyceum.lab.recipe_contrasts import CONTRASTS as RECIPE_CONTRASTS

    sections = []
    for name in names:
        log(f"[{name}] running the recipe contrast")
        result = RECIPE_CONTRASTS[name](out / name, root=models_dir, seed=seed, quick=quick, log=log)
        sections += [f"## {result.title}", "", result.markdown, ""]
        sections += [f"![{p.stem}]({Path(p).relative_to(out)})" for p in result.plots]
        sections.append("")
    return sections


# ------------------------------------------------------------------------------------------------ the report


def load_outcomes(out: Path) -> tuple[dict, dict[str, dict], list[dict]]:
    """(numbers.json, {arm key: outcome dict with per-seed lists for several seeds}, [per-seed numbers])."""
    data = json.loads((out / "numbers.json").read_text())
    if "seeds" not in data:
        return data, data["outcomes"], [data]
    per_seed = [json.loads((out / data["runs"][str(s)] / "numbers.json").read_text()) for s in data["seeds"]]
    merged: dict[str, dict] = {}
    for key in per_seed[0]["outcomes"]:
        arms = [p["outcomes"][key] for p in per_seed]
        o = dict(arms[0])
        for f in ("accuracy_before", "accuracy_after", "teacher_accuracy", "gap_recovery", "loss_mean",
                  "grad_norm_mean", "seconds"):
            o[f] = [a[f] for a in arms]
        for f in ("initial", "final", "patterns_after"):
            o[f] = {k: [a[f].get(k) for a in arms] for k in arms[0][f]}
        o["run"] = [a["run"] for a in arms]
        o["error"] = next((a["error"] for a in arms if a["error"]), None)
        merged[key] = o
    return data, merged, per_seed


def arm_table(c: Contrast, outcomes: dict[str, dict]) -> str:
    header = ["arm", "teacher", "teacher acc", "student before", "student after", "gap recovery",
              "initial overlap", "final overlap", "initial entropy gap", "mean loss", "mean grad norm",
              "final answers R / L / other", "seconds"]
    rows = []
    for arm in c.arms:
        o = outcomes[arm.label]
        if o["error"]:
            rows.append([arm.label, arm.teacher, f"not run: {o['error']}"] + [""] * (len(header) - 3))
            continue
        patterns = o["patterns_after"]
        rows.append([arm.label, arm.teacher, shown(o["teacher_accuracy"], pct=True),
                     shown(o["accuracy_before"], pct=True), shown(o["accuracy_after"], pct=True),
                     shown(o["gap_recovery"], pct=True), shown(o["initial"].get("overlap_ratio")),
                     shown(o["final"].get("overlap_ratio")), shown(o["initial"].get("entropy_gap")),
                     shown(o["loss_mean"]), shown(o["grad_norm_mean"]),
                     " / ".join(fmt_share(mean(patterns.get(p, 0.0)), pct=True) for p in ("R", "L", "other"))
                     if patterns else "-", f"{mean(o['seconds']):.0f}"])
    return markdown_table(header, rows)


def models_table(names: list[str], dirs: dict[str, Path]) -> str:
    rows = []
    for name in names:
        r = models.recipe(name)
        m = (models.read_record(dirs[name]) or {}).get("measured", {})
        by = ", ".join(f"{d}: {v:.2f}" for d, v in m.get("by_digits", {}).items())
        rows.append([name, r.description, f"{r.arch} h{r.hidden} L{r.layers}, pattern {r.pattern}",
                     f"{fmt_share(m.get('accuracy'), pct=True)} ({by})"])
    return markdown_table(["model", "recipe", "architecture", "accuracy on held-out 1-4 digit sums (by digits)"],
                          rows, align=["l", "l", "l", "r"])


def signature_table(c: Contrast, outcomes: dict[str, dict]) -> str:
    """The paper's success signature per arm: first steps -> last steps of each diagnostic."""
    keys = [("overlap_ratio", "overlap ratio"), ("overlap_mass_student", "overlap mass (student)"),
            ("overlap_advantage", "overlap-token advantage"), ("entropy_gap", "entropy gap")]
    rows = [[arm.label] + [f"{shown(outcomes[arm.label]['initial'].get(k))} -> "
                           f"{shown(outcomes[arm.label]['final'].get(k))}" for k, _ in keys]
            for arm in c.arms if not outcomes[arm.label]["error"]]
    return markdown_table(["arm"] + [label for _, label in keys], rows)


def write_report(out: str | Path) -> Path:
    """``report.md`` and one PNG per contrast from ``<out>/numbers.json`` and the arms' run folders."""
    from lyceum.lab.reproducible import describe_pins

    out = Path(out)
    data, outcomes, per_seed = load_outcomes(out)
    first = per_seed[0]
    cfg, quick, n_eval = first["config"], first["quick"], first["eval_prompts"]
    seeds = data.get("seeds", [cfg["seed"]])
    sections, verdicts = [], []
    for c in [c for c in contrasts() if c.name in data["contrasts"]]:
        by_label = {a.label: {**outcomes[a.key], "label": a.label} for a in c.arms}
        verdict, why = c.judge(by_label, n_eval) if not quick else ("n/a", "quick run")
        verdicts.append([c.title, c.claim, why, f"**{verdict}**"])
        plot = plot_contrast(c, by_label, out / f"{c.name}.png", seeds=len(seeds))
        sections += [f"## {c.title}", "", f"*Paper:* {c.claim}", "", arm_table(c, by_label), "",
                     f"*Measured:* {why}. **{verdict.capitalize()}** with the paper.", "",
                     ("Diagnostics, first 5 steps -> last 5 steps (the paper's success signature: overlap rising, "
                     "overlap-token advantage towards 0, entropy gap shrinking):"), "", signature_table(c, by_label), "",
                     f"![{c.name}]({plot.name})", ""]
    dirs = {n: Path(p) for n, p in first["models"].items()}
    several = len(seeds) > 1
    intro = [
        "# The OPD paper's phenomena at lab scale", "",
        (f"Tiny character-level models doing multi-digit addition with a scratchpad (lyceum.lab). The student "
         f"was trained on 1-3 digit sums and glanced at 4-digit ones; every arm distils it on-policy on 4-digit sums "
         f"with the demo's recipe ({cfg['steps']} steps x {cfg['prompts_per_step']} prompts x {cfg['n']} rollouts, "
         f"{cfg['kind']} on the student's top-{cfg['k']}, lr {cfg['lr']}), changing one thing per arm, "
         + (f"with seeds {', '.join(map(str, seeds))} (each seed also draws its own training and held-out sums); "
            f"numbers are the mean ± the standard deviation over seeds. " if several else f"seed {seeds[0]}. ")
         + f"Accuracy is greedy on {n_eval} held-out 4-digit sums; overlap/entropy are token means at "
         f"student-visited states (top-{cfg['diagnostics_k']}), averaged over the first and last 5 steps. A "
         f"difference counts when it exceeds {Z:g} standard errors: "
         + ("the spread over seeds, never below the sampling error of the held-out sums. " if several else
            f"with one seed, the sampling error of {n_eval} held-out sums (about {100 * accuracy_sd(0.5, n_eval):.1f} "
            "points at 50%). ")
         + f"{describe_pins(first.get('pins', {}))} Wall time {data.get('seconds', first['seconds']):.0f} s."
         + (" **Quick run: a few steps per arm, the numbers mean nothing.**" if quick else "")), "",
        "## Models", "", models_table(list(dirs), dirs), "",
        "## Summary", "", markdown_table(["contrast", "paper", "measured", "verdict"], verdicts, align=["l"] * 4), "",
    ]
    if several:
        intro += ["Each seed's own report: " + ", ".join(f"[seed {s}]({data['runs'][str(s)]}/report.md)"
                                                          for s in seeds) + ".", ""]
    if data.get("extra_sections"):
        intro += [(f"The recovery-recipe and curriculum contrasts (lyceum.lab.recipe_contrasts) follow the four "
                   f"above, each with its own reading (seed {seeds[0]} only)."), ""]
    report = out / "report.md"
    report.write_text("\n".join(intro + sections + data.get("extra_sections", [])))
    return report


def plot_contrast(c: Contrast, outcomes: dict[str, dict], path: Path, *, seeds: int = 1) -> Path:
    """Held-out accuracy over steps (teachers dashed) and one diagnostic over steps, one line per arm; with
    several seeds the line is the mean and the band the range over seeds."""
    from lyceum.tables import line_figure, mean_band

    runs_of = {arm.label: values_of_runs(outcomes[arm.label]["run"]) for arm in c.arms}
    metric, label = c.plot_metric
    event = "eval" if metric == "gap_recovery" else "train"
    accuracy, diagnostic, teachers = [], [], []
    for arm in c.arms:
        rows = [_metrics(r) for r in runs_of[arm.label]]
        accuracy.append((arm.label, *mean_band(rows, "accuracy", "eval")))
        diagnostic.append((arm.label, *mean_band(rows, metric, event)))
        t = mean(outcomes[arm.label].get("teacher_accuracy"))
        if c.name in ("patterns", "capability") and not math.isnan(t):
            teachers.append((arm.label, t))  # dashed, in the colour of its arm
    suffix = f"; lines: mean over {seeds} seeds, bands: their range" if seeds > 1 else ""
    return line_figure(path, c.title, [
        {"title": "held-out accuracy (greedy)" + ("; teachers dashed" if teachers else ""), "ylabel": "accuracy",
         "lines": accuracy, "hlines": teachers, "ylim": (0, 1.02), "marker": "o"},
        {"title": label, "ylabel": label.split(" (")[0], "lines": diagnostic,
         "smooth": 1 if event == "eval" else 5, "marker": "o" if event == "eval" else None},
    ], note=suffix)


def values_of_runs(run: Any) -> list[str]:
    return run if isinstance(run, list) else [run]
