"""The agent path against a real local chat server with scripted replies.

One scripted run goes through every loop of the HKA design: the planner, a supervisor that asks for document
search first (and is made to analyse tables first), a coder whose first program tries the network (refused by
the sandbox) and whose second never ends (stopped by the time limit), two repairs, a vision critique that asks
for a revision, an accepted figure, document notes, a writer who states one number no analysis backs, and the
final pass.
"""

import json

import pytest
from chat_server import user_texts

pytest.importorskip("duckdb")

BRENT = "oil-prices/data/brent-daily.csv"

NETWORK_CODE = """
import json, urllib.request
body = json.dumps({{"model": "x", "messages": [{{"role": "user", "content": "sent-from-the-sandbox"}}]}}).encode()
urllib.request.urlopen(urllib.request.Request("{base_url}/chat/completions", data=body,
                                              headers={{"Content-Type": "application/json"}}), timeout=5)
"""
LOOP_CODE = "while True:\n    pass\n"
GOOD_CODE = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from lyceum_runtime import load_table, save_table, emit, FIGURE
df = load_table("oil-prices/data/brent-daily.csv")
annual = df.groupby(df["Date"].dt.year)["Price"].mean()
annual.loc[2000:2025].plot()
{labels}
plt.savefig(FIGURE, dpi=80)
save_table(annual.loc[2006:2010].round(2).to_frame("Brent mean price (USD/bbl)"), "Brent annual average price")
emit("brent_mean_2008", annual[2008])
print(f"2008 mean: {{annual[2008]:.2f}}")
"""
LABELS = 'plt.title("Brent, annual average"); plt.xlabel("year"); plt.ylabel("USD/bbl")'


def scripted_team(base_url: str, *, codes=None, critiques=None, supervisor=None):
    """A reply function that plays every role, chosen by the prompt it receives."""
    codes = codes if codes is not None else [
        NETWORK_CODE.format(base_url=base_url), LOOP_CODE, GOOD_CODE.format(labels=""), GOOD_CODE.format(labels=LABELS)]
    critiques = critiques if critiques is not None else [
        {"verdict": "revise", "issues": ["the axes have no labels or units", "no title"]},
        {"verdict": "accept", "issues": [], "caption": "Annual average Brent price, 2000-2025",
         "insight": "Brent averaged 96.94 USD/bbl in 2008 before the crash."}]
    supervisor = supervisor if supervisor is not None else [
        {"action": "search_documents", "input": "oil price history"},  # made to analyse tables first
        {"action": "search_documents", "input": "why oil crashed in 2008"},
        {"action": "finish", "input": "done"}]
    state = {"coder": 0, "critic": 0, "supervisor": 0}

    def reply(request):
        text = user_texts(request)
        if "You are the planner of a research team" in text:
            return json.dumps({"subtasks": [{"title": "The 2008 oil shock", "goal": "Brent prices around 2008"}]})
        if "You supervise one subtask" in text:
            state["supervisor"] += 1
            return json.dumps(supervisor[min(state["supervisor"], len(supervisor)) - 1])
        if "Choose the tables needed" in text:
            return json.dumps({"tables": [BRENT]})
        if "You write Python analysis code" in text:
            state["coder"] += 1
            return f"```python\n{codes[min(state['coder'], len(codes)) - 1]}\n```"
        if "You review one figure" in text:
            state["critic"] += 1
            return json.dumps(critiques[min(state["critic"], len(critiques)) - 1])
        if "Extract notes relevant" in text:
            return json.dumps({"notes": [{"text": "Demand collapsed in late 2008.", "source": "oil-history.md"},
                                         {"text": "Invented.", "source": "not-a-document.md"}]})
        if "Write one section" in text:
            return ("Brent averaged 96.94 USD/bbl in 2008 [@table:" + BRENT + "], as {{ref:f1}} shows; demand then "
                    "collapsed [@doc:oil-history.md] and prices lost 250.5 dollars.\n\n{{figure:f1}}\n\n{{table:t1}}")
        if "You finish a research report" in text:
            return json.dumps({"title": "The 2008 oil shock", "abstract": "Brent averaged 96.94 USD/bbl in 2008 "
                               "[@table:" + BRENT + "].", "introduction": "We analyse daily Brent prices.",
                               "conclusion": "Prices spiked and crashed."})
        return {"status": 400, "message": "unexpected prompt"}

    return reply, state


@pytest.fixture
def docs_dir(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "oil-history.md").write_text("# Oil history\n\nDemand collapsed in late 2008 and oil prices crashed.\n")
    return d


def config(chat_server, tables_dir, docs_dir, db, **kw):
    from lyceum.research.pipeline import ResearchConfig

    settings = {"question": "What happened to oil prices in 2008?", "tables": str(tables_dir), "docs": str(docs_dir),
                "db": str(db), "base_url": chat_server.base_url, "model": "scripted", "sandbox_timeout_s": 10.0,
                "max_repairs": 5, "critique_rounds": 3}
    settings.update(kw)
    return ResearchConfig(**settings)


def test_full_agent_path_with_repairs_critique_and_a_guarded_sandbox(chat_server, tables_dir, docs_dir, tmp_path,
                                                                     tmp_path_factory):
    from lyceum.research.pipeline import run_research

    reply, state = scripted_team(chat_server.base_url)
    chat_server.default = reply
    db = tmp_path_factory.getbasetemp() / "research-catalog.duckdb"
    result = run_research(config(chat_server, tables_dir, docs_dir, db), tmp_path / "run")
    s = result.summary
    assert s["mode"] == "agents"
    assert (s["repairs"], s["sandbox_refusals"], s["timeouts"]) == (2, 1, 1)
    assert (s["critique_rounds"], s["rewrites"], s["code_runs"]) == (2, 1, 4)
    assert (s["analyses"], s["failed_analyses"], s["tool_calls"], s["searches"]) == (1, 0, 2, 1)
    assert state == {"coder": 4, "critic": 2, "supervisor": 3}

    # The sandboxed program never reached the server, and each failure was fed back to the coder.
    bodies = [user_texts(r) for r in chat_server.requests]
    assert not any("sent-from-the-sandbox" in b and "You write Python" not in b for b in bodies)
    coder_prompts = [r["messages"] for r in chat_server.requests if "You write Python analysis code" in user_texts(r)]
    assert "network access is disabled in the lyceum sandbox" in coder_prompts[1][-1]["content"]
    assert coder_prompts[2][-1]["content"].startswith("The code failed. Error:\nthe code was stopped after 10 s")
    assert "the axes have no labels or units" in coder_prompts[3][-1]["content"]
    vision = [r for r in chat_server.requests if "You review one figure" in user_texts(r)]
    assert vision[0]["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")

    md = (result.run_dir / "report.md").read_text()
    assert md.splitlines()[0] == "# The 2008 oil shock"
    assert "Brent averaged 96.94 USD/bbl in 2008 [1], as Figure 1 shows; demand then collapsed [2] and prices lost " \
           "250.5 (unverified) dollars." in md
    assert "![Figure 1: Annual average Brent price, 2000-2025](figures/fig-agent-01.png)" in md
    assert "*Table 1: Brent annual average price.*" in md and "| 2008 | 96.94 |" in md
    assert "1. Europe Brent crude oil spot price" in md and "2. Oil history. Document `oil-history.md`." in md
    assert s["unsupported_numbers"] == ["250.5"] and s["tables_used"] == [BRENT]

    prov = json.loads((result.run_dir / "provenance.json").read_text())
    fig = prov["figures"][0]
    assert fig["method"] == "generated code" and fig["tables"] == [BRENT]
    assert 'plt.xlabel("year")' in fig["code"] and fig["numbers"]["brent_mean_2008"] == pytest.approx(96.944, abs=1e-3)
    html = (result.run_dir / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 1 and "plt.xlabel(&quot;year&quot;)" in html


def test_an_analysis_that_keeps_failing_gives_up_after_the_repairs(chat_server, tables_dir, docs_dir, tmp_path,
                                                                   tmp_path_factory):
    from lyceum.research.pipeline import run_research

    reply, state = scripted_team(chat_server.base_url, codes=["print(undefined_name)"],
                                 supervisor=[{"action": "analyze_tables", "input": "Brent in 2008"},
                                             {"action": "finish", "input": "nothing found"}])
    chat_server.default = reply
    db = tmp_path_factory.getbasetemp() / "research-catalog.duckdb"
    result = run_research(config(chat_server, tables_dir, docs_dir, db, max_repairs=2), tmp_path / "run")
    s = result.summary
    assert (s["analyses"], s["failed_analyses"], s["repairs"], s["code_runs"]) == (1, 1, 2, 3)
    assert state["coder"] == 3 and state["critic"] == 0
    supervisor = [r for r in chat_server.requests if "You supervise one subtask" in user_texts(r)]
    assert "The analysis failed (no usable figure and table after the repairs)." in user_texts(supervisor[-1])
    # The report still shows the data: the rule-based analyses stand in, and say so.
    assert s["rule_based_fallback"] and s["figures"] >= 2
    md = (result.run_dir / "report.md").read_text()
    assert "sections marked (rule-based) were computed by fixed rules instead" in md
    assert "## Levels of price (rule-based)" in md


def test_the_tool_budget_stops_a_supervisor_that_never_finishes(chat_server, tables_dir, docs_dir, tmp_path,
                                                                tmp_path_factory):
    from lyceum.research.pipeline import run_research

    reply, state = scripted_team(chat_server.base_url, codes=["print(undefined_name)"],
                                 supervisor=[{"action": "search_documents", "input": "oil"}])
    chat_server.default = reply
    db = tmp_path_factory.getbasetemp() / "research-catalog.duckdb"
    result = run_research(config(chat_server, tables_dir, docs_dir, db, max_repairs=0, tool_budget=3),
                          tmp_path / "run")
    assert result.summary["tool_calls"] == 3 and state["supervisor"] == 3
    assert (result.summary["analyses"], result.summary["searches"]) == (1, 2)
