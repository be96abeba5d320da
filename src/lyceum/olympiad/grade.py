"""Answer-level grading: is one extracted answer equal to one gold sub-answer?

    from lyceum.olympiad.grade import check_answer
    check_answer(r"\\boxed{$v = \\sqrt{2gh}$}", r"v=\\sqrt{2 g h}", "Expression")       # True
    check_answer(r"\\boxed{[1.64, 1.70]}", "1.67", "Numerical Value")                 # True: inside the interval

One grader per HiPhO answer type:

- Multiple Choice: the set of letters ("A, D", "(B)", "\\text{B}") must be equal.
- Numerical Value: the number right of the last '=' (units ignored unless asked), scientific notation and
  ``\\times 10^{}``, percentages; equal at a relative tolerance (2e-3) or after rounding to the gold's
  significant figures; an interval gold ``[a, b]`` accepts values inside it.
- Expression: normalised-string match, then math-verify on the sympy forms, then sympy simplification of the
  difference, then numeric substitution at random points.
- Equation: the same, for ``lhs - rhs`` being equal up to a non-zero factor.
- Inequality, Open-Ended: judge only (``check_answer`` returns False; the step-level judge grades them).

Every symbolic stage runs under a CPU-time budget (see ``timelimit``), after the symbolic stack has been
imported and warmed up outside any budget (``warm_up``), so a verdict does not depend on the machine's load or
on which answer came first. A check in which some budget ran out is not a "no": it is retried once with a
larger budget, and if it still has no verdict it is ``UNDECIDED`` (``answer_verdict``), which the grades
record as such. Nothing here imports torch; sympy, math-verify and pint are imported on first use.
"""

from __future__ import annotations

import logging
import math
import random
import re
from dataclasses import dataclass

from lyceum.errors import UserError
from lyceum.olympiad.latex import (
    CJK,
    answer_alternatives,
    answer_core,
    clean_latex,
    parse_latex,
    right_hand_sides,
    split_top_level,
    string_key,
)
from lyceum.olympiad.timelimit import call_with_time_limit, timeouts

DEFAULT_RTOL = 2e-3
DEFAULT_TIMEOUT = 2.0  # CPU seconds per symbolic stage
RETRY_FACTOR = 4.0  # a check whose budget ran out is retried once with this many times the budget
UNDECIDED = "undecided"  # the verdict of a check that ran out of budget twice: neither right nor wrong

# HiPhO's six answer types and the spellings we accept for them
_KINDS = {
    "multiple choice": "choice", "multiple-choice": "choice", "multiple_choice": "choice", "mc": "choice",
    "choice": "choice", "numerical value": "numerical", "numerical": "numerical", "numeric": "numerical",
    "number": "numerical", "value": "numerical", "expression": "expression", "equation": "equation",
    "inequality": "inequality", "open-ended": "open", "open ended": "open", "open_ended": "open", "open": "open",
}
JUDGE_ONLY = frozenset({"inequality", "open"})


def answer_kind(answer_type: str) -> str:
    """Normalise a HiPhO ``answer_type`` ("Numerical Value") to a grader name ("numerical")."""
    kind = _KINDS.get(str(answer_type).strip().lower())
    if kind is None:
        raise UserError(f"unknown answer type '{answer_type}'; known types: Multiple Choice, Numerical Value, "
                        "Expression, Equation, Inequality, Open-Ended")
    return kind


def is_judge_only(answer_type: str) -> bool:
    return answer_kind(answer_type) in JUDGE_ONLY


def check_answer(gold: str, pred: str, answer_type: str, unit: str | None = None, *, rtol: float = DEFAULT_RTOL,
                 timeout: float | None = DEFAULT_TIMEOUT) -> bool:
    """True when ``pred`` is a correct answer for the gold sub-answer ``gold`` of type ``answer_type``.

    ``unit`` switches on unit handling for numerical answers: a response carrying a unit is converted to
    ``unit`` before comparing (HiPhO ignores units, so graders pass None unless asked). ``rtol`` is the
    relative tolerance for numbers; ``timeout`` is the CPU budget of each symbolic stage, in seconds.
    An undecided check (see ``answer_verdict``) is not True.
    """
    return answer_verdict(gold, pred, answer_type, unit, rtol=rtol, timeout=timeout) is True


