"""Grader agreement on realistic model answers to HiPhO golds, in a cold process, quiet or beside CPU burners.

    python benchmarks/olympiad_answers.py --data ../shared/data/hipho                 # quiet
    python benchmarks/olympiad_answers.py --data ../shared/data/hipho --burn 2        # two CPU burners beside it
    python benchmarks/olympiad_answers.py --data ../shared/data/hipho --protocol official

The answer set is generated from the golds at run time (nothing from HiPhO is stored in the repository) with a
fixed seed: for every rule-checked sub-answer, the ways models write a correct final answer (scientific notation
in each style, units in \\mathrm / \\text, \\approx, a left-hand side, \\dfrac, extra digits within the
tolerance, an uncertainty, expanded or factored forms, swapped equation sides) and subtly wrong ones (a power of
ten, 1.5x / 0.6x that do not round back to the gold, a sign, 13 for 10, a factor of 2, a squared factor, a
symbol squared, a value outside an interval, another letter). Each label is true by construction and checked
independently of the grader: numbers by arithmetic, expressions by sympy evaluation at random points.

The grading runs in a fresh process (the symbolic stack starts cold), so the number is what a user's first
`olympiad grade` gets. Prints and writes (``--out``) agreement, wrong accepts, wrong rejects, undecided and the
mean time per check.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:(?:\\times|\\cdot)\s*10\s*\^\s*\{?\s*(-?\d+)\s*\}?)?\s*$")
UNITS = ["m", "s", "kg", "J", "N", "m/s", "K", "V", "Hz", "W"]


# ---------------------------------------------------------------------------------------------------------
# numbers

def sig_round(x: float, sig: int) -> float:
    if x == 0:
        return 0.0
    return round(x, sig - 1 - math.floor(math.log10(abs(x))))


def sci(x: float, sig: int, style: str) -> str:
    mant, exp = f"{x:.{max(sig, 1) - 1}e}".split("e")
    exp_i = int(exp)
    return {"py": f"{mant}e{exp}", "E": f"{mant}E{exp_i}", "times": rf"{mant} \times 10^{{{exp_i}}}",
            "cdot": rf"{mant} \cdot 10^{{{exp_i}}}", "times_tight": rf"{mant}\times10^{{{exp_i}}}"}[style]


def numeric_cases(rng: random.Random, gold_core: str, unit: str | None) -> list[tuple[str, bool, str]]:
    m = NUMBER.match(gold_core)
    if not m:
        return []
    mant, exp = m.group(1), m.group(2)
    value = float(mant) * (10 ** int(exp) if exp else 1)
    integer = "." not in mant and exp is None
    sig = None if integer else max(1, len(mant.lstrip("-").replace(".", "").lstrip("0")))
    shown = sig or max(1, len(mant.lstrip("-").lstrip("0")) or 1)
    u = (unit or rng.choice(UNITS)).strip("$ ")
    style = rng.choice(["py", "E", "times", "cdot", "times_tight"])
    right = [
        (sci(value, shown, style), "sci:" + style),
        (sci(value, shown, "times") + rf"\ \mathrm{{{u}}}", "unit:mathrm"),
        (sci(value, shown, "cdot") + rf"\,\text{{{u}}}", "unit:text"),
        (r"\approx " + sci(value, shown, "times"), "approx"),
        ("v = " + sci(value, shown, rng.choice(["times", "py"])), "lhs"),
        (sci(value * (1 + rng.choice([-1, 1]) * 4e-4), shown + 2, "times"), "extra digits"),
        ((rf"({sci(value, shown, 'py').split('e')[0]} \pm 0.01) \times 10^{{{int(f'{value:e}'.split('e')[1])}}}"
          rf"\ \mathrm{{{u}}}"), "uncertainty"),
    ]
    if value != 0 and abs(math.log10(abs(value))) < 4:
        plain = f"{value:.{max(0, shown - 1 - math.floor(math.log10(abs(value))))}f}"
        right.append((plain + rf" \text{{ {u}}}", "plain+unit"))
    if value == 0:  # no multiple of 0 is wrong; a non-zero value is
        return [(t, True, k) for t, k in right[:5]] + [("0.1", False, "nonzero"), ("-2", False, "nonzero")]
    wrong = [(sci(value * 10, shown, style), "x10"), (sci(value / 10, shown, "times"), "/10"),
             (sci(-value, shown, "times"), "sign")]
    for f in (1.5, 0.6):
        v = value * f
        if sig is None or sig_round(v, sig) != sig_round(value, sig):
            wrong.append((sci(v, shown + 1, "times"), f"x{f}"))
    if integer and value >= 10:
        wrong.append((str(int(value) + 3), "13-for-10"))
    return [(t, True, k) for t, k in right] + [(t, False, k) for t, k in wrong]


def interval_cases(gold_core: str) -> list[tuple[str, bool, str]]:
    m = re.fullmatch(r"\[(.+?),(.+?)\]?", gold_core.strip())
    if not m:
        return []
    a, b = (NUMBER.match(x) for x in (m.group(1), m.group(2)))
    if not (a and b):
        return []
    lo, hi = sorted(float(x.group(1)) * 10 ** int(x.group(2) or 0) for x in (a, b))
    mid = (lo + hi) / 2
    return [(sci(mid, 3, "times"), True, "interval:inside"), (sci(mid, 3, "py"), True, "interval:inside-py"),
            (sci(hi + 2 * (hi - lo) + abs(hi) * 0.05, 3, "times"), False, "interval:above"),
            (sci(lo - 2 * (hi - lo) - abs(lo) * 0.05, 3, "times"), False, "interval:below")]


# ---------------------------------------------------------------------------------------------------------
# expressions and equations (sympy builds the variants; random-point evaluation checks every label)

def _differs(a, b, symbols, rng) -> bool | None:
    import sympy

    diffs = 0
    for _ in range(6):
        point = {s: rng.uniform(0.6, 1.9) for s in symbols}
        try:
            x, y = complex(sympy.N(a.subs(point))), complex(sympy.N(b.subs(point)))
        except Exception:  # noqa: BLE001
            return None
        if not all(math.isfinite(v) for v in (x.real, x.imag, y.real, y.imag)):
            return None
        if abs(x - y) > 1e-6 * max(abs(x), abs(y), 1e-30):
            diffs += 1
    return diffs > 0


def _value(e, symbols, rng) -> complex | None:
    import sympy

    try:
        v = complex(sympy.N(e.subs({s: rng.uniform(0.6, 1.9) for s in symbols})))
    except Exception:  # noqa: BLE001
        return None
    return v if math.isfinite(v.real) and math.isfinite(v.imag) else None


def expression_cases(rng: random.Random, gold_core: str, kind: str) -> list[tuple[str, bool, str]]:
    import sympy

    from lyceum.olympiad.latex import parse_latex, right_hand_sides, split_top_level

    if kind == "Equation":  # variants written as text around the gold's own sides (as a model rewrites)
        sides = [x.strip() for x in split_top_level(gold_core, "=")]
        if len(sides) != 2 or not all(sides):
            return []
        lhs, rhs = sides
        left, right = parse_latex(lhs), parse_latex(rhs)
        if not (isinstance(left, sympy.Expr) and isinstance(right, sympy.Expr)):
            return []
        syms = sorted(left.free_symbols | right.free_symbols, key=str)
        out = [(f"{rhs} = {lhs}", True, "eq:swapped"), (rf"{lhs} - \left({rhs}\right) = 0", True, "eq:moved"),
               (rf"2 \left({lhs}\right) = 2 \left({rhs}\right)", True, "eq:doubled")]
        # "lhs = 2 rhs" and "lhs = -rhs" are other equations unless lhs is a constant multiple of rhs; the ratio
        # lhs / rhs varying between random points shows it is not
        ratio = [_value(left / right, syms, rng) for _ in range(3)]
        if None not in ratio and max(abs(r - ratio[0]) for r in ratio) > 1e-6 * max(abs(r) for r in ratio):
            out += [(rf"{lhs} = 2 \left({rhs}\right)", False, "eq:factor2"),
                    (rf"{lhs} = -\left({rhs}\right)", False, "eq:sign")]
        return out
    rhs_text = right_hand_sides(gold_core)[-1]
    expr = parse_latex(rhs_text)
    if not isinstance(expr, sympy.Expr) or not expr.free_symbols or expr.atoms(sympy.Derivative):
        return []
    exprs = {"expr": expr}
    symbols = sorted(set().union(*(e.free_symbols for e in exprs.values())), key=str)
    if any(not re.fullmatch(r"[A-Za-z]+(_[A-Za-z0-9]+)?", s.name) for s in symbols):
        return []  # names the LaTeX printer would not write back the way a person does

    def tex(e) -> str | None:
        text = sympy.latex(e)
        back = parse_latex(text)
        return text if isinstance(back, sympy.Expr) and _differs(back, e, symbols, rng) is False else None

    out = []
    e = exprs["expr"]
    s = rng.choice(symbols)
    candidates = [(sympy.expand(e), True, "expr:expanded"), (sympy.factor(e), True, "expr:factored"),
                  (sympy.together(e), True, "expr:together"), (2 * e, False, "expr:x2"), (-e, False, "expr:sign"),
                  (e.subs(s, s**2), False, "expr:symbol-squared"), (e**2, False, "expr:squared")]
    for cand, ok, label in candidates:
        text = tex(cand)
        if text is None:
            continue
        verdict = _differs(cand, e, symbols, rng)
        if verdict is None or verdict == ok:  # a "right" variant must agree everywhere, a wrong one differ
            continue
        if ok and label == "expr:expanded":
            text = text.replace(r"\frac", r"\dfrac")
        out.append((text, ok, label))
    if out and rng.random() < 0.5:
        text, ok, label = out[0]
        out[0] = ("E = " + text if ok else text, ok, label + "+lhs")
    return out


def choice_cases(gold_core: str) -> list[tuple[str, bool, str]]:
    letters = re.findall(r"[A-H]", gold_core)
    if len(letters) != 1:
        return []
    g = letters[0]
    other = "B" if g != "B" else "C"
    return [(f"({g})", True, "choice:paren"), (rf"\text{{{g}}}", True, "choice:text"),
            (f"Option {g}", True, "choice:word"), (other, False, "choice:other")]


# ---------------------------------------------------------------------------------------------------------

def build(data_dir: str, seed: int, per_kind: int) -> list[dict]:
    from lyceum.olympiad.data import load_hipho, problem_index
    from lyceum.olympiad.latex import answer_alternatives, right_hand_sides

    rng = random.Random(seed)
    cases = []
    for p in problem_index(load_hipho(data_dir)).values():
        for i, (gold, kind, unit) in enumerate(zip(p.answers, p.answer_types, p.units)):
            alts = answer_alternatives(gold)
            if len(alts) != 1:
                continue
            core = alts[0]
            if kind == "Numerical Value":
                made = interval_cases(core) or numeric_cases(rng, right_hand_sides(core)[-1], unit)
            elif kind in ("Expression", "Equation"):
                try:
                    made = expression_cases(rng, core, kind)
                except Exception:  # noqa: BLE001 - a gold the generator cannot vary is skipped
                    made = []
            elif kind == "Multiple Choice":
                made = choice_cases(core)
            else:
                continue
            cases += [{"id": p.id, "index": i, "gold": gold, "type": kind, "pred": text, "label": ok, "form": form}
                      for text, ok, form in made]
    by_kind: dict[str, list[dict]] = {}
    for c in cases:
        by_kind.setdefault(c["type"], []).append(c)
    picked = []
    for kind, items in sorted(by_kind.items()):
        rng.shuffle(items)
        picked += items[:per_kind]
    rng.shuffle(picked)
    return picked


GRADE = r"""
import json, sys, time
cases = [json.loads(x) for x in open(sys.argv[1])]
protocol = sys.argv[2]
start = time.perf_counter()
out = []
if protocol == "official":
    from lyceum.olympiad.official.protocol import gold_answer, rules
    for c in cases:
        try:
            out.append(rules(c["pred"], gold_answer(c["gold"])).correct)
        except Exception as e:  # the official run fails this problem; recorded as an error verdict
            print("official rules raised", type(e).__name__, str(e)[:200], repr(c["pred"])[:80], file=sys.stderr)
            out.append("error")
