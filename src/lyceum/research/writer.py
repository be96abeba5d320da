"""The writer: findings and notes -> a report draft -> the final report with numbered figures and citations.

Drafts are markdown with placeholders, written either from templates (the offline, rule-based writer) or by a
language model (``agents.py``):

    {{figure:ID}}   where a figure goes          {{table:ID}}   where a table goes
    {{ref:ID}}      "Figure n" / "Table n"       [@KEY]         a citation of a table or document

``finalize`` is the final pass: it numbers figures and tables in reading order, renumbers citations in order of
first use into a references list, and checks every number the prose states against the analysis outputs,
flagging the ones no analysis backs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lyceum.research.answer_check import check_answer
from lyceum.research.catalog import TableProfile
from lyceum.research.numbers import StatedNumber, extract_numbers
from lyceum.research.records import Figure, Finding, Note, Table

RULE_BASED_LABEL = ("Rule-based report: no language model was used. The analyses were computed by fixed rules "
                    "from the tables cited, and the text was filled into templates.")
_CITE = re.compile(r"\[@([^\]\s]+)\]")
_PLACE = re.compile(r"\{\{(figure|table|ref):([^}]+)\}\}")


@dataclass
class Source:
    key: str  # "table:oil-prices/data/brent-daily.csv" or "doc:notes/oil.md"
    kind: str  # table | document
    title: str
    locator: str  # table id, file path or URL
    detail: str = ""
    links: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Draft:
    question: str
    title: str
    mode: str
    abstract: str
    introduction: str
    sections: list[tuple[str, str]]
    conclusion: str
    figures: dict[str, Figure] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    label: str = ""
    answer_check: Any = None  # answer_check.AnswerCheck of a rule-based draft


@dataclass
class FinalReport:
    """What the renderers need: the report as markdown (figures as relative image links) plus its parts."""

    markdown: str
    title: str
    mode: str
    figures: list[tuple[int, Figure]]
    tables: list[tuple[int, Table]]
    references: list[tuple[int, Source]]
    unsupported: list[str]
    checked_numbers: int


def table_source(p: TableProfile) -> Source:
    period = f", {p.time_start} to {p.time_end}" if p.time_start else ""
    detail = f"{p.dataset_title}. Table `{p.id}`, {p.n_rows} rows{period}."
    return Source(key=f"table:{p.id}", kind="table", title=p.title or p.id, locator=p.id, detail=detail,
                  links=own_sources(p)[:3])


def own_sources(p: TableProfile) -> list[dict[str, str]]:
    """The package's sources that belong to this table: a package often lists every file's source together
    (Brent's and WTI's spot-price sheets, daily to annual); keep those whose title or file name shares the most
    words with this table's name and title ("wti", "daily"), all of them when none does."""
    from lyceum.research.bm25 import tokenize

    sources = [s for s in p.sources if s.get("path")]
    mine = set(tokenize(" ".join(p.name_words + list(p.name_aliases.values()) + [p.title])))

    def overlap(s: dict[str, str]) -> int:
        return len(mine & set(tokenize(f"{s.get('title', '')} {s.get('path', '').rsplit('/', 1)[-1]}")))

    best = max((overlap(s) for s in sources), default=0)
    return [s for s in sources if overlap(s) == best] if best else sources


def note_source(n: Note) -> Source:
    return Source(key=f"doc:{n.source_id}", kind="document", title=n.title or n.source_id, locator=n.source_id,
                  detail="Document" + (f" at {n.source_id}." if n.source_id.startswith("http") else f" `{n.source_id}`."))


# ---------------------------------------------------------------------------------------------------------------
# The rule-based writer

_ORDER = ["levels", "comparison", "unusual", "change", "peaks", "ranking", "valuation", "correlation"]