def answer_verdict(gold: str, pred: str, answer_type: str, unit: str | None = None, *,
                   rtol: float = DEFAULT_RTOL, timeout: float | None = DEFAULT_TIMEOUT) -> bool | str:
    """True, False, or ``UNDECIDED`` when the check ran out of its CPU budget twice (the second time with
    ``RETRY_FACTOR`` times the budget) without showing equality."""
    kind = answer_kind(answer_type)
    if kind in JUDGE_ONLY or pred is None or not str(pred).strip() or gold is None:
        return False
    gold, pred = str(gold), str(pred)
    budget = timeout
    for attempt in range(2):
        before = timeouts()
        if _check(kind, gold, pred, unit, rtol, budget):
            return True
        if timeouts() == before:  # every stage finished: a real "no"
            return False
        budget = budget * RETRY_FACTOR if budget else budget
    return UNDECIDED


def _check(kind: str, gold: str, pred: str, unit: str | None, rtol: float, timeout: float | None) -> bool:
    try:
        if kind == "choice":
            return grade_choice(gold, pred)
        if kind == "numerical":
            return grade_numerical(gold, pred, rtol=rtol, unit=unit, timeout=timeout)
        if kind == "equation":
            return grade_equation(gold, pred, rtol=rtol, timeout=timeout)
        return grade_expression(gold, pred, rtol=rtol, timeout=timeout)
    except RecursionError:  # a pathological answer must not stop a whole evaluation
        logging.getLogger(__name__).warning("answer check hit the recursion limit; counted as wrong")
        return False


_warm = False


def warm_up() -> None:
    """Import the symbolic stack and run each piece once, outside any budget.

    A cold import of sympy + latex2sympy + math-verify (and the parser's first call) costs seconds of CPU;
    inside a stage's budget it would make the first symbolic checks of a process fail depending on load.
    Only a successful warm-up is remembered: a failed import is raised (naming the extra that brings it),
    never cached as "cannot parse"."""
    global _warm
    if _warm:
        return
    try:
        import math_verify
        import sympy
        from latex2sympy2_extended import latex2sympy  # noqa: F401 - imported to be warm
    except ImportError as e:
        raise UserError(f"answer checks need {e.name}: install it with pip install 'lyceum[olympiad]'") from e
    x = parse_latex(r"\frac{x^{2} + 1}{2 m_{e}}")
    sympy.simplify(x - x)
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    math_verify.verify(x, x, timeout_seconds=None, raise_on_error=False)
    _warm = True


def _same_text(gold: str, gold_alternatives: list[str], pred_core: str) -> bool:
    """The cheap first check of every grader: the same answer once the LaTeX is normalised."""
    key = string_key(pred_core)
    return key == string_key(answer_core(gold)) or any(string_key(g) == key for g in gold_alternatives)


# ---------------------------------------------------------------------------------------------------------
# multiple choice

_CHOICE_NOISE = re.compile(r"(?i)\b(?:options?|choices?|answers?|the|is|are|correct|and|final)\b|[:：]")
_LETTER_LIST = re.compile(r"[\s,;/&()\[\]{}+.]*(?:[A-Ha-h][\s,;/&()\[\]{}+.]*)+")


def choice_letters(text: str) -> frozenset[str] | None:
    """The chosen letters: "A, D" -> {A, D}; "(B)" / "\\text{B}" / "选B" -> {B}; "(C) 4 m/s" -> {C}; else None."""
    s = CJK.sub(" ", clean_latex(text))
    s = _CHOICE_NOISE.sub(" ", s).strip()
    if not s:
        return None
    if _LETTER_LIST.fullmatch(s):
        return frozenset(c.upper() for c in s if c.isalpha())
    m = re.match(r"^\(?([A-H])\)?(?:[.):]|\s)", s)  # an option quoted with its text: "(C) 4 m/s"
    return frozenset(m.group(1)) if m else None


def grade_choice(gold: str, pred: str) -> bool:
    g, p = choice_letters(gold), choice_letters(pred)
    return g is not None and g == p


# ---------------------------------------------------------------------------------------------------------
# numbers

@dataclass(frozen=True)
class Number:
    """A parsed numerical answer: a value (with the significant figures it was written with), an interval
    [low, high], or ±value; plus the unit text that followed it and whether it was a percentage."""

    value: float = math.nan
    sig_figs: int | None = None
    low: float | None = None
    high: float | None = None
    plus_minus: bool = False
    percent: bool = False
    unit: str = ""

    @property
    def is_interval(self) -> bool:
        return self.low is not None


