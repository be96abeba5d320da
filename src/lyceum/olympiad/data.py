"""HiPhO exams from a directory: ``<name>.json`` files (element 0 is ``{"information": ...}``), images under
``image_question/``, and ``medals.json`` with the human cut-offs.

The loader is tolerant of what the real files contain and strict about what it cannot grade:
- unit lists shorter than answer lists (10 records) are padded with None;
- ``marking`` may be missing, empty, a list of schemes (lists of criteria), or one flat list of criteria;
- images are resolved against the directory and must exist;
- a record whose answer, answer_type and points lists disagree in length is a user error naming the record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from dataclasses import field as _field
from pathlib import Path
from typing import Any

from lyceum.errors import UserError

REQUIRED = ("id", "question", "answer", "answer_type", "points")


@dataclass
class Problem:
    """One HiPhO record: a (sub-)question with one or more gold sub-answers."""

    id: str
    exam: str
    question: str
    answers: list[str]
    answer_types: list[str]
    points: list[float]
    units: list[str | None] = _field(default_factory=list)
    context: str = ""
    information: str = ""  # the exam's data sheet (constants), shared by all its problems
    marking: list[list[str]] = _field(default_factory=list)  # alternative schemes, each a list of criteria
    modality: str = "text-only"
    field: str = "unknown"
    images: list[Path] = _field(default_factory=list)

    def __post_init__(self) -> None:
        self.units = (list(self.units) + [None] * len(self.answers))[: len(self.answers)]

    @property
    def full_mark(self) -> float:
        return float(sum(self.points))

    @property
    def n_answers(self) -> int:
        return len(self.answers)


@dataclass
class Exam:
    name: str
    problems: list[Problem]
    information: str = ""
    path: Path | None = None

    @property
    def full_mark(self) -> float:
        return float(sum(p.full_mark for p in self.problems))


@dataclass(frozen=True)
class Cutoffs:
    """Human medal thresholds of one exam (a score >= threshold earns the medal)."""

    bronze: float
    silver: float
    gold: float
    human_full: float | None = None
    model_full: float | None = None


def _schemes(marking: Any, where: str) -> list[list[str]]:
    if marking is None or marking == []:
        return []
    if not isinstance(marking, list):
        raise UserError(f"{where}: 'marking' must be a list of marking schemes, not {type(marking).__name__}")
    if all(isinstance(m, str) for m in marking):  # one flat scheme
        return [[m for m in marking if m.strip()]]
    schemes = []
    for scheme in marking:
        if isinstance(scheme, str):
            scheme = [scheme]
        if not isinstance(scheme, list) or not all(isinstance(c, str) for c in scheme):
            raise UserError(f"{where}: each marking scheme must be a list of criterion strings")
        criteria = [c for c in scheme if c.strip()]
        if criteria:
            schemes.append(criteria)
    return schemes


def _problem(record: dict[str, Any], exam: str, information: str, root: Path, where: str) -> Problem:
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise UserError(f"{where}: record is missing {', '.join(missing)}")
    pid = str(record["id"])
    answers, types, points = record["answer"], record["answer_type"], record["points"]
    if isinstance(answers, str):
        answers = [answers]
    if isinstance(types, str):
        types = [types] * len(answers)
    if isinstance(points, (int, float)):
        points = [points]
    if not (isinstance(answers, list) and isinstance(types, list) and isinstance(points, list)):
        raise UserError(f"{where}: record {pid} must have lists for answer, answer_type and points")
    if not (len(answers) == len(types) == len(points)):
        raise UserError(f"{where}: record {pid} has {len(answers)} answers, {len(types)} answer types and "
                        f"{len(points)} points; they must match")
    try:
        points = [float(p) for p in points]
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: record {pid} has non-numeric points") from e
    units = list(record.get("unit") or [])
    units = (units + [None] * len(answers))[: len(answers)]  # unit lists are sometimes shorter (a known trap)
    images = []
    for rel in record.get("image_question") or []:
        path = root / rel
        if not path.is_file():
            path = root / "image_question" / Path(rel).name
        if not path.is_file():
            raise UserError(f"{where}: image {rel} of record {pid} not found under {root}")
        images.append(path)
    return Problem(
        id=pid, exam=exam, question=str(record.get("question") or ""), answers=[str(a or "") for a in answers],
        answer_types=[str(t) for t in types], points=points, units=[str(u) if u else None for u in units],
        context=str(record.get("context") or ""), information=information,
        marking=_schemes(record.get("marking"), f"{where} ({pid})"),
        modality=str(record.get("modality") or "text-only"), field=str(record.get("field") or "unknown"),
        images=images,
    )


def load_exam(path: str | Path) -> Exam:
    """Load one exam file; a malformed file is a ``UserError`` saying what is wrong and where."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"exam file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from e
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text") from e
    if not isinstance(data, list):
        raise UserError(f"{path} must hold a JSON list of records")
    information = ""
    records = data
    if data and isinstance(data[0], dict) and "information" in data[0] and "id" not in data[0]:
        information, records = str(data[0].get("information") or ""), data[1:]
    name = path.stem
    problems = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise UserError(f"{path}: element {i + (1 if information else 0)} is not a JSON object")
        problems.append(_problem(rec, name, information, path.parent, path.name))
    return Exam(name=name, problems=problems, information=information, path=path)


