"""HiPhO's published evaluation (VLMEvalKit's ``hipho.py`` + ``hipho_verifier.py``), reproduced step by step so
that ``--protocol official`` gives numbers comparable with the HiPhO leaderboard, defects included.

    solver   one user message: the figures, then the official prompt (prompts.yaml: solver_en, or solver_zh
             for the PanMechanics exams), filled by str.replace as the official code does; no system message
    extract  the last N ``\\boxed{}`` in order; with fewer boxes than answers the *first* answers are the
             missing ones; no box at all scores 0 (no ``<answer>`` fallback, no answer types, no units)
    rules    per sub-answer, the vendored verifier: normalised string match, sympy at precision 2e-3 (with its
             rounding rule that accepts 13 for 10), pi as math.pi / 3.14 / 180, the text after the last '=',
             math-verify; each under the official wall-clock timeouts
    xverify  with a judge endpoint: every sub-answer the rules reject goes to the official answer-level LLM
             prompt (answer, then the text after the last '=' again); "Correct" or "[Correct]" accepts it
    steps    with a judge endpoint and marking: one call per criterion with the official prompt (question,
             response, criterion and the total-score warning; no reference answers), score from the last
             ``\\boxed{}``. One scheme: if the criteria add up past the problem's points, ask all of them again
             with a retry notice, up to 3 times, then scale them down. Several schemes: each once, scaled down
             when over, the best one counts
    score    max(answer level, step level) per problem

``lyceum``'s own protocol (``scoring.py``) is the default; docs/olympiad.md lists the differences.
"""

from __future__ import annotations

import asyncio
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lyceum.olympiad.data import Problem

PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")
ZH_EXAMS = ("PanMechanics",)  # the official dataset's language map: these exams are asked in Chinese
MAX_STEP_RETRIES = 3


@functools.lru_cache(maxsize=1)
def prompts() -> dict[str, str]:
    return yaml.safe_load(PROMPTS_FILE.read_text(encoding="utf-8"))