_MANTISSA = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_SCIENTIFIC = re.compile(
    rf"^\s*(?P<mant>{_MANTISSA})\s*(?:(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{{\s*(?P<exp>[-+]?\s*\d+(?:\.\d+)?)\s*\}}"
    rf"|[eE](?P<e>[-+]?\d+))?")
_POWER_OF_TEN = re.compile(r"^\s*(?P<sign>[-+]?)\s*10\s*\^\s*\{\s*(?P<exp>[-+]?\s*\d+(?:\.\d+)?)\s*\}")
_HEDGE = re.compile(r"^(?:about|approximately|approx\.?|roughly|around|nearly|circa|ca\.|~)\s+", re.IGNORECASE)
_UNIT_LIKE = re.compile(r"^[\\A-Za-z°%{}^_\s/*().\-0-9]*$")


def _sig_figs(mantissa: str, scientific: bool) -> int | None:
    """Significant figures of a written decimal number; None for an integer, which is exact (an exponent of 2
    or a count of 4 is not "4 to one figure")."""
    if "." not in mantissa and not scientific:
        return None
    digits = mantissa.lstrip("+-").replace(".", "").lstrip("0")
    return max(1, len(digits))


def _leading_number(s: str) -> tuple[float, int | None, str] | None:
    """A number at the start of ``s`` and what follows it: "1.9 \\times 10^{-9} m" -> (1.9e-9, 2, "m")."""
    m = _POWER_OF_TEN.match(s)
    if m:
        value = float(m.group("sign") + "1") * 10 ** float(m.group("exp").replace(" ", ""))
        return value, None, s[m.end():].strip()
    m = _SCIENTIFIC.match(s)
    if not m:
        return None
    exp = m.group("exp") or m.group("e")
    value = float(m.group("mant")) * (10 ** float(exp.replace(" ", "")) if exp else 1.0)
    return value, _sig_figs(m.group("mant"), bool(exp)), s[m.end():].strip()


def _exact_value(s: str, timeout: float | None) -> float | None:
    """Value of a closed-form number ("\\frac{4}{3}", "2/3", "\\pi", "\\sqrt{2}/2") via sympy, or None."""
    def run():
        expr = parse_latex(s)
        if expr is None or not hasattr(expr, "free_symbols") or expr.free_symbols:
            return None
        try:
            v = complex(expr.evalf())
        except (TypeError, ValueError):
            return None
        return v.real if abs(v.imag) <= 1e-12 * max(1.0, abs(v.real)) else None

    return _stage(run, timeout=timeout, default=None)


