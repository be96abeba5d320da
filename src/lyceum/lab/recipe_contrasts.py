"""The recipe contrasts: three experiments on the lab's tiny models, each a report section with numbers and plots.

They run in the lab's one harness (``lyceum lab reproduce``, ``lab/contrasts.py``) after the paper's four.

    from lyceum.lab.recipe_contrasts import CONTRASTS
    result = CONTRASTS["cold_start"](Path("runs/lab/cold_start"), quick=False)
    print(result.markdown); result.numbers; result.plots

- ``cold_start``: OPD from an incompatible-pattern teacher (pattern L; the student thinks in pattern R), plain
  vs after an off-policy cold start. Initial overlap and final accuracy.
- ``prompt_template``: OPD from a teacher that only knows the "add" prompt template, on prompts in the
  student's template vs re-wrapped in the teacher's.
- ``curriculum``: RL (GRPO, lab verifier) on sums mostly too hard for the student, curriculum vs uniform
  sampling at the same rollout budget, over several seeds (``lab/curriculum_contrast.py``).

Each contrast runs both arms with the same settings and seed and reports what it measured, whether or not it
agrees with the paper. ``quick=True`` shrinks every budget so a test can run the whole pipeline in seconds; its
numbers mean nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lyceum.lab.curriculum_contrast import curriculum_contrast
from lyceum.lab.demo import DEMO_CONFIG
from lyceum.lab.sections import ContrastResult
from lyceum.lab.sections import metric_series as _series
from lyceum.lab.sections import plot_lines as _plot
from lyceum.tables import fmt_share, markdown_table

# OPD settings shared by the distillation contrasts: the demo's recipe; each contrast sets its own steps
OPD_SETTINGS = {k: v for k, v in DEMO_CONFIG.items() if k not in ("steps", "eval_every")}
QUICK = {"prompts_per_step": 2, "n": 2, "micro_batch_size": 8}


def _pattern_share(model_dir: Path, rows: list[dict], pattern: str) -> float:
    """Share of greedy answers on ``rows`` written in thinking pattern ``pattern``."""
    from lyceum.lab.models import accuracy
    from lyceum.models.local import load_local

    lm = load_local(model_dir, device="cpu", dtype="fp32")
    return accuracy(lm, rows)["patterns"].get(pattern, 0.0)


def _accuracy(model_dir: Path, rows: list[dict]) -> float:
    from lyceum.lab.models import accuracy
    from lyceum.models.local import load_local

    return accuracy(load_local(model_dir, device="cpu", dtype="fp32"), rows)["accuracy"]


def _prompts(n: int, digits: tuple[int, int], seed: int, template: str = "qa") -> list[dict]:
    from lyceum.lab import tasks

    return tasks.examples(tasks.make_problems(n, digits=digits, seed=seed), template=template)


# ---------------------------------------------------------------------------------------------------------
# the template contrast's two models: the lab's student and teacher recipes with their SFT data spread over
# both prompt templates. (Measured on the way: at this size a template is a separate skill -- 60 SFT steps on
# 'add' sums took the lab student's 4-digit 'qa' accuracy from 34% to 0% -- so a student must have seen a
# template to answer in it, and a teacher trained in one template only is useless in the other.)


@dataclass(frozen=True)
class MixedRecipe:
    """A lab ``Recipe`` whose SFT rows are split over prompt templates by ``mix`` (template -> share)."""

    recipe: Any  # lyceum.lab.models.Recipe
    mix: tuple[tuple[str, float], ...]

    @property
    def name(self) -> str:
        return self.recipe.name

    def fingerprint(self) -> str:
        from lyceum.lab.models import recipe_hash

        return f"{recipe_hash(self.recipe)}-" + "-".join(f"{t}{w:g}" for t, w in self.mix)

    def rows(self) -> list[dict]:
        from lyceum.lab import tasks

        r = self.recipe
        seed = r.seed if r.data_seed is None else r.data_seed
        problems = tasks.make_problems(r.rows, digits=r.digits, operands=r.operands, seed=10_000 + seed)
        out, at = [], 0
        for i, (template, share) in enumerate(self.mix):
            n = len(problems) - at if i == len(self.mix) - 1 else round(share * len(problems))
            out += tasks.examples(problems[at:at + n], pattern=r.pattern, template=template)
            at += n
        return out


def extra_recipes() -> dict[str, MixedRecipe]:
    """``student_qa``: the lab student's recipe (base + a brief look at 1-4 digit sums) with 30% of that look in
    the 'add' template: its own template is 'qa', and it can read 'add'. ``teacher_add``: the lab teacher's
    recipe (base + longer training on 1-4 digit sums) with 90% of it in the 'add' template: its own template."""
    from lyceum.lab.models import recipe

    student, teacher = recipe("student"), recipe("teacher")
    return {
        "student_qa": MixedRecipe(dataclasses.replace(
            student, name="student_qa", description="the lab student's recipe with 70% 'qa' / 30% 'add' prompts"),
            (("qa", 0.7), ("add", 0.3))),
        "teacher_add": MixedRecipe(dataclasses.replace(
            teacher, name="teacher_add", description="the lab teacher's recipe with 90% 'add' / 10% 'qa' prompts"),
            (("add", 0.9), ("qa", 0.1))),
    }


def extra_model_dir(name: str, *, root: Path | None = None, quick: bool = False,
                    log: Callable[[str], None] = print) -> Path:
    """The folder of an extra model: built once like the lab's own (its base model, its SFT trainer, one
    thread), then cached next to the lab's models; a changed recipe is rebuilt. ``quick``: a 3-step stand-in
    (``<name>_quick``) for plumbing checks."""
    import json

    import torch

    from lyceum.lab.models import cache_root, lab_model_dir, measure
    from lyceum.models.local import load_local
    from lyceum.train.sft import SFTConfig, sft

    m = extra_recipes()[name]
    if quick:
        m = MixedRecipe(dataclasses.replace(m.recipe, name=f"{name}_quick", steps=3, warmup_steps=1), m.mix)
    r = m.recipe
    path = (Path(root) if root else cache_root()) / r.name
    record_file = path / "contrast_recipe.json"
    if record_file.exists() and json.loads(record_file.read_text()).get("fingerprint") == m.fingerprint():
        return path
    log(f"building extra lab model '{name}': {r.description} ({r.steps} SFT steps from '{r.init_from}')")
    lm = load_local(lab_model_dir(r.init_from, root=root, log=log), device="cpu", dtype="fp32")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(r.seed)
        sft(lm, m.rows(), SFTConfig(steps=r.steps, batch_size=r.batch_size, lr=r.lr, warmup_steps=r.warmup_steps,
                                    seed=r.seed, log_every=max(1, r.steps // 4)), desc=f"sft {name}",
            on_log=lambda rec: log(f"  {name} step {rec['step']}: loss {rec['loss']:.4f}"))
    finally:
        torch.set_num_threads(threads)
    lm.save(path)
    record_file.write_text(json.dumps({"name": name, "fingerprint": m.fingerprint(), "measured": measure(lm)}))
    return path


# ---------------------------------------------------------------------------------------------------------
# 1. cold start rescues OPD from an incompatible-pattern teacher


def cold_start_contrast(out: Path, *, root: Path | None = None, seed: int = 0, quick: bool = False,
                        log: Callable[[str], None] = print) -> ContrastResult:
    from lyceum.lab.models import eval_rows, lab_model_dir, max_new_tokens
    from lyceum.train.config import OPDConfig
    from lyceum.train.distill import distill
    from lyceum.train.recipes.cold_start import ColdStartConfig, cold_start

    out = Path(out)
    student = lab_model_dir("student", root=root, log=log)
    teacher = lab_model_dir("teacher_l", root=root, log=log)
    digits = (1, 4)
    # the pattern-L scratchpad is hard for this student: the cold start needs a few thousand distinct teacher
    # answers and ~900 SFT steps to execute it at all (measured: 150 steps on 192 prompts x 4 gave pattern L
    # with 0% accuracy; 900 steps on ~3000 answers gave ~33%)
    steps, n_train, n_eval, sft_steps, sample_prompts = (2, 8, 8, 3, 4) if quick else (60, 3000, 100, 900, 3000)
    train = _prompts(n_train, digits, seed=20_000 + seed)
    evals = eval_rows(n_eval)
    settings = {**OPD_SETTINGS, **(QUICK if quick else {}), "steps": steps, "seed": seed,
                "max_new_tokens": max_new_tokens(digits), "eval_every": max(1, steps // 4)}

    log("contrast cold start: plain OPD from the pattern-L teacher")
    plain = distill(student, teacher, train, out / "plain_opd", OPDConfig(**settings), eval_rows=evals,
                    resume=False, desc="plain OPD")
    log("contrast cold start: cold start (teacher samples -> SFT -> OPD) from the same teacher")
    cold = cold_start(student, teacher, train, out / "cold_start",
                      ColdStartConfig(**settings, samples_per_prompt=1, sample_temperature=0.7,
                                      sample_prompts=sample_prompts, sft_steps=sft_steps, sft_lr=3e-3,
                                      sft_batch_size=64, sft_warmup_steps=20), eval_rows=evals, log=log)
    plain_pl = _pattern_share(plain.run.path / "checkpoint" / "model", evals, "L")
    cold_pl = _pattern_share(cold.opd.run.path / "checkpoint" / "model", evals, "L")

    n = {"plain_overlap_initial": plain.initial.get("overlap_ratio"),
         "plain_overlap_final": plain.final.get("overlap_ratio"),
         "plain_accuracy_before": plain.accuracy_before, "plain_accuracy_after": plain.accuracy_after,
         "plain_pattern_L_share": plain_pl,
         "cold_kept_ratio": cold.kept_ratio, "cold_sft_loss_before": cold.sft_loss_before,
         "cold_sft_loss_after": cold.sft_loss_after,
         "cold_overlap_initial": cold.opd.initial.get("overlap_ratio"),
         "cold_overlap_final": cold.opd.final.get("overlap_ratio"),
         "cold_accuracy_after_sft": cold.opd.accuracy_before, "cold_accuracy_after": cold.opd.accuracy_after,
         "cold_pattern_L_share": cold_pl, "teacher_accuracy": plain.reference_accuracy}
    plots = [
        _plot(out / "cold_start_overlap.png", "OPD from a pattern-L teacher: top-k overlap", "overlap ratio",
              [("plain OPD", *_series(plain.run.path, "overlap_ratio")),
               ("cold start, then OPD", *_series(cold.opd.run.path, "overlap_ratio"))], ylim=(0, 1.02)),
        _plot(out / "cold_start_accuracy.png", "Held-out accuracy during OPD", "accuracy",
              [("plain OPD", *_series(plain.run.path, "accuracy", "eval")),
               ("cold start, then OPD", *_series(cold.opd.run.path, "accuracy", "eval"))], marker="o",
              ylim=(0, 1.02)),
    ]
    rows = [["initial top-k overlap (first steps)", fmt_share(n["plain_overlap_initial"]), fmt_share(n["cold_overlap_initial"])],
            ["final top-k overlap (last steps)", fmt_share(n["plain_overlap_final"]), fmt_share(n["cold_overlap_final"])],
            ["accuracy before OPD", fmt_share(n["plain_accuracy_before"], pct=True), fmt_share(n["cold_accuracy_after_sft"], pct=True)],
            ["accuracy after OPD", fmt_share(n["plain_accuracy_after"], pct=True), fmt_share(n["cold_accuracy_after"], pct=True)],
            ["answers in pattern L after OPD", fmt_share(plain_pl, pct=True), fmt_share(cold_pl, pct=True)]]
    overlap = _compare(n["cold_overlap_initial"], n["plain_overlap_initial"], OVERLAP_TIE)
    final = _compare(n["cold_accuracy_after"], n["plain_accuracy_after"], ACCURACY_TIE)
    md = "\n".join([
        (f"Student: {_describe('student')}. Teacher: {_describe('teacher_l')}; greedy accuracy "
         f"{fmt_share(n['teacher_accuracy'], pct=True)} on the held-out sums ({n_eval} of {_eval_digits()} digits). Both "
         f"arms: {steps} OPD steps x {settings['prompts_per_step']} prompts x {settings['n']} rollouts, "
         f"{settings['kind']} on the student's top-{settings['k']}, lr {settings['lr']}. Cold start: the teacher "
         f"answered {sample_prompts} prompts once (temperature 0.7), the verifier kept {cold.kept}/{cold.total} "
         f"({fmt_share(cold.kept_ratio, pct=True)}); {sft_steps} SFT steps took the student's loss on them from "
         f"{cold.sft_loss_before:.3f} to {cold.sft_loss_after:.3f}."), "",
        markdown_table(["", "plain OPD", "cold start + OPD"], rows), "",
        (f"Reading: with the cold start the initial top-k overlap was {overlap} ({fmt_share(n['cold_overlap_initial'])} "
         f"vs {fmt_share(n['plain_overlap_initial'])}) and the final accuracy {final} "
         f"({fmt_share(n['cold_accuracy_after'], pct=True)} vs {fmt_share(n['plain_accuracy_after'], pct=True)}). Plain OPD took the "
         f"student from {fmt_share(n['plain_accuracy_before'], pct=True)} to {fmt_share(n['plain_accuracy_after'], pct=True)}; the SFT "
         f"stage alone took it to {fmt_share(n['cold_accuracy_after_sft'], pct=True)} and OPD after it to "
         f"{fmt_share(n['cold_accuracy_after'], pct=True)}. The paper's claim (a cold start gives a higher initial overlap "
         f"and a higher ceiling): {_agreement(overlap, final)}.")])
    return ContrastResult("cold_start", "Cold start vs plain OPD from an incompatible-pattern teacher", md,
                          {k: v for k, v in n.items() if v is not None}, plots)


def _describe(name: str) -> str:
    from lyceum.lab.models import recipe

    return recipe(name).description


def _eval_digits() -> str:
    from lyceum.lab.models import EVAL_DIGITS

    lo, hi = EVAL_DIGITS
    return str(lo) if lo == hi else f"{lo}-{hi}"


# differences below these count as ties: 100 held-out prompts give accuracy a standard error of ~4-5 points
ACCURACY_TIE = 0.05
OVERLAP_TIE = 0.01


def _compare(a: float | None, b: float | None, tie: float) -> str:
    """'higher', 'lower' or 'about the same' for a against b (None when either is missing)."""
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return "not measured"
    if abs(a - b) < tie:
        return "about the same"
    return "higher" if a > b else "lower"


def _agreement(*verdicts: str) -> str:
    """All claimed directions measured: agrees; none: does not agree; some: agrees in part."""
    hits = sum(v == "higher" for v in verdicts)
    return "agrees" if hits == len(verdicts) else "does not agree" if hits == 0 else "agrees in part"


# ---------------------------------------------------------------------------------------------------------
# 2. prompts in the teacher's template vs the student's


def prompt_template_contrast(out: Path, *, root: Path | None = None, seed: int = 0, quick: bool = False,
                             log: Callable[[str], None] = print) -> ContrastResult:
    from lyceum.lab.models import eval_rows, max_new_tokens
    from lyceum.train.config import OPDConfig
    from lyceum.train.distill import distill
    from lyceum.train.recipes.select_prompts import align_template

    out = Path(out)
    student = extra_model_dir("student_qa", root=root, quick=quick, log=log)
    teacher = extra_model_dir("teacher_add", root=root, quick=quick, log=log)
    digits = (1, 4)
    steps, n_train, n_eval = (2, 8, 8) if quick else (60, 400, 100)
    own = _prompts(n_train, digits, seed=30_000 + seed, template="qa")
    aligned = align_template(own, "lab:add")
    eval_qa = eval_rows(n_eval, template="qa")
    eval_add = eval_rows(n_eval, template="add")
    settings = {**OPD_SETTINGS, **(QUICK if quick else {}), "steps": steps, "seed": seed,
                "max_new_tokens": max_new_tokens(digits), "eval_every": max(1, steps // 4)}

    arms = {}
    for name, rows in (("student_template", own), ("teacher_template", aligned)):
        log(f"contrast prompt template: OPD on prompts in the {name.replace('_', ' ')}")
        arms[name] = distill(student, teacher, rows, out / name, OPDConfig(**settings), eval_rows=eval_qa,
                             resume=False, desc=f"OPD, {name.replace('_', ' ')}")
    n: dict[str, float] = {}
    for name, res in arms.items():
        model = res.run.path / "checkpoint" / "model"
        n[f"{name}_overlap_initial"] = res.initial.get("overlap_ratio")
        n[f"{name}_overlap_final"] = res.final.get("overlap_ratio")
        n[f"{name}_accuracy_qa_after"] = res.accuracy_after
        n[f"{name}_accuracy_add_after"] = _accuracy(model, eval_add)
    n["student_accuracy_qa_before"] = arms["student_template"].accuracy_before
    n["student_accuracy_add_before"] = _accuracy(student, eval_add)
    n["teacher_accuracy_add"] = _accuracy(teacher, eval_add)
    n["teacher_accuracy_qa"] = _accuracy(teacher, eval_qa)
    plots = [
        _plot(out / "template_overlap.png", "OPD prompts: student's vs teacher's template", "overlap ratio",
              [("student template (qa)", *_series(arms["student_template"].run.path, "overlap_ratio")),
               ("teacher template (add)", *_series(arms["teacher_template"].run.path, "overlap_ratio"))],
              ylim=(0, 1.02)),
        _plot(out / "template_accuracy.png", "Held-out accuracy (student's template) during OPD", "accuracy",
              [("student template (qa)", *_series(arms["student_template"].run.path, "accuracy", "eval")),
               ("teacher template (add)", *_series(arms["teacher_template"].run.path, "accuracy", "eval"))],
              marker="o", ylim=(0, 1.02)),
    ]
    s, t = "student_template", "teacher_template"
    rows = [["initial top-k overlap", fmt_share(n[f"{s}_overlap_initial"]), fmt_share(n[f"{t}_overlap_initial"])],
            ["final top-k overlap", fmt_share(n[f"{s}_overlap_final"]), fmt_share(n[f"{t}_overlap_final"])],
            ["accuracy after, 'qa' prompts (student's)", fmt_share(n[f"{s}_accuracy_qa_after"], pct=True),
             fmt_share(n[f"{t}_accuracy_qa_after"], pct=True)],
            ["accuracy after, 'add' prompts (teacher's)", fmt_share(n[f"{s}_accuracy_add_after"], pct=True),
             fmt_share(n[f"{t}_accuracy_add_after"], pct=True)]]
    overlap = _compare(n[f"{t}_overlap_initial"], n[f"{s}_overlap_initial"], OVERLAP_TIE)
    acc_own = _compare(n[f"{t}_accuracy_qa_after"], n[f"{s}_accuracy_qa_after"], ACCURACY_TIE)
    acc_teacher = _compare(n[f"{t}_accuracy_add_after"], n[f"{s}_accuracy_add_after"], ACCURACY_TIE)
    md = "\n".join([
        (f"Student: {extra_recipes()['student_qa'].recipe.description} (`Q: 12+34\\nA: ` / `add 12 and "
        f"34.\\n`); before OPD it "
        f"scores {fmt_share(n['student_accuracy_qa_before'], pct=True)} on held-out {_eval_digits()}-digit 'qa' prompts and "
        f"{fmt_share(n['student_accuracy_add_before'], pct=True)} on the same sums in the 'add' template. Teacher: "
        f"{extra_recipes()['teacher_add'].recipe.description}: "
        f"{fmt_share(n['teacher_accuracy_add'], pct=True)} on 'add', {fmt_share(n['teacher_accuracy_qa'], pct=True)} on 'qa'. "
        f"Same {len(own)} sums in both arms, re-wrapped by `align_template(rows, 'lab:add')` for the teacher-template "
        f"arm; {steps} OPD steps each, settings as in the cold-start contrast."), "",
        markdown_table(["", "prompts in the student's template", "prompts in the teacher's template"], rows), "",
        (f"Reading: compared with prompts in the student's template, prompts in the teacher's template gave an "
         f"initial overlap that was {overlap}, a final 'qa' accuracy that was {acc_own} and a final 'add' accuracy "
         f"that was {acc_teacher}. The paper's recipe (the teacher's own template gives better distillation): "
         f"{_agreement(overlap, 'higher' if 'higher' in (acc_own, acc_teacher) else acc_own)}.")])
    return ContrastResult("prompt_template", "Teacher-template vs student-template prompts for OPD", md,
                          {k: v for k, v in n.items() if v is not None}, plots)


# ---------------------------------------------------------------------------------------------------------
# 3. curriculum vs uniform sampling for RL: its own module (hard sums, several seeds), lab/curriculum_contrast.py


CONTRASTS: dict[str, Callable[..., ContrastResult]] = {
    "cold_start": cold_start_contrast,
    "prompt_template": prompt_template_contrast,
    "curriculum": curriculum_contrast,
}


def run_contrasts(out: Path, *, names: list[str] | None = None, root: Path | None = None, seed: int = 0,
                  quick: bool = False, log: Callable[[str], None] = print) -> tuple[Path, list[ContrastResult]]:
    """Run the named contrasts (default: all three) under ``out/<name>`` and write ``out/recipes_report.md``
    with one section per contrast (plots linked relative to ``out``). Returns the report path and the results."""
    out = Path(out)
    unknown = sorted(set(names or []) - set(CONTRASTS))
    if unknown:
        from lyceum.errors import UserError

        raise UserError(f"unknown contrast(s) {', '.join(unknown)}; choose from {', '.join(CONTRASTS)}")
    results = [CONTRASTS[name](out / name, root=root, seed=seed, quick=quick, log=log)
               for name in (names or list(CONTRASTS))]
    parts = ["# Recovery recipes and curriculum RL at lab scale (issue 6)", ""]
    if quick:
        parts += ["*Quick mode: tiny budgets that only exercise the pipeline; the numbers mean nothing.*", ""]
    for r in results:
        parts += [f"## {r.title}", "", r.markdown, ""]
        parts += [f"![{p.stem}]({p.relative_to(out)})" for p in r.plots] + [""]
    report = out / "recipes_report.md"
    report.write_text("\n".join(parts))
    return report, results
