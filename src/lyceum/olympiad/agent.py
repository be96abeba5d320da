"""The PhysicsMinions agent (``solve_minions``); the other solvers are in ``solvers.py``.

PhysicsMinions is three studios around one loop:

    Visual Studio   figures -> structured JSON description, checked against the images (skipped without images)
    Logic Studio    solve, then self-refine
    Review Studio   physics verifier (units, constants, limits, consistency) and general verifier (logic,
                    algebra, arithmetic), each answering {"pass": bool, "issues": [...]}; they and the
                    revisions see the figures too (unless text-only), not only the Visual Studio's description

    solution = refine(solve())
    repeat up to max_rounds:
        review with both verifiers
        both pass  -> passes += 1; accept once passes == cv (consecutive)
        any fails  -> fails += 1; after cv consecutive failures start a fresh solution,
                      otherwise revise the solution with the issues
    out of rounds -> the last reviewed solution, status "max_rounds"

Every call goes through a ``Transcript`` (saved per problem). Repeated reviews of the same solution and fresh
restarts carry a ``cache_tag`` with the round number, so the chat cache replays a run exactly while never
answering a new review with an old verdict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from lyceum.models.chat import ChatJSONError
from lyceum.olympiad.data import Problem
from lyceum.olympiad.prompts import problem_text, render
from lyceum.olympiad.transcript import Transcript

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"pass": {"type": "boolean"}, "issues": {"type": "array", "items": {"type": "string"}}},
    "required": ["pass"],
}
FIGURE_SCHEMA = {"type": "object", "properties": {"figures": {"type": "array"}}, "required": ["figures"]}


@dataclass
class AgentConfig:
    cv: int = 2  # consecutive passes to accept, consecutive failures to restart
    max_rounds: int = 6  # review rounds before giving up (the last solution is returned)
    visual_checks: int = 2  # describe -> check -> revise cycles for figures
    text_only: bool = False  # never send images (for text-only models)
    params: dict[str, Any] = field(default_factory=dict)  # sampling parameters for every call


@dataclass
class AgentResult:
    response: str
    status: str  # "accepted" | "max_rounds" | "single" (plain solver)
    rounds: int = 0
    restarts: int = 0
    revisions: int = 0
    reviews: list[dict[str, Any]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"status": self.status, "rounds": self.rounds, "restarts": self.restarts,
                "revisions": self.revisions}


def _user(text: str, images: list) -> dict[str, Any]:
    from lyceum.models.chat import user_message

    return user_message(text, images)


# ---------------------------------------------------------------------------------------------------------
# PhysicsMinions

async def visual_studio(client, problem: Problem, transcript: Transcript, config: AgentConfig) -> str | None:
    """A checked structured description of the figures, or None for a text-only problem / model."""
    if not problem.images or config.text_only:
        return None
    images = problem.images
    system = {"role": "system", "content": render("visual_system")}
    ask = render("visual_describe", context=problem.context.strip(), question=problem.question.strip())
    try:
        description = await transcript.chat_json(client, [system, _user(ask, images)], FIGURE_SCHEMA,
                                                 step="visual:describe", site="visual", **config.params)
    except ChatJSONError:  # no usable description: the solver still sees the images themselves
        return None
    for k in range(config.visual_checks):
        text = json.dumps(description, ensure_ascii=False)
        try:
            verdict = await transcript.chat_json(
                client, [system, _user(render("visual_check", description=text), images)], VERDICT_SCHEMA,
                step=f"visual:check{k + 1}", site="visual", **config.params)
            if verdict.get("pass"):
                break
            description = await transcript.chat_json(
                client, [system, _user(render("visual_revise", issues=_issues_text([verdict]), description=text),
                                       images)],
                FIGURE_SCHEMA, step=f"visual:revise{k + 1}", site="visual", **config.params)
        except ChatJSONError:
            break
    return json.dumps(description, ensure_ascii=False, indent=1)


async def logic_solve(client, problem: Problem, transcript: Transcript, config: AgentConfig,
                      figures: str | None, attempt: int) -> str:
    """Logic Studio: a fresh solution, then one self-refinement pass."""
    images = [] if config.text_only else problem.images
    text = problem_text(problem, images_attached=bool(images), figure_description=figures)
    system = {"role": "system", "content": render("logic_system")}
    tag = f"attempt{attempt}"
    draft = await transcript.chat(client, [system, _user(text, images)], step=f"logic:solve{attempt}",
                                  site="logic", cache_tag=tag, **config.params)
    refine = render("logic_refine", solution=draft, n=problem.n_answers)
    return await transcript.chat(client, [system, _user(text, images), {"role": "assistant", "content": draft},
                                          {"role": "user", "content": refine}],
                                 step=f"logic:refine{attempt}", site="logic", cache_tag=tag, **config.params)


async def review_studio(client, problem: Problem, transcript: Transcript, config: AgentConfig, solution: str,
                        figures: str | None, round_no: int) -> list[dict[str, Any]]:
    """Both verifiers on one solution. With a multimodal model they see the figures too (a misread diagram is
    what they are there to catch); the Visual Studio's description rides along."""
    images = [] if config.text_only else problem.images
    stated = problem_text(problem, images_attached=bool(images), figure_description=figures)
    system = {"role": "system", "content": render("review_system")}
    verdicts = []
    for name in ("physics", "general"):
        ask = render(f"review_{name}", problem=stated, solution=solution, n=problem.n_answers)
        try:
            v = await transcript.chat_json(client, [system, _user(ask, images)], VERDICT_SCHEMA,
                                           step=f"review:{name}{round_no}", site="review",
                                           cache_tag=f"round{round_no}", **config.params)
        except ChatJSONError:  # an unreadable verdict is not a pass
            v = {"pass": False, "issues": ["the verifier's reply could not be read; re-check the solution"]}
        verdicts.append({"verifier": name, "pass": bool(v.get("pass")),
                         "issues": [str(i) for i in v.get("issues") or []]})
    return verdicts


