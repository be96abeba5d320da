"""Scorers, registered by name: prediction rows -> one ``ProblemGrade`` per row.

    lyceum    lyceum's rules per answer type (grade.py), CPU-time budgets, "undecided" instead of a silent no;
              with a judge: judge-only sub-answers and step-level marks (judge.py) -- the default
    official  HiPhO's published evaluation (official/protocol.py): its verifier's rules, with a judge its
              answer-level LLM fallback (xverify) and its step-level prompt and over-scoring rule

``make_scorer(name, ...)`` builds one; ``register_scorer`` adds another (a factory taking the same keywords).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lyceum.errors import UserError
from lyceum.olympiad.data import Problem
from lyceum.olympiad.scoring import GradeSettings, ProblemGrade, grade_rows, row_response


class Scorer(Protocol):
    name: str
    judged: bool  # whether a judge endpoint takes part (report notes)

    def score(self, rows: list[dict], problems: dict[str, Problem]) -> list[ProblemGrade]: ...


@dataclass
class LyceumScorer:
    settings: GradeSettings
    judge: Any = None  # a judge.Judge or None
    name: str = "lyceum"

    @property
    def judged(self) -> bool:
        return self.judge is not None

    def score(self, rows: list[dict], problems: dict[str, Problem]) -> list[ProblemGrade]:
        return grade_rows(rows, problems, self.settings, judge=self.judge)


@dataclass
class OfficialScorer:
    client: Any = None  # a ChatClient for xverify and the step-level judge, or None (rules only)
    params: dict | None = None
    name: str = "official"

    @property
    def judged(self) -> bool:
        return self.client is not None

    def score(self, rows: list[dict], problems: dict[str, Problem]) -> list[ProblemGrade]:
        from lyceum.olympiad.official.protocol import answer_rules
        from lyceum.runs import progress

        responses = [row_response(r) for r in rows]
        answers = [answer_rules(problems[str(r["id"])], text)
                   for r, text in progress(list(zip(rows, responses)), desc="official rules")]
        steps: list[Any] = [None] * len(rows)
        errors: list[str | None] = [None] * len(rows)
        if self.client is not None:
            from lyceum.models.chat import run_sync

            run_sync(self._judge_all(rows, problems, responses, answers, steps, errors))
        grades = []
        for row, ans, step, error in zip(rows, answers, steps, errors):
            problem = problems[str(row["id"])]
            answer_score = ans.points(problem)
            step_score = None if self.client is None else (step.score if step is not None else 0.0)
            g = ProblemGrade(id=problem.id, exam=problem.exam, correct=list(ans.correct), answer_score=answer_score,
                             step_score=step_score, score=max(answer_score, step_score or 0.0),
                             full_mark=problem.full_mark, extracted=list(ans.extracted))
            g.scored_by = list(ans.scored_by)
            if step is not None:
                g.step_detail = {"score": step.score, "scores": [round(s, 4) for s in step.scores],
                                 "attempts": step.attempts, "scaled": step.scaled, "best_scheme": step.best_scheme}
            if error:
                g.step_detail = {"error": error}
            grades.append(g)
        return grades

    async def _judge_all(self, rows, problems, responses, answers, steps, errors) -> None:
        from lyceum.olympiad.official.protocol import StepJudgeFailed, answer_with_xverify, step_level
        from lyceum.runs import ProgressBar

        with ProgressBar(len(rows), desc="official judge") as bar:
            async def one(i: int) -> None:
                problem = problems[str(rows[i]["id"])]
                await answer_with_xverify(self.client, problem, answers[i], self.params)
                # the final score is max(answer, step) and steps are capped at full marks: a full answer score
                # cannot change, so its step-level calls are skipped
                if answers[i].points(problem) < problem.full_mark - 1e-9:
                    try:
                        steps[i] = await step_level(self.client, problem, responses[i], self.params)
                    except StepJudgeFailed as e:  # the official run fails this problem; we record why
                        errors[i] = f"step-level judge failed: {e}"
                bar.update(1)

            await asyncio.gather(*(one(i) for i in range(len(rows))))


SCORERS: dict[str, Callable[..., Scorer]] = {
    "lyceum": lambda settings=None, judge=None, judge_client=None, params=None: LyceumScorer(
        settings or GradeSettings(), judge),
    "official": lambda settings=None, judge=None, judge_client=None, params=None: OfficialScorer(
        judge_client, params),
}


def register_scorer(name: str, factory: Callable[..., Scorer]) -> None:
    SCORERS[name] = factory


def make_scorer(name: str, **kw: Any) -> Scorer:
    if name not in SCORERS:
        raise UserError(f"unknown scorer '{name}'; choose one of: {', '.join(sorted(SCORERS))}")
    return SCORERS[name](**kw)
