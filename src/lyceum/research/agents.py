"""The research agents (HKA design): planner, supervisors, structured and unstructured analyzers, writer.

    planner      question -> at most N subtasks
    supervisor   per subtask, chooses tools (table analysis first, then document search) within a budget
    structured   tables -> rerank -> code (from profiles, not data) -> sandbox run -> up to 5 repairs
                 -> vision critique of the figure, up to 3 rounds -> figure + table + insight, with provenance
    unstructured search -> read passages -> notes with their sources
    writer       one section per subtask, then title/abstract/introduction/conclusion; the final pass
                 (writer.finalize) numbers figures and citations and checks every number

Each role has its own model (``--coder-model``, ``--vision-model``...) at one endpoint; all calls share one
on-disk cache in the run folder, so a re-run costs nothing and an interrupted run resumes.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lyceum.research import prompts
from lyceum.research.records import Figure, Finding, Note, Provenance, Table


@dataclass
class Roles:
    planner: Any
    coder: Any
    vision: Any
    writer: Any

    def clients(self) -> list[Any]:
        out = []
        for c in (self.planner, self.coder, self.vision, self.writer):
            if all(c is not o for o in out):
                out.append(c)
        return out

    def usage(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for c in self.clients():
            for site, row in c.usage_summary().items():
                if site != "total":
                    merged[site] = row
        return merged


def make_roles(cfg, cache_path: Path | None, usage_log: Path | None = None) -> Roles:
    """One client per distinct model at the endpoint; all share one cache file and one usage ledger."""
    from lyceum.models.chat import ChatCache, ChatClient

    cache = ChatCache(cache_path) if cache_path is not None else None
    made: dict[str | None, Any] = {}

    def client(model: str | None):
        model = model or cfg.model
        if model not in made:
            made[model] = ChatClient(cfg.base_url, model, cfg.api_key, cache=cache, concurrency=cfg.concurrency,
                                     usage_log=usage_log)
        return made[model]

    return Roles(planner=client(cfg.model), coder=client(cfg.coder_model), vision=client(cfg.vision_model),
                 writer=client(cfg.writer_model))


@dataclass
class AgentStats:
    subtasks: int = 0
    tool_calls: int = 0
    analyses: int = 0
    failed_analyses: int = 0
    code_runs: int = 0
    repairs: int = 0
    critique_rounds: int = 0
    rewrites: int = 0
    searches: int = 0
    sandbox_refusals: int = 0
    timeouts: int = 0


def _msgs(system: str | None, user: str) -> list[dict[str, Any]]:
    from lyceum.models.chat import system_message, user_message

    return ([system_message(system)] if system else []) + [user_message(user)]


def extract_code(text: str) -> str:
    """The Python in a reply: the first fenced block, or the whole reply when there is no fence."""
    m = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, re.DOTALL)
    return (m.group(1) if m else text).strip() + "\n"


# ---------------------------------------------------------------------------------------------------------------
# The structured knowledge analyzer


class StructuredAnalyzer:
    """Tables -> generated code in the sandbox -> repaired -> critiqued -> a finding with provenance."""

    def __init__(self, roles: Roles, catalog, cfg, run_dir: Path, question: str, stats: AgentStats):
        self.roles, self.catalog, self.cfg, self.question, self.stats = roles, catalog, cfg, question, stats
        self.run_dir = Path(run_dir)
        self.count = 0
        self.data_dir = self.run_dir / "sandbox-data"
        self.embed = cfg.embedder() if hasattr(cfg, "embedder") else None

    def choose_tables(self, request: str) -> list:
        candidates = [p for p, _ in self.catalog.search(f"{request} {self.question}", k=5, embed=self.embed)]
        if not candidates:
            return []
        listing = "\n".join(f"- {p.id}: {p.title} ({p.time_start or '-'} to {p.time_end or '-'}, {p.n_rows} rows)"
                            for p in candidates)
        reply = self.roles.planner.complete_json_sync(
            _msgs(None, prompts.render("rerank", request=request, candidates=listing)), prompts.schema("rerank"),
            site="rerank")
        chosen = [self.catalog.by_id[t] for t in reply["tables"] if t in self.catalog.by_id][: self.cfg.max_tables]
        return chosen or candidates[:1]

    def _export(self, tables: list) -> dict[str, str]:
        """Read-only Parquet copies of the chosen tables for the sandbox (outside its scratch folder)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        paths = {}
        for p in tables:
            path = self.data_dir / f"{p.sql_name}.parquet"
            if not path.exists():
                self.catalog.frame(p.id).to_parquet(path, index=False)
            paths[p.id] = str(path.resolve())
        return paths

    def _ask_code(self, messages: list[dict[str, Any]]) -> str:
        reply = self.roles.coder.complete_sync(messages, site="coder")
        return extract_code(reply.text)

    def _run(self, code: str, paths: dict[str, str], attempt_dir: Path):
        from lyceum.research.sandbox import SandboxLimits, run_python

        runtime = (Path(__file__).parent / "sandbox_runtime.py").read_text()
        self.stats.code_runs += 1
        result = run_python(code, workdir=attempt_dir, readable=list(paths.values()),
                            limits=SandboxLimits(timeout_s=self.cfg.sandbox_timeout_s,
                                                 memory_mb=self.cfg.sandbox_memory_mb),
                            support_files={"lyceum_runtime.py": runtime, "tables.json": json.dumps(paths)})
        if result.timed_out:
            self.stats.timeouts += 1
        if "lyceum sandbox" in result.stderr:
            self.stats.sandbox_refusals += 1
        return result

    @staticmethod
    def problem(result) -> str | None:
        """Why a run cannot be used, as feedback for the coder (None when it can)."""
        if not result.ok:
            return result.error_summary()
        from lyceum.research.charts import png_is_readable

        fig = result.workdir / "figure.png"
        if not fig.is_file() or not png_is_readable(fig):
            return "the script finished but saved no readable figure to FIGURE (figure.png)"
        if not (result.workdir / "table.md").is_file():
            return "the script finished but did not call save_table(...) with a result table"
        return None

    def _run_with_repairs(self, messages, code, paths, base: Path, budget: list[int]):
        """Run ``code``; on failure feed the error back and ask for a fix while repairs are left."""
        attempt = 0
        while True:
            attempt += 1
            result = self._run(code, paths, base / f"run-{attempt}")
            issue = self.problem(result)
            if issue is None:
                return result, code
            if budget[0] <= 0:
                return None, code
            budget[0] -= 1
            self.stats.repairs += 1
            messages += [{"role": "assistant", "content": f"```python\n{code}```"},
                         {"role": "user", "content": prompts.render("repair", error=issue[-3000:])}]
            code = self._ask_code(messages)

    def _critique(self, request: str, result) -> dict[str, Any]:
        from lyceum.models.chat import user_message

        self.stats.critique_rounds += 1
        msg = user_message(prompts.render("critic", request=request, stdout=result.stdout[-2000:] or "(nothing)"),
                           images=[result.workdir / "figure.png"])
        return self.roles.vision.complete_json_sync([msg], prompts.schema("critic"), site="vision")

    def analyze(self, request: str, title: str = "") -> Finding | None:
        self.stats.analyses += 1
        self.count += 1
        base = self.run_dir / "analyses" / f"a{self.count:02d}"
        tables = self.choose_tables(request)
        if not tables:
            self.stats.failed_analyses += 1
            return None
        paths = self._export(tables)
        profiles = "\n\n".join(p.summary() for p in tables)
        messages = _msgs(prompts.text("coder_system"), prompts.render("coder", request=request, profiles=profiles))
        code = self._ask_code(messages)
        budget = [self.cfg.max_repairs]
        result, code = self._run_with_repairs(messages, code, paths, base, budget)
        if result is None:
            self.stats.failed_analyses += 1
            return None
        review: dict[str, Any] = {}
        for round_ in range(1, self.cfg.critique_rounds + 1):
            review = self._critique(request, result)
            if review.get("verdict") == "accept" or round_ == self.cfg.critique_rounds:
                break
            issues = "\n".join(f"- {i}" for i in review.get("issues") or ["make the figure clearer"])
            messages += [{"role": "assistant", "content": f"```python\n{code}```"},
                         {"role": "user", "content": prompts.render("revise", issues=issues)}]
            self.stats.rewrites += 1
            new_result, new_code = self._run_with_repairs(messages, self._ask_code(messages), paths, base, budget)
            if new_result is None:
                break  # keep the last working version
            result, code = new_result, new_code
        return self._finding(request, title, tables, result, code, review)

    def _finding(self, request, title, tables, result, code, review) -> Finding:
        work = result.workdir
        loaded = _read_json(work / "loaded_tables.json", [])
        used = [t for t in loaded if t in self.catalog.by_id] or [p.id for p in tables]
        numbers = {k: float(v) for k, v in _read_json(work / "numbers.json", {}).items()
                   if isinstance(v, (int, float))}
        figures_dir = self.run_dir / "figures"
        figures_dir.mkdir(parents=True, exist_ok=True)
        fig_path = figures_dir / f"fig-agent-{self.count:02d}.png"
        shutil.copy2(work / "figure.png", fig_path)
        prov = Provenance(tables=used, method="generated code", code=code, numbers=numbers, stdout=result.stdout[-4000:])
        caption = (review.get("caption") or request).strip().rstrip(".")
        table_caption = str(_read_json(work / "table.json", {}).get("caption") or request).strip().rstrip(".")
        verdict = review.get("verdict", "accept")
        insight = (review.get("insight") or "").strip()
        return Finding(title=title or request, sentences=[insight] if insight else [],
                       figures=[Figure(fig_path, caption, prov)],
                       tables=[Table((work / "table.md").read_text(), table_caption, prov)],
                       numbers=numbers, sources=used, kind="agent" if verdict == "accept" else "agent-unaccepted")


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return default


