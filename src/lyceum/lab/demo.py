"""`lyceum distill demo`: the main job. On-policy distillation you can watch work on a laptop CPU.

The demo belongs to the lab (its task, its models, its recipe); the `distill` CLI only dispatches here.

The lab (``lyceum.lab.models``) provides a tiny student that writes multi-digit addition with a right-to-left
scratchpad but has barely seen the harder sums, and a teacher of the same family and thinking pattern that
learned them (new capability, compatible pattern: the case where the paper finds OPD works). The student
answers harder sums at temperature 1, the teacher scores every token of those answers, and the student
follows the per-token reverse KL on its own top-k support (the paper's recipe). Before, during and after,
the student is graded greedily on held-out sums by the lab's verifier.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.train.config import OPDConfig

# The demo's recipe, also the base of every arm of the lab's contrasts. Tiny models and a 2-core CPU: a large
# learning rate, short responses, a small top-k (a character vocabulary has only a handful of plausible next
# tokens at any step).
DEMO_CONFIG = {
    "steps": 200, "prompts_per_step": 16, "n": 4, "temperature": 1.0,
    "support": "student_topk", "k": 8, "kind": "reverse_kl", "mode": "direct",
    "lr": 1e-3, "warmup_steps": 5, "lr_schedule": "cosine", "max_grad_norm": 1.0, "micro_batch_size": 64,
    "diagnostics_k": 4, "eval_every": 25, "checkpoint_every": 0, "verifier": "lab", "device": "cpu", "dtype": "fp32",
}


@dataclass
class DemoSetup:
    """What the demo distils: two model folders, training prompts, held-out prompts, a response budget."""

    student: Path
    teacher: Path
    train_rows: list[dict]
    eval_rows: list[dict]
    max_new_tokens: int
    opd_overrides: dict[str, Any] = field(default_factory=dict)


def demo_rows(n_train: int = 1000, n_eval: int = 100, *, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Training and held-out prompt rows on the lab's evaluation sums, no problem in both."""
    from lyceum.lab import models, tasks

    evals = tasks.examples(tasks.make_problems(n_eval, digits=models.EVAL_DIGITS, seed=50_000 + seed))
    held = {r["prompt"] for r in evals}
    pool = tasks.examples(tasks.make_problems(n_train + n_eval, digits=models.EVAL_DIGITS, seed=60_000 + seed))
    return [r for r in pool if r["prompt"] not in held][:n_train], evals


def models_folder(path: str | Path | None) -> Path | None:
    """A ``--models`` folder the user named: it must exist (the lab never builds into a mistyped path)."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"--models {path} is not a folder; build the lab's models there first with "
                        f"`lyceum lab make-models --out {path}`, or leave --models out to use the shipped ones")
    return path


def demo_setup(models_dir: Path | None = None, *, log: Callable[[str], None] = print) -> DemoSetup:
    """The lab's student and compatible teacher: shipped or cached (built there when absent; never downloaded),
    or from ``models_dir``, which must already hold them (a rebuild there is `lyceum lab make-models`)."""
    from lyceum.lab import models

    models_dir = models_folder(models_dir)
    build = models_dir is None
    student = models.lab_model_dir("student", root=models_dir, build=build, log=log)
    teacher = models.lab_model_dir("teacher", root=models_dir, build=build, log=log)
    train, evals = demo_rows()
    return DemoSetup(student, teacher, train, evals, models.max_new_tokens(models.EVAL_DIGITS))


def demo_config(setup: Any, *, steps: int | None = None, seed: int = 0) -> OPDConfig:
    values = {**DEMO_CONFIG, "seed": seed, "max_new_tokens": setup.max_new_tokens}
    values.update(getattr(setup, "opd_overrides", {}) or {})
    if steps is not None:
        values["steps"] = steps
    return OPDConfig(**values)


def _describe(setup: Any) -> str:
    """One line per model from the lab's recipe record beside its weights (empty for other models)."""
    from lyceum.lab.models import read_record

    lines = []
    for name in ("student", "teacher"):
        record = read_record(Path(getattr(setup, name))) or {}
        description = record.get("recipe", {}).get("description")
        if description:
            lines.append(f"- {name}: {description}")
    return "\n".join(lines)


def run_demo(out: str | Path = "runs/demo", *, steps: int | None = None, seed: int = 0, models: str | None = None,
             setup: Any = None, console=None):
    """Build or load the lab's demo models, distil, print the table; returns the ``TrainResult``."""
    from rich.console import Console
    from rich.table import Table

    from lyceum.lab.reproducible import describe_kernels, pin_cpu_kernels
    from lyceum.train.distill import distill
    from lyceum.train.report import plot_run, reading, summary_rows, write_report

    # One thread and pinned kernels: the same numbers on every x86-64 machine (lab/reproducible.py). The models
    # are tiny, so threads only add synchronisation anyway: on this 2-core CPU under load, 10 demo steps took
    # 8.7 s with one thread and 255 s with two.
    kernels = describe_kernels(pin_cpu_kernels())
    console = console or Console()
    started = time.time()
    if setup is None:
        console.print("[bold]lyceum distill demo[/bold]: preparing the lab's tiny student and teacher ...")
        setup = demo_setup(models, log=console.print)
    cfg = demo_config(setup, steps=steps, seed=seed)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    console.print(
        f"student: {setup.student}\nteacher: {setup.teacher}\n"
        f"{len(setup.train_rows)} training prompts, {len(setup.eval_rows)} held-out prompts; "
        f"{cfg.steps} steps x {cfg.prompts_per_step} prompts x {cfg.n} rollouts, "
        f"loss: {cfg.kind} on the student's top-{cfg.k}, seed {cfg.seed}\n{kernels}")
    result = distill(setup.student, setup.teacher, setup.train_rows, out, cfg, eval_rows=setup.eval_rows,
                     resume=False, desc="distilling")
    plots = plot_run(result.run)
    intro = (f"A tiny student distilled on-policy from a compatible, stronger teacher on the lab's addition task "
             f"({cfg.steps} steps, {cfg.prompts_per_step} prompts x {cfg.n} rollouts per step, {cfg.kind} on the "
             f"student's top-{cfg.k}, lr {cfg.lr}, seed {cfg.seed}). Wall time {time.time() - started:.0f} s. "
             f"{kernels}.")
    about = _describe(setup)
    if about:
        intro += "\n\n" + about
    report = write_report(result.run, result, title="lyceum distill demo", intro=intro, plots=plots)

    table = Table(title="on-policy distillation: before and after")
    for col in ("", "before / initial", "after / final"):
        table.add_column(col, justify="right" if col else "left")
    for row in summary_rows(result):
        table.add_row(*row)
    console.print(table)
    console.print(reading(result))
    console.print(f"run folder: {result.run.path}  (report: {report.name}, plots: "
                  f"{', '.join(p.name for p in plots)}; {time.time() - started:.0f} s)")
    return result
