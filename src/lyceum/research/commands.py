"""`lyceum research index | run | bench`: the command line of the research system (light imports only)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(verbs) -> None:
    from lyceum.models.chat import add_endpoint_args

    p = verbs.add_parser("index", help="ingest a folder of tables into a searchable DuckDB catalog",
                         description="Read every CSV/TSV/XLSX/Parquet/JSON table under --tables (with datapackage.json "
                                     "and README descriptions), profile it and index it for search. Reports, per "
                                     "file, what it repaired or could not read.")
    p.add_argument("--tables", required=True, help="folder of tables (searched recursively)")
    p.add_argument("--db", help="catalog file to write (default: a cache file keyed by the folder)")
    p.add_argument("--search", metavar="QUERY", help="after indexing, show the tables that best match QUERY")
    p.set_defaults(func=cmd_index)

    p = verbs.add_parser("run", help="answer a question with a report built from tables and documents",
                         description="Plan, analyse and write a report (report.md + self-contained report.html) "
                                     "into --out. Without an endpoint the run is rule-based and says so.")
    p.add_argument("question", help="the research question, in quotes")
    _source_args(p)
    p.add_argument("--out", required=True, help="run folder for the report, figures, config and logs")
    _agent_args(p, add_endpoint_args)
    p.set_defaults(func=cmd_run)

    p = verbs.add_parser("bench", help="KDR-style benchmark: run every question and score the reports",
                         description="Scores: numeric fact recall (no judge), expected-table recall, figure/table "
                                     "counts and broken figures; with --judge-base-url also RACE-style quality, "
                                     "main-conclusion alignment and key-point coverage/supportiveness.")
    p.add_argument("--questions", required=True, help="JSONL questions with main_conclusions, key_points, gold_tables")
    _source_args(p)
    p.add_argument("--out", required=True, help="run folder for the reports and scores")
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument("--repeats", type=int, default=1, help="ask the judge N times per score to report the spread")
    add_endpoint_args(p, prefix="judge-", role="judge")
    p.add_argument("--vision-judge-model", help="model at the judge endpoint that rates figures (optional)")
    _agent_args(p, add_endpoint_args)
    p.set_defaults(func=cmd_bench)


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tables", help="folder of tables (indexed on first use, then cached)")
    p.add_argument("--docs", help="folder of documents (markdown, text, HTML, PDF) to search")
    p.add_argument("--search-provider", metavar="MODULE:NAME",
                   help="a SearchProvider to use instead of --docs (e.g. a web search you wrote)")
    p.add_argument("--db", help="catalog file (default: a cache file keyed by the tables folder)")


def _agent_args(p: argparse.ArgumentParser, add_endpoint_args) -> None:
    add_endpoint_args(p, role="planner and writer (no endpoint: the rule-based mode)")
    p.add_argument("--coder-model", help="model that writes analysis code (default: --model)")
    p.add_argument("--vision-model", help="model that critiques figures (default: --model)")
    p.add_argument("--writer-model", help="model that writes sections (default: --model)")
    p.add_argument("--embed-model", help="embedding model at the endpoint, blended into table search (optional)")
    p.add_argument("--embed-url", help="OpenAI-compatible endpoint serving /v1/embeddings for --embed-model, when it "
                                       "is not --base-url (usable without a chat endpoint)")
    p.add_argument("--offline", action="store_true", help="ignore any endpoint and run the rule-based mode")
    p.add_argument("--max-subtasks", type=int, default=5)
    p.add_argument("--tool-budget", type=int, default=30, help="tool calls per subtask")
    p.add_argument("--max-repairs", type=int, default=5, help="code repairs after a failed run")
    p.add_argument("--critique-rounds", type=int, default=3, help="figure critique rounds by the vision model")
    p.add_argument("--sandbox-timeout", type=float, default=30.0, help="seconds per generated-code run")
    p.add_argument("--sandbox-memory-mb", type=int, default=2048)
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run generated code without isolation where bubblewrap is unavailable (unsafe)")
    p.add_argument("--max-tables", type=int, default=3, help="tables per analysis")


def _config(args, question: str):
    from lyceum.errors import UserError
    from lyceum.research.pipeline import ResearchConfig

    for name in ("max_subtasks", "tool_budget", "max_tables"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("max_repairs", "critique_rounds"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} cannot be negative")
    if args.sandbox_timeout <= 0 or args.sandbox_memory_mb < 256:
        raise UserError("--sandbox-timeout must be positive and --sandbox-memory-mb at least 256")
    from lyceum.research.sandbox import require_sandbox

    require_sandbox(unsafe_no_sandbox=args.unsafe_no_sandbox)
    if args.tables and not Path(args.tables).is_dir():
        raise UserError(f"tables folder not found: {args.tables}")
    if args.docs and not Path(args.docs).is_dir():
        raise UserError(f"documents folder not found: {args.docs}")
    base_url = args.base_url
    cfg = ResearchConfig(question=question, tables=args.tables, docs=args.docs, db=args.db,
                         search_provider=args.search_provider, max_tables=args.max_tables, base_url=base_url,
                         model=args.model, api_key=args.api_key, coder_model=args.coder_model,
                         vision_model=args.vision_model, writer_model=args.writer_model, embed_model=args.embed_model,
                         embed_url=args.embed_url,
                         max_subtasks=args.max_subtasks, tool_budget=args.tool_budget, max_repairs=args.max_repairs,
                         critique_rounds=args.critique_rounds, sandbox_timeout_s=args.sandbox_timeout,
                         sandbox_memory_mb=args.sandbox_memory_mb, offline=args.offline)
    return cfg


def cmd_index(args) -> int:
    from lyceum.research.catalog import Catalog, default_db_path

    db = Path(args.db) if args.db else default_db_path(Path(args.tables))
    catalog = Catalog.build(args.tables, db)
    files = [r for r in catalog.reports if r.tables or r.error]
    print(f"indexed {len(catalog.profiles)} tables from {len(files)} files into {db}")
    for r in catalog.reports:
        if r.error:
            print(f"  {r.file}: NOT READ -- {r.error}")
        elif r.tables:
            note = f"; {'; '.join(r.problems)}" if r.problems else ""
            print(f"  {r.file}: {r.rows} rows{note}")
        elif r.problems:
            print(f"  {r.file}: {'; '.join(r.problems)}")
    if args.search:
        print(f"\nbest matches for {args.search!r}:")
        for p, s in catalog.search(args.search, k=5):
            print(f"  {s:6.2f}  {p.id}  {p.title[:70]}")
    return 0


def cmd_run(args) -> int:
    from lyceum.research.pipeline import run_research

    cfg = _config(args, args.question)
    result = run_research(cfg, args.out)
    s = result.summary
    print(f"{s['mode']} report: {result.paths['markdown']}")
    print(f"  html: {result.paths['html']}")
    print(f"  {s['figures']} figures, {s['tables']} tables, {s['references']} references; tables used: "
          f"{', '.join(s.get('tables_used') or []) or 'none'}")
    unsupported = s.get("unsupported_numbers") or []
    print(f"  number check: {s['checked_numbers'] - len(unsupported)}/{s['checked_numbers']} numbers backed by "
          f"analyses" + (f"; unverified: {', '.join(unsupported)}" if unsupported else ""))
    return 0


def cmd_bench(args) -> int:
    from lyceum.errors import UserError
    from lyceum.research.bench import format_summary, load_questions, run_bench

    questions = load_questions(args.questions)
    if args.limit is not None:
        if args.limit < 1:
            raise UserError("--limit must be at least 1")
        questions = questions[: args.limit]
    cfg = _config(args, "-")
    judge = vision = None
    if args.judge_base_url:
        from lyceum.models.chat import ChatClient

        cache, ledger = Path(args.out) / "judge-cache.sqlite", Path(args.out) / "usage.jsonl"
        judge = ChatClient(args.judge_base_url, args.judge_model, args.judge_api_key, cache=cache, usage_log=ledger)
        if args.vision_judge_model:
            vision = ChatClient(args.judge_base_url, args.vision_judge_model, args.judge_api_key, cache=cache,
                                usage_log=ledger)
    summary = run_bench(questions, cfg, args.out, judge=judge, vision_judge=vision, repeats=args.repeats)
    print(format_summary(summary))
    if summary.means.get("errors"):
        print(f"{summary.means['errors']} question(s) failed after every attempt (error rows in scores.jsonl); "
              f"run the same command again to retry them")
    print(f"scores: {Path(args.out) / 'scores.jsonl'}")
    return 0
