"""The scorer: prediction rows -> per-problem grades -> exam scores, medals and breakdowns.

    rows = read_predictions("preds.jsonl", problems)     # {"id", "response"} or {"id", "answers": [...]}
    grades = grade_rows(rows, problems)                  # answer level (rules), optionally + judge
    summary = summarize(exams, grades, load_medals(data_dir))

Per problem: answer_score = points of the sub-answers judged correct; step_score = the judge's best marking
scheme (None without a judge or marking); score = max(answer_score, step_score). An exam scores the sum over
its problems; several rows for one problem (several samples) are averaged. The judge is only asked about
problems that did not already get full marks at answer level, since the max cannot improve on that.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.olympiad.data import Cutoffs, Exam, Problem
from lyceum.olympiad.extract import extract_answers
from lyceum.olympiad.grade import DEFAULT_RTOL, DEFAULT_TIMEOUT, UNDECIDED, answer_verdict, is_judge_only
from lyceum.olympiad.medals import medal


@dataclass
class GradeSettings:
    rtol: float = DEFAULT_RTOL
    timeout: float = DEFAULT_TIMEOUT  # CPU seconds per symbolic stage of one check (retried once with 4x)
    units: bool = False  # convert units with pint when a response carries one (HiPhO: off)
    workers: int = 1  # processes for answer-level checks


@dataclass
class ProblemGrade:
    id: str
    exam: str
    # per sub-answer: True / False; None = judge-only and no judge (or nothing to compare); "undecided" = the
    # check ran out of its CPU budget twice (no points, counted separately, never a silent False)
    correct: list[bool | str | None]
    answer_score: float
    step_score: float | None
    score: float
    full_mark: float
    extracted: list[str] = field(default_factory=list)
    step_detail: dict[str, Any] | None = None
    scored_by: list[str] | None = None  # official protocol: which rule (or xverify) decided each sub-answer

    def row(self) -> dict[str, Any]:
        out = {"id": self.id, "correct": self.correct, "answer_score": round(self.answer_score, 6),
               "step_score": None if self.step_score is None else round(self.step_score, 6),
               "score": round(self.score, 6), "exam": self.exam, "full_mark": round(self.full_mark, 6),
               "extracted": self.extracted}
        if self.step_detail is not None:
            out["step_detail"] = self.step_detail
        if self.scored_by is not None:
            out["scored_by"] = self.scored_by
        return out


# ---------------------------------------------------------------------------------------------------------
# reading predictions

def row_problem(row: Any, problems: dict[str, Problem]) -> str | None:
    """Why a prediction row cannot be graded (one clause), or None when it can."""
    if not isinstance(row, dict):
        return "is not a JSON object"
    pid = row.get("id")
    if pid is None:
        return "has no 'id'"
    if str(pid) not in problems:
        return f"unknown problem id {pid!r} (not in the loaded exams)"
    answers = row.get("answers")
    if answers is not None:
        if not isinstance(answers, list) or not all(isinstance(a, (str, int, float)) for a in answers):
            return "'answers' must be a list of strings"
        n = problems[str(pid)].n_answers
        if len(answers) != n:
            return f"problem {pid} has {n} sub-answer(s) but the row gives {len(answers)}"
    elif not isinstance(row.get("response"), str):
        return "needs a 'response' string or an 'answers' list"
    return None


def _where(source: str, line: int, reason: str) -> str:
    """"p.jsonl row 3 has no 'id'", "p.jsonl row 4: unknown problem id 'Z_9' ..." (a reason that is a verb
    phrase reads on from the row)."""
    sep = " " if reason.startswith(("has ", "needs ", "is ")) else ": "
    return f"{source} row {line}{sep}{reason}"


def validate_predictions(rows: list[Any], problems: dict[str, Problem], source: str = "predictions") -> list[dict]:
    """Check every row names a known problem and carries a response or an answers list (raises on the first)."""
    for i, row in enumerate(rows, 1):
        reason = row_problem(row, problems)
        if reason is not None:
            raise UserError(_where(source, i, reason))
    return rows


@dataclass
class Predictions:
    """The gradable rows of a predictions file, every line that is not (line number and reason), and the ids
    that appear more than once (graded as samples of one problem)."""

    rows: list[dict]
    bad: list[dict[str, Any]]
    duplicates: list[str]

    def bad_message(self) -> str:
        return "; ".join(b["message"] for b in self.bad)


def load_predictions(path: str | Path, problems: dict[str, Problem]) -> Predictions:
    """Read a predictions JSONL file line by line: one bad line does not cost the other rows their grades."""
    import json

    path = Path(path)
    if not path.is_file():
        raise UserError(f"predictions file not found: {path}")
    rows, bad, seen, dups = [], [], set(), []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                bad.append({"line": line_no, "reason": f"not valid JSON ({e.msg})",
                            "message": f"{path}:{line_no} is not valid JSON ({e.msg})"})
                continue
            reason = row_problem(row, problems)
            if reason is not None:
                bad.append({"line": line_no, "reason": reason, "message": _where(str(path), line_no, reason)})
                continue
            pid = str(row["id"])
            if pid in seen and pid not in dups:
                dups.append(pid)
            seen.add(pid)
            rows.append(row)
    if not rows and not bad:
        raise UserError(f"{path} has no prediction rows")
    return Predictions(rows, bad, dups)


def read_predictions(path: str | Path, problems: dict[str, Problem]) -> list[dict]:
    """Every row of a predictions file; any bad line is a UserError listing all of them."""
    loaded = load_predictions(path, problems)
    if loaded.bad:
        raise UserError(loaded.bad_message())
    return loaded.rows


def row_answers(row: dict, problem: Problem) -> list[str]:
    if row.get("answers") is not None:
        return [str(a) for a in row["answers"]]
    return extract_answers(row.get("response") or "", problem.n_answers)


def row_response(row: dict) -> str:
    if isinstance(row.get("response"), str):
        return row["response"]
    return "\n".join(f"\\boxed{{{a}}}" for a in row.get("answers") or [])


# ---------------------------------------------------------------------------------------------------------
# answer level

def answer_level(problem: Problem, answers: list[str], settings: GradeSettings) -> list[bool | str | None]:
    """Rule checks per sub-answer; None for judge-only types (the judge may fill them in)."""
    out: list[bool | str | None] = []
    for gold, pred, kind, unit in zip(problem.answers, answers, problem.answer_types, problem.units):
        if is_judge_only(kind):
            out.append(None)
        else:
            out.append(answer_verdict(gold, pred, kind, unit if settings.units else None,
                                      rtol=settings.rtol, timeout=settings.timeout))
    return out


def _answer_job(args) -> list[bool | None]:
    problem, answers, settings = args
    return answer_level(problem, answers, settings)


def _answer_levels(jobs: list[tuple[Problem, list[str], GradeSettings]], workers: int) -> list[list[bool | None]]:
    from lyceum.runs import progress

    if workers <= 1 or len(jobs) < 16:
        return [_answer_job(j) for j in progress(jobs, desc="grading answers")]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # forked workers: each runs its checks in its own main thread, where the SIGALRM time limit works
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(progress(pool.map(_answer_job, jobs, chunksize=4), total=len(jobs), desc="grading answers"))


def _points(problem: Problem, correct: list[bool | None]) -> float:
    return float(sum(p for p, c in zip(problem.points, correct) if c is True))


def grade_rows(rows: list[dict], problems: dict[str, Problem], settings: GradeSettings | None = None,
               judge=None) -> list[ProblemGrade]:
    """Grade prediction rows (validated) in order; with a ``Judge``, add step-level and judge-only checks."""
    from lyceum.olympiad.grade import warm_up

    settings = settings or GradeSettings()
    if any(not is_judge_only(k) for r in rows for k in problems[str(r["id"])].answer_types):
        warm_up()  # outside any budget, and before forking workers, which then start warm
    jobs = [(problems[str(r["id"])], row_answers(r, problems[str(r["id"])]), settings) for r in rows]
    correct = _answer_levels(jobs, settings.workers)
    grades = []
    for (problem, answers, _), corr in zip(jobs, correct):
        answer_score = _points(problem, corr)
        grades.append(ProblemGrade(id=problem.id, exam=problem.exam, correct=corr, answer_score=answer_score,
                                   step_score=None, score=answer_score, full_mark=problem.full_mark,
                                   extracted=answers))
    if judge is not None:
        from lyceum.models.chat import run_sync

        run_sync(_judge_all(judge, rows, jobs, grades))
    return grades


async def _judge_all(judge, rows, jobs, grades: list[ProblemGrade]) -> None:
    from lyceum.runs import ProgressBar

    with ProgressBar(len(grades), desc="judging") as bar:
        async def one(row, job, grade: ProblemGrade):
            problem, answers, _ = job
            for i, c in enumerate(grade.correct):
                if c is None and is_judge_only(problem.answer_types[i]):
                    grade.correct[i] = await judge.answer_equivalent(problem, i, answers[i])
            grade.answer_score = _points(problem, grade.correct)
            if grade.answer_score < problem.full_mark - 1e-9:
                step = await judge.step_level(problem, row_response(row))
                if step is not None:
                    grade.step_score = step.score
                    grade.step_detail = step.to_json()
            grade.score = max(grade.answer_score, grade.step_score or 0.0)
            bar.update(1)

        await asyncio.gather(*(one(r, j, g) for r, j, g in zip(rows, jobs, grades)))


# ---------------------------------------------------------------------------------------------------------
# summary

def _per_problem_scores(grades: list[ProblemGrade]) -> dict[str, float]:
    """Mean score per problem id (several samples of one problem are averaged)."""
    sums: dict[str, list[float]] = defaultdict(list)
    for g in grades:
        sums[g.id].append(g.score)
    return {pid: sum(v) / len(v) for pid, v in sums.items()}


def _bucket(rows: list[tuple[str, float, float, bool]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, score, full, graded in rows:
        b = out.setdefault(key, {"score": 0.0, "full_mark": 0.0, "problems": 0, "graded": 0})
        b["full_mark"] += full
        b["problems"] += 1
        if graded:
            b["score"] += score
            b["graded"] += 1
    for b in out.values():
        b["score"] = round(b["score"], 4)
        b["full_mark"] = round(b["full_mark"], 4)
        b["percent"] = round(100 * b["score"] / b["full_mark"], 2) if b["full_mark"] else 0.0
    return dict(sorted(out.items()))


def summarize(exams: dict[str, Exam], grades: list[ProblemGrade], cutoffs: dict[str, Cutoffs],
              usage_by_exam: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """Exam scores with medals, per-field / per-modality / per-answer-type breakdowns, token use."""
    per_problem = _per_problem_scores(grades)
    exams_out, fields, modalities = {}, [], []
    for name, exam in exams.items():
        graded = [p for p in exam.problems if p.id in per_problem]
        if not graded:
            continue
        score = sum(per_problem[p.id] for p in graded)
        complete = len(graded) == len(exam.problems)
        cut = cutoffs.get(name)
        exams_out[name] = {
            "score": round(score, 4), "full_mark": round(exam.full_mark, 4),
            "percent": round(100 * score / exam.full_mark, 2) if exam.full_mark else 0.0,
            "problems": len(exam.problems), "graded": len(graded), "complete": complete,
            # a medal needs the whole exam: a partial run would be compared with full-exam cut-offs
            "medal": medal(score, cut) if complete else None,
            "cutoffs": asdict(cut) if cut else None,
        }
        if usage_by_exam and name in usage_by_exam:
            exams_out[name]["tokens"] = usage_by_exam[name]
        for p in exam.problems:
            fields.append((p.field, per_problem.get(p.id, 0.0), p.full_mark, p.id in per_problem))
            modalities.append((p.modality, per_problem.get(p.id, 0.0), p.full_mark, p.id in per_problem))
    index = {p.id: p for exam in exams.values() for p in exam.problems}
    types: dict[str, dict[str, int]] = {}
    for g in grades:
        kinds = index[g.id].answer_types if g.id in index else []
        for kind, c in zip(kinds, g.correct):
            t = types.setdefault(kind, {"correct": 0, "checked": 0, "unchecked": 0})
            if c is None:
                t["unchecked"] += 1
            elif c == UNDECIDED:  # the key appears only when it happened
                t["undecided"] = t.get("undecided", 0) + 1
            else:
                t["checked"] += 1
                t["correct"] += int(c is True)
    for t in types.values():
        t["accuracy"] = round(t["correct"] / t["checked"], 4) if t["checked"] else None
    medals = {"gold": 0, "silver": 0, "bronze": 0, "none": 0}
    for e in exams_out.values():
        if e["medal"] in medals:
            medals[e["medal"]] += 1
    total_score = sum(e["score"] for e in exams_out.values())
    total_full = sum(e["full_mark"] for e in exams_out.values())
    return {
        "overall": {"score": round(total_score, 4), "full_mark": round(total_full, 4),
                    "percent": round(100 * total_score / total_full, 2) if total_full else 0.0,
                    "rows": len(grades), "problems_graded": len(per_problem),
                    "step_scored": sum(g.step_score is not None for g in grades),
                    "undecided": sum(c == UNDECIDED for g in grades for c in g.correct)},
        "medals": medals,
        "exams": exams_out,
        "fields": _bucket(fields),
        "modalities": _bucket(modalities),
        "answer_types": dict(sorted(types.items())),
    }


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))