def compose_rule_based(question: str, findings: list[Finding], profiles: list[TableProfile],
                       notes: list[Note] = (), *, choices: list[str] = ()) -> Draft:
    """A complete report draft from templates: abstract, introduction, one section per finding, conclusion."""
    draft = Draft(question=question, title=question.strip().rstrip("?") + "?" if question.strip().endswith("?")
                  else question.strip(), mode="rule-based", abstract="", introduction="", sections=[],
                  conclusion="", label=RULE_BASED_LABEL)
    for p in profiles:
        draft.sources[f"table:{p.id}"] = table_source(p)
    for n in notes:
        draft.sources.setdefault(f"doc:{n.source_id}", note_source(n))
    used = [p for p in profiles if any(p.id in f.sources for f in findings)] or profiles
    for i, f in enumerate(findings, 1):
        draft.sections.append((f.title[:1].upper() + f.title[1:], finding_section(f, i, draft)))
    if notes:
        draft.sections.append(("What the documents say", _notes_body(notes)))
    key = _key_sentences(findings, question)
    cites = "".join(f"[@table:{p.id}]" for p in used)
    # The abstract opens with the direct answer to each part of the question, or says what the data cannot
    # answer (a report on gold in dollars must not pass for one on gold in yen).
    check = check_answer(question, findings, used if findings else [])
    draft.answer_check = check
    opening = check.opening()
    rest = [s for s in key[:4] if not any(s in a for a in check.answers)]
    draft.abstract = " ".join([opening] + rest) + (f" {cites}" if key else "") if key else (
        "No table in the catalog matched the question well enough to analyse." +
        (f" {opening}" if check.missing else ""))
    draft.introduction = _introduction(question, used, notes, findings)
    if choices:  # which of two tables holding the same measure was used, and why
        draft.introduction += "\n\n" + " ".join(choices)
    draft.conclusion = _conclusion(key, used, notes)
    return draft


def _cite(f: Finding) -> str:
    return "".join(f"[@table:{s}]" for s in f.sources)


def finding_section(f: Finding, i: int, draft: Draft) -> str:
    """A section body from one finding: its sentences (cited), then each figure and table with a lead-in."""
    parts = []
    if f.sentences:
        first, rest = f.sentences[0], f.sentences[1:]
        parts.append(" ".join([first.rstrip(".") + f" {_cite(f)}." if first.endswith(".") else first, *rest]))
    for j, fig in enumerate(f.figures, 1):
        fid = f"f{i}-{j}"
        draft.figures[fid] = fig
        parts.append(f"{{{{ref:{fid}}}}} shows {lower_first(fig.caption)}.\n\n{{{{figure:{fid}}}}}")
    for j, tab in enumerate(f.tables, 1):
        tid = f"t{i}-{j}"
        draft.tables[tid] = tab
        parts.append(f"{{{{ref:{tid}}}}} gives {lower_first(tab.caption)}.\n\n{{{{table:{tid}}}}}")
    return "\n\n".join(parts)


def lower_first(text: str) -> str:
    """A caption inside a sentence: "Annual GDP" -> "annual GDP", but "GDP of China" and "CO2 at Mauna Loa"
    keep their acronym (a first word with another capital or a digit is a name, not a sentence start)."""
    first = text.split(" ", 1)[0]
    if re.search(r"[A-Z0-9]", first[1:]) or (len(first) == 1 and first.isupper() and len(text) > 1 and text[1] != " "):
        return text
    # A capitalised word followed by another ("United States (Nominal)'s price") is a name, not a sentence start.
    if re.match(r"[A-Z][a-z]+ [A-Z][a-z]", text):
        return text
    return text[:1].lower() + text[1:]


def _notes_body(notes: list[Note]) -> str:
    lines = ["Passages from the document collection that match the question (quoted, not interpreted):", ""]
    for n in notes:
        text = re.sub(r"\s+", " ", n.text).strip()
        lines.append(f"- \u201c{text[:400]}{'…' if len(text) > 400 else ''}\u201d [@doc:{n.source_id}]")
    return "\n".join(lines)


_INTENT_KINDS = {"peaks": "peaks", "compare": "comparison", "unusual": "unusual", "growth": "change",
                 "accelerate": "change", "share": "ranking", "rank": "ranking", "valuation": "valuation",
                 "correlation": "correlation"}


