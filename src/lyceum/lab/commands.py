"""`lyceum lab ...`: print or write task rows, (re)build the tiny models, reproduce the paper's contrasts.

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
    p.add_argument("--pattern", choices=["R", "L"], default="R", help="thinking pattern of the responses")
    p.add_argument("--template", choices=["qa", "add"], default="qa", help="prompt template (default qa)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write JSONL rows here instead of printing")
    p.set_defaults(func=_tasks)

    p = verbs.add_parser("models", help="list the lab's models, their recipes, and where they are",
                         description="List the lab's tiny models (recipes, measured accuracy, folder).")
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
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_reproduce)


def _tasks(args) -> int:
    import json

    from lyceum.lab import tasks

    if args.n < 1:
        raise UserError(f"-n must be at least 1, got {args.n}")
    rows = tasks.examples(tasks.make_problems(args.n, digits=args.digits, operands=args.operands, seed=args.seed),
                          pattern=args.pattern, template=args.template)
    if args.out:
        from lyceum.runs import write_jsonl

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(args.out, rows)
        print(f"wrote {len(rows)} rows to {args.out}")
        return 0
    for r in rows:
        print(json.dumps(r["prompt"] + r["response"])[1:-1])
    return 0


def _models(args) -> int:
    from lyceum.lab import models

    for name, r in models.RECIPES.items():
        bases = [args.models] if args.models else [models.SHIPPED_DIR, models.cache_root()]
        where = next((b / name for b in bases if models.is_current(b / name, name)), None)
        rec = models.read_record(where) if where else None
        acc = rec["measured"].get("accuracy") if rec and rec.get("measured") else None
        print(f"{name:12s} {r.arch} h{r.hidden} L{r.layers}  pattern {r.pattern}  digits {r.digits[0]}-{r.digits[1]}"
              f"  {r.steps} steps  acc on 1-4 digit sums {'-' if acc is None else f'{acc:.2f}'}  "
              f"{where or 'not built'}\n{'':12s} {r.description}")
    return 0


def _make_models(args) -> int:
    from lyceum.lab.make_models import make_models

    make_models(args.out, only=args.only, force=args.force)
    return 0


def _reproduce(args) -> int:
    from lyceum.lab.reproduce import reproduce

    report = reproduce(args.out, models_dir=args.models, quick=args.quick, only=args.only, steps=args.steps,
                       seed=args.seed)
    print(f"report: {report}", file=sys.stdout)
    return 0
