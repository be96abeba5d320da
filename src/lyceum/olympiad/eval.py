"""An olympiad evaluation is a dataset, a solver and scorers, each swappable (Inspect AI's shape).

    from lyceum.olympiad.eval import Dataset, evaluate
    from lyceum.olympiad.scorers import make_scorer
    from lyceum.olympiad.solvers import get_solver

    data = Dataset.load("data/hipho", exams="IPhO_2025")
    evaluate(data, get_solver("minions"), [make_scorer("lyceum")], "runs/ipho", client=client)    # solve + grade
    evaluate(data, None, [make_scorer("official")], "runs/graded", predictions=rows)              # grade only

One run folder holds ``predictions.jsonl`` (a file ``olympiad grade`` accepts as it is), ``transcripts/<id>.json``,
``grades.jsonl`` (the first scorer's; ``grades.<name>.jsonl`` for the others), ``summary.json``, ``report.md``,
``exam_scores.png`` and the chat caches; files with prompts or replies are 0600 in a 0700 folder.

Interrupted runs resume through the chat client's sqlite cache: a rerun replays finished calls for free and
asks only what was never answered. A problem whose request fails on every attempt becomes an error row (scored
0, listed in summary.json, asked again on the next run) and the run goes on; an endpoint that is down, or a long
streak of failed problems in a row, stops the run with one sentence.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.olympiad.data import Cutoffs, Exam, Problem, load_hipho, load_medals, problem_index
from lyceum.olympiad.private import private_dir, write_private_json, write_private_jsonl
from lyceum.olympiad.scoring import ProblemGrade, summarize

MAX_FAILURE_STREAK = 8  # this many problems failing one after another means the endpoint is unusable


@dataclass
class Dataset:
    """The exams (for totals and medals), the problems to solve, and the medal cut-offs."""

    exams: dict[str, Exam]
    problems: list[Problem]
    cutoffs: dict[str, Cutoffs] = field(default_factory=dict)

    @classmethod
    def load(cls, data_dir: str | Path, exams: str | list[str] | None = "all", *, limit: int | None = None,
             medals: str | Path | None = None) -> Dataset:
        loaded = load_hipho(data_dir, exams)
        problems = [p for e in loaded.values() for p in (e.problems[:limit] if limit else e.problems)]
        return cls(loaded, problems, load_medals(medals if medals else data_dir))

    @property
    def index(self) -> dict[str, Problem]:
        return problem_index(self.exams)


@dataclass
class SolveSettings:
    text_only: bool = False
    params: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, ...
    cv: int = 2  # minions: consecutive passes to accept / failures to restart
    max_rounds: int = 6  # minions: review rounds
    max_failure_streak: int = MAX_FAILURE_STREAK


# ---------------------------------------------------------------------------------------------------------
# solving

async def solve_all(client, problems: list[Problem], solver, settings: SolveSettings, transcripts: Path,
                    desc: str = "solving") -> list[dict]:
    """Every problem through ``solver``; a row per problem, in order. Failed problems become error rows."""
    from lyceum.models.chat import ChatEndpointDown, ChatRequestFailed
    from lyceum.olympiad.agent import AgentConfig
    from lyceum.olympiad.transcript import Transcript
    from lyceum.runs import ProgressBar

    config = AgentConfig(cv=settings.cv, max_rounds=settings.max_rounds, text_only=settings.text_only,
                         params=settings.params)
    rows: list[dict | None] = [None] * len(problems)
    streak = {"failed": 0}
    with ProgressBar(len(problems), desc=desc) as bar:
        async def one(i: int, problem: Problem) -> None:
            transcript = Transcript(problem.id, images=[p.name for p in problem.images])
            try:
                result = await solver(client, problem, transcript, config)
                row = {"response": result.response, "agent": result.info()}
                streak["failed"] = 0
            except ChatEndpointDown:  # the endpoint is gone: stop; the cache keeps what is done
                raise
            except ChatRequestFailed as e:  # this problem's request failed on every attempt: record, go on
                row = {"response": "", "agent": {"status": "error"}, "error": str(e)}
                streak["failed"] += 1
                if streak["failed"] >= settings.max_failure_streak:
                    raise UserError(f"stopped: {streak['failed']} problems in a row failed on every attempt "
                                    f"(the last: {e}); finished answers are cached, rerun to resume") from e
            except UserError as e:  # a problem the endpoint refuses (too long, bad image...)
                row = {"response": "", "agent": {"status": "error"}, "error": str(e)}
            finally:
                transcript.save(transcripts)  # also when a call fails: what happened so far is kept
            rows[i] = {"id": problem.id, "exam": problem.exam, **row, "usage": transcript.usage}
            bar.update(1, info=problem.id)

        # the client's semaphore bounds concurrent calls; problems are all started and wait on it
        tasks = [asyncio.ensure_future(one(i, p)) for i, p in enumerate(problems)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:  # a stop (endpoint down, failure streak) cancels the rest
                t.cancel()
    return [r for r in rows if r is not None]


def usage_by_exam(rows: list[dict]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        u = out.setdefault(r["exam"], {"calls": 0, "cached_calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
        for k in u:
            u[k] += int(r.get("usage", {}).get(k, 0))
    for u in out.values():
        u["total_tokens"] = u["prompt_tokens"] + u["completion_tokens"]
    return out


# ---------------------------------------------------------------------------------------------------------
# the evaluation

def evaluate(dataset: Dataset, solver, scorers: list, out: str | Path, *, client=None,
             predictions: list[dict] | None = None, solver_name: str = "", settings: SolveSettings | None = None,
             judge_client=None, config: dict[str, Any] | None = None, bad_lines: list[dict] | None = None,
             notes: list[str] | None = None, title: str | None = None) -> dict[str, Any]:
    """Solve ``dataset`` with ``solver`` (or take ``predictions``), score with every scorer, write the run."""
    from lyceum.models.chat import run_sync
    from lyceum.runs import RunDir

    if not scorers:
        raise UserError("an evaluation needs at least one scorer")
    if (solver is None) == (predictions is None):
        raise UserError("give either a solver (and a client) or predictions to grade")
    run = RunDir.open(out, config or {})
    private_dir(run.path)
    extra: dict[str, Any] = {}
    if solver is not None:
        if client is None:
            raise UserError("a solver needs a chat client")
        settings = settings or SolveSettings()
        run.log(f"solving {len(dataset.problems)} problems from {', '.join(dataset.exams)} with {solver_name}")
        rows = run_sync(solve_all(client, dataset.problems, solver, settings, run.path / "transcripts",
                                  desc=f"solving ({solver_name})"))
        write_private_jsonl(run.path / "predictions.jsonl", rows)
        statuses: dict[str, int] = {}
        for r in rows:
            statuses[r["agent"]["status"]] = statuses.get(r["agent"]["status"], 0) + 1
        extra = {"model": client.model, "base_url": client.base_url, "agent": solver_name,
                 "text_only": settings.text_only, "solver_usage": client.usage_summary(), "agent_status": statuses,
                 "errors": [{"id": r["id"], "error": r["error"]} for r in rows if r.get("error")]}
    else:
        rows = predictions or []
    index = dataset.index
    primary = scorers[0]
    grades = primary.score(rows, index)
    write_private_jsonl(run.path / "grades.jsonl", [g.row() for g in grades])
    summary = summarize(dataset.exams, grades, dataset.cutoffs, usage_by_exam(rows) if solver is not None else None)
    summary["protocol"] = primary.name
    for other in scorers[1:]:
        other_grades = other.score(rows, index)
        write_private_jsonl(run.path / f"grades.{other.name}.jsonl", [g.row() for g in other_grades])
        s = summarize(dataset.exams, other_grades, dataset.cutoffs)
        summary.setdefault("other_protocols", {})[other.name] = {"overall": s["overall"], "medals": s["medals"],
                                                                 "exams": s["exams"]}
    if judge_client is not None:
        summary["judge_usage"] = judge_client.usage_summary()
    summary.update(extra)
    if bad_lines:
        write_private_jsonl(run.path / "errors.jsonl", [{"line": b["line"], "reason": b["reason"]} for b in bad_lines])
        summary["bad_lines"] = len(bad_lines)
    write_private_json(run.path / "summary.json", summary)
    write_grading_report(run.path, summary, grades, judged=any(s.judged for s in scorers), notes=notes,
                         title=title or _title(summary))
    run.log_metrics({"event": "graded", **summary["overall"]})
    return summary


def _title(summary: dict[str, Any]) -> str:
    if summary.get("model"):
        return f"HiPhO results: {summary['model']} ({summary['agent']}, {summary['protocol']} protocol)"
    return f"HiPhO results ({summary['protocol']} protocol)"


def write_grading_report(path: Path, summary: dict[str, Any], grades: list[ProblemGrade], *, judged: bool,
                         notes: list[str] | None = None, title: str = "HiPhO results") -> None:
    from lyceum.olympiad.report import write_report

    notes = list(notes or [])
    if summary["exams"] and all(e["cutoffs"] is None for e in summary["exams"].values()):
        notes.append("No medal cut-offs (medals.json) were found for these exams, so no medals are reported.")
    if not judged:
        notes.append("Answer-level grading only (no judge): step-level credit is not given"
                     + (" and inequality and open-ended sub-answers are not checked."
                        if summary["protocol"] == "lyceum" else "; no LLM fallback on rejected answers."))
    if summary["overall"].get("undecided"):
        notes.append(f"{summary['overall']['undecided']} sub-answer(s) are **undecided**: their check ran out of "
                     "its CPU budget twice. They score 0 here; rerun with a larger --check-timeout to decide them.")
    if summary.get("agent") == "minions":
        notes.append("Agent outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["agent_status"].items()))
                     + ".")
    if summary.get("errors"):
        ids = ", ".join(e["id"] for e in summary["errors"][:10])
        notes.append(f"{len(summary['errors'])} problem(s) were refused by the endpoint and score 0 ({ids}); "
                     "see summary.json. A rerun with the same --out asks them again.")
    if summary.get("bad_lines"):
        notes.append(f"{summary['bad_lines']} line(s) of the predictions file could not be graded; see errors.jsonl.")
    write_report(path, summary, title=title, notes=notes)


# ---------------------------------------------------------------------------------------------------------
# the grader on the gold answers

def gold_predictions(data_dir: str | Path) -> list[dict[str, str]]:
    """The gold answers as a model's responses (one row per problem, ``{"id", "response"}``): what selfcheck
    grades, and a predictions file to try ``olympiad grade`` on."""
    problems = problem_index(load_hipho(data_dir))
    return [{"id": p.id, "response": "Solution.\n" + "\n".join(p.answers)} for p in problems.values()]


def selfcheck(data_dir: str | Path, settings=None) -> dict[str, Any]:
    """Grade the gold answers as if a model had written them (boxed, in a response): every sub-answer that is
    not judge-only must come out correct. Checks the grader on a user's own copy of HiPhO; returns counts,
    the wall time, the mean time per check and the mismatches."""
    import time

    from lyceum.olympiad.grade import is_judge_only
    from lyceum.olympiad.scoring import grade_rows

    problems = problem_index(load_hipho(data_dir))
    rows = gold_predictions(data_dir)
    start = time.perf_counter()
    grades = grade_rows(rows, problems, settings)
    seconds = time.perf_counter() - start
    checked = judge_only = 0
    mismatches = []
    for g in grades:
        for i, c in enumerate(g.correct):
            if is_judge_only(problems[g.id].answer_types[i]):
                judge_only += 1
            else:
                checked += 1
                if c is not True:
                    mismatches.append({"id": g.id, "index": i, "gold": problems[g.id].answers[i], "verdict": c})
    return {"problems": len(problems), "checked": checked, "judge_only": judge_only, "mismatches": mismatches,
            "seconds": round(seconds, 2), "ms_per_check": round(1000 * seconds / max(1, checked), 2)}

