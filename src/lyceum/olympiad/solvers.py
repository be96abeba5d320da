"""Solvers, registered by name: how a model answers one problem.

    plain     one call: lyceum's system prompt + the problem (prompts.yaml), figures attached
    minions   the PhysicsMinions agent (agent.py): visual / logic / review studios
    official  HiPhO's published solver prompt (official/prompts.yaml), figures first, no system message

A solver is ``async fn(client, problem, transcript, config) -> AgentResult``; every call it makes goes through
the ``Transcript``. ``register_solver`` adds one (``olympiad run --agent NAME`` then finds it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from lyceum.errors import UserError
from lyceum.olympiad.agent import AgentConfig, AgentResult, solve_minions
from lyceum.olympiad.data import Problem
from lyceum.olympiad.prompts import problem_text, render
from lyceum.olympiad.transcript import Transcript

Solver = Callable[..., Awaitable[AgentResult]]


async def solve_plain(client, problem: Problem, transcript: Transcript, config: AgentConfig) -> AgentResult:
    """One call with the problem (and its figures, unless text-only)."""
    from lyceum.models.chat import user_message

    images = [] if config.text_only else problem.images
    messages = [{"role": "system", "content": render("solver_system")},
                user_message(problem_text(problem, images_attached=bool(images)), images)]
    text = await transcript.chat(client, messages, step="solve", site="solver", **config.params)
    return AgentResult(response=text, status="single")


async def solve_official(client, problem: Problem, transcript: Transcript, config: AgentConfig) -> AgentResult:
    """HiPhO's own prompt, as VLMEvalKit sends it."""
    from lyceum.olympiad.official.protocol import solver_messages

    images = [] if config.text_only else problem.images
    text = await transcript.chat(client, solver_messages(problem, images), step="solve", site="solver",
                                 **config.params)
    return AgentResult(response=text, status="single")


SOLVERS: dict[str, Solver] = {"plain": solve_plain, "minions": solve_minions, "official": solve_official}
ALIASES = {"none": "plain"}  # the CLI's historical name for one plain call


def register_solver(name: str, solver: Solver) -> None:
    SOLVERS[name] = solver


def get_solver(name: str) -> Solver:
    name = ALIASES.get(name, name)
    if name not in SOLVERS:
        raise UserError(f"unknown solver '{name}'; choose one of: {', '.join(sorted(SOLVERS))}")
    return SOLVERS[name]
