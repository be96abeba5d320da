"""`lyceum lab ...`: print or write task rows, (re)build the tiny models, reproduce the paper's contrasts; and
`lyceum distill demo`, which is the lab's (``register_demo``, added to the distill verbs by the CLI).

Nothing heavy is imported here; each handler imports what it needs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lyceum.errors import UserError


def _range(text: str) -> tuple[int, int]:
    """'3' -> (3, 3); '1-4' -> (1, 4)."""
    try:
        lo, _, hi = text.partition("-")
        out = (int(lo), int(hi or lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or a range like 1-4, got {text!r}") from None
    if out[0] < 1 or out[1] < out[0]:
        raise argparse.ArgumentTypeError(f"expected a positive range like 1-4, got {text!r}")
    return out


def register(verbs) -> None:
    p = verbs.add_parser("tasks", help="print example problems, or write a prompt file (JSONL)",
                         description="Generate addition problems with a scratchpad in a thinking pattern. Prints "
                                     "a few examples, or writes prompt/response/answer rows to --out.")
    p.add_argument("-n", type=int, default=5, help="how many problems (default 5)")
    p.add_argument("--digits", type=_range, default=(1, 3), help="digits per operand, e.g. 3 or 1-4 (default 1-3)")
    p.add_argument("--operands", type=_range, default=(2, 2), help="numbers per sum, e.g. 2 or 2-4 (chained sums)")
    p.add_argument("--pattern", choices=["R", "L"],
                   help="thinking pattern of the responses (default: printed in both, written in R)")
    p.add_argument("--template", choices=["qa", "add"], default="qa", help="prompt template (default qa)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write JSONL rows here instead of printing")
    p.set_defaults(func=_tasks)

    p = verbs.add_parser("models", help="list the lab's models, their recipes, and where they are",
                         description="List the lab's tiny models: recipe, greedy accuracy on held-out 1-4 digit "
                                     "sums (the set every model is measured on; the demo and `lab reproduce` "
                                     "grade on 4-digit sums only, where the student is much weaker), folder.")
    p.add_argument("--models", type=Path, help="a folder made by make-models (default: shipped, then cache)")
    p.set_defaults(func=_models)

    p = verbs.add_parser("make-models", help="(re)build the lab's tiny students and teachers deterministically",
                         description="SFT every lab model from its recipe (seeded, CPU, float32) and save it with "
                                     "its tokenizer, recipe and measured held-out accuracy. Same code, same "
                                     "models: this is how the shipped checkpoints were made.")
    p.add_argument("--out", type=Path, help="folder for the models (default: the user cache, see `lab models`)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="build only these models")
    p.add_argument("--force", action="store_true", help="rebuild even models that are already current")
    p.set_defaults(func=_make_models)

    p = verbs.add_parser("reproduce", help="run the paper's contrasts on the lab models; markdown report + plots",
                         description="Run the on-policy distillation contrasts of the OPD paper at lab scale "
                                     "and write report.md with measured numbers and PNG plots.")
    p.add_argument("--out", type=Path, default=Path("runs/lab-reproduce"), help="report folder")
    p.add_argument("--models", type=Path, help="models folder (default: shipped, then cache; built if absent)")
    p.add_argument("--quick", action="store_true", help="a few steps per arm: checks the plumbing, not the claims")
    p.add_argument("--only", nargs="+", metavar="CONTRAST", help="run only these contrasts (see report)")
    p.add_argument("--steps", type=int, help="OPD steps per arm (overrides the default)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--seeds", type=int, default=1,
                   help="run every arm with this many seeds (seed, seed+1, ...); the report gives mean and spread "
                        "and the verdicts weigh differences against the spread (default 1)")
    p.set_defaults(func=_reproduce)


def register_demo(verbs) -> None:
    """`lyceum distill demo`: the lab's student and teacher, the lab's recipe."""
    p = verbs.add_parser("demo", help="the main job: distil a tiny student on this CPU and show it improve",
                         description="Distil a tiny lab student (multi-digit addition with a scratchpad) from a "
                                     "compatible, stronger teacher, offline on a CPU (1-7 minutes on 2 busy "
                                     "cores). Shows a live progress bar and a before/after table, and writes "
                                     "metrics.jsonl, report.md and plots to the run folder. The CPU kernels are "
                                     "pinned so a seed gives the same numbers on any x86-64 machine.")
    p.add_argument("--out", default="runs/demo", help="run folder (default runs/demo; replaced if it exists)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the demo's own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default=None,
                   help="an existing folder holding the lab's student and teacher (made by `lyceum lab "
                        "make-models --out DIR`); default: the shipped ones")
    p.set_defaults(func=_demo)


def _tasks(args) -> int:
    import json

    from lyceum.lab import tasks

    if args.n < 1:
        raise UserError(f"-n must be at least 1, got {args.n}")
    problems = tasks.make_problems(args.n, digits=args.digits, operands=args.operands, seed=args.seed)
    if args.out:
        from lyceum.runs import write_jsonl

        rows = tasks.examples(problems, pattern=args.pattern or "R", template=args.template)
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            write_jsonl(args.out, rows)
        except OSError as e:
            raise UserError(f"cannot write {args.out}: {e.strerror}") from e
        print(f"wrote {len(rows)} rows to {args.out}")
        return 0
    patterns = [args.pattern] if args.pattern else list(tasks.PATTERNS)
    by_pattern = {p: tasks.examples(problems, pattern=p, template=args.template) for p in patterns}
    for i in range(len(problems)):
        for p in patterns:
            r = by_pattern[p][i]
            line = json.dumps(r["prompt"] + r["response"])[1:-1]
            # one pattern asked for: the bare row (pipe-friendly); both: say which is which
            print(line if args.pattern else f"{p}  {line}")
    return 0


def _models(args) -> int:
    from lyceum.lab import models

    for name, r in models.RECIPES.items():
        bases = [args.models] if args.models else [models.SHIPPED_DIR, models.cache_root()]
        where = next((b / name for b in bases if models.is_current(b / name, name)), None)
        rec = models.read_record(where) if where else None
        acc = rec["measured"].get("accuracy") if rec and rec.get("measured") else None
        four = rec["measured"].get("by_digits", {}).get("4") if rec and rec.get("measured") else None
        print(f"{name:12s} {r.arch} h{r.hidden} L{r.layers}  pattern {r.pattern}  trained on {r.digits[0]}-"
              f"{r.digits[1]} digits  {r.steps} steps  held-out acc: 1-4 digit sums {_share(acc)}, "
              f"4-digit sums {_share(four)}  {where or 'not built'}\n{'':12s} {r.description}")
    print(f"\nAccuracy: greedy, on {models.MEASURE_ROWS} held-out sums of 1-4 digits (recorded when a model is "
          "built); the 4-digit column is the demo's and `lab reproduce`'s kind of sum, on a sub-sample of them.")
    return 0


def _share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _make_models(args) -> int:
    from lyceum.lab.make_models import make_models

    make_models(args.out, only=args.only, force=args.force)
    return 0


def _reproduce(args) -> int:
    from lyceum.lab.contrasts import reproduce
    from lyceum.lab.reproducible import pin_cpu_kernels

    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {args.seeds}")
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    pins = pin_cpu_kernels()  # before the first torch operation: same numbers on any x86-64 machine
    report = reproduce(args.out, models_dir=args.models, quick=args.quick, only=args.only, steps=args.steps,
                       seeds=list(range(args.seed, args.seed + args.seeds)), pins=pins)
    print(f"report: {report}", file=sys.stdout)
    return 0


def _demo(args) -> int:
    from lyceum.lab.demo import run_demo

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    run_demo(args.out, steps=args.steps, seed=args.seed, models=args.models)
    return 0