# ---------------------------------------------------------------------------------------------------------------
# The unstructured analyzer


def read_documents(roles: Roles, docs, query: str, stats: AgentStats, k: int = 5) -> list[Note]:
    """Search the documents, then let the model keep what matters as notes naming their source."""
    stats.searches += 1
    hits = docs.search(query, k=k) if docs is not None else []
    if not hits:
        return []
    passages = "\n\n".join(f"[source id: {n.source_id}]\n{n.text[:1500]}" for n in hits)
    reply = roles.planner.complete_json_sync(_msgs(None, prompts.render("notes", query=query, passages=passages)),
                                             prompts.schema("notes"), site="notes")
    titles = {n.source_id: n.title for n in hits}
    return [Note(text=str(n["text"]), source_id=str(n["source"]), title=titles[str(n["source"])])
            for n in reply["notes"] if str(n["source"]) in titles]


# ---------------------------------------------------------------------------------------------------------------
# Planner and supervisor


@dataclass
class SubtaskResult:
    title: str
    goal: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)


def plan(roles: Roles, question: str, catalog, docs, max_subtasks: int) -> list[dict[str, str]]:
    tables = "\n".join(f"- {p.id}: {p.title} ({p.time_start or '-'} to {p.time_end or '-'})"
                       for p, _ in (catalog.search(question, k=8) if catalog is not None else [])) or "(none)"
    reply = roles.planner.complete_json_sync(_msgs(None, prompts.render(
        "planner", question=question, tables=tables, docs=f"{getattr(docs, 'name', 'yes')}" if docs is not None else "none",
        max_subtasks=max_subtasks)), prompts.schema("plan"), site="planner")
    return [{"title": str(s["title"]), "goal": str(s.get("goal") or s["title"])}
            for s in reply["subtasks"][:max_subtasks]]


