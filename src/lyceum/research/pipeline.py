"""One research run, end to end: question -> tables and documents -> analyses -> report, in one run folder.

    result = run_research(ResearchConfig(question="How did oil prices evolve?", tables="data/tables"), "runs/oil")
    result.paths["html"]

Without an endpoint the run is rule-based (retrieval, standard analyses, templates) and says so in the
report; with one (``base_url`` or $LYCEUM_BASE_URL) the agents of ``agents.py`` plan, analyse and write.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.research.records import Note


@dataclass
class ResearchConfig:
    question: str
    tables: str | None = None
    docs: str | None = None
    db: str | None = None  # catalog file (default: a cache keyed by the tables folder)
    max_tables: int = 3
    doc_notes: int = 3
    search_provider: str | None = None  # "module:name" of a SearchProvider replacing the local documents
    # The agent path (used when an endpoint is given).
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    coder_model: str | None = None
    vision_model: str | None = None
    writer_model: str | None = None
    embed_model: str | None = None  # blend embeddings into table search (needs an endpoint)
    embed_url: str | None = None  # the /v1/embeddings endpoint, when not the chat endpoint (base_url)
    max_subtasks: int = 5
    tool_budget: int = 30
    max_repairs: int = 5
    critique_rounds: int = 3
    sandbox_timeout_s: float = 30.0
    sandbox_memory_mb: int = 2048
    concurrency: int = 4
    cache: bool = True
    offline: bool = False  # force the rule-based mode even when an endpoint is configured

    def embedder(self):
        """The table-search embedder, when ``embed_model`` is set (at ``embed_url``, else ``base_url`` or
        $LYCEUM_BASE_URL). It works in the rule-based mode too: embeddings need no chat model."""
        if not self.embed_model and not self.embed_url:
            return None
        from lyceum.research.embeddings import endpoint_embedder

        base = self.embed_url or self.base_url or os.environ.get("LYCEUM_BASE_URL") or \
            os.environ.get("OPENAI_BASE_URL") or ""
        if not self.embed_model:
            raise UserError("--embed-url needs --embed-model (the embedding model's name at that endpoint)")
        return endpoint_embedder(base, self.embed_model, self.api_key or os.environ.get("LYCEUM_API_KEY"))

    def use_agents(self) -> bool:
        if self.offline:
            return False
        return bool(self.base_url or os.environ.get("LYCEUM_BASE_URL") or os.environ.get("OPENAI_BASE_URL"))


@dataclass
class ResearchResult:
    run_dir: Path
    paths: dict[str, Path]
    summary: dict[str, Any] = field(default_factory=dict)


def open_sources(cfg: ResearchConfig):
    """The catalog and the document search the config names (either may be absent, not both)."""
    from lyceum.research.catalog import Catalog
    from lyceum.research.documents import LocalDocuments, load_provider

    if not cfg.tables and not cfg.docs and not cfg.search_provider:
        raise UserError("give at least one knowledge source: --tables DIR and/or --docs DIR")
    catalog = Catalog.open_or_build(cfg.tables, cfg.db) if cfg.tables else None
    if cfg.search_provider:
        docs = load_provider(cfg.search_provider)
    elif cfg.docs:
        docs = LocalDocuments(cfg.docs)
    else:
        docs = None
    return catalog, docs


def run_research(cfg: ResearchConfig, out_dir: str | Path, *, catalog=None, docs=None) -> ResearchResult:
    """Run one question into ``out_dir`` (the run folder: config, metrics, figures, report.md/.html)."""
    from lyceum.runs import RunDir

    if not cfg.question or not cfg.question.strip():
        raise UserError("the question is empty")
    out = Path(out_dir)
    run = RunDir.open(out, {k: v for k, v in vars(cfg).items() if k != "api_key"})
    start = time.time()
    if catalog is None and docs is None:
        catalog, docs = open_sources(cfg)
    run.log(f"question: {cfg.question}")
    if cfg.use_agents():
        from lyceum.research.agents import run_agents

        final, extra = run_agents(cfg, catalog, docs, run)
    else:
        final, extra = _run_rule_based(cfg, catalog, docs, run)
    from lyceum.research.report import write_report
    from lyceum.research.writer import report_summary

    paths = write_report(final, run.path)
    if cfg.use_agents():
        _make_private(run.path)
    summary = {**report_summary(final), **extra, "seconds": round(time.time() - start, 2)}
    run.write_json("summary.json", summary)
    run.log_metrics({"event": "report", **{k: v for k, v in summary.items() if isinstance(v, (int, float))}})
    run.log(f"report written: {paths['markdown']}")
    return ResearchResult(run_dir=run.path, paths=paths, summary=summary)


def _make_private(folder: Path) -> None:
    """An agent run's files hold prompts and model replies (reports, provenance, caches): owner-only."""
    os.chmod(folder, 0o700)
    for path in folder.rglob("*"):
        os.chmod(path, 0o700 if path.is_dir() else 0o600)


def _run_rule_based(cfg: ResearchConfig, catalog, docs, run):
    from lyceum.research.analysis import analyze_tables
    from lyceum.research.writer import compose_rule_based, finalize, profile_values, supported_values

    embed = cfg.embedder()
    from lyceum.research.selection import select_tables

    choices: list[str] = []  # tables left out because another holds the same measure, and why
    tables = select_tables(catalog, cfg.question, max_tables=cfg.max_tables, embed=embed, notes=choices) \
        if catalog is not None else []
    ranked = catalog.search(cfg.question, k=8, embed=embed) if catalog is not None else []
    run.write_json("retrieval.json", {
        "ranked": [{"table": p.id, "score": round(s, 3)} for p, s in ranked],
        "selected": [p.id for p in tables], "choices": choices,
    })
    run.log(f"tables selected: {[p.id for p in tables]}")
    findings = analyze_tables(catalog, tables, cfg.question, run.path) if tables else []
    # A derived measure may draw on a table the search did not select (population for a per-capita question).
    tables = tables + [catalog.by_id[t] for t in dict.fromkeys(s for f in findings for s in f.sources)
                       if t in catalog.by_id and all(t != p.id for p in tables)]
    notes: list[Note] = docs.search(cfg.question, k=cfg.doc_notes) if docs is not None else []
    draft = compose_rule_based(cfg.question, findings, tables, notes, choices=choices)
    from lyceum.research.numbers import extract_numbers

    quoted = [n.value for note in notes for n in extract_numbers(note.text)]  # backed by the documents
    final = finalize(draft, supported_values(findings, profile_values(tables) + quoted))
    check = draft.answer_check
    return final, {"answer_check": {"parts": check.parts, "subjects": check.subjects, "not_covered": check.missing,
                                    "answered": check.answered},
                   "tables_used": sorted({t for f in findings for t in f.sources}),
                   "documents_used": sorted({n.source_id for n in notes})}
