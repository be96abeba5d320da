"""The olympiad verifier for RL and distillation runs (``--verifier olympiad``), by the olympiad grader.

``lyceum.train.verifiers`` names it as ``"lyceum.olympiad.verifier:olympiad_verifier"`` and imports it only
when asked for, so the training engine does not import the olympiad package.
"""

from __future__ import annotations

from lyceum.errors import UserError
from lyceum.olympiad import grade
from lyceum.olympiad.extract import extract_answers


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
    golds = [str(g) for g in _as_list(row.get("answers") or row.get("answer"))]
    if not golds:
        raise UserError("an olympiad prompt row needs 'answers' (the gold sub-answers) for the verifier")
    types = [str(t) for t in _as_list(row.get("answer_types") or row.get("answer_type"))]
    preds = extract_answers(response, len(golds))  # the last N boxes, "" where missing
    return [bool(pred) and bool(grade.check_answer(gold, pred, types[i] if i < len(types) else "Numerical Value"))
            for i, (gold, pred) in enumerate(zip(golds, preds))]