def supervise(roles: Roles, task: dict[str, str], question: str, analyzer: StructuredAnalyzer | None, docs,
              cfg, stats: AgentStats) -> SubtaskResult:
    """Call tools for one subtask until the model finishes or the tool-call budget is spent."""
    out = SubtaskResult(task["title"], task["goal"])
    budget = cfg.tool_budget
    history = [{"role": "system", "content": prompts.render("supervisor", question=question, title=task["title"],
                                                                       goal=task["goal"], budget=budget)},
               {"role": "user", "content": "Choose the first tool call."}]
    analysed = False
    while budget > 0:
        reply = roles.planner.complete_json_sync(history, prompts.schema("action"), site="supervisor")
        action, arg = reply["action"], str(reply.get("input") or task["goal"])
        if action == "finish":
            out.log.append({"action": "finish", "input": arg})
            break
        if action == "search_documents" and not analysed and analyzer is not None:
            action = "analyze_tables"  # knowledge computing comes first, as in HKA
        budget -= 1
        stats.tool_calls += 1
        if action == "analyze_tables":
            analysed = True
            finding = analyzer.analyze(arg, task["title"]) if analyzer is not None else None
            if finding is not None:
                out.findings.append(finding)
                observation = (f"Analysis done. Insight: {' '.join(finding.sentences) or '(none)'} Numbers: "
                               + ", ".join(f"{k}={v:g}" for k, v in list(finding.numbers.items())[:20]))
            else:
                observation = "The analysis failed (no usable figure and table after the repairs)."
        else:
            notes = read_documents(roles, docs, arg, stats)
            out.notes += notes
            observation = "Notes: " + (" | ".join(f"{n.text} ({n.source_id})" for n in notes) or "nothing relevant")
        out.log.append({"action": action, "input": arg, "observation": observation[:2000]})
        history += [{"role": "assistant", "content": json.dumps(reply)},
                    {"role": "user", "content": f"Observation: {observation[:4000]}\n{budget} tool calls left. "
                                                "Choose the next tool call or finish."}]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Writer