def _fill(template: str, **values: Any) -> str:
    """``str.format`` for a template already rendered with {name} slots (one pass: a value is never re-filled)."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0),
                  template)


# ---------------------------------------------------------------------------------------------------------
# solver

def solver_prompt(problem: Problem) -> str:
    """The official prompt for one problem (filled in the official order, with str.replace)."""
    key = "solver_zh" if problem.exam.startswith(ZH_EXAMS) else "solver_en"
    return (prompts()[key].replace("{context}", problem.context or "")
            .replace("{problem}", problem.question or "").replace("{information}", problem.information or ""))


def solver_messages(problem: Problem, images: list) -> list[dict[str, Any]]:
    """One user message: the images first, then the text (VLMEvalKit's order); plain text without images."""
    from lyceum.models.chat import image_data_url

    text = solver_prompt(problem)
    if not images:
        return [{"role": "user", "content": text}]
    parts = [{"type": "image_url", "image_url": {"url": image_data_url(p)}} for p in images]
    return [{"role": "user", "content": parts + [{"type": "text", "text": text}]}]


# ---------------------------------------------------------------------------------------------------------
# answer level

def _verifier():
    try:
        from lyceum.olympiad.official import hipho_verifier
    except ImportError as e:  # sympy, math-verify, pylatexenc
        from lyceum.errors import UserError

        raise UserError(f"--protocol official needs {e.name}: install it with pip install 'lyceum[olympiad]'") from e
    return hipho_verifier


def extract(response: str, n: int) -> list[str]:
    """The official extraction: the last ``n`` boxes, missing ones first (as "")."""
    return _verifier().solution2answer(str(response), num_answers=n)


def gold_answer(gold: str) -> str:
    return _verifier().solution2answer(str(gold), return_origin=True)[0]


@dataclass
class RuleVerdict:
    """One sub-answer through the official rules (``grade`` without its xverify step)."""

    correct: bool
    scored_by: str
    split_answer: str
    split_gt: str
    enable_split: bool


def rules(model_answer: str, gt_answer: str) -> RuleVerdict:
    """``hipho_verifier.grade`` with ``use_xverify=False``, line for line, also returning what xverify needs."""
    hv = _verifier()
    if "\\boxed" in gt_answer:
        gt_answer = hv.extract_boxed_answer(gt_answer)
    score_by = "not_scored"
    correct, pred, gold = hv.grade_answer_mathd(model_answer, gt_answer)
    extracted_pred = pred
    split_answer = model_answer.split("=")[-1]
    split_gt = gt_answer.split("=")[-1]
    enable_split = (split_answer != extracted_pred) or (split_gt != gt_answer)
    if not correct:
        correct, pred, gold = hv.grade_answer_sympy(model_answer, gt_answer)
        if (not correct) and enable_split:
            correct, _, _ = hv.grade_answer_sympy(split_answer, split_gt)
    else:
        score_by = "mathd"
    if not correct:
        correct, pred, gold = hv.grade_answer_math_verify(model_answer, gt_answer)
        try:
            import sympy

            if (isinstance(pred[0], (sympy.core.numbers.Integer, sympy.core.numbers.Float,
                                     sympy.core.numbers.Rational))
                    and isinstance(gold[0], sympy.sets.sets.Interval)):
                correct = 1.0 if gold[0].contains(pred[0]) else 0.0
        except Exception:  # noqa: BLE001, S110 - as the official code
            pass
        if (not correct) and enable_split:
            correct, _, _ = hv.grade_answer_math_verify(split_answer, split_gt)
    elif score_by == "not_scored":
        score_by = "sympy_verify"
    if correct and score_by == "not_scored":
        score_by = "math_verify"
    return RuleVerdict(bool(correct), score_by, split_answer, split_gt, enable_split)


def _safe_rules(model_answer: str, gt_answer: str) -> RuleVerdict:
    """``rules``, with an exception from the official code recorded as "error" (VLMEvalKit then fails the whole
    problem and leaves it out of the totals; we score that sub-answer 0 and say why)."""
    try:
        return rules(model_answer, gt_answer)
    except Exception:  # noqa: BLE001 - whatever the vendored code raises
        return RuleVerdict(False, "error", model_answer, gt_answer, False)


@dataclass
class OfficialAnswers:
    """Answer level of one response: per sub-answer verdicts, how each was decided, and the points."""

    extracted: list[str]
    golds: list[str]
    verdicts: list[RuleVerdict | None]  # None: nothing extracted from the whole response (scores 0)
    correct: list[bool] = field(default_factory=list)
    scored_by: list[str] = field(default_factory=list)

    def points(self, problem: Problem) -> float:
        """``answer_tag_reward_fn_for_r1``'s point: the sum of points of the correct sub-answers (with a
        points list of another length, the official code returns the last sub-answer's 0/1 instead)."""
        scores = [1.0 if c else 0.0 for c in self.correct]
        if len(problem.points) == len(scores):
            return round(sum(s * p for s, p in zip(scores, problem.points)), 2)
        return round(scores[-1] if scores else 0.0, 2)


def answer_rules(problem: Problem, response: str) -> OfficialAnswers:
    """The rule pass for one response (synchronous: the official timeouts need the main thread)."""
    n = problem.n_answers
    extracted = extract(response, n)
    golds = [gold_answer(g) for g in problem.answers]
    if not any(extracted):
        return OfficialAnswers(extracted, golds, [None] * n, [False] * n, ["not_scored"] * n)
    verdicts = [_safe_rules(p, g) for p, g in zip(extracted, golds)]
    return OfficialAnswers(extracted, golds, verdicts, [v.correct for v in verdicts], [v.scored_by for v in verdicts])


async def xverify(client, question: str, given_answer: str, ground_truth: str, *, params: dict | None = None) -> bool:
    """The official answer-level LLM check: "Correct" or "[Correct]" (stripped) accepts; anything else, or a
    failed call, rejects."""
    from lyceum.models.chat import ChatEndpointDown, ChatRequestFailed

    prompt = _fill(prompts()["xverify"], problem=question, given_answer=given_answer, ground_truth=ground_truth)
    try:
        reply = await client.complete([{"role": "user", "content": prompt}], site="xverify", **(params or {}))
    except ChatEndpointDown:
        raise
    except ChatRequestFailed:
        return False
    return reply.text.strip() in ("Correct", "[Correct]")


async def answer_with_xverify(client, problem: Problem, answers: OfficialAnswers, params: dict | None = None) -> None:
    """Every sub-answer the rules rejected goes to xverify (then its text after the last '=', as the official
    ``grade`` does)."""
    for i, v in enumerate(answers.verdicts):
        if v is None or v.correct:
            continue
        ok = await xverify(client, problem.question, answers.extracted[i], answers.golds[i], params=params)
        if not ok and v.enable_split:
            ok = await xverify(client, problem.question, v.split_answer, v.split_gt, params=params)
        if ok:
            answers.correct[i] = True
            answers.scored_by[i] = "xverify"


# ---------------------------------------------------------------------------------------------------------
# step level

def score_from_reply(response: str) -> float:
    """``HiPhODataset._extract_score_from_response``: the last ``\\boxed{}`` number, else the last number."""
    if not response:
        return 0.0
    response = response.strip()
    for pattern in (r"\\boxed\{([^}]+)\}", r"boxed\{([^}]+)\}"):
        for match in reversed(re.findall(pattern, response, re.IGNORECASE)):
            match = match.strip()
            if match:
                try:
                    return round(float(match), 2)
                except ValueError:
                    nums = re.findall(r"\d+\.?\d*", match)
                    if nums:
                        try:
                            return round(float(nums[-1]), 2)
                        except ValueError:
                            continue
    numbers = re.findall(r"[0-9]*\.?[0-9]+", response)
    if numbers:
        try:
            return round(float(numbers[-1]), 2)
        except ValueError:
            pass
    return 0.0


class StepJudgeFailed(Exception):
    """A criterion call failed: the official evaluation of this problem fails (and the problem is left out)."""


def judge_prompt(problem: Problem, response: str, criterion: str, attempt: int) -> str:
    max_total = float(sum(problem.points)) if problem.points else 0.0
    warning = _fill(prompts()["total_score_warning"], max_total_score=max_total, current_attempt=attempt + 1) \
        if max_total > 0 else ""
    retry = prompts()["retry_warning"] if attempt > 0 else ""
    return _fill(prompts()["judge_grading"], question=problem.question, prediction=response.strip(),
                 criterion_description=criterion, total_score_warning=warning, retry_warning=retry)


async def _criterion(client, problem: Problem, response: str, criterion: str, attempt: int,
                     params: dict | None) -> float:
    from lyceum.models.chat import ChatEndpointDown, ChatRequestFailed

    try:
        reply = await client.complete([{"role": "user", "content": judge_prompt(problem, response, criterion, attempt)}],
                                      site="step_judge", cache_tag=f"attempt{attempt}", **(params or {}))
    except ChatEndpointDown:
        raise
    except ChatRequestFailed as e:
        raise StepJudgeFailed(str(e)) from e
    if not reply.text.strip():
        raise StepJudgeFailed("empty judge reply")
    return score_from_reply(reply.text.strip())


def _criteria(scheme: list[str]) -> list[str]:
    return [str(c).strip() for c in scheme if c and str(c).strip()]


@dataclass
class OfficialSteps:
    score: float
    scores: list[float]
    attempts: int = 1
    scaled: bool = False
    best_scheme: int | None = None


async def step_level(client, problem: Problem, response: str, params: dict | None = None) -> OfficialSteps | None:
    """The official fine-grained score; None without marking (the official code scores that 0)."""
    schemes = [s for s in problem.marking if _criteria(s)]
    if not schemes:
        return None
    max_total = float(sum(problem.points)) if problem.points else 0.0
    if len(schemes) > 1:  # each scheme once, scaled down when over, best one counts (ties: the first)
        best = OfficialSteps(0.0, [], best_scheme=None)
        for k, scheme in enumerate(schemes):
            scores = list(await asyncio.gather(*(_criterion(client, problem, response, c, 0, params)
                                                 for c in _criteria(scheme))))
            total, scaled = sum(scores), False
            if total > max_total > 0:
                scores = [s * max_total / total for s in scores]
                total, scaled = max_total, True
            if round(total, 2) > best.score:
                best = OfficialSteps(round(total, 2), scores, scaled=scaled, best_scheme=k)
        return best
    criteria = _criteria(schemes[0])
    for attempt in range(MAX_STEP_RETRIES + 1):
        scores = list(await asyncio.gather(*(_criterion(client, problem, response, c, attempt, params)
                                             for c in criteria)))
        total = sum(scores)
        if total <= max_total or max_total == 0:
            return OfficialSteps(round(total, 2), scores, attempts=attempt + 1, best_scheme=0)
    factor = max_total / total
    scores = [s * factor for s in scores]
    return OfficialSteps(round(sum(scores), 2), scores, attempts=MAX_STEP_RETRIES + 1, scaled=True, best_scheme=0)
