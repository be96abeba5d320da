"""The two pipelines behind the CLI: grade a predictions file, or run a model on the exams and grade that.

Both end in ``write_grading``: ``grades.jsonl`` (one row per prediction row, in order), ``summary.json``,
``report.md`` and ``exam_scores.png`` in one run folder. ``run_exams`` adds ``predictions.jsonl`` (a file
``lyceum olympiad grade`` accepts as it is) and ``transcripts/<id>.json``. Interrupted runs resume through
the chat client's sqlite cache: a re-run replays finished calls for free and continues where it stopped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.olympiad.data import Cutoffs, Exam, Problem, load_medals, problem_index
from lyceum.olympiad.scoring import GradeSettings, grade_rows, summarize


def open_run_dir(out: str | Path, config: dict[str, Any]):
    from lyceum.runs import RunDir

    out = Path(out)
    return RunDir.create(out.parent, out.name, config)


def write_grading(run, exams: dict[str, Exam], rows: list[dict], grades, cutoffs: dict[str, Cutoffs], *,
                  usage_by_exam: dict[str, dict[str, int]] | None = None, judge_client=None,
                  extra: dict[str, Any] | None = None, title: str = "HiPhO results") -> dict[str, Any]:
    from lyceum.olympiad.report import write_report
    from lyceum.runs import write_jsonl

    write_jsonl(run.path / "grades.jsonl", [g.row() for g in grades])
    summary = summarize(exams, grades, cutoffs, usage_by_exam)
    if judge_client is not None:
        summary["judge_usage"] = judge_client.usage_summary()
    summary.update(extra or {})
    run.write_json("summary.json", summary)
    notes = []
    if not cutoffs:
        notes.append("No medals.json was found, so no medals are reported.")
    if judge_client is None:
        notes.append("Answer-level grading only (no judge): inequality and open-ended sub-answers are not "
                     "checked and step-level credit is not given.")
    if summary.get("agent") == "minions":
        notes.append("Agent outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["agent_status"].items()))
                     + ".")
    if summary.get("errors"):
        ids = ", ".join(e["id"] for e in summary["errors"][:10])
        notes.append(f"{len(summary['errors'])} problem(s) were refused by the endpoint and score 0 ({ids}); "
                     "see summary.json.")
    write_report(run.path, summary, title=title, notes=notes)
    run.log_metrics({"event": "graded", **summary["overall"]})
    return summary


def make_judge(base_url: str | None, model: str | None, api_key: str | None, *, concurrency: int = 8,
               cache: str | Path | None = None, params: dict[str, Any] | None = None):
    """A ``Judge`` when a judge endpoint or model is given, else None (answer-level grading only)."""
    if not base_url and not model:
        return None, None
    from lyceum.models.chat import ChatClient
    from lyceum.olympiad.judge import Judge

    client = ChatClient(base_url=base_url, model=model, api_key=api_key, concurrency=concurrency, cache=cache)
    return Judge(client, params=params), client


def grade_file(data_dir: str | Path, predictions: str | Path, out: str | Path, *, exams: str | None = None,
               medals: str | Path | None = None, settings: GradeSettings | None = None, judge=None,
               judge_client=None, config: dict[str, Any] | None = None) -> dict[str, Any]:
    from lyceum.olympiad.data import load_hipho
    from lyceum.olympiad.scoring import read_predictions

    loaded = load_hipho(data_dir, exams)
    problems = problem_index(loaded)
    rows = read_predictions(predictions, problems)
    run = open_run_dir(out, config or {})
    grades = grade_rows(rows, problems, settings, judge=judge)
    cutoffs = load_medals(medals if medals else data_dir)
    return write_grading(run, loaded, rows, grades, cutoffs, judge_client=judge_client)


def selfcheck(data_dir: str | Path, settings: GradeSettings | None = None) -> dict[str, Any]:
    """Grade the gold answers as if a model had written them (boxed, in a response): every sub-answer that is
    not judge-only must come out correct. Checks the grader on a user's own copy of HiPhO; returns counts,
    the wall time and the mismatches."""
    import time

    from lyceum.olympiad.data import load_hipho
    from lyceum.olympiad.grade import is_judge_only

    start = time.perf_counter()
    problems = problem_index(load_hipho(data_dir))
    rows = [{"id": p.id, "response": "Solution.\n" + "\n".join(p.answers)} for p in problems.values()]
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
                    mismatches.append({"id": g.id, "index": i, "gold": problems[g.id].answers[i]})
    return {"problems": len(problems), "checked": checked, "judge_only": judge_only, "mismatches": mismatches,
            "seconds": round(seconds, 2)}


# ---------------------------------------------------------------------------------------------------------
# running a model

@dataclass
class RunSettings:
    agent: str = "none"  # "none" | "minions"
    text_only: bool = False
    limit: int | None = None  # first N problems of each exam (smoke tests)
    params: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, ...
    cv: int = 2
    max_rounds: int = 6


def _selected(exams: dict[str, Exam], limit: int | None) -> list[Problem]:
    return [p for e in exams.values() for p in (e.problems[:limit] if limit else e.problems)]


async def _solve_all(client, problems: list[Problem], settings: RunSettings, transcripts: Path) -> list[dict]:
    from lyceum.olympiad.agent import AgentConfig, solve_minions, solve_plain
    from lyceum.olympiad.transcript import Transcript
    from lyceum.runs import ProgressBar

    config = AgentConfig(cv=settings.cv, max_rounds=settings.max_rounds, text_only=settings.text_only,
                         params=settings.params)
    solver = solve_minions if settings.agent == "minions" else solve_plain
    rows: list[dict | None] = [None] * len(problems)
    with ProgressBar(len(problems), desc=f"solving ({settings.agent})") as bar:
        async def one(i: int, problem: Problem) -> None:
            transcript = Transcript(problem.id, images=[p.name for p in problem.images])
            try:
                result = await solver(client, problem, transcript, config)
                row = {"response": result.response, "agent": result.info()}
            except UserError as e:
                if str(e).startswith("cannot reach"):  # the endpoint is gone: stop, the cache keeps what is done
                    raise
                # one problem the endpoint refuses (too long, bad image...) must not sink the whole run
                row = {"response": "", "agent": {"status": "error"}, "error": str(e)}
            finally:
                transcript.save(transcripts)  # also when a call fails: what happened so far is kept
            rows[i] = {"id": problem.id, "exam": problem.exam, **row, "usage": transcript.usage}
            bar.update(1, info=problem.id)

        # the client's semaphore bounds concurrent calls; problems are all started and wait on it
        await asyncio.gather(*(one(i, p) for i, p in enumerate(problems)))
    return [r for r in rows if r is not None]


def _usage_by_exam(rows: list[dict]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        u = out.setdefault(r["exam"], {"calls": 0, "cached_calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
        for k in u:
            u[k] += int(r["usage"].get(k, 0))
    for u in out.values():
        u["total_tokens"] = u["prompt_tokens"] + u["completion_tokens"]
    return out


def run_exams(data_dir: str | Path, out: str | Path, client, *, exams: str | None = "all",
              settings: RunSettings | None = None, grade_settings: GradeSettings | None = None, judge=None,
              judge_client=None, medals: str | Path | None = None, config: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    """Solve every selected problem with ``client``, save predictions and transcripts, then grade them."""
    from lyceum.models.chat import run_sync
    from lyceum.olympiad.data import load_hipho
    from lyceum.runs import write_jsonl

    settings = settings or RunSettings()
    if settings.agent not in ("none", "minions"):
        raise UserError(f"unknown agent '{settings.agent}'; choose none or minions")
    loaded = load_hipho(data_dir, exams)
    problems = _selected(loaded, settings.limit)
    run = open_run_dir(out, config or {})
    run.log(f"solving {len(problems)} problems from {', '.join(loaded)} with agent={settings.agent}")
    rows = run_sync(_solve_all(client, problems, settings, run.path / "transcripts"))
    write_jsonl(run.path / "predictions.jsonl", rows)
    grades = grade_rows(rows, problem_index(loaded), grade_settings, judge=judge)
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["agent"]["status"]] = statuses.get(r["agent"]["status"], 0) + 1
    extra = {"model": client.model, "base_url": client.base_url, "agent": settings.agent,
             "text_only": settings.text_only, "solver_usage": client.usage_summary(), "agent_status": statuses,
             "errors": [{"id": r["id"], "error": r["error"]} for r in rows if r.get("error")]}
    return write_grading(run, loaded, rows, grades, load_medals(medals if medals else data_dir),
                         usage_by_exam=_usage_by_exam(rows), judge_client=judge_client, extra=extra,
                         title=f"HiPhO results: {client.model} ({settings.agent})")