def _key_sentences(findings: list[Finding], question: str = "") -> list[str]:
    """One sentence per finding, levels first, then the analyses the question stresses, then the rest."""
    from lyceum.research.question import parse_question

    stressed = [_INTENT_KINDS[i] for i in sorted(parse_question(question).intents) if i in _INTENT_KINDS]
    first = ["answer"] + (["ranking"] if "ranking" in stressed else [])  # direct answers open the abstract
    order = first + ["levels"] + [k for k in _ORDER if k in stressed and k not in first] + \
        [k for k in _ORDER if k not in stressed]
    ranked = sorted(findings, key=lambda f: order.index(f.kind) if f.kind in order else len(order))
    out = []
    lead = next((f for f in ranked if f.kind == "answer"), None)
    for f in ranked:
        # A ranking's first sentence only counts rows; its second names the leaders. The leading direct answer
        # gives each year the question names ("in 2010 ... in 2020"), up to three sentences.
        for s in f.sentences[: 3 if f is lead else 2 if f.kind == "ranking" else 1]:
            if s not in out:
                out.append(s)
    return out


def _introduction(question: str, used: list[TableProfile], notes: list[Note], findings: list[Finding]) -> str:
    lines = [f"This report answers the question: *{question.strip()}*", ""]
    if used:
        lines.append("It draws on the following tables:")
        lines.append("")
        for p in used:
            period = f" covering {p.time_start} to {p.time_end}" if p.time_start else ""
            lines.append(f"- **{p.title or p.id}** ({p.dataset_title}; {p.n_rows} rows{period}) [@table:{p.id}]")
        lines.append("")
    kinds = sorted({f.kind for f in findings if f.kind})
    if kinds:
        lines.append("The analyses are the standard ones for this kind of data: " + ", ".join(
            {"levels": "levels and changes over the period", "change": "growth rates and decade averages",
             "peaks": "peaks, troughs and the deepest falls", "comparison": "comparisons between series",
             "unusual": "how unusual the latest move is", "ranking": "rankings and shares",
             "valuation": "a ratio measure by group", "correlation": "correlations"}.get(k, k) for k in kinds) + ".")
    if notes:
        lines.append(f"{len(notes)} passage(s) from the document collection are quoted where they match the question.")
    return "\n".join(lines)


def _conclusion(key: list[str], used: list[TableProfile], notes: list[Note]) -> str:
    if not key:
        return "The catalog holds no table that answers this question; add the relevant data and run again."
    lines = ["The main points, each computed from the cited tables:", ""]
    lines += [f"- {s}" for s in key[:6]]
    lines += ["", ("Limits: these are descriptive statistics of the tables as published; they do not establish "
                   "causes, and values for a partial final year are shown separately from complete years.")]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# The final pass


def profile_values(profiles: list[TableProfile]) -> list[float]:
    """Numbers a report may quote from the catalog itself: row counts, time ranges."""
    out: list[float] = []
    for p in profiles:
        out += [float(p.n_rows), float(len(p.entities))]
        out += [n.value for n in extract_numbers(f"{p.time_start} {p.time_end}")]
    return out


def supported_values(findings: list[Finding], extra: list[float] = ()) -> list[float]:
    """Every number the analyses computed or printed (the writer may only state these)."""
    values: list[float] = list(extra)
    for f in findings:
        values += [v for v in f.all_numbers().values() if isinstance(v, (int, float))]
        for t in f.tables:
            values += [n.value for n in extract_numbers(t.markdown) if n.is_value]
            values += [c for n in extract_numbers(t.markdown) if n.is_value for c in n.candidates]
        for fig in f.figures:
            values += [n.value for n in extract_numbers(fig.caption) if n.is_value]
    return values


def is_supported(n: StatedNumber, values: list[float]) -> bool:
    """A stated number is backed when some computed value rounds to it (at the precision it was written)."""
    if float(n.value).is_integer() and abs(n.value) <= 12:
        return True  # counts and ordinals in prose ("the three largest", "top 10")
    digits = n.text.replace(",", "").split(".")
    decimals = len(re.match(r"\d*", digits[1]).group(0)) if len(digits) > 1 else 0
    for c in n.candidates:
        half_step = 0.5 * 10 ** -decimals * (abs(c) / abs(n.value) if n.value else 1.0)
        tol = max(half_step * 1.01, 0.01 * abs(c))
        for v in values:
            # Prose drops signs ("fell 47%") and writes fractions as percents ("69.5%" for 0.695).
            if abs(abs(v) - abs(c)) <= tol or (v and abs(abs(v) * 100 - abs(c)) <= 0.01 * abs(c)):
                return True
    return False


