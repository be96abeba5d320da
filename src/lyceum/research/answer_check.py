"""Does the report answer the question? The direct answer to each part, and the parts the data cannot answer.

A report can be long, correct and about the wrong thing: asked for the price of gold *in yen*, a search that
finds the gold tables produces a fine report on gold in US dollars. The check reads the question's subjects
(the content words that say what is asked about: "gold", "yen", "Japanese"), and a subject is covered when a
table the report used names it (or a WordNet synonym of it) in its title, description, columns, units or
entity values. The report then opens with one answer sentence per part of the question, and says plainly
which subjects no table covers, so a reader never mistakes a report on gold in dollars for one in yen.

    check = check_answer(question, findings, used_profiles)
    check.missing        # ["japanese", "yen"]
    check.opening()      # markdown for the top of the abstract
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lyceum.research.bm25 import STOPWORDS, tokenize
from lyceum.research.question import CURRENCIES, INTENT_WORDS

# Words that say when or how, not what: periods, framing, and the verbs of change the intents already read.
_NOT_SUBJECTS = re.compile(
    r"^(how|what|which|when|where|why|who|whose|did|does|do|has|have|had|is|are|was|were|been|the|since|from|to|"
    r"until|over|last|past|recent|recently|previous|years?|decades?|months?|weeks?|days?|quarters?|period|periods|"
    r"time|times|today|now|current|currently|ago|early|late|mid|first|second|third|major|main|big|overall|far|"
    r"evolve[ds]?|evolving|compare[ds]?|comparing|during|between|across|within|each|every|per|versus|vs|"
    r"one|two|three|four|five|six|seven|eight|nine|ten|twenty|fifty|hundred|much|many|terms?|data|value|values|"
    r"level|levels|number|numbers|amount|happen(ed|s)?|look|looked|show|shows|explain|describe|there|term|"
    r"hold|holds|held|take|takes|took|make|makes|made|give|gives|gave|come|came|reach|reached|account|"
    r"accounts|accounted|stand|stood|get|got|put|see|seen|saw|go|went|gone|become|became|remain|remained|"
    r"lose|loses|losing|lost|gain|gains|gained|gaining|behave[ds]?|behaving|perform|performs|performed|fare[ds]?|"
    r"buy|buys|bought|sell|sells|sold|worth|"
    # statistics and forms of a number: how a quantity is summarised, not what it is about
    r"average|averages|averaged|mean|median|annual|annually|yearly|monthly|daily|quarterly|compound|compounded|"
    r"percent|percentage|per cent|cent|total|together|combined|value|today|dollars?)$")


@dataclass
class AnswerCheck:
    question: str
    parts: list[str]
    answers: list[str]  # one direct-answer sentence per part ("" when no finding answers it)
    subjects: list[str]
    missing: list[str] = field(default_factory=list)  # subjects no table used covers
    covered_by: str = ""  # what the tables used do measure (for the "cannot answer" sentence)

    @property
    def answered(self) -> bool:
        return not self.missing and all(self.answers)

    def opening(self) -> str:
        """The report's first lines: the answer to each part, then what the data cannot answer and why."""
        lines = []
        if self.missing:
            named = " and ".join(f"*{w}*" for w in self.missing)
            lines.append(f"**Not answered:** the question asks about {named}, which none of the tables used "
                         f"measures ({self.covered_by}); what follows is about what these tables hold, so that "
                         f"part of the question is not answered by this report.")
        for part, answer in zip(self.parts, self.answers):
            if answer and answer not in lines:  # one sentence may answer two parts ("when ... and how high")
                lines.append(answer)
        if not self.missing and not all(self.answers):
            unanswered = [p for p, a in zip(self.parts, self.answers) if not a]
            lines.append("**Not answered:** no analysis of the tables used answers "
                         + "; ".join(f"\u201c{p}\u201d" for p in unanswered) + ".")
        return " ".join(lines)


def question_parts(question: str) -> list[str]:
    """The separate asks of a question: "How did X evolve, and what were the shocks?" has two."""
    text = question.strip().rstrip("?").strip()
    parts = re.split(r"\?\s*|;\s*|,\s*and\s+(?=(?:how|what|which|when|where|why|is|are|did|does|do|has|have)\b)",
                     text, flags=re.IGNORECASE)
    return [p.strip(" ,") for p in parts if p and p.strip(" ,")]