def _exam_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.glob("*.json") if p.name != "medals.json")


def exam_names(data_dir: str | Path) -> list[str]:
    return [p.stem for p in _exam_files(_check_dir(data_dir))]


def _check_dir(data_dir: str | Path) -> Path:
    d = Path(data_dir)
    if not d.is_dir():
        raise UserError(f"HiPhO data directory not found: {d}")
    return d


def load_hipho(data_dir: str | Path, exams: list[str] | str | None = None) -> dict[str, Exam]:
    """Load every exam in ``data_dir`` (or only ``exams``, by name), in name order."""
    d = _check_dir(data_dir)
    files = _exam_files(d)
    if not files:
        raise UserError(f"no exam files (*.json) in {d}")
    if isinstance(exams, str):
        exams = None if exams == "all" else [e.strip() for e in exams.split(",") if e.strip()]
    if exams:
        by_name = {p.stem: p for p in files}
        unknown = [e for e in exams if e not in by_name]
        if unknown:
            raise UserError(f"unknown exam {unknown[0]!r}; exams in {d}: {', '.join(by_name)}")
        files = [by_name[e] for e in exams]
    return {p.stem: load_exam(p) for p in files}


def load_medals(path: str | Path) -> dict[str, Cutoffs]:
    """Cut-offs per exam from ``medals.json`` (a directory means its ``medals.json``); {} when absent."""
    path = Path(path)
    if path.is_dir():
        path = path / "medals.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from e
    out = {}
    for name, row in data.items():
        if name.startswith("_") or not isinstance(row, dict):
            continue
        try:
            out[name] = Cutoffs(bronze=float(row["bronze"]), silver=float(row["silver"]), gold=float(row["gold"]),
                                human_full=_maybe_float(row.get("human_full")),
                                model_full=_maybe_float(row.get("model_full")))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}: exam {name} needs numeric bronze, silver and gold cut-offs") from e
    return out


def _maybe_float(x: Any) -> float | None:
    return None if x is None else float(x)


def problem_index(exams: dict[str, Exam]) -> dict[str, Problem]:
    return {p.id: p for exam in exams.values() for p in exam.problems}


def criterion_points(criterion: str) -> float | None:
    """The most a marking criterion can award: "Award 0.4 pt if ..." -> 0.4, "则得 2 分" -> 2.0; None if unstated."""
    m = re.search(r"(?i)award\s+(\d+(?:\.\d+)?)\s*(?:pts?|points?|marks?)", criterion)
    if m:
        return float(m.group(1))
    m = re.search(r"得\s*(\d+(?:\.\d+)?)\s*分", criterion)
    return float(m.group(1)) if m else None
