"""Step-level grading with an LLM judge, as in HiPhO: one call per marking criterion.

A problem's marking may have several alternative schemes (different valid solution paths). Every criterion
of every scheme is scored in its own call; the judge must reply with a JSON object ``{"score": x}``. A scheme
scores the sum of its criteria, each capped at the points the criterion states ("Award 0.4 pt if ...");
the step-level score is the best scheme, capped at the problem's points. A reply that is not such JSON is
asked again once (by the chat client); if it is still malformed the criterion scores 0 and is counted as an
error in the grades, so a flaky judge is visible instead of silently generous.

The same judge decides judge-only sub-answers (inequalities, open-ended answers) at answer level:
``{"equivalent": true|false}``.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

from lyceum.errors import UserError
from lyceum.olympiad.data import Problem, criterion_points
from lyceum.olympiad.extract import strip_boxed
from lyceum.olympiad.prompts import reference_answers, render

SCORE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "number"}, "reason": {"type": "string"}},
    "required": ["score"],
}
EQUIVALENT_SCHEMA = {
    "type": "object",
    "properties": {"equivalent": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["equivalent"],
}
MAX_RESPONSE_CHARS = 60_000  # the judge sees the tail of very long responses, where the solution ends


@dataclass
class CriterionScore:
    criterion: str
    max_points: float | None
    score: float
    reason: str = ""
    error: str | None = None


@dataclass
class StepGrade:
    """The judge's verdict on one response: per-scheme criterion scores, the best scheme and the capped score."""

    score: float
    best_scheme: int | None
    schemes: list[list[CriterionScore]] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(c.error is not None for s in self.schemes for c in s)

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "best_scheme": self.best_scheme, "errors": self.errors,
                "schemes": [[{"max": c.max_points, "score": c.score, **({"error": c.error} if c.error else {})}
                             for c in s] for s in self.schemes]}


def capped(score: Any, max_points: float | None) -> float:
    """A judge's score as points: finite, at least 0, at most the criterion's points."""
    x = float(score)
    if not math.isfinite(x):
        raise ValueError(f"score {score!r} is not a finite number")
    x = max(0.0, x)
    return min(x, max_points) if max_points is not None else x


def _clip(response: str) -> str:
    return response if len(response) <= MAX_RESPONSE_CHARS else "[...]\n" + response[-MAX_RESPONSE_CHARS:]


class Judge:
    """An LLM judge over any OpenAI-compatible endpoint (a ``ChatClient``)."""

    def __init__(self, client, *, site: str = "judge", params: dict[str, Any] | None = None):
        self.client = client
        self.site = site
        self.params = dict(params or {})

    async def score_criterion(self, problem: Problem, response: str, criterion: str) -> CriterionScore:
        max_points = criterion_points(criterion)
        limit = max_points if max_points is not None else problem.full_mark
        messages = [
            {"role": "system", "content": render("judge_system")},
            {"role": "user", "content": render(
                "judge_criterion", context=problem.context.strip(), question=problem.question.strip(),
                reference=reference_answers(problem), criterion=criterion.strip(), max_points=f"{limit:g}",
                response=_clip(response))},
        ]
        try:
            reply = await self.client.complete_json(messages, SCORE_SCHEMA, site=self.site, **self.params)
            return CriterionScore(criterion, max_points, capped(reply["score"], limit), str(reply.get("reason", "")))
        except (UserError, ValueError) as e:
            if not _is_bad_reply(e):
                raise
            return CriterionScore(criterion, max_points, 0.0, error=str(e))

    async def step_level(self, problem: Problem, response: str) -> StepGrade | None:
        """Score every criterion of every scheme (concurrently); None when the problem has no marking."""
        if not problem.marking:
            return None
        calls = [self.score_criterion(problem, response, c) for scheme in problem.marking for c in scheme]
        flat = await asyncio.gather(*calls)
        schemes, i = [], 0
        for scheme in problem.marking:
            schemes.append(list(flat[i : i + len(scheme)]))
            i += len(scheme)
        totals = [sum(c.score for c in s) for s in schemes]
        best = max(range(len(totals)), key=lambda k: totals[k])
        return StepGrade(score=min(totals[best], problem.full_mark), best_scheme=best, schemes=schemes)

    async def answer_equivalent(self, problem: Problem, index: int, prediction: str) -> bool | None:
        """Answer-level verdict for a judge-only sub-answer; None when there is no reference to compare with."""
        reference = strip_boxed(problem.answers[index])
        if not reference.strip() or not prediction.strip():
            return None if not reference.strip() else False
        messages = [{"role": "user", "content": render(
            "judge_answer", question=problem.question.strip(), reference=reference, prediction=prediction)}]
        try:
            reply = await self.client.complete_json(messages, EQUIVALENT_SCHEMA, site=self.site, **self.params)
        except UserError as e:
            if not _is_bad_reply(e):
                raise
            return False
        return bool(reply["equivalent"])


def _is_bad_reply(e: Exception) -> bool:
    """A malformed judge reply, or one request that failed on every attempt (scored 0, the error recorded), as
    opposed to an endpoint that is down (which stops the run)."""
    from lyceum.models.chat import ChatEndpointDown, ChatJSONError, ChatRequestFailed

    if isinstance(e, ChatEndpointDown):
        return False
    return isinstance(e, (ChatJSONError, ChatRequestFailed, ValueError))
