"""A KDR-style benchmark: a question set (dataset), the research pipeline (solver), and scorers.

Scores per question:

- knowledge-centric, no judge: **numeric fact recall** -- the share of key-point facts whose value the report
  states within the fact's relative tolerance (see ``numbers.extract_numbers`` for how a report is read);
  key points whose facts are all stated; and which of the expected tables the report drew on;
- vision-enhanced, no judge: figure and table counts, broken figures (missing, empty or undecodable images,
  or images the HTML failed to embed);
- with a judge endpoint: RACE-style quality dimensions (comprehensiveness, depth, instruction following,
  readability; scored 0-10 against written criteria, not against a reference report), main-conclusion
  alignment, key-point coverage and supportiveness, and optionally a vision model's figure rating.

Judge calls go through the shared chat client with an on-disk cache; ``repeats`` asks each judged question
n times (each repeat cached under its own tag) and reports mean and spread.

    questions = load_questions("kdr/dev.jsonl")
    row = score_report(questions[0], Path("runs/bench/q1"))
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.research import prompts
from lyceum.research.charts import png_is_readable
from lyceum.research.numbers import extract_numbers, stated


@dataclass
class Fact:
    value: float
    rel_tol: float = 0.02


@dataclass
class KeyPoint:
    text: str
    facts: list[Fact] = field(default_factory=list)


@dataclass
class BenchQuestion:
    id: str
    question: str
    domain: str = ""
    main_conclusions: list[str] = field(default_factory=list)
    key_points: list[KeyPoint] = field(default_factory=list)
    gold_tables: list[str] = field(default_factory=list)


def load_questions(path: str | Path) -> list[BenchQuestion]:
    """Read a KDR-style JSONL question file; a malformed record is one clear error naming its line."""
    from lyceum.runs import read_jsonl

    out = []
    for i, row in enumerate(read_jsonl(path), 1):
        try:
            kps = [KeyPoint(text=str(k["text"]), facts=[Fact(float(f["value"]), float(f.get("rel_tol", 0.02)))
                                                         for f in k.get("facts", [])])
                   for k in row.get("key_points", [])]
            out.append(BenchQuestion(id=str(row.get("id") or f"q{i}"), question=str(row["question"]),
                                     domain=str(row.get("domain", "")),
                                     main_conclusions=[str(c) for c in row.get("main_conclusions", [])],
                                     key_points=kps, gold_tables=[str(t) for t in row.get("gold_tables", [])]))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}: record {i} is not a benchmark question ({type(e).__name__}: {e})") from e
    if not out:
        raise UserError(f"{path} holds no questions")
    ids = [q.id for q in out]
    if len(set(ids)) != len(ids):
        raise UserError(f"{path} repeats question ids; every question needs its own id")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Scorers without a judge


def report_body(markdown: str) -> str:
    """The report as a reader sees it, minus the machine-made tail (references list and number check)."""
    return re.split(r"^## (?:References|Number check)\s*$", markdown, flags=re.MULTILINE)[0]


_YEARS = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")


def _units(text: str) -> list[tuple[int, int]]:
    """Spans of sentences and table rows: the context a stated number belongs to."""
    spans, start = [], 0
    for m in re.finditer(r"\n|(?<=[a-z)\]%])\.\s", text):
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(text)))
    return spans


def numeric_fact_recall(report: str, q: BenchQuestion) -> dict[str, Any]:
    """Share of key-point facts stated in the report within tolerance; no judge involved.

    Two readings: ``numeric_fact_recall`` counts a fact when any number in the report matches it (the KDR
    definition); ``anchored_fact_recall`` also requires the matching number's sentence or table row to name a
    year of its key point (when the key point names one), so a number that matches by coincidence elsewhere in
    a long report does not count.
    """
    body = report_body(report)
    numbers = [n for n in extract_numbers(body) if n.kind in ("value", "year")]
    spans = _units(body)
    found, missed, anchored, points_full = [], [], 0, 0
    for kp in q.key_points:
        years = set(_YEARS.findall(kp.text))
        hits = 0
        for f in kp.facts:
            n = stated(f.value, numbers, f.rel_tol)
            ok_anchor = False
            if n is not None:
                candidates = [m for m in numbers if m is n or stated(f.value, [m], f.rel_tol)]
                for m in candidates:
                    s, e = next((a, b) for a, b in spans if a <= m.start < b)
                    if not years or years & set(_YEARS.findall(body[s:e])):
                        ok_anchor = True
                        break
            anchored += ok_anchor
            (found if n else missed).append({"value": f.value, "rel_tol": f.rel_tol, "as_stated": n.text if n else None,
                                             "anchored": ok_anchor, "key_point": kp.text})
            hits += n is not None
        points_full += bool(kp.facts) and hits == len(kp.facts)
    total = len(found) + len(missed)
    with_facts = sum(1 for kp in q.key_points if kp.facts)
    return {"numeric_fact_recall": len(found) / total if total else None,
            "anchored_fact_recall": anchored / total if total else None,
            "key_points_all_facts_stated": points_full / with_facts if with_facts else None,
            "facts_found": found, "facts_missed": missed, "numbers_in_report": len(numbers)}


def chance_recall(reports: dict[str, str], questions: list[BenchQuestion]) -> dict[str, float]:
    """The control: recall of each question's facts in the *other* questions' reports (coincidental matches)."""
    plain, anchored = [], []
    for q in questions:
        for other, text in reports.items():
            if other != q.id:
                r = numeric_fact_recall(text, q)
                if r["numeric_fact_recall"] is not None:
                    plain.append(r["numeric_fact_recall"])
                    anchored.append(r["anchored_fact_recall"])
    if not plain:
        return {}
    return {"chance_fact_recall": sum(plain) / len(plain), "chance_anchored_fact_recall": sum(anchored) / len(anchored)}


def figure_health(run_dir: Path) -> dict[str, Any]:
    """Figures and tables in the report, and figures that are missing, empty, undecodable or not embedded."""
    run_dir = Path(run_dir)
    md = (run_dir / "report.md").read_text(encoding="utf-8") if (run_dir / "report.md").is_file() else ""
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    tables = len(re.findall(r"^\*Table \d+:", md, flags=re.MULTILINE))
    broken = []
    for src in images:
        path = run_dir / src
        if not path.is_file() or path.stat().st_size == 0 or not png_is_readable(path):
            broken.append(src)
    html_path = run_dir / "report.html"
    embedded = len(re.findall(r'<img[^>]+src="data:image/', html_path.read_text(encoding="utf-8"))) \
        if html_path.is_file() else 0
    return {"figures": len(images), "tables": tables, "broken_figures": len(broken) + max(0, len(images) - embedded),
            "broken": broken, "embedded_in_html": embedded}


def table_recall(used: list[str], q: BenchQuestion) -> dict[str, Any]:
    if not q.gold_tables:
        return {"gold_table_recall": None, "tables_outside_gold": []}
    return {"gold_table_recall": len(set(used) & set(q.gold_tables)) / len(set(q.gold_tables)),
            "tables_outside_gold": sorted(set(used) - set(q.gold_tables))}


# ---------------------------------------------------------------------------------------------------------------
# Judged scorers

RACE_DIMENSIONS = prompts.race_dimensions()


def _judge(client, prompt: str, schema: dict | None, site: str, repeat: int, images: list[Path] = ()) -> dict:
    from lyceum.models.chat import system_message, user_message

    messages = [system_message(prompts.text("judge_system")), user_message(prompt, images=list(images))]
    return client.complete_json_sync(messages, schema, site=site, cache_tag=f"repeat-{repeat}", temperature=0.7)


def judge_race(client, q: BenchQuestion, report: str, repeat: int) -> dict[str, float]:
    criteria = "\n".join(f"- {k}: {v}" for k, v in RACE_DIMENSIONS.items())
    shape = ", ".join(f'"{k}": <0-10>' for k in RACE_DIMENSIONS)
    prompt = prompts.render("judge_race", question=q.question, report=report_body(report), criteria=criteria,
                            shape=shape)
    schema = {"type": "object", "required": list(RACE_DIMENSIONS),
              "properties": {d: {"type": "number", "minimum": 0, "maximum": 10} for d in RACE_DIMENSIONS}}
    return {k: float(v) for k, v in _judge(client, prompt, schema, "judge-race", repeat).items()
            if k in RACE_DIMENSIONS}


def judge_conclusions(client, q: BenchQuestion, report: str, repeat: int) -> float | None:
    if not q.main_conclusions:
        return None
    listed = "\n".join(f"{i}. {c}" for i, c in enumerate(q.main_conclusions, 1))
    prompt = prompts.render("judge_conclusions", question=q.question, report=report_body(report), conclusions=listed)
    scores = _judge(client, prompt, prompts.schema("judge_alignment"), "judge-conclusions", repeat)["scores"]
    scores = (list(scores) + [0.0] * len(q.main_conclusions))[: len(q.main_conclusions)]
    return sum(scores) / len(scores) / 10


def judge_key_points(client, q: BenchQuestion, report: str, repeat: int) -> dict[str, float] | None:
    if not q.key_points:
        return None
    listed = "\n".join(f"{i}. {k.text}" for i, k in enumerate(q.key_points, 1))
    prompt = prompts.render("judge_key_points", report=report_body(report), key_points=listed)
    points = _judge(client, prompt, prompts.schema("judge_key_points"), "judge-key-points", repeat)["points"]
    points = (list(points) + [{"covered": False, "support": 0}] * len(q.key_points))[: len(q.key_points)]
    return {"key_point_coverage": sum(bool(p["covered"]) for p in points) / len(points),
            "key_point_supportiveness": sum(int(p["support"]) for p in points) / (2 * len(points))}


def judge_figures(client, q: BenchQuestion, run_dir: Path, repeat: int, limit: int = 4) -> float | None:
    images = [run_dir / src for src in re.findall(r"!\[[^\]]*\]\(([^)]+)\)",
                                                   (run_dir / "report.md").read_text(encoding="utf-8"))]
    images = [p for p in images if p.is_file()][:limit]
    if not images:
        return None
    prompt = prompts.render("judge_figures", question=q.question)
    return float(_judge(client, prompt, prompts.schema("judge_figures"), "judge-figures", repeat, images)["score"]) / 10


def judged_scores(client, vision_client, q: BenchQuestion, run_dir: Path, repeats: int) -> dict[str, Any]:
    """Every judged score for one report, asked ``repeats`` times; returns mean and standard deviation."""
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    samples: dict[str, list[float]] = {}
    for r in range(repeats):
        for k, v in judge_race(client, q, report, r).items():
            samples.setdefault(f"race_{k}", []).append(v / 10)
        c = judge_conclusions(client, q, report, r)
        if c is not None:
            samples.setdefault("conclusion_alignment", []).append(c)
        kp = judge_key_points(client, q, report, r)
        for k, v in (kp or {}).items():
            samples.setdefault(k, []).append(v)
        if vision_client is not None:
            f = judge_figures(vision_client, q, run_dir, r)
            if f is not None:
                samples.setdefault("figure_quality", []).append(f)
    race = [statistics.mean(v) for k, v in samples.items() if k.startswith("race_")]
    if race:
        samples["race_overall"] = [statistics.mean(vals) for vals in zip(*(v for k, v in samples.items()
                                                                          if k.startswith("race_")))]
    return {k: {"mean": statistics.mean(v), "std": statistics.pstdev(v) if len(v) > 1 else 0.0, "n": len(v)}
            for k, v in samples.items()}


# ---------------------------------------------------------------------------------------------------------------
# The benchmark loop


def score_report(q: BenchQuestion, run_dir: Path, used_tables: list[str] | None = None) -> dict[str, Any]:
    """All judge-free scores of one finished report."""
    run_dir = Path(run_dir)
    md_path = run_dir / "report.md"
    if not md_path.is_file():
        raise UserError(f"no report.md in {run_dir}")
    report = md_path.read_text(encoding="utf-8")
    if used_tables is None and (run_dir / "summary.json").is_file():
        used_tables = json.loads((run_dir / "summary.json").read_text()).get("tables_used", [])
    return {"id": q.id, **numeric_fact_recall(report, q), **figure_health(run_dir),
            **table_recall(used_tables or [], q)}


@dataclass
class BenchSummary:
    rows: list[dict[str, Any]]
    means: dict[str, float]
    judged: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_MEAN_KEYS = ["numeric_fact_recall", "anchored_fact_recall", "key_points_all_facts_stated", "gold_table_recall", "figures", "tables",
              "broken_figures", "seconds"]


def summarize(rows: list[dict[str, Any]], judged: bool, control: dict[str, float] | None = None) -> BenchSummary:
    means: dict[str, float] = dict(control or {})
    keys = list(_MEAN_KEYS)
    if judged:
        keys += sorted({k for r in rows for k in r.get("judged", {})})
    for k in keys:
        vals = [r[k] if k in r else r.get("judged", {}).get(k, {}).get("mean") for r in rows]
        vals = [float(v) for v in vals if isinstance(v, (int, float)) and not math.isnan(float(v))]
        if vals:
            means[k] = sum(vals) / len(vals)
    found = sum(len(r.get("facts_found", [])) for r in rows)
    total = found + sum(len(r.get("facts_missed", [])) for r in rows)
    if total:
        means["numeric_fact_recall_pooled"] = found / total
    return BenchSummary(rows=rows, means=means, judged=judged)


def format_summary(summary: BenchSummary) -> str:
    """A plain-text score table for the terminal."""
    cols = ["id", "numeric_fact_recall", "anchored_fact_recall", "gold_table_recall", "figures", "tables",
            "broken_figures"]
    judged_cols = sorted({k for r in summary.rows for k in r.get("judged", {})}) if summary.judged else []
    lines = ["  ".join(f"{c:>22}" if i else f"{c:<26}" for i, c in enumerate(cols + judged_cols))]
    for r in summary.rows:
        cells = [f"{r['id']:<26}"]
        for c in cols[1:]:
            v = r.get(c)
            cells.append(f"{v:>22.3f}" if isinstance(v, float) else f"{v!s:>22}")
        for c in judged_cols:
            j = r.get("judged", {}).get(c)
            cells.append(f"{j['mean']:>14.3f} ± {j['std']:.3f}" if j else f"{'-':>22}")
        lines.append("  ".join(cells))
    lines.append("")
    for k, v in summary.means.items():
        lines.append(f"mean {k}: {v:.3f}")
    pooled = summary.means.get("numeric_fact_recall_pooled")
    if pooled is not None:
        found = sum(len(r.get("facts_found", [])) for r in summary.rows)
        total = found + sum(len(r.get("facts_missed", [])) for r in summary.rows)
        anchored = sum(1 for r in summary.rows for f in r.get("facts_found", []) if f.get("anchored"))
        note = (f"note: numeric fact recall (no judge) is {found}/{total} = {pooled:.1%} of key-point facts stated "
                f"within tolerance across {len(summary.rows)} questions; {anchored}/{total} = {anchored / total:.1%} "
                f"with the key point's year in the same sentence or table row")
        if "chance_fact_recall" in summary.means:
            note += (f". Control (facts looked up in the other questions' reports): "
                     f"{summary.means['chance_fact_recall']:.1%} plain, "
                     f"{summary.means['chance_anchored_fact_recall']:.1%} anchored")
        lines.append(note + ".")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Solvers and scorers: the benchmark is dataset x solver x scorers (Inspect AI's shape); each is swappable.


@dataclass
class Solved:
    """What a solver leaves for the scorers: the run folder holding report.md, and the tables it drew on."""

    run_dir: Path
    tables_used: list[str] = field(default_factory=list)
    seconds: float | None = None


def pipeline_solver(cfg, *, catalog=None, docs=None):
    """The research pipeline (rule-based, or the agents when ``cfg`` names an endpoint) as a solver."""
    import dataclasses

    from lyceum.research.pipeline import open_sources, run_research

    if catalog is None and docs is None:
        catalog, docs = open_sources(dataclasses.replace(cfg, question="-"))

    def solve(q: BenchQuestion, run_dir: Path) -> Solved:
        result = run_research(dataclasses.replace(cfg, question=q.question), run_dir, catalog=catalog, docs=docs)
        return Solved(result.run_dir, result.summary.get("tables_used", []), result.summary.get("seconds"))

    return solve


def facts_scorer(q: BenchQuestion, solved: Solved) -> dict[str, Any]:
    return numeric_fact_recall((solved.run_dir / "report.md").read_text(encoding="utf-8"), q)


def figures_scorer(q: BenchQuestion, solved: Solved) -> dict[str, Any]:
    return figure_health(solved.run_dir)


def tables_scorer(q: BenchQuestion, solved: Solved) -> dict[str, Any]:
    return table_recall(solved.tables_used, q)


def judge_scorer(judge, vision_judge=None, repeats: int = 1):
    """RACE-style and key-point scores from a judge endpoint (see ``judged_scores``)."""

    def score(q: BenchQuestion, solved: Solved) -> dict[str, Any]:
        return {"judged": judged_scores(judge, vision_judge, q, solved.run_dir, repeats)}

    return score


SOLVERS = {"pipeline": pipeline_solver}
SCORERS = {"facts": facts_scorer, "figures": figures_scorer, "tables": tables_scorer}
DEFAULT_SCORERS = ("facts", "figures", "tables")


def _resolve(named, registry: dict, kind: str):
    if callable(named):
        return named
    if named not in registry:
        raise UserError(f"unknown {kind} '{named}'; built-in {kind}s: {', '.join(sorted(registry))}")
    return registry[named]


def _config_key(config: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _write_private_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows may hold judged text or error messages quoting prompts: owner-only, written whole then renamed."""
    import os

    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)


