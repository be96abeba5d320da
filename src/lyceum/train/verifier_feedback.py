"""Verifier rewards: the feedback that turns the on-policy engine into an RL trainer.

A verifier looks at one prompt row and one response text and says which sub-answers are right. The reward of
a rollout is the mean over its sub-answers (P1-VL: partial credit for multi-part problems), in [0, 1].

    verifier = get_verifier("lab")                  # lab addition tasks
    verifier = get_verifier("olympiad")             # HiPhO-style rows, graded by lyceum.olympiad.grade
    reward(verifier, row, response)                 # -> 0.0 .. 1.0
    register_verifier("mine", fn)                   # fn(row, response) -> float | list of verdicts

A verifier returns a float (one answer) or a list of floats/bools (one per sub-answer).
The olympiad verifier grades HiPhO-style rows: ``{"prompt": ..., "answers": [...], "answer_types": [...]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import fmean

from lyceum.errors import UserError

Verifier = Callable[[dict, str], "float | bool | Sequence[float | bool]"]


def reward(verifier: Verifier, row: dict, response: str) -> float:
    """The mean over sub-answers of the verifier's verdicts for ``response`` to ``row``."""
    verdict = verifier(row, response)
    if isinstance(verdict, (int, float, bool)):
        return float(verdict)
    verdict = list(verdict)
    return fmean(float(v) for v in verdict) if verdict else 0.0


def rewards(verifier: Verifier, rows: Sequence[dict], responses: Sequence[str]) -> list[float]:
    return [reward(verifier, row, resp) for row, resp in zip(rows, responses)]


def lab_verifier(row: dict, response: str) -> float:
    """The lab's addition verifier: 1.0 for a correct final answer. Reads the sum from the prompt text."""
    from lyceum.lab.tasks import verify

    return verify(row["prompt"], response)


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def olympiad_verifier(row: dict, response: str) -> list[bool]:
    """One verdict per gold sub-answer, by the olympiad grader (the last N boxed answers vs the N golds).

    The row carries the gold sub-answers as ``answers`` (or HiPhO's ``answer``, a list or one string) and their
    types as ``answer_types`` (or ``answer_type``; default "Numerical Value"). Units are ignored, as in HiPhO's
    official answer-level grading.
    """
    from lyceum.olympiad import grade  # the olympiad part's grader; imported only when asked for
    from lyceum.olympiad.extract import extract_answers

    golds = [str(g) for g in _as_list(row.get("answers") or row.get("answer"))]
    if not golds:
        raise UserError("an olympiad prompt row needs 'answers' (the gold sub-answers) for the verifier")
    types = [str(t) for t in _as_list(row.get("answer_types") or row.get("answer_type"))]
    preds = extract_answers(response, len(golds))  # the last N boxes, "" where missing
    return [bool(pred) and bool(grade.check_answer(gold, pred, types[i] if i < len(types) else "Numerical Value"))
            for i, (gold, pred) in enumerate(zip(golds, preds))]


VERIFIERS: dict[str, Verifier] = {"lab": lab_verifier, "olympiad": olympiad_verifier}


def register_verifier(name: str, verifier: Verifier) -> None:
    """Make ``verifier`` available by name to ``rl train``/``distill train`` (``--verifier NAME``)."""
    VERIFIERS[name] = verifier


def get_verifier(name: str) -> Verifier:
    if name not in VERIFIERS:
        raise UserError(f"unknown verifier {name!r}; choose one of {', '.join(VERIFIERS)}")
    return VERIFIERS[name]
