"""HiPhO problems as RL / on-policy-distillation prompt rows, with their diagrams, and the verifier that
rewards a response (P1-VL: the mean over sub-answers of a binary rule check).

    rows, report = hipho_prompt_rows("../shared/data/hipho", exams=["IPhO_2025"], modalities=["text+data figure"])
    rows[0]  # {"id", "exam", "prompt", "images": [abs paths], "answers", "answer_types", "difficulty", ...}
    hipho_verdicts(rows[0], response)     # [True, False]: one per gold sub-answer
    hipho_reward(rows[0], response)       # 0.5

    python -m lyceum.olympiad.prompts_rl ../shared/data/hipho --out hipho_prompts.jsonl --exams IPhO_2025

A row's ``prompt`` is the solver's problem text (data sheet, context, question, answer format); its images are
the record's diagrams in order (a vision-language sampler puts them before the text; a text-only model can be
given ``images=False`` rows, whose text says the figures are not shown). ``difficulty`` is the problem's HiPhO
points, the curriculum's difficulty axis before any pass rates exist. Sub-answers of judge-only types
(Inequality, Open-Ended) have no rule verdict, so problems holding one are left out unless asked for (their
judge-only parts then count as wrong).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from lyceum.errors import UserError
from lyceum.olympiad.data import Problem, load_hipho
from lyceum.olympiad.extract import extract_answers
from lyceum.olympiad.grade import answer_kind, check_answer, is_judge_only
from lyceum.olympiad.prompts import problem_text

MODALITIES = ("text-only", "text+illustration figure", "text+variable figure", "text+data figure")


@dataclass
class ConversionReport:
    """What the converter kept and why it left the rest out."""

    kept: int = 0
    images: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count

    def summary(self) -> str:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return f"kept {self.kept} problems ({self.images} images)" + (f"; left out {why}" if why else "")


def problem_row(problem: Problem, *, images: bool = True) -> dict:
    """One HiPhO problem as a prompt row the verifier can grade."""
    row = {
        "id": problem.id,
        "exam": problem.exam,
        "prompt": problem_text(problem, images_attached=images),
        "answers": list(problem.answers),
        "answer_types": list(problem.answer_types),
        "points": list(problem.points),
        "difficulty": problem.full_mark,
        "modality": problem.modality,
        "field": problem.field,
    }
    if images and problem.images:
        row["images"] = [str(p.resolve()) for p in problem.images]
    return row


def hipho_prompt_rows(data_dir: str | Path, exams: list[str] | str | None = None, *,
                      modalities: list[str] | None = None, fields: list[str] | None = None,
                      images: bool = True, only_with_images: bool = False,
                      include_judge_only: bool = False) -> tuple[list[dict], ConversionReport]:
    """Prompt rows from the HiPhO exams in ``data_dir`` (all, or ``exams`` by name), filtered.

    ``modalities`` / ``fields`` keep problems whose HiPhO modality / field is listed (case-insensitive);
    ``only_with_images`` keeps problems that have diagrams; ``images=False`` drops the diagrams from the rows.
    """
    if modalities:
        unknown = [m for m in modalities if m.lower() not in MODALITIES]
        if unknown:
            raise UserError(f"unknown modality {unknown[0]!r}; HiPhO's are: {', '.join(MODALITIES)}")
    want_mod = {m.lower() for m in modalities or []}
    want_field = {f.lower() for f in fields or []}
    report = ConversionReport()
    rows = []
    for exam in load_hipho(data_dir, exams).values():
        for p in exam.problems:
            if want_mod and p.modality.lower() not in want_mod:
                report.skipped["of another modality"] += 1
            elif want_field and p.field.lower() not in want_field:
                report.skipped["of another field"] += 1
            elif only_with_images and not p.images:
                report.skipped["without images"] += 1
            elif not any(a.strip() for a in p.answers):
                report.skipped["without gold answers"] += 1
            elif not include_judge_only and any(is_judge_only(t) for t in p.answer_types):
                report.skipped["with judge-only sub-answers"] += 1
            else:
                rows.append(problem_row(p, images=images))
                report.kept += 1
                report.images += len(rows[-1].get("images", []))
    if not rows:
        raise UserError(f"no HiPhO problem passes the filters ({report.summary()})")
    return rows, report


@functools.cache
def warm_grader() -> None:
    """Run every grading stage once without a time limit, so its first-time imports (sympy, math-verify,
    latex2sympy) finish. A time-limited check that interrupts a first import leaves a half-imported module
    behind, and in a training process that breaks later imports (torch and transformers use sympy)."""
    check_answer("x^2 + 1", "x*x + 2", "Expression", timeout=None)
    check_answer("y = 2x", "y - 3x = 0", "Equation", timeout=None)
    check_answer("2.0", "2.1", "Numerical Value", timeout=None)


def hipho_verdicts(row: dict, response: str) -> list[bool]:
    """One verdict per gold sub-answer: the last N boxed answers of ``response`` against the N golds.

    Units are ignored, as in HiPhO's official answer-level grading; judge-only sub-answers read False.
    """
    golds = [str(g) for g in row.get("answers") or []]
    if not golds:
        raise UserError("a HiPhO prompt row needs 'answers' (the gold sub-answers) for the verifier")
    types = list(row.get("answer_types") or [])
    if len(types) != len(golds):
        raise UserError(f"row {row.get('id', '?')} has {len(golds)} answers but {len(types)} answer types")
    preds = extract_answers(response, len(golds))
    warm_grader()
    return [bool(pred) and not is_judge_only(kind) and check_answer(gold, pred, kind)
            for gold, pred, kind in zip(golds, preds, types)]


def hipho_reward(row: dict, response: str) -> float:
    """The RL reward: the share of sub-answers the rules accept, in [0, 1]."""
    return fmean(float(v) for v in hipho_verdicts(row, response))


def main(argv: list[str] | None = None) -> None:
    from lyceum.runs import write_jsonl

    ap = argparse.ArgumentParser(description="Write HiPhO problems as RL / OPD prompt rows with their images.")
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="the prompts.jsonl to write")
    ap.add_argument("--exams", default=None, help="comma-separated exam names (default: all)")
    ap.add_argument("--modality", action="append", default=None, help=f"keep one of: {', '.join(MODALITIES)}")
    ap.add_argument("--field", action="append", default=None, help="keep a physics field (e.g. Mechanics)")
    ap.add_argument("--only-with-images", action="store_true")
    ap.add_argument("--no-images", action="store_true", help="text-only rows (for a text model)")
    ap.add_argument("--include-judge-only", action="store_true")
    a = ap.parse_args(argv)
    try:
        rows, report = hipho_prompt_rows(a.data_dir, a.exams, modalities=a.modality, fields=a.field,
                                         images=not a.no_images, only_with_images=a.only_with_images,
                                         include_judge_only=a.include_judge_only)
    except UserError as e:  # one sentence and exit 2, like every lyceum command
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    write_jsonl(a.out, rows)
    kinds = Counter(answer_kind(t) for r in rows for t in r["answer_types"])
    print(f"{report.summary()} -> {a.out}; sub-answers: "
          + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))


if __name__ == "__main__":
    main()