def _issues_text(verdicts: list[dict[str, Any]]) -> str:
    lines = [f"- [{v.get('verifier', 'reviewer')}] {issue}" for v in verdicts for issue in v.get("issues") or []]
    return "\n".join(lines) or "- the reviewer rejected the solution without details; re-check every step"


async def solve_minions(client, problem: Problem, transcript: Transcript, config: AgentConfig) -> AgentResult:
    figures = await visual_studio(client, problem, transcript, config)
    attempt = 1
    solution = await logic_solve(client, problem, transcript, config, figures, attempt)
    result = AgentResult(response=solution, status="max_rounds")
    passes = fails = 0
    for round_no in range(1, config.max_rounds + 1):
        result.rounds = round_no
        verdicts = await review_studio(client, problem, transcript, config, solution, figures, round_no)
        result.reviews.append({"round": round_no, "attempt": attempt, "verdicts": verdicts})
        if all(v["pass"] for v in verdicts):
            passes, fails = passes + 1, 0
            if passes >= config.cv:
                result.status = "accepted"
                break
            continue
        passes, fails = 0, fails + 1
        if round_no == config.max_rounds:  # out of rounds: return the last reviewed solution, not an unreviewed one
            break
        if fails >= config.cv:  # this line of solution is stuck: start over
            attempt += 1
            result.restarts += 1
            fails = 0
            solution = await logic_solve(client, problem, transcript, config, figures, attempt)
        else:
            result.revisions += 1
            system = {"role": "system", "content": render("logic_system")}
            ask = render("logic_revise", solution=solution, issues=_issues_text(verdicts), n=problem.n_answers)
            images = [] if config.text_only else problem.images  # the revision sees the diagram too
            stated = problem_text(problem, images_attached=bool(images), figure_description=figures)
            solution = await transcript.chat(client, [system, _user(stated + "\n\n" + ask, images)],
                                             step=f"logic:revise{round_no}", site="logic",
                                             cache_tag=f"round{round_no}", **config.params)
    result.response = solution
    return result