def _evidence(result: SubtaskResult, ids: dict[int, tuple[str, str]]) -> str:
    lines = []
    for f in result.findings:
        fid, tid = ids[id(f)]
        cites = "".join(f"[@table:{t}]" for t in f.sources)
        lines.append(f"Figure {fid}: {f.figures[0].caption}. Insight: {' '.join(f.sentences)} Sources: {cites}")
        lines.append("Numbers: " + ", ".join(f"{k} = {v:g}" for k, v in list(f.numbers.items())[:30]))
        lines.append(f"Table {tid}: {f.tables[0].caption}\n{f.tables[0].markdown[:3000]}")
    for n in result.notes:
        lines.append(f"Note [@doc:{n.source_id}]: {n.text}")
    return "\n".join(lines) or "(no evidence was found for this section)"


def write_report(roles: Roles, question: str, results: list[SubtaskResult], profiles: list, models: str):
    from lyceum.research.writer import Draft, note_source, table_source

    draft = Draft(question=question, title=question, mode="agents", abstract="", introduction="", sections=[],
                  conclusion="", label=f"Written by language models ({models}). Every number in the text was checked "
                                       "against the analysis outputs; unbacked numbers are marked (unverified).")
    for p in profiles:
        draft.sources[f"table:{p.id}"] = table_source(p)
    for r in results:
        for n in r.notes:
            draft.sources.setdefault(f"doc:{n.source_id}", note_source(n))
    counter = 0
    for r in results:
        ids = {}
        for f in r.findings:
            counter += 1
            fid, tid = f"f{counter}", f"t{counter}"
            ids[id(f)] = (fid, tid)
            draft.figures[fid] = f.figures[0]
            draft.tables[tid] = f.tables[0]
        body = roles.writer.complete_sync(_msgs(None, prompts.render(
            "writer_section", question=question, title=r.title, goal=r.goal, evidence=_evidence(r, ids))), site="writer").text.strip()
        body = re.sub(r"^#+ .*\n", "", body)
        for fid, tid in ids.values():  # every figure and table appears, even if the writer forgot one
            if f"{{{{figure:{fid}}}}}" not in body:
                body += f"\n\n{{{{figure:{fid}}}}}"
            if f"{{{{table:{tid}}}}}" not in body:
                body += f"\n\n{{{{table:{tid}}}}}"
        draft.sections.append((r.title, body))
    sections = "\n\n".join(f"## {t}\n{b}" for t, b in draft.sections)
    final = roles.writer.complete_json_sync(_msgs(None, prompts.render("writer_final", question=question,
                                                                                     sections=sections[:20000])),
                                            prompts.schema("final"), site="writer-final")
    draft.title = (final.get("title") or question).strip()
    draft.abstract, draft.introduction, draft.conclusion = final["abstract"], final["introduction"], final["conclusion"]
    return draft