def parse_number(text: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> Number | None:
    """Parse a cleaned numerical answer (no '=' left of it), or None when it is not a number."""
    s = text.strip().rstrip(".").strip()
    s = _HEDGE.sub("", s)  # "about 4.4 m/s", "approximately 3e8"
    if not s:
        return None
    # interval: "[a, b]" (the closing bracket is missing in a few gold answers)
    m = re.fullmatch(r"\[(.+?),(.+?)\]?", s)
    if m:
        a, b = parse_number(m.group(1), timeout=timeout), parse_number(m.group(2), timeout=timeout)
        if a and b and not a.is_interval and not b.is_interval:
            low, high = sorted((a.value, b.value))
            return Number(low=low, high=high, unit=a.unit or b.unit)
        return None
    plus_minus = False
    if s.startswith(r"\pm"):
        plus_minus, s = True, s[3:].strip()
    percent = False
    if s.endswith((r"\%", "%")):
        percent, s = True, s[:-2].strip() if s.endswith(r"\%") else s[:-1].strip()
    unit = ""
    for degree in (r"^{\circ}", r"\circ", r"^\circ"):
        if degree in s:
            unit, s = "degree" + s.split(degree, 1)[1], s.split(degree, 1)[0].strip()
            break
    s = _drop_uncertainty(s)
    s = re.sub(r"(?<![\d.])(\d{1,3})((?:,\d{3})+)(?![\d.,])", lambda m: m.group(1) + m.group(2).replace(",", ""), s)
    lead = _leading_number(s)
    if lead and not lead[2]:
        return Number(value=lead[0], sig_figs=lead[1], plus_minus=plus_minus, percent=percent, unit=unit)
    exact = _exact_value(s, timeout)
    if exact is not None:
        return Number(value=exact, plus_minus=plus_minus, percent=percent, unit=unit)
    if lead and _UNIT_LIKE.match(lead[2]) and not re.match(r"^[\d.+\-*/^(]", lead[2]):
        return Number(value=lead[0], sig_figs=lead[1], plus_minus=plus_minus, percent=percent,
                      unit=(lead[2] + " " + unit).strip())
    # a closed form followed by a unit: "\frac{2}{3} kg", "\sqrt{2} m/s"
    for value_text, tail in _unit_splits(s):
        exact = _exact_value(value_text, timeout)
        if exact is not None:
            return Number(value=exact, plus_minus=plus_minus, percent=percent, unit=(tail + " " + unit).strip())
    return None


# unit words as they follow a number: letters, powers, '/', '\cdot', micro and ohm signs; no operators, no \pi
_UNIT_TAIL = re.compile(r"^(?:[A-Za-z]+|\\(?:mu|Omega|cdot|circ|AA|ohm)|\^\{?-?\d+\}?|[/\s*().]|\{|\})+$")


def _unit_splits(s: str):
    """(value, unit) splits of "VALUE UNIT" at a top-level space, longest value first, where UNIT is made of
    unit words only."""
    depth = 0
    cuts = []
    for i, c in enumerate(s):
        depth += c == "{"
        depth -= c == "}"
        if c == " " and depth == 0:
            cuts.append(i)
    for i in reversed(cuts):
        value, tail = s[:i].strip(), s[i:].strip()
        if value and tail and _UNIT_TAIL.match(tail) and re.search(r"[A-Za-z]", tail):
            yield value, tail


def _drop_uncertainty(s: str) -> str:
    r""""(4.2 \pm 0.1) \times 10^{-3} J" -> "4.2 \times 10^{-3} J"; "4.2 \pm 0.1 J" -> "4.2 J": the value, not its
    error bar (an answer that is itself "±x" starts with \pm and is kept)."""
    m = re.fullmatch(r"\(\s*([^()]+?)\s*\\pm\s*[^()]+?\)\s*(.*)", s)
    if m:
        return (m.group(1) + " " + m.group(2)).strip()
    m = re.fullmatch(rf"({_MANTISSA})\s*\\pm\s*{_MANTISSA}(?![\d.])\s*(.*)", s)
    if m:
        return (m.group(1) + " " + m.group(2)).strip()
    return s


def _round_sig(x: float, sig: int) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, sig - 1 - math.floor(math.log10(abs(x))))


def numbers_close(pred: float, gold: float, *, rtol: float = DEFAULT_RTOL, sig_figs: int | None = None) -> bool:
    """Equal at relative tolerance ``rtol``, or equal once ``pred`` is rounded to the gold's significant figures
    (given for decimals and scientific notation; integers are exact, so only ``rtol`` applies to them)."""
    if not (math.isfinite(pred) and math.isfinite(gold)):
        return False
    if gold == 0:
        return abs(pred) <= 1e-12
    if abs(pred - gold) <= rtol * abs(gold):
        return True
    return sig_figs is not None and math.isclose(_round_sig(pred, sig_figs), gold, rel_tol=1e-9)


def _in_interval(x: float, low: float, high: float, rtol: float) -> bool:
    return low - rtol * abs(low) <= x <= high + rtol * abs(high)


def _values_match(g: Number, p: Number, rtol: float, unit: str | None) -> bool:
    pv = p.value
    if unit and p.unit and not p.is_interval:
        from lyceum.olympiad.units import convert

        converted = convert(pv, p.unit, unit)
        if converted is not None:
            pv = converted
    if g.is_interval:
        if p.is_interval:
            return _in_interval(p.low, g.low, g.high, rtol) and _in_interval(p.high, g.low, g.high, rtol)
        return _in_interval(pv, g.low, g.high, rtol)
    if p.is_interval or g.plus_minus != p.plus_minus:
        return False
    candidates = [pv]
    if g.percent != p.percent:  # "0.35%" against "0.0035" (and the reverse)
        candidates.append(pv * 100 if g.percent else pv / 100)
    if g.plus_minus:
        candidates = [abs(c) for c in candidates]
        return any(numbers_close(c, abs(g.value), rtol=rtol, sig_figs=g.sig_figs) for c in candidates)
    return any(numbers_close(c, g.value, rtol=rtol, sig_figs=g.sig_figs) for c in candidates)


