"""Synthetic addition tasks with a scratchpad in two thinking patterns, and their verifier.

A problem is a sum of ``operands`` numbers of ``digits`` digits each. The prompt states the sum in one of a few
templates; the response works it out in a scratchpad and ends with ``#`` and the answer:

    prompt     "Q: 347+589\\nA: "
    pattern R  "7+9+0=16|4+8+1=13|3+5+1=9|#936"          right to left, one column per step, explicit carry
    pattern L  "3+5=8:8|4+8=12:92|7+9=16:936|#936"       left to right, column sum then running value

Both patterns are correct and about as long; they disagree from the first character on, which is what makes a
pattern-L teacher "incompatible" with a pattern-R student. More digits is harder; more operands (a chained sum)
is a longer horizon. Everything is deterministic under a seed, and the verifier needs only the prompt text and
the response text, so any engine can use it.

    problems = make_problems(100, digits=(1, 4), seed=0)
    prompt, response = render_prompt(problems[0]), render_response(problems[0], "R")
    verify(prompt, response)  # -> 1.0
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from lyceum.errors import UserError

PATTERNS = ("R", "L")

# Prompt templates. They hold no digits, so the operands can always be read back from a prompt.
TEMPLATES = {
    "qa": "Q: {expr}\nA: ",
    "add": "add {words}.\n",
}

# Every character a prompt or response can hold; the lab's char-level tokenizer is built from it, so its ids
# never change (students and teachers built anywhere share one vocabulary).
ALPHABET = "0123456789+=#|:,.?\n abcdefghijklmnopqrstuvwxyzQA"

ANSWER_MARK = "#"


@dataclass(frozen=True)
class Problem:
    """A sum of non-negative integers; ``digits`` is the width of the widest operand."""

    operands: tuple[int, ...]

    @property
    def answer(self) -> int:
        return sum(self.operands)

    @property
    def digits(self) -> int:
        return max(len(str(x)) for x in self.operands)

    def to_dict(self) -> dict:
        return {"operands": list(self.operands), "answer": self.answer, "digits": self.digits}


def _as_range(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, int) else tuple(value)
    if lo < 1 or hi < lo:
        raise UserError(f"{name} must be a positive number or a (low, high) range, got {value!r}")
    return lo, hi


def make_problems(n: int, *, digits: int | tuple[int, int] = (1, 3), operands: int | tuple[int, int] = 2,
                  seed: int = 0) -> list[Problem]:
    """``n`` problems; each draws its digit count and operand count uniformly from the given ranges.

    All operands of one problem have exactly that many digits (no leading zeros), so a problem's difficulty is
    one number. The same arguments always give the same list.
    """
    d_lo, d_hi = _as_range(digits, "digits")
    k_lo, k_hi = _as_range(operands, "operands")
    if k_lo < 2:
        raise UserError("a sum needs at least 2 operands")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        d = rng.randint(d_lo, d_hi)
        k = rng.randint(k_lo, k_hi)
        low = 0 if d == 1 else 10 ** (d - 1)
        out.append(Problem(tuple(rng.randint(low, 10**d - 1) for _ in range(k))))
    return out


def render_prompt(problem: Problem, template: str = "qa") -> str:
    if template not in TEMPLATES:
        raise UserError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    nums = [str(x) for x in problem.operands]
    words = ", ".join(nums[:-1]) + " and " + nums[-1]
    return TEMPLATES[template].format(expr="+".join(nums), words=words)


def _columns(problem: Problem) -> list[list[int]]:
    """Digits per column, most significant first, operands zero-padded to the same width."""
    width = problem.digits
    padded = [str(x).zfill(width) for x in problem.operands]
    return [[int(s[i]) for s in padded] for i in range(width)]


def render_response(problem: Problem, pattern: str = "R") -> str:
    """The scratchpad and answer for ``problem`` in thinking pattern R or L (without any end-of-text token)."""
    cols = _columns(problem)
    steps = []
    if pattern == "R":
        # right to left: column digits + carry in = total; the total's tens part is the next carry
        carry = 0
        for col in reversed(cols):
            total = sum(col) + carry
            steps.append("+".join(map(str, col)) + f"+{carry}={total}")
            carry = total // 10
    elif pattern == "L":
        # left to right: column sum, then running value = previous value * 10 + column sum
        value = 0
        for col in cols:
            s = sum(col)
            value = value * 10 + s
            steps.append("+".join(map(str, col)) + f"={s}:{value}")
    else:
        raise UserError(f"unknown thinking pattern {pattern!r}; choose one of {', '.join(PATTERNS)}")
    return "|".join(steps) + f"|{ANSWER_MARK}{problem.answer}"


def parse_prompt(prompt: str) -> Problem:
    """Read the operands back from a prompt in any template."""
    nums = re.findall(r"\d+", prompt)
    if len(nums) < 2:
        raise UserError(f"this prompt does not state a sum of at least two numbers: {prompt!r}")
    return Problem(tuple(int(x) for x in nums))


def extract_answer(response: str) -> int | None:
    """The integer right after the last ``#``, or None when there is none."""
    at = response.rfind(ANSWER_MARK)
    if at < 0:
        return None
    m = re.match(r"\d+", response[at + 1:])
    return int(m.group()) if m else None


def is_correct(problem: Problem, response: str) -> bool:
    """The final answer is right and nothing but whitespace follows it."""
    at = response.rfind(ANSWER_MARK)
    if at < 0:
        return False
    tail = response[at + 1:].strip()
    return tail.isdigit() and int(tail) == problem.answer


def verify(prompt: str, response: str) -> float:
    """Reward 1.0 for a correct final answer, else 0.0; needs only the two texts."""
    return 1.0 if is_correct(parse_prompt(prompt), response) else 0.0


def detect_pattern(prompt: str, response: str) -> str | None:
    """Which thinking pattern a response starts in ('R' or 'L'), or None: its first step's left-hand side
    (the digits it adds first) is compared with each pattern's for this prompt's problem."""
    problem = parse_prompt(prompt)
    first = response.split("|", 1)[0].split("=", 1)[0]
    for pattern in PATTERNS:
        if first == render_response(problem, pattern).split("=", 1)[0]:
            return pattern
    return None


def examples(problems: list[Problem], *, pattern: str = "R", template: str = "qa") -> list[dict]:
    """Prompt/response/answer rows, the shape the trainers and the prompt files use."""
    return [{"prompt": render_prompt(p, template), "response": render_response(p, pattern),
             "answer": p.answer, "digits": p.digits, "operands": len(p.operands)} for p in problems]
