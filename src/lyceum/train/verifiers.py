"""Verifiers: the feedback that turns the on-policy engine into an RL trainer, registered by name.

A verifier looks at one prompt row and one response text and says which sub-answers are right. The reward of
a rollout is the mean over its sub-answers (P1-VL: partial credit for multi-part problems), in [0, 1].

    verifier = get_verifier("lab")                  # lab addition tasks (lyceum.lab.hooks)
    verifier = get_verifier("olympiad")             # HiPhO-style rows (lyceum.olympiad.verifier)
    verifier = get_verifier("mypkg.checks:exact")   # any importable function, as "package.module:function"
    reward(verifier, row, response)                 # -> 0.0 .. 1.0
    register_verifier("mine", fn)                   # fn(row, response) -> float | list of verdicts

A verifier returns a float (one answer) or a list of floats/bools (one per sub-answer). The built-in names
point at functions in the task packages by ``"package.module:function"`` and are imported only when asked for,
so ``train`` imports no task package (the layers point down: models <- train <- lab, olympiad, research).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from statistics import fmean

from lyceum.errors import UserError

Verifier = Callable[[dict, str], "float | bool | Sequence[float | bool]"]

VERIFIERS: dict[str, Verifier | str] = {
    "lab": "lyceum.lab.hooks:lab_verifier",
    "olympiad": "lyceum.olympiad.verifier:olympiad_verifier",
    # HiPhO prompt rows (--data hipho): per sub-answer rule verdicts, judge-only parts False (P1-VL's reward)
    "hipho": "lyceum.olympiad.prompts_rl:hipho_verdicts",
}


def reward(verifier: Verifier, row: dict, response: str) -> float:
    """The mean over sub-answers of the verifier's verdicts for ``response`` to ``row``."""
    verdict = verifier(row, response)
    if isinstance(verdict, (int, float, bool)):
        return float(verdict)
    verdict = list(verdict)
    return fmean(float(v) for v in verdict) if verdict else 0.0


def rewards(verifier: Verifier, rows: Sequence[dict], responses: Sequence[str]) -> list[float]:
    return [reward(verifier, row, resp) for row, resp in zip(rows, responses)]


def register_verifier(name: str, verifier: Verifier | str) -> None:
    """Make ``verifier`` (a function, or ``"package.module:function"``) available by name (``--verifier NAME``)."""
    VERIFIERS[name] = verifier


def resolve(spec: str, what: str = "function"):
    """The object that ``"package.module:function"`` names, imported now."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise UserError(f"a {what} given by path must look like package.module:function, got {spec!r}")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except ImportError as e:
        raise UserError(f"cannot import {module!r} for the {what} {spec!r}: {e}") from e
    except AttributeError:
        raise UserError(f"{module!r} has no {attr!r} (the {what} {spec!r})") from None
    if not callable(obj):
        raise UserError(f"the {what} {spec!r} is not a function")
    return obj


def get_verifier(name: str) -> Verifier:
    """The verifier registered as ``name``, or the function a ``"package.module:function"`` name points at."""
    if name not in VERIFIERS:
        if ":" in name:
            return resolve(name, "verifier")
        raise UserError(f"unknown verifier {name!r}; choose one of {', '.join(VERIFIERS)} "
                        f"or give one as package.module:function")
    verifier = VERIFIERS[name]
    return resolve(verifier, "verifier") if isinstance(verifier, str) else verifier