def question_subjects(question: str) -> list[str]:
    """Content words naming what the question is about, in order, without periods, framing or change verbs."""
    intents = re.compile("|".join(f"(?:{p})" for p in INTENT_WORDS.values()))
    out = []
    # The word after "how" asks for a size ("how wide was the gap", "how high"), it names no subject.
    after_how = {m.lower() for m in re.findall(r"\bhow\s+([A-Za-z]+)", question, flags=re.IGNORECASE)}
    # "per person", "per head", "per inhabitant" all say per capita, the name a derived measure carries
    question = re.sub(r"\bper[ -](?:person|head|inhabitant|resident)\b", "per capita", question, flags=re.IGNORECASE)
    anchors = _time_anchors(question)
    for word in re.findall(r"[A-Za-z][A-Za-z0-9&']*", question):
        w = word.lower().strip("'")
        w = re.sub(r"'s$", "", w)
        if len(w) < 3 or w in STOPWORDS or _NOT_SUBJECTS.match(w) or intents.match(w) or w in out or _adverb(w):
            continue
        if w in after_how or w in _FRAMING or _MONTH_NAME.match(w) or _qualifier(w) or _graded(w):
            continue
        if w not in CURRENCIES and (_only_a_verb(w) or _only_a_quantity(w)) or w in anchors:
            continue
        if w in ("cost", "costs") and re.search(r"\b(did|does|do|will|would)\b[^?]*\bcosts?\b", question,
                                                re.IGNORECASE):
            continue  # "what did gold cost": the verb asks for a price, it names no subject
        out.append(w)
    return out


# Words naming where the numbers sit ("in the CPI table", "the S&P 500 list") or how they are to be computed
# ("using US inflation", "expressed in yen"), not what they measure.
_FRAMING = {"table", "tables", "dataset", "datasets", "list", "lists", "record", "records", "file", "files",
            "spreadsheet", "sheet", "column", "columns", "row", "rows", "using", "use", "used", "based", "via",
            "expressed", "express", "convert", "converted", "converting", "divide", "divided", "dividing",
            "computed", "calculated", "measured",
            # statistics named after people or kinds of test, and words for the whole or a part of the data
            "pearson", "spearman", "kendall", "coefficient", "coefficients", "whole", "entire", "among", "amongst",
            "count", "counts", "counted", "bottom", "bottomed", "trough", "troughs",
            # a difference between two series by its market names ("Brent's discount to WTI")
            "discount", "premium", "spread", "spreads"}


_ANCHOR = re.compile(r"\b(?:since|after|before|during|until|following|through|amid|around)\s+(?:the\s+|a\s+|an\s+)?"
                     r"((?:[A-Za-z0-9'’-]+\s*){1,4})", re.IGNORECASE)
_EVENT_KINDS = {"noun.event", "noun.act", "noun.state", "noun.time", "noun.process", "noun.phenomenon"}


def _time_anchors(question: str) -> set[str]:
    """Events a question uses to say when ("since the launch of the euro", "during the 2008 financial crisis"):
    they date the period asked about; the data measures what happened in it, not the event. The event is the
    head of the phrase after "since", "during"...: its last noun before "of", "in" or the end."""
    from lyceum.research.concepts import wordnet

    wn = wordnet()
    out = set()
    for m in _ANCHOR.finditer(question) if wn is not None else []:
        words = re.split(r"\b(?:of|in|on|and|to|for|at|by|with)\b", m.group(1).lower())[0].split()
        nouns = [w for w in words if not w[:1].isdigit() and wn.lemma(w, "n")]
        if not nouns:
            continue
        head = nouns[-1]
        offsets = wn.synsets(wn.lemma(head, "n"), "n")[:2]
        if any(wn.lexname(o, "n") in _EVENT_KINDS for o in offsets):
            out.add(head)
    return out


def _only_a_verb(word: str) -> bool:
    """A word WordNet knows as a verb and never as a noun ("weaken", "adjusting"): it says what happened or what
    to do, and the measure it happens to carries the subject."""
    from lyceum.research.concepts import wordnet

    wn = wordnet()
    return wn is not None and wn.lemma(word, "v") is not None and wn.lemma(word, "n") is None