def _assignments(s: str) -> dict[str, str] | None:
    """"x = 0, \\theta = \\pi" -> {"x": "0", "\\theta": "\\pi"} (two or more), else None."""
    items = split_top_level(s, ",")
    if len(items) < 2:
        return None
    out = {}
    for item in items:
        sides = split_top_level(item, "=")
        if len(sides) != 2:
            return None
        out[string_key(sides[0])] = sides[1].strip()
    return out


def grade_numerical(gold: str, pred: str, *, rtol: float = DEFAULT_RTOL, unit: str | None = None,
                    timeout: float | None = DEFAULT_TIMEOUT) -> bool:
    pred_core = answer_core(pred)
    golds = answer_alternatives(gold)
    if _same_text(gold, golds, pred_core):
        return True
    pred_assign = _assignments(pred_core)
    # every side of "E = 13.6 eV = 2.18 \\times 10^{-18} J" is the answer in some unit; the last comes first
    sides = right_hand_sides(pred_core)[-3:]
    first = split_top_level(pred_core, "=")[0].strip()
    if len(sides) and first and first != sides[0] and first not in sides:
        sides = [first] + sides  # "1.2e5 Pa = 1.2 bar": a value on the left is the answer in another unit
    pred_values = [v for v in (parse_number(p, timeout=timeout) for p in reversed(sides)) if v is not None]
    for g in golds:
        gold_assign = _assignments(g)
        if gold_assign is not None:  # several named values: all must match
            if pred_assign is not None and pred_assign.keys() == gold_assign.keys() and all(
                    grade_numerical(gold_assign[k], pred_assign[k], rtol=rtol, unit=unit, timeout=timeout)
                    for k in gold_assign):
                return True
            continue
        gv = parse_number(right_hand_sides(g)[-1], timeout=timeout)
        if gv is not None and any(_values_match(gv, pv, rtol, unit) for pv in pred_values):
            return True
    return False


# ---------------------------------------------------------------------------------------------------------
# expressions and equations

def _sympy():
    import sympy

    return sympy


def _stage(fn, *args, timeout: float | None, default):
    """One comparison stage under its CPU budget; a stage that fails (sympy raises on odd inputs, deep
    expressions hit the recursion limit) counts as "could not show equality". One that runs out of budget
    also returns ``default``, and is counted (``timelimit.timeouts``) so the check is retried."""
    warm_up()
    try:
        return call_with_time_limit(fn, *args, seconds=timeout, default=default)
    except Exception:  # noqa: BLE001 - any failure of a stage is a non-result, by design
        return default


def _parse_limited(s: str, timeout: float | None):
    return _stage(parse_latex, s, timeout=timeout, default=None)


def _has_float(expr) -> bool:
    sympy = _sympy()
    return isinstance(expr, sympy.Basic) and bool(expr.atoms(sympy.Float))


def _math_verify_equal(g, p) -> bool:
    from math_verify import verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # math-verify's own SIGALRM timeout would cancel ours: it is off, ours is on (see timelimit)
    return bool(verify(g, p, timeout_seconds=None, raise_on_error=False))


def _elements(expr) -> list | None:
    """Components of a tuple/vector/matrix answer, or None for a scalar."""
    sympy = _sympy()
    if isinstance(expr, (sympy.Tuple, tuple, list)):
        return list(expr)
    if isinstance(expr, sympy.MatrixBase):
        return list(expr)
    return None


def _simplify_zero(expr) -> bool:
    sympy = _sympy()
    return sympy.simplify(expr) == 0


def _symbolic_equal(g, p) -> bool:
    sympy = _sympy()
    ge, pe = _elements(g), _elements(p)
    if ge is not None or pe is not None:
        return ge is not None and pe is not None and len(ge) == len(pe) and all(
            _symbolic_equal(a, b) for a, b in zip(ge, pe))
    if not (isinstance(g, sympy.Expr) and isinstance(p, sympy.Expr)):
        return False
    return _simplify_zero(g - p)


def _sample_points(symbols, count: int, seed: int):
    """Random positive values: physical magnitudes, and away from the branch cuts of sqrt and log."""
    rng = random.Random(seed)
    for _ in range(count):
        yield {s: rng.uniform(0.5, 2.0) for s in symbols}