def run_bench(questions, cfg=None, out_dir: str | Path | None = None, *, solver="pipeline",
              scorers=DEFAULT_SCORERS, judge=None, vision_judge=None, repeats: int = 1) -> BenchSummary:
    """Solve every question into ``out_dir/<id>`` and score it; a rerun resumes.

    ``questions``: a list of ``BenchQuestion`` or a JSONL path (the dataset). ``solver``: a name in ``SOLVERS``
    (built from ``cfg``) or a callable ``(question, run_dir) -> Solved``. ``scorers``: names in ``SCORERS``
    or callables ``(question, solved) -> dict``; a judge endpoint adds the judged scores.

    Each finished question's row is saved at once (``rows.jsonl``), so a run stopped at any point (Ctrl-C,
    SIGKILL) and started again solves only the questions it had not finished, and the calls a half-finished
    question had made come from the chat caches. A question whose model request fails on every attempt
    (``ChatRequestFailed``) becomes an error row and is tried again on the next run; an endpoint that is down
    (``ChatEndpointDown``) stops the run with one sentence. Token use in summary.json covers every process of
    the run (one ``usage.jsonl`` ledger, shared by every chat client).
    """
    from lyceum.models.chat import ChatEndpointDown, ChatRequestFailed
    from lyceum.runs import RunDir, progress, read_jsonl

    if repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {repeats}")
    if out_dir is None:
        raise UserError("run_bench needs an output folder")
    if isinstance(questions, (str, Path)):
        questions = load_questions(questions)
    config = {"questions": [q.id for q in questions], "repeats": repeats, "judged": judge is not None,
              "solver": solver if isinstance(solver, str) else getattr(solver, "__name__", "custom"),
              "scorers": [s if isinstance(s, str) else getattr(s, "__name__", "custom") for s in scorers],
              "pipeline": {k: v for k, v in vars(cfg).items() if k not in ("api_key", "question")}
              if cfg is not None else None}
    run = RunDir.open(out_dir, config)
    key = _config_key(config)
    solve = _resolve(solver, SOLVERS, "solver")
    if solve is pipeline_solver:
        if cfg is None:
            raise UserError("the pipeline solver needs a ResearchConfig")
        solve = pipeline_solver(cfg)
    score_fns = [_resolve(s, SCORERS, "scorer") for s in scorers]
    if judge is not None:
        score_fns.append(judge_scorer(judge, vision_judge, repeats))

    rows_path = run.path / "rows.jsonl"
    done = {r["id"]: r for r in (read_jsonl(rows_path) if rows_path.is_file() else [])
            if r.get("config") == key and not r.get("error")}
    if done:
        run.log(f"resuming: {len(done)} of {len(questions)} questions already scored")
    rows, reports = [], {}
    for q in progress(questions, desc="research bench"):
        if q.id in done:
            row = done[q.id]
        else:
            try:
                solved = solve(q, run.path / q.id)
                row = {"id": q.id}
                for fn in score_fns:
                    row.update(fn(q, solved))
            except ChatEndpointDown:
                raise
            except ChatRequestFailed as e:
                row = {"id": q.id, "error": str(e)}
                run.log(f"{q.id}: failed ({e}); it will be asked again on the next run")
                rows.append(row)
                continue
            row["seconds"] = solved.seconds
            row["config"] = key
            done[q.id] = row
            _write_private_jsonl(rows_path, list(done.values()))
            run.log_metrics({"question": q.id, **{k: v for k, v in row.items() if isinstance(v, (int, float))}})
        rows.append(row)
        report = run.path / q.id / "report.md"
        if report.is_file():
            reports[q.id] = report.read_text(encoding="utf-8")
    scored = [r for r in rows if not r.get("error")]
    summary = summarize(scored, judge is not None, chance_recall(reports, questions))
    summary.rows = rows
    summary.means["errors"] = len(rows) - len(scored)
    _write_private_jsonl(run.path / "scores.jsonl", [{k: v for k, v in r.items() if k != "config"} for r in rows])
    ledgers = [run.path / "usage.jsonl"] + [run.path / q.id / "usage.jsonl" for q in questions]
    run.write_json("summary.json", {"means": summary.means, "judged": summary.judged,
                                    "usage": ledger_usage([p for p in ledgers if p.is_file()])})
    return summary


def ledger_usage(ledgers: list[Path]) -> dict[str, Any]:
    """The whole run's token use: the judge's ledger and every question's, over every process of the run."""
    from lyceum.models.chat import ChatClient

    merged: dict[str, dict[str, int]] = {}
    for path in ledgers:
        # A client makes no request until asked; this one only reads a ledger back.
        for site, row in ChatClient("http://127.0.0.1", "ledger", usage_log=path).usage_summary().items():
            if site != "total":
                into = merged.setdefault(site, dict.fromkeys(row, 0))
                for k, v in row.items():
                    into[k] += v
    if not merged:
        return {}
    keys = next(iter(merged.values())).keys()
    return {**dict(sorted(merged.items())), "total": {k: sum(r[k] for r in merged.values()) for k in keys}}