else:
    from lyceum.olympiad.grade import answer_verdict
    for c in cases:
        out.append(answer_verdict(c["gold"], c["pred"], c["type"]))
print(json.dumps({"verdicts": out, "seconds": time.perf_counter() - start}))
"""


def burn() -> None:
    while True:
        pass


def grade(cases: list[dict], protocol: str, burners: int) -> tuple[list, float, float]:
    """Verdicts from a fresh process (cold symbolic stack), with ``burners`` CPU-burning processes beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cases.jsonl"
        path.write_text("".join(json.dumps(c) + "\n" for c in cases))
        procs = [mp.get_context("spawn").Process(target=burn, daemon=True) for _ in range(burners)]
        for b in procs:
            b.start()
        try:
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", GRADE, str(path), protocol], env=env,
                                  capture_output=True, text=True, check=False)
            if done.returncode:
                raise SystemExit(f"the grading process failed: {done.stderr[-2000:]}")
            wall = time.perf_counter() - t0
        finally:
            for b in procs:
                b.kill()
                b.join()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["verdicts"], result["seconds"], wall


def report(cases: list[dict], verdicts: list, seconds: float, wall: float, protocol: str, burners: int,
           show: int) -> dict:
    agree = sum((v is True) == c["label"] and v not in ("undecided", "error") for v, c in zip(verdicts, cases))
    wrong_accepts = [(v, c) for v, c in zip(verdicts, cases) if v is True and not c["label"]]
    wrong_rejects = [(v, c) for v, c in zip(verdicts, cases) if v is False and c["label"]]
    undecided = [(v, c) for v, c in zip(verdicts, cases) if v in ("undecided", "error")]
    summary = {"protocol": protocol, "burners": burners, "cases": len(cases),
               "right_answers": sum(c["label"] for c in cases), "agree": agree,
               "agreement": round(agree / len(cases), 4), "wrong_accepts": len(wrong_accepts),
               "wrong_rejects": len(wrong_rejects), "undecided": len(undecided),
               "ms_per_check": round(1000 * seconds / len(cases), 1), "process_wall_s": round(wall, 1), "by_type": {}}
    for kind in sorted({c["type"] for c in cases}):
        idx = [i for i, c in enumerate(cases) if c["type"] == kind]
        summary["by_type"][kind] = {"cases": len(idx), "agree": sum((verdicts[i] is True) == cases[i]["label"]
                                                                     and verdicts[i] != "undecided" for i in idx)}
    print(json.dumps({k: v for k, v in summary.items() if k != "by_type"}), flush=True)
    for v, c in (wrong_accepts + wrong_rejects + undecided)[:show]:
        print(f"  {'ACCEPTED' if v is True else v!s:>9} label={c['label']!s:5} {c['type']:<15} {c['form']:<20} "
              f"gold={c['gold'][:60]!r} pred={c['pred'][:70]!r}", flush=True)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="HiPhO directory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-kind", type=int, default=250, help="cases per answer type (default 250)")
    ap.add_argument("--burn", default="0", help="CPU-burning processes beside the grader; a list (0,2) grades "
                                                "the same set once per value (default 0)")
    ap.add_argument("--protocol", default="lyceum", help="lyceum, official, or both (lyceum,official)")
    ap.add_argument("--out", help="write the results (a JSON list) here")
    ap.add_argument("--show", type=int, default=20, help="print up to this many disagreements per run")
    args = ap.parse_args()
    cases = build(args.data, args.seed, args.per_kind)
    print(f"{len(cases)} cases ({sum(c['label'] for c in cases)} right answers)", flush=True)
    results = []
    for protocol in args.protocol.split(","):
        for burners in (int(b) for b in args.burn.split(",")):
            verdicts, seconds, wall = grade(cases, protocol, burners)
            results.append(report(cases, verdicts, seconds, wall, protocol, burners, args.show))
            if args.out:  # after every run, so a later failure keeps the earlier results
                Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