def check_numbers(text: str, values: list[float]) -> tuple[list[StatedNumber], int]:
    """The numbers in ``text`` that no computed value backs, and how many numbers were checked."""
    stated = [n for n in extract_numbers(text) if n.is_value]
    return [n for n in stated if not is_supported(n, values)], len(stated)


def finalize(draft: Draft, supported: list[float], *, flag: bool = True) -> FinalReport:
    """Number figures, tables and citations; add the references list; flag numbers no analysis backs."""
    order: dict[str, int] = {}
    figures: list[tuple[int, Figure]] = []
    tables: list[tuple[int, Table]] = []
    body_parts = [("Abstract", draft.abstract), ("Introduction", draft.introduction), *draft.sections,
                  ("Conclusion", draft.conclusion)]
    # Number figures and tables in the order they are placed.
    for _, text in body_parts:
        for kind, ident in _PLACE.findall(text):
            if kind == "figure" and ident in draft.figures and ident not in order:
                order[ident] = len(figures) + 1
                figures.append((order[ident], draft.figures[ident]))
            if kind == "table" and ident in draft.tables and ident not in order:
                order[ident] = len(tables) + 1
                tables.append((order[ident], draft.tables[ident]))
    unsupported: list[str] = []
    checked = 0

    def prose(text: str) -> str:
        nonlocal checked
        if not flag:
            return text
        bad, n = check_numbers(_PLACE.sub("", _CITE.sub("", text)), supported)
        checked += n
        for b in bad:
            unsupported.append(b.text.strip())
            text = re.sub(rf"(?<![\w.]){re.escape(b.text.strip())}(?![\d])", f"{b.text.strip()} (unverified)", text,
                          count=1)
        return text

    cites: dict[str, int] = {}

    def cite(m: re.Match) -> str:
        key = m.group(1)
        if key not in draft.sources:
            return ""
        cites.setdefault(key, len(cites) + 1)
        return f"[{cites[key]}]"

    def place(m: re.Match) -> str:
        kind, ident = m.group(1), m.group(2)
        if kind == "ref":
            if ident in draft.figures:
                return f"Figure {order.get(ident, '?')}"
            if ident in draft.tables:
                return f"Table {order.get(ident, '?')}"
            return ""
        if kind == "figure" and ident in draft.figures:
            fig = draft.figures[ident]
            return f"![Figure {order[ident]}: {fig.caption}](figures/{fig.path.name})\n\n*Figure {order[ident]}: " \
                   f"{fig.caption}.*"
        if kind == "table" and ident in draft.tables:
            tab = draft.tables[ident]
            return f"*Table {order[ident]}: {tab.caption}.*\n\n{tab.markdown}"
        return ""

    def render(text: str) -> str:
        text = prose(text)
        text = _CITE.sub(cite, text)
        text = re.sub(r"(\[\d+\])(?=\[\d+\])", r"\1", text)
        return _PLACE.sub(place, text)

    out = [f"# {draft.title}", ""]
    if draft.label:
        out += [f"> {draft.label}", ""]
    for title, text in body_parts:
        rendered = render(text).strip()
        if rendered:
            out += [f"## {title}", "", rendered, ""]
    refs = [(n, draft.sources[k]) for k, n in sorted(cites.items(), key=lambda kv: kv[1])]
    if refs:
        out += ["## References", ""]
        for n, s in refs:
            links = "; ".join(f"{l.get('title') or 'source'}: {l['path']}" for l in s.links)
            out.append(f"{n}. {s.title}. {s.detail}" + (f" Source: {links}." if links else ""))
        out.append("")
    if flag:
        if unsupported:
            out += ["## Number check", "", f"{len(unsupported)} of {checked} numbers in the text are not backed by "
                    "any analysis output and are marked (unverified): " + ", ".join(unsupported) + ".", ""]
        else:
            out += ["## Number check", "", f"All {checked} numbers stated in the text match an analysis output.", ""]
    return FinalReport(markdown="\n".join(out).rstrip() + "\n", title=draft.title, mode=draft.mode, figures=figures,
                       tables=tables, references=refs, unsupported=unsupported, checked_numbers=checked)


def report_summary(final: FinalReport) -> dict[str, Any]:
    return {"figures": len(final.figures), "tables": len(final.tables), "references": len(final.references),
            "unsupported_numbers": final.unsupported, "checked_numbers": final.checked_numbers, "mode": final.mode}