def _evaluate(expr, point) -> complex | None:
    try:
        v = complex(expr.evalf(subs=point))
    except Exception:  # noqa: BLE001 - not a number at this point (matrix symbols, undefined functions, ...)
        return None
    return v if math.isfinite(v.real) and math.isfinite(v.imag) else None


def _numeric_verdict(g, p, tol: float, points: int = 6) -> bool | None:
    """Compare at random points: False on a clear difference, True when ``points`` points agree, None when too
    few points could be evaluated (or the objects are not numbers) to say anything."""
    sympy = _sympy()
    ge, pe = _elements(g), _elements(p)
    if ge is not None or pe is not None:
        if ge is None or pe is None or len(ge) != len(pe):
            return False
        verdicts = [_numeric_verdict(a, b, tol, points) for a, b in zip(ge, pe)]
        return False if False in verdicts else (None if None in verdicts else True)
    if not (isinstance(g, sympy.Expr) and isinstance(p, sympy.Expr)):
        return None
    symbols = sorted(g.free_symbols | p.free_symbols, key=str)
    agree = 0
    for point in _sample_points(symbols, points * 2, seed=len(symbols)):
        a, b = _evaluate(g, point), _evaluate(p, point)
        if a is None or b is None:
            continue
        scale = max(abs(a), abs(b))
        if scale == 0:  # both exactly 0 here (e.g. exp(-1e22 t^2)): no evidence either way
            continue
        if abs(a - b) > tol * scale:  # relative only: answers of size 1e-16 are common
            return False
        agree += 1
        if agree >= points:
            break
    return True if agree >= 3 else None


def _proportional(f, h, tol: float, points: int = 6) -> bool | None:
    """Is ``h = c * f`` for a non-zero constant c (two equations ``f = 0`` and ``h = 0`` saying the same)?
    False on a clear counter-example, True when ``points`` points agree, None when undecided."""
    sympy = _sympy()
    if not (isinstance(f, sympy.Expr) and isinstance(h, sympy.Expr)):
        return None
    symbols = sorted(f.free_symbols | h.free_symbols, key=str)
    ratio = None
    agree = 0
    for point in _sample_points(symbols, points * 2, seed=len(symbols) + 1):
        a, b = _evaluate(f, point), _evaluate(h, point)
        if a is None or b is None or a == 0:
            continue
        r = b / a
        if r == 0:
            return False
        if ratio is None:
            ratio = r
        elif abs(r - ratio) > tol * max(abs(r), abs(ratio)):
            return False
        agree += 1
        if agree >= points:
            break
    return True if agree >= 3 else None


def _same_expression(g_text: str, p_text: str, rtol: float, timeout: float | None) -> bool:
    """Normalised strings, then math-verify, then sympy simplification, then numeric substitution.

    The numeric comparison is computed first but only used to *reject* early: a clear difference at a random
    point settles it without a (possibly minutes-long) simplification of two unequal expressions.
    """
    if string_key(g_text) == string_key(p_text):
        return True
    g, p = _parse_limited(g_text, timeout), _parse_limited(p_text, timeout)
    if g is None or p is None:
        return False
    has_float = _has_float(g) or _has_float(p)
    tol = max(rtol, 1e-6) if has_float else 1e-6
    numeric = _stage(_numeric_verdict, g, p, tol, timeout=timeout, default=None)
    if numeric is False:
        return False
    # math-verify rounds floats to 6 decimals (1e-16 == 0 there); decimals go to the relative numeric check
    if not has_float and _stage(_math_verify_equal, g, p, timeout=timeout, default=False):
        return True
    if _stage(_symbolic_equal, g, p, timeout=timeout, default=False):
        return True
    return numeric is True


def grade_expression(gold: str, pred: str, *, rtol: float = DEFAULT_RTOL,
                     timeout: float | None = DEFAULT_TIMEOUT) -> bool:
    """Any right-hand side of any gold alternative equals the right-hand side of the prediction."""
    pred_core = answer_core(_drop_text_unit(pred))
    golds = answer_alternatives(gold)
    if _same_text(gold, golds, pred_core):
        return True
    # "r_1 = \\frac{\\hbar}{\\alpha m_e c} \\approx 5.3 \\times 10^{-11} m": any side of the chain may be the answer
    pred_values = right_hand_sides(pred_core)[-3:]
    for g in golds:
        if _is_zero_form(g):  # "omega^4 - ... = 0" is an equation written as an expression: both sides count
            if grade_equation(g, pred_core, rtol=rtol, timeout=timeout):
                return True
            continue
        if any(_same_expression(rhs, p, rtol, timeout) for p in reversed(pred_values) for rhs in right_hand_sides(g)):
            return True
    return False


