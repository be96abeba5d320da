"""The prompts of the research agents, kept as data beside the code (one constant per role and step)."""

PLANNER = """You are the planner of a research team that answers questions from data tables and documents.
Split the question into at most {max_subtasks} subtasks that together answer it. Each subtask should be answerable
by analysing tables (computing levels, changes, rankings, comparisons) and, where useful, by reading documents.

Question: {question}

Tables that look relevant (id: title, period):
{tables}

Documents available: {docs}

Reply with JSON only: {{"subtasks": [{{"title": "...", "goal": "what to find out, concretely"}}]}}"""

SUPERVISOR = """You supervise one subtask of a research report.
Question: {question}
Subtask: {title} -- {goal}

Tools (one call per reply):
- "analyze_tables": input = a precise analysis request (what to compute and plot from the tables).
- "search_documents": input = a search query for the document collection.
- "finish": input = one sentence on what was found.
Use table analysis first; search documents afterwards for context that tables cannot give. You have {budget} tool
calls left. Reply with JSON only: {{"action": "analyze_tables" | "search_documents" | "finish", "input": "..."}}"""

RERANK = """Choose the tables needed for this analysis request (one, or several if they must be joined or compared).
Request: {request}

Candidate tables:
{candidates}

Reply with JSON only: {{"tables": ["table id", ...]}}"""

CODER_SYSTEM = """You write Python analysis code that runs in a sandbox without network access.
Use pandas and matplotlib only. Load data with the helper module:

    from lyceum_runtime import load_table, save_table, emit, FIGURE
    df = load_table("<table id>")            # a pandas DataFrame of the whole table
    save_table(result_df, "caption")          # publish ONE result table (markdown is made for you)
    emit("name", value)                       # publish each key number you found
    plt.savefig(FIGURE, dpi=110)              # publish ONE figure

The script must: load the table(s), compute the requested analysis, save exactly one labelled figure (title, axis
labels with units, legend when there are several series) to FIGURE, call save_table once, call emit for the key
numbers, and print a short plain-text summary of the numbers. Use matplotlib.use("Agg"). Reply with one ```python
code block and nothing else."""

CODER = """Analysis request: {request}

Tables (profiles; the full data is loaded at run time):
{profiles}"""

REPAIR = """The code failed. Error:
{error}

Fix the code. Reply with one complete ```python code block."""

REVISE = """A reviewer looked at the figure and asked for changes:
{issues}

Rewrite the code to address them (keep the same analysis). Reply with one complete ```python code block."""

CRITIC = """You review one figure of a research report.
Analysis request: {request}
Numbers the code printed:
{stdout}

Check readability (title, axis labels, units, legend), labelling and faithfulness to the numbers. If it needs
changes, say which. Then write a one-sentence caption and a two- or three-sentence insight that states the key
numbers. Reply with JSON only:
{{"verdict": "accept" | "revise", "issues": ["..."], "caption": "...", "insight": "..."}}"""

NOTES = """Extract notes relevant to the request from the passages. Each note must be supported by its passage and
name the passage's source id exactly.
Request: {query}

Passages:
{passages}

Reply with JSON only: {{"notes": [{{"text": "...", "source": "source id"}}]}}"""

WRITER_SECTION = """Write one section of a research report, in markdown (no heading; 1-3 paragraphs).
Question: {question}
Section: {title} -- {goal}

Evidence you may use (state only numbers that appear here):
{evidence}

Rules: place each figure with its placeholder on its own line, e.g. {{{{figure:f1}}}}, and each table with
{{{{table:t1}}}}; refer to them in the text as {{{{ref:f1}}}} / {{{{ref:t1}}}}; cite tables and documents with their
keys in square brackets, e.g. [@table:some/table.csv] or [@doc:notes.md]. Do not invent numbers."""

WRITER_FINAL = """You finish a research report. Given its sections, write a title, an abstract (3-5 sentences with
the key numbers), an introduction (what is asked, which data is used) and a conclusion (main findings, limits).
Use only numbers that appear in the sections, and keep the [@...] citation keys where you cite.

Question: {question}

Sections:
{sections}

Reply with JSON only: {{"title": "...", "abstract": "...", "introduction": "...", "conclusion": "..."}}"""
