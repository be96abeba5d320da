"""Medals: an exam score against the human cut-offs (a score at or above a threshold earns that medal).

The model's full mark can be below the human one (problems that need an experiment or a drawing are left
out of HiPhO), yet the cut-offs are the humans'; HiPhO compares the raw scores, and so do we.
CPhO 2025 has no published cut-offs: its medal is None, which reports show as "n/a".
"""

from __future__ import annotations

from lyceum.olympiad.data import Cutoffs

MEDALS = ("gold", "silver", "bronze")


def medal(score: float, cutoffs: Cutoffs | None) -> str | None:
    """"gold" / "silver" / "bronze" / "none", or None when the exam has no cut-offs."""
    if cutoffs is None:
        return None
    for name in MEDALS:
        if score >= getattr(cutoffs, name) - 1e-9:
            return name
    return "none"


def medal_table(scores: dict[str, float], cutoffs: dict[str, Cutoffs]) -> dict[str, int]:
    """How many golds, silvers, bronzes and no-medals over exams that have cut-offs."""
    counts = {"gold": 0, "silver": 0, "bronze": 0, "none": 0}
    for exam, score in scores.items():
        m = medal(score, cutoffs.get(exam))
        if m is not None:
            counts[m] += 1
    return counts