def _only_a_quantity(word: str) -> bool:
    """A noun whose every sense is an amount or a unit ("billions", "dozen"): it says how much, not of what. A unit
    of money ("franc": "the basic unit of money in Switzerland") says which currency, a subject."""
    from lyceum.research.concepts import wordnet

    wn = wordnet()
    lemma = wn.lemma(word, "n") if wn is not None else None
    offsets = wn.synsets(lemma, "n") if lemma else []
    return bool(offsets) and wn.lemma(word, "a") is None and all(
        wn.lexname(o, "n") == "noun.quantity" and not re.search(r"\bmon(?:ey|etary)\b", wn.gloss(o, "n"))
        for o in offsets)


# A month says when ("in March 2020"), like the years and quarters the question names.
_MONTH_NAME = re.compile(r"^(january|february|march|april|may|june|july|august|september|october|november|"
                         r"december)$")


def _qualifier(word: str) -> bool:
    """A word WordNet knows mainly as an adjective that neither pertains to a noun ("Japanese" -> Japan) nor
    grades a quantity ("warmest" -> temperature): it says which kind ("nominal GDP", "the most valuable
    companies", "Brent minus WTI"), and the noun it qualifies carries the subject."""
    from lyceum.research.concepts import attributes, wordnet

    wn = wordnet()
    if wn is None:
        return False
    uses = {}
    for pos in ("n", "v", "a", "r"):
        lemma = wn.lemma(word, pos)
        if lemma is not None:
            uses[pos] = sum(wn.tag_count(lemma, pos, o) + 0.5 for o in wn.synsets(lemma, pos))
    adjective = uses.get("a", 0.0) + uses.get("r", 0.0)
    return adjective > uses.get("n", 0.0) + uses.get("v", 0.0) and not _names_a_place(word) and not attributes(word)


def _graded(word: str) -> bool:
    """A superlative or comparative ("weakest", "cheaper") asks which ranks first by the measure the question
    names; it is no subject of its own."""
    from lyceum.research.concepts import wordnet

    wn = wordnet()
    lemma = wn.lemma(word, "a") if wn is not None and word.endswith(("est", "er")) else None
    return lemma is not None and lemma != word


def _names_a_place(word: str) -> bool:
    """An adjective pertaining to a proper name ("Japanese" -> Japan, "Swiss" -> Switzerland)."""
    from lyceum.research.concepts import wordnet

    wn = wordnet()
    lemma = wn.lemma(word, "a")
    for offset in wn.synsets(lemma, "a")[:2] if lemma else []:
        for sym, t, tp in wn.synset(offset, "a")[1]:
            if sym == "\\" and any(w[:1].isupper() for w in wn.synset(t, tp)[0]):
                return True
    return False


def _adverb(word: str) -> bool:
    """Only an adverb in WordNet ("closely", "sharply"): it says how, not what."""
    from lyceum.research.concepts import wordnet

    wn = wordnet()
    if wn is None or not word.endswith("ly"):
        return False
    return wn.lemma(word, "r") is not None and all(wn.lemma(word, pos) is None for pos in ("n", "v", "a"))


def _vocabulary(profiles) -> set[str]:
    from lyceum.research.concepts import available, compound_text

    words: set[str] = set()
    for p in profiles:
        text = " ".join([p.search_text, p.title, p.dataset_title, " ".join(p.entities[:1000]),
                         " ".join(c.name + " " + c.unit for c in p.columns)])
        words |= set(tokenize(text))
        if available():
            # What the lexicon relates to the table's own terms: a "consumer price index" measures inflation, a
            # "gross domestic product" an economy, though neither table says so.
            words |= set(compound_text(" ".join([p.title, p.dataset_title, p.description,
                                                 " ".join(c.description for c in p.columns)])))
    return words


def covers(word: str, vocabulary: set[str]) -> bool:
    """Whether the tables' vocabulary names ``word``: itself, its dictionary form, a WordNet synonym (a
    several-word synonym when all its words appear) or antonym (a price index "deflated by the CPI" is about
    inflation), the quantity an adjective grades ("warmest" is a temperature), or a word of the same family (a
    shared stem of six letters or more: "inflation" / "inflated")."""
    from lyceum.research.concepts import antonyms, attributes, synonyms

    for term in {word} | synonyms(word) | antonyms(word) | attributes(word):
        stems = tokenize(term)
        if stems and all(any(_same_family(t, v) for v in vocabulary) for t in stems):
            return True
    return False


