"""`lyceum olympiad exams | grade | run`. Light at import: everything heavy is imported inside the handlers."""

from __future__ import annotations

import argparse
from pathlib import Path

from lyceum.errors import UserError


def register(verbs) -> None:
    p = verbs.add_parser("exams", help="list the exams in a HiPhO directory",
                         description="List the exams in a HiPhO directory: problems, sub-answers, full marks, "
                                     "medal cut-offs.")
    p.add_argument("--data", required=True, help="HiPhO directory (exam *.json files, image_question/, medals.json)")
    p.set_defaults(func=cmd_exams)

    p = verbs.add_parser("selfcheck", help="grade the gold answers against themselves (checks the grader)",
                         description="Feed every gold answer back as a boxed response and grade it: each sub-answer "
                                     "that is not judge-only must be correct. Prints the count and the time taken.")
    p.add_argument("--data", required=True, help="HiPhO directory")
    p.add_argument("--workers", type=int, default=1, help="processes for answer checks (default 1)")
    p.add_argument("--check-timeout", type=float, default=2.0,
                   help="CPU seconds per symbolic stage (default 2; a check that runs out is retried once with 4x)")
    p.add_argument("--write-predictions", metavar="FILE",
                   help="also write the gold answers as a predictions JSONL file (rows {id, response}) to try "
                        "`olympiad grade` on")
    p.set_defaults(func=cmd_selfcheck)

    p = verbs.add_parser("grade", help="grade model predictions on HiPhO (answer level, optional judge, medals)",
                         description="Grade a predictions JSONL file: rows {\"id\", \"response\"} or {\"id\", "
                                     "\"answers\": [...]}. Writes grades.jsonl, summary.json, report.md and a chart.")
    p.add_argument("--data", required=True, help="HiPhO directory")
    p.add_argument("--predictions", required=True, help="predictions JSONL file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--exam", default="all", help="exam name(s), comma separated, or 'all' (default)")
    _grading_args(p)
    p.set_defaults(func=cmd_grade)

    p = verbs.add_parser("run", help="run a model (plain or the PhysicsMinions agent) on HiPhO and grade it",
                         description="Solve HiPhO exams with any OpenAI-compatible endpoint, save predictions and "
                                     "transcripts, then grade. Re-running with the same --out resumes from the cache.")
    from lyceum.models.chat import add_endpoint_args

    add_endpoint_args(p)
    p.add_argument("--data", required=True, help="HiPhO directory")
    p.add_argument("--out", required=True, help="output folder (predictions, transcripts, grades, report)")
    p.add_argument("--exam", default="all", help="exam name(s), comma separated, or 'all' (default)")
    p.add_argument("--agent", default=None,
                   help="solver: none/plain (one call per problem, lyceum's prompt; the default), minions (the "
                        "PhysicsMinions visual/logic/review loop), official (HiPhO's prompt; the default with "
                        "--protocol official)")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent requests to the model (default 8)")
    p.add_argument("--cache", help="sqlite chat cache (default: OUT/chat_cache.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="do not cache (and so cannot resume)")
    p.add_argument("--text-only", action="store_true", help="never send images (for text-only models)")
    p.add_argument("--temperature", type=float, help="sampling temperature")
    p.add_argument("--max-tokens", type=int, help="maximum completion tokens per call")
    p.add_argument("--request-timeout", type=float, default=600.0, help="seconds per request (default 600)")
    p.add_argument("--max-retries", type=int, default=4, help="retries per request on 429/5xx/timeouts (default 4)")
    p.add_argument("--limit", type=int, help="only the first N problems of each exam (a smoke test)")
    p.add_argument("--cv", type=int, default=2, help="minions: consecutive passes to accept / failures to restart")
    p.add_argument("--max-rounds", type=int, default=6, help="minions: review rounds before giving up")
    _grading_args(p)
    p.set_defaults(func=cmd_run)


def _grading_args(p: argparse.ArgumentParser) -> None:
    from lyceum.models.chat import add_endpoint_args

    g = p.add_argument_group("grading")
    g.add_argument("--protocol", choices=["lyceum", "official"], default="lyceum",
                   help="lyceum: lyceum's rules (default); official: HiPhO's published evaluation (VLMEvalKit), "
                        "for numbers comparable with its leaderboard (see docs/olympiad.md)")
    g.add_argument("--medals", help="medals.json with the cut-offs (default: DATA/medals.json)")
    g.add_argument("--rtol", type=float, default=2e-3, help="relative tolerance for numbers (default 2e-3)")
    g.add_argument("--check-timeout", type=float, default=2.0,
                   help="CPU seconds per symbolic stage of one answer check (default 2; retried once with 4x, "
                        "then 'undecided')")
    g.add_argument("--units", action="store_true",
                   help="convert a response's unit to the gold unit with pint (HiPhO ignores units)")
    g.add_argument("--workers", type=int, help="processes for answer checks (default: CPU count, at most 8)")
    add_endpoint_args(g, prefix="judge-", role="judge (step-level marking and judge-only answers)")
    g.add_argument("--judge-concurrency", type=int, default=8, help="concurrent judge requests (default 8)")
    g.add_argument("--judge-cache", help="sqlite cache for judge calls (default: OUT/judge_cache.sqlite)")


def _settings(args):
    from lyceum.olympiad.scoring import GradeSettings, default_workers

    if args.rtol <= 0:
        raise UserError(f"--rtol must be positive, got {args.rtol}")
    if args.check_timeout <= 0:
        raise UserError(f"--check-timeout must be positive, got {args.check_timeout}")
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    return GradeSettings(rtol=args.rtol, timeout=args.check_timeout, units=args.units, workers=workers)


def _private_cache(path: str | None) -> str | None:
    if path:
        from lyceum.olympiad.private import touch_private

        touch_private(path)  # prompts and replies: created 0600 before sqlite opens it
    return path


def _judge(args):
    """(Judge, ChatClient) when a judge endpoint or model is given, else (None, None)."""
    if not args.judge_base_url and not args.judge_model:
        return None, None
    from lyceum.models.chat import ChatClient
    from lyceum.olympiad.judge import Judge

    if args.judge_concurrency < 1:
        raise UserError(f"--judge-concurrency must be at least 1, got {args.judge_concurrency}")
    cache = _private_cache(args.judge_cache or str(Path(args.out) / "judge_cache.sqlite"))
    client = ChatClient(base_url=args.judge_base_url, model=args.judge_model, api_key=args.judge_api_key,
                        concurrency=args.judge_concurrency, cache=cache,
                        usage_log=Path(args.out) / "judge_usage.jsonl")
    return Judge(client), client


def _scorer(args, settings, judge, judge_client):
    from lyceum.olympiad.scorers import make_scorer

    return make_scorer(args.protocol, settings=settings, judge=judge, judge_client=judge_client)


def _config(args) -> dict:
    return {k: v for k, v in vars(args).items() if k != "func" and "api_key" not in k}


def cmd_exams(args) -> int:
    from lyceum.olympiad.data import load_hipho, load_medals

    exams = load_hipho(args.data)
    medals = load_medals(args.data)
    print(f"{'exam':<20}{'problems':>9}{'answers':>9}{'full mark':>11}{'bronze':>8}{'silver':>8}{'gold':>8}")
    for name, e in exams.items():
        c = medals.get(name)
        cut = [f"{getattr(c, k):>8g}" for k in ("bronze", "silver", "gold")] if c else [f"{'n/a':>8}"] * 3
        print(f"{name:<20}{len(e.problems):>9}{sum(p.n_answers for p in e.problems):>9}"
              f"{e.full_mark:>11.1f}{''.join(cut)}")
    return 0


def _print_summary(summary: dict, out: str) -> None:
    o = summary["overall"]
    print(f"score {o['score']:g} / {o['full_mark']:g} ({o['percent']:g}%) over {o['problems_graded']} problems")
    for name, e in summary["exams"].items():
        medal = e["medal"] or ("n/a" if e["cutoffs"] is None else "partial")
        print(f"  {name:<20} {e['score']:>8g} / {e['full_mark']:<8g} {medal}")
    if o.get("undecided"):
        print(f"{o['undecided']} sub-answer(s) undecided: their check ran out of its CPU budget twice "
              "(scored 0; a larger --check-timeout may decide them)")
    print(f"wrote {Path(out) / 'grades.jsonl'}, summary.json, report.md")


def cmd_selfcheck(args) -> int:
    from lyceum.olympiad.eval import selfcheck
    from lyceum.olympiad.scoring import GradeSettings

    if args.workers < 1 or args.check_timeout <= 0:
        raise UserError("--workers must be at least 1 and --check-timeout positive")
    result = selfcheck(args.data, GradeSettings(timeout=args.check_timeout, workers=args.workers))
    if args.write_predictions:
        from lyceum.olympiad.eval import gold_predictions
        from lyceum.runs import write_jsonl

        path = Path(args.write_predictions)
        if path.parent != Path("."):
            path.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(path, gold_predictions(args.data))
        print(f"wrote the gold answers as predictions to {path}")
    ok = result["checked"] - len(result["mismatches"])
    print(f"{ok}/{result['checked']} gold sub-answers of {result['problems']} problems graded correct "
          f"in {result['seconds']:.2f} s, {result['ms_per_check']:.1f} ms per check "
          f"({result['judge_only']} judge-only sub-answers not checked)")
    for m in result["mismatches"]:
        print(f"  MISMATCH {m['id']} #{m['index']} ({m['verdict']}): {m['gold']}")
    return 0 if not result["mismatches"] else 1


def cmd_grade(args) -> int:
    import sys

    from lyceum.olympiad.eval import Dataset, evaluate
    from lyceum.olympiad.scoring import load_predictions

    settings = _settings(args)
    dataset = Dataset.load(args.data, args.exam, medals=args.medals)
    loaded = load_predictions(args.predictions, dataset.index)
    if not loaded.rows:  # nothing to grade: every line is bad
        raise UserError(loaded.bad_message())
    if loaded.duplicates:
        ids = ", ".join(loaded.duplicates[:10]) + (" ..." if len(loaded.duplicates) > 10 else "")
        print(f"warning: {len(loaded.duplicates)} problem id(s) appear on several rows ({ids}): they are treated "
              "as samples of one problem and their scores averaged", file=sys.stderr)
    judge, judge_client = _judge(args)
    summary = evaluate(dataset, None, [_scorer(args, settings, judge, judge_client)], args.out,
                       predictions=loaded.rows, judge_client=judge_client, config=_config(args),
                       bad_lines=loaded.bad)
    _print_summary(summary, args.out)
    if loaded.bad:
        raise UserError(f"{len(loaded.bad)} line(s) of {args.predictions} could not be graded (the other "
                        f"{len(loaded.rows)} row(s) were, and {Path(args.out) / 'errors.jsonl'} lists them): "
                        + loaded.bad_message())
    return 0


def cmd_run(args) -> int:
    from lyceum.models.chat import ChatClient
    from lyceum.olympiad.eval import Dataset, SolveSettings, evaluate
    from lyceum.olympiad.solvers import get_solver

    if args.concurrency < 1:
        raise UserError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    if args.cv < 1 or args.max_rounds < 1:
        raise UserError("--cv and --max-rounds must be at least 1")
    agent = args.agent or ("official" if args.protocol == "official" else "none")
    solver = get_solver(agent)
    settings = _settings(args)
    params = {k: v for k, v in (("temperature", args.temperature), ("max_tokens", args.max_tokens)) if v is not None}
    dataset = Dataset.load(args.data, args.exam, limit=args.limit, medals=args.medals)
    cache = None if args.no_cache else _private_cache(args.cache or str(Path(args.out) / "chat_cache.sqlite"))
    client = ChatClient(base_url=args.base_url, model=args.model, api_key=args.api_key,
                        concurrency=args.concurrency, timeout=args.request_timeout, cache=cache,
                        max_retries=max(0, args.max_retries), usage_log=Path(args.out) / "usage.jsonl")
    judge, judge_client = _judge(args)
    solve = SolveSettings(text_only=args.text_only, params=params, cv=args.cv, max_rounds=args.max_rounds)
    summary = evaluate(dataset, solver, [_scorer(args, settings, judge, judge_client)], args.out, client=client,
                       solver_name=agent, settings=solve,
                       judge_client=judge_client, config=_config(args))
    _print_summary(summary, args.out)
    tokens = summary.get("solver_usage", {}).get("total", {})
    print(f"model calls {tokens.get('calls', 0)} ({tokens.get('cached_calls', 0)} cached), "
          f"tokens {tokens.get('total_tokens', 0)} (the whole run, over every resume)")
    return 0