_TEXT_UNIT = re.compile(r"(?<![_^{])(?:\\[,;:! ]|\s|~)+\\(?:text|mathrm|rm)\s*\{\s*[A-Za-z][A-Za-z\s/^\-\d.]*\}\s*\$?\s*$")


def _drop_text_unit(pred: str) -> str:
    """"t = \\sqrt{2h/g}\\ \\text{s}" -> "t = \\sqrt{2h/g}": a unit written as text after an expression (a bare
    letter stays: it may be a variable)."""
    m = _TEXT_UNIT.search(pred)
    return pred[: m.start()] if m and pred[: m.start()].strip(" $") else pred


def _is_zero_form(text: str) -> bool:
    """"a x^2 + b = 0": a sum set to zero, where the right-hand side alone (0) is not the answer."""
    sides = [s.strip() for s in split_top_level(text, "=")]
    return len(sides) == 2 and sides[1] == "0" and len(split_top_level(sides[0].lstrip("+-"), "+")) + len(
        split_top_level(sides[0].lstrip("+-"), "-")) > 2


def _equation_function(text: str, timeout: float | None):
    """``lhs = rhs`` -> sympy ``lhs - rhs`` (first and last side of a chain), or None."""
    sides = [s.strip() for s in split_top_level(text, "=")]
    if len(sides) < 2 or not sides[0] or not sides[-1]:
        return None
    lhs, rhs = _parse_limited(sides[0], timeout), _parse_limited(sides[-1], timeout)
    sympy = _sympy()
    if not (isinstance(lhs, sympy.Expr) and isinstance(rhs, sympy.Expr)):
        return None
    return lhs - rhs


def _is_monomial_factor(ratio) -> bool:
    """A non-zero constant times powers of symbols (m_N, r): the physical quantities we may divide by."""
    sympy = _sympy()
    coeff, factors = ratio.as_coeff_mul()
    if not coeff.is_number or coeff == 0 or not coeff.is_finite:
        return False
    for f in factors:
        base, exp = f.as_base_exp()
        if not (isinstance(base, sympy.Symbol) and exp.is_number) and not (f.is_number and f != 0):
            return False
    return True


def _proportional_symbolic(f, h, simplify: bool) -> bool:
    """``h = c * f`` where c is a non-zero constant or a monomial such as 1/m (dividing by a mass is fine).

    ``cancel`` settles rational cases cheaply; ``simplify`` (slow) is for the rest."""
    sympy = _sympy()
    ratio = sympy.cancel(sympy.together(h / f))
    if _is_monomial_factor(ratio):
        return True
    return simplify and _is_monomial_factor(sympy.simplify(ratio))


def grade_equation(gold: str, pred: str, *, rtol: float = DEFAULT_RTOL,
                   timeout: float | None = DEFAULT_TIMEOUT) -> bool:
    """The predicted equation is the gold one times a non-zero factor (a constant, or powers of symbols such as
    1/m_N); sides may be swapped or moved."""
    pred_core = answer_core(pred)
    golds = answer_alternatives(gold)
    if _same_text(gold, golds, pred_core):
        return True
    h = _equation_function(pred_core, timeout)
    for g in golds:
        f = _equation_function(g, timeout)
        if f is None or h is None:
            two_expressions = f is None and h is None and "=" not in g and "=" not in pred_core
            if two_expressions and _same_expression(g, pred_core, rtol, timeout):
                return True
            continue
        tol = max(rtol, 1e-6) if (_has_float(f) or _has_float(h)) else 1e-6
        if _stage(_proportional_symbolic, f, h, False, timeout=timeout, default=False):
            return True
        numeric = _stage(_proportional, f, h, tol, timeout=timeout, default=None)
        if numeric is False:  # a counter-example to a constant ratio: no need to simplify
            continue
        if numeric is True or _stage(_proportional_symbolic, f, h, True, timeout=timeout, default=False):
            return True
    return False