def _rarer_sense_covered(word: str, vocabulary: set[str]) -> bool:
    """The question's context picks a word's sense, not its frequency: "what did an ounce of gold cost" means
    cost as price, a rarer noun sense than cost as a loss. A one-word synonym from any noun or verb sense of the
    word that the tables name covers it."""
    from lyceum.research.concepts import wordnet

    wn = wordnet()
    if wn is None:
        return False
    for pos in ("n", "v"):
        lemma = wn.lemma(word, pos)
        for offset in wn.synsets(lemma, pos) if lemma else []:
            for w in wn.synset(offset, pos)[0]:
                stems = tokenize(w.replace("_", " "))
                if len(stems) == 1 and w.lower() != word and any(_same_family(stems[0], v) for v in vocabulary):
                    return True
    return False


def _same_family(a: str, b: str) -> bool:
    if a == b:
        return True
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n >= 6


def check_answer(question: str, findings, profiles) -> AnswerCheck:
    """Which parts of ``question`` the findings answer, and which subjects the tables used do not cover."""
    from lyceum.research.catalog import matched_entities
    from lyceum.research.question import parse_question

    parts = question_parts(question) or [question]
    subjects = question_subjects(question)
    vocab = _vocabulary(profiles)
    # Measures derived from the tables ("GDP per capita") answer for their own names.
    vocab |= {t for f in findings for t in tokenize(f.title)}
    # and for how they were computed ("deflated" by the CPI answers "after inflation").
    vocab |= {t for f in findings for item in [*f.figures, *f.tables] if "derived measure" in item.provenance.method
              for t in tokenize(item.provenance.method.split("derived measure", 1)[1])}
    from lyceum.research.analysis.derived import REAL_TERMS

    if any(re.search(r"\bconstant \d{4}\b|\breal terms\b", f.title + " " + " ".join(f.sentences)) for f in findings):
        # A deflated measure answers "in real terms", "adjusted for inflation" though no table is called real.
        vocab |= set(tokenize(" ".join(m.group(0) for m in REAL_TERMS.finditer(question))))
    # A country under another name ("Turkey" for "Turkiye"), a currency where exchange rates are used.
    entities = [e for p in profiles for e in p.entities[:1000]]
    fx = covers("exchange", vocab)
    missing = [s for s in subjects if not covers(s, vocab) and not matched_entities(s.title(), entities)
               and not (fx and s in CURRENCIES) and not _rarer_sense_covered(s, vocab)] if profiles else subjects
    answers = []
    used: set[str] = set()
    previous = None  # the finding that answered the last part with a subject of its own
    for i, part in enumerate(parts):
        intents = parse_question(part).intents
        # "In which year did CO2 rise the most": a when-question about an extreme is answered by the year of the
        # largest move, not by the levels at the ends of the period.
        when_extreme = bool(re.search(r"\b(?:which|what)\s+(?:year|month|day|date|decade)\b|\bwhen\b", part,
                                      re.IGNORECASE)) and bool({"rank", "peaks"} & intents)
        if when_extreme:
            intents = intents | {"peaks"}
        # "When did UK inflation peak, and how high was it?": a follow-up with no subject of its own asks about
        # the previous part's subject; the sentence that answered that part answers it too when it states what
        # this part asks (the extreme's size, the amount).
        if i and answers[-1] and not question_subjects(part):
            # The previous finding's sentence closest to this ask ("and how far had it fallen": its largest fall),
            # else the previous answer itself.
            closer = _answer_sentence(previous, intents, part, question) if previous is not None else ""
            sentence = next((x for x in (closer, answers[-1]) if x and _states(x, intents)), "")
            if sentence:
                answers.append(sentence)
                continue
        wanted = [k for i, k in _INTENT_KINDS.items() if i in intents]
        asked = parse_question(part)
        # "In which year was it lowest", "which five countries had the highest": answered by the ranking.
        if asked.ranked_years or (asked.top_n and "rank" in asked.intents):
            wanted = ["ranking"] + wanted
        if when_extreme:
            wanted = [k for k in wanted if k != "levels"]
        # Among findings of the kind asked, the one about the question's own subjects first (gold, not GDP).
        wanted_terms = set(tokenize(" ".join(question_subjects(part)))) or set(tokenize(" ".join(subjects)))
        wanted_terms |= set(tokenize(part))  # and the part's own words: "the average annual increase" asks a change
        candidates = sorted((f for f in findings if f.sentences),
                            key=lambda f: -len(wanted_terms & set(tokenize(f.title + " " + f.sentences[0]))))
        best = next((f for k in wanted for f in candidates if f.kind == k and id(f) not in used), None)
        if best is None and "peaks" in intents or when_extreme and best is not None and not any(
                _EXTREME.search(s) for s in best.sentences):
            # A peak asked for, where no finding of peaks answers it: the finding that states the largest or
            # smallest value (the yearly rates of an inflation series) does.
            best = next((f for f in candidates if id(f) not in used and any(_EXTREME.search(s) for s in f.sentences)),
                        None)
        best = best or next((f for f in candidates if id(f) not in used), None)
        if best is None:
            answers.append("")
            continue
        used.add(id(best))
        previous = best
        answers.append(_answer_sentence(best, intents, part, question))
    covered_by = "; ".join(sorted({f"{p.title}" + (f" in {_units(p)}" if _units(p) else "") for p in profiles})) \
        or "no table matched"
    return AnswerCheck(question=question, parts=parts, answers=answers, subjects=subjects, missing=missing,
                       covered_by=covered_by)