# ---------------------------------------------------------------------------------------------------------------
# The whole run


def _rule_based_fallback(cfg, catalog, draft, run) -> list[Finding]:
    """When no agent analysis produced a figure, add the rule-based analyses so the report still shows the data."""
    if catalog is None:
        return []
    from lyceum.research.analysis import analyze_tables
    from lyceum.research.writer import finding_section, table_source

    tables = catalog.select(cfg.question, max_tables=cfg.max_tables)
    findings = analyze_tables(catalog, tables, cfg.question, run.path) if tables else []
    for p in tables:
        draft.sources.setdefault(f"table:{p.id}", table_source(p))
    for i, f in enumerate(findings, 1):
        draft.sections.append((f"{f.title[:1].upper() + f.title[1:]} (rule-based)", finding_section(f, 100 + i, draft)))
    if findings:
        draft.label += (" No agent analysis produced a usable figure, so the sections marked (rule-based) were "
                        "computed by fixed rules instead.")
        run.log(f"rule-based fallback: {len(findings)} findings")
    return findings


def run_agents(cfg, catalog, docs, run):
    """Plan, supervise, analyse, write and finalize; returns (FinalReport, summary extras)."""
    from lyceum.research.numbers import extract_numbers
    from lyceum.research.writer import finalize, profile_values, supported_values
    from lyceum.runs import progress

    # The ledger makes summary.json's token use the whole run's, across every process that worked on it.
    roles = make_roles(cfg, run.path / "chat-cache.sqlite" if cfg.cache else None, run.path / "usage.jsonl")
    stats = AgentStats()
    tasks = plan(roles, cfg.question, catalog, docs, cfg.max_subtasks)
    stats.subtasks = len(tasks)
    run.write_json("plan.json", tasks)
    analyzer = StructuredAnalyzer(roles, catalog, cfg, run.path, cfg.question, stats) if catalog is not None else None
    results = []
    for task in progress(tasks, desc="subtasks"):
        results.append(supervise(roles, task, cfg.question, analyzer, docs, cfg, stats))
        run.log(f"subtask done: {task['title']} ({len(results[-1].findings)} findings, {len(results[-1].notes)} notes)")
    run.write_json("subtasks.json", [{"title": r.title, "goal": r.goal, "log": r.log} for r in results])
    findings = [f for r in results for f in r.findings]
    used = sorted({t for f in findings for t in f.sources})
    profiles = [catalog.by_id[t] for t in used] if catalog is not None else []
    models = ", ".join(sorted({c.model for c in roles.clients()}))
    draft = write_report(roles, cfg.question, results, profiles, models)
    fallback = _rule_based_fallback(cfg, catalog, draft, run) if not any(f.figures for f in findings) else []
    findings += fallback
    note_numbers = [n.value for r in results for note in r.notes for n in extract_numbers(note.text)]
    final = finalize(draft, supported_values(findings, profile_values(profiles) + note_numbers))
    used = sorted(set(used) | {t for f in fallback for t in f.sources})
    extra = {"rule_based_fallback": bool(fallback), "tables_used": used, "documents_used": sorted({n.source_id for r in results for n in r.notes}),
             **asdict(stats), "usage": roles.usage()}
    run.log_metrics({"event": "agents", **asdict(stats)})
    return final, extra
