"""The prompts (``prompts.yaml``, beside this file) and the one function that turns a problem into text."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from lyceum.olympiad.data import Problem

PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")


@functools.lru_cache(maxsize=1)
def prompts() -> dict[str, str]:
    return yaml.safe_load(PROMPTS_FILE.read_text(encoding="utf-8"))


def render(name: str, **fields: Any) -> str:
    return prompts()[name].format(**fields).strip()


def answer_list(problem: Problem) -> str:
    """"(1) Expression  (2) Numerical Value, in km" -- what the grader will read from the boxes."""
    lines = []
    for i, (kind, unit) in enumerate(zip(problem.answer_types, problem.units), 1):
        lines.append(f"({i}) {kind}" + (f", in {unit.strip('$')}" if unit else ""))
    return "\n".join(lines)


def problem_text(problem: Problem, *, images_attached: bool, figure_description: str | None = None) -> str:
    """The problem as the solver sees it: data sheet, context, question, figures note, answer format."""
    information = render("information", information=problem.information) + "\n\n" if problem.information else ""
    figures = ""
    if problem.images:
        key = "figures_attached" if images_attached else "figures_omitted"
        figures = "\n" + render(key, count=len(problem.images)) + "\n"
    if figure_description:
        figures += "\n" + render("figure_description", description=figure_description) + "\n"
    return render("problem", information=information, context=problem.context.strip(),
                  question=problem.question.strip(), figures=figures, n=problem.n_answers,
                  answer_list=answer_list(problem))


def reference_answers(problem: Problem) -> str:
    from lyceum.olympiad.extract import strip_boxed

    golds = [strip_boxed(a) for a in problem.answers if a.strip()]
    return "; ".join(golds) if golds else "(not given; rely on the criterion)"