# A sentence stating an extreme: the answer to "when did it peak", "how high / low did it get".
_EXTREME = re.compile(r"\b(highest|lowest|largest|smallest|biggest|deepest|peak(ed)?|trough)\b", re.IGNORECASE)


def _answer_sentence(f, intents: set[str], part: str = "", question: str = "") -> str:
    """The sentence of a finding that answers an ask: a ranking's second (its first only counts rows); for a
    question about a peak or a fall, the sentence stating an extreme that shares the most words with the ask
    ("when did gold fall the most" -> its largest fall, not its highest value); otherwise the first."""
    if f.title.startswith("Years with the"):
        return " ".join(f.sentences[:3])  # the years ranked, for each series (two temperature records)
    if f.kind == "ranking" and len(f.sentences) > 1:
        return f.sentences[1]
    if f.kind == "levels" and question and not intents:
        # "What was GDP per capita in India and China": a question asking for values (not how they evolved)
        # is answered by the level of each entity it names, not the first one only.
        from lyceum.research.catalog import matched_entities

        names = matched_entities(question, sorted({k.rsplit(" ", 1)[0] for k in f.numbers
                                                   if re.fullmatch(r".+ \d{4}", k)}))
        own = [s for s in f.sentences if any(s.startswith((f"{n} ", f"{n}'")) for n in names)]
        if len(names) >= 2 and len(own) >= 2:
            return " ".join(own[:3])
    extremes = [s for s in f.sentences if _EXTREME.search(s)]
    if "peaks" in intents and extremes:
        asked = _words(part)
        return max(extremes, key=lambda s: (len(asked & _words(s)), -extremes.index(s)))
    return f.sentences[0]


# Forms of the verbs of change a question and a sentence may use for the same move ("how far had it fallen" /
# "its largest fall"; "how much did it lose" / "fall"; "rose" / "the biggest yearly rise").
_MOVES = {"fell": "fall", "fallen": "fall", "falls": "fall", "drop": "fall", "declin": "fall", "lose": "fall",
          "lost": "fall", "loss": "fall", "plung": "fall", "crash": "fall", "rose": "rise", "risen": "rise",
          "increas": "rise", "gain": "rise", "grew": "rise", "grown": "rise", "grow": "rise", "climb": "rise"}


def _words(text: str) -> set[str]:
    return {_MOVES.get(t, t) for t in tokenize(text)}


def _states(sentence: str, intents: set[str]) -> bool:
    """Whether an answer sentence already answers a follow-up ask: it states a number (how much, how high), and
    an extreme when the ask is about a peak or low."""
    from lyceum.research.numbers import extract_numbers

    has_number = any(n.is_value for n in extract_numbers(sentence))
    return has_number and ("peaks" not in intents or bool(_EXTREME.search(sentence)))


def _units(p) -> str:
    units = sorted({c.unit for c in p.numeric_columns if c.unit})
    return ", ".join(units)


# The finding that answers each kind of ask; "how has X grown / changed" is answered by the change over the
# period (the levels finding), "is it speeding up" by the decade paces.
# The most specific ask first: a question about how two series relate is answered by their correlation
# before their levels.
_INTENT_KINDS = {"correlation": "correlation", "accelerate": "change", "peaks": "peaks", "compare": "comparison",
                 "unusual": "unusual", "growth": "levels", "share": "ranking", "rank": "ranking",
                 "valuation": "valuation"}
