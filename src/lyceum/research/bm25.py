"""One small BM25, used for both table search and document search.

    index = BM25([tokenize(text) for text in docs])
    for i, score in index.top(tokenize("oil price shocks"), k=5): ...

The tokenizer lower-cases, splits snake_case / kebab-case / camelCase and punctuation, drops English stop
words and applies a light suffix stemmer, so "prices", "priced" and "price" meet, and "rising" meets "rise".
"""

from __future__ import annotations

import math
import re
from collections import Counter

STOPWORDS = frozenset(
    ["a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "per", "via", "vs", "versus"]
)

_SPLIT_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")


def stem(word: str) -> str:
    """A light English suffix stripper (a Porter step-1 subset); enough to match plurals and verb forms.

    British and American spellings meet too ("labour"/"labor", "centre"/"center", "programme"/"program",
    "fertiliser"/"fertilizer", "haemoglobin"/"hemoglobin").
    """
    w = _strip_suffix(_american(word))
    # A final silent "e" is dropped so "evolve"/"evolved" and "increase"/"increasing" meet.
    return w[:-1] if len(w) > 4 and w.endswith("e") else w


_BRITISH = ((re.compile(r"(?<=[a-z]{3})our(s?)$"), r"or\1"), (re.compile(r"(?<=[a-z]{2})tre(s?)$"), r"ter\1"),
            (re.compile(r"(?<=[a-z]{4})mme(s?)$"), r"m\1"),
            (re.compile(r"(?<=[a-z]{3})is(e|ed|es|er|ers|ing|ation)$"), r"iz\1"),  # "fertiliser", "organisation"
            (re.compile(r"(?<=[a-z]{2})ys(e|ed|es|ing)$"), r"yz\1"),  # "analyse", "paralysed"
            # Greek-derived medical words: "haemoglobin", "paediatric", "gynaecology", "oesophagus", "foetus".
            (re.compile(r"(?<=[a-z])ae(?=[mdc])"), "e"), (re.compile(r"^oe(?=s)"), "e"), (re.compile(r"^foet"), "fet"),
            (re.compile(r"rrhoea"), "rrhea"))


def _american(word: str) -> str:
    if len(word) < 5:
        return word
    for pattern, repl in _BRITISH:
        word = pattern.sub(repl, word)
    return word


def _strip_suffix(word: str) -> str:
    w = word
    if len(w) <= 3 or w.isdigit():
        return w
    for suffix, repl in (("ational", "ate"), ("isation", "ize"), ("ization", "ize"), ("ies", "y"), ("sses", "ss")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 2:
            return w[: -len(suffix)] + repl
    for suffix in ("ingly", "edly", "ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and re.search(r"[aeiouy]", w[: -len(suffix)]):
            w = w[: -len(suffix)]
            if re.search(r"(at|bl|iz|is)$", w):
                return w + "e"
            if len(w) >= 2 and w[-1] == w[-2] and w[-1] not in "lsz":
                return w[:-1]
            if re.fullmatch(r"[^aeiou]*[aeiou][^aeiouwxy]", w):  # short word: ris(ing) -> rise
                return w + "e"
            return w
    if w.endswith("es") and re.search(r"(ss|x|ch|sh)es$", w):
        return w[:-2]
    if w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_NUMBER_WORDS = {**{w: i for i, w in enumerate(_UNITS)}, **{w: 20 + 10 * i for i, w in enumerate(_TENS)},
                 "dozen": 12, "hundred": 100, "thousand": 1000}
_NUMBER = re.compile(rf"\b(?:({'|'.join(_TENS)})[- ]({'|'.join(_UNITS[1:10])})|({'|'.join(_NUMBER_WORDS)}))\b",
                     re.IGNORECASE)


def number_words_as_digits(text: str) -> str:
    """"twelve children", "a dozen patients", "twenty-five trees" -> "12 children", "a 12 patients", "25 trees":
    a question spells small counts out where documentation writes digits ("families of size 12")."""
    def digits(m: re.Match) -> str:
        if m.group(3):
            return str(_NUMBER_WORDS[m.group(3).lower()])
        return str(_NUMBER_WORDS[m.group(1).lower()] + _NUMBER_WORDS[m.group(2).lower()])

    return _NUMBER.sub(digits, str(text))


def tokenize(text: str, *, keep_stopwords: bool = False, stemmed: bool = True) -> list[str]:
    """Words of ``text`` as search terms: split compound identifiers, lower-case, drop stop words, stem."""
    text = _SPLIT_CAMEL.sub(" ", str(text)).lower()
    words = _WORD.findall(text)
    return [stem(w) if stemmed else w for w in words if keep_stopwords or w not in STOPWORDS]


class BM25:
    """Okapi BM25 over pre-tokenised documents."""

    def __init__(self, docs: list[list[str]], *, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.tf = [Counter(d) for d in docs]
        self.lengths = [len(d) for d in docs]
        self.avg_length = (sum(self.lengths) / len(docs)) if docs else 0.0
        df: Counter = Counter()
        for counts in self.tf:
            df.update(counts.keys())
        n = len(docs)
        # The "plus one" idf keeps terms that occur in most documents slightly positive instead of negative.
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def __len__(self) -> int:
        return len(self.tf)

    def score(self, query: list[str], i: int) -> float:
        counts, length = self.tf[i], self.lengths[i]
        norm = self.k1 * (1 - self.b + self.b * length / (self.avg_length or 1.0))
        total = 0.0
        for term in set(query):
            f = counts.get(term)
            if f:
                total += self.idf[term] * f * (self.k1 + 1) / (f + norm)
        return total

    def scores(self, query: list[str]) -> list[float]:
        return [self.score(query, i) for i in range(len(self.tf))]

    def concept_scores(self, concepts: list[dict[str, float]], *, broader: BM25 | None = None,
                       broader_weight: float = 0.5) -> list[float]:
        """Scores for a query of concepts, each a set of alternative terms with weights.

        A concept counts once per document, through its best-matching term (the question's own word at 1.0,
        a related word below it), so a word with many related words cannot outweigh one with few.

        ``broader`` indexes, per document, the words its own words are a kind of ("rodent" for a text about
        rats); a concept's own word found there counts at ``broader_weight``.
        """
        own = [{t: w for t, w in c.items() if w >= max(c.values())} for c in concepts if c]
        weighted = [{t: w * self.idf[t] for t, w in c.items() if t in self.idf and w > 0} for c in concepts if c]
        pairs = [(c, [(t, broader_weight * w * broader.idf[t]) for t, w in o.items() if t in broader.idf]
                  if broader else []) for c, o in zip(weighted, own)]
        pairs = [(c, b) for c, b in pairs if c or b]
        out = []
        for i, (counts, length) in enumerate(zip(self.tf, self.lengths)):
            norm = self.k1 * (1 - self.b + self.b * length / (self.avg_length or 1.0))
            if broader is not None:
                b_counts = broader.tf[i]
                b_norm = broader.k1 * (1 - broader.b + broader.b * broader.lengths[i] / (broader.avg_length or 1.0))
            total = 0.0
            for c, b in pairs:
                best = 0.0
                for t, wi in c.items():
                    f = counts.get(t)
                    if f:
                        best = max(best, wi * f * (self.k1 + 1) / (f + norm))
                for t, wi in b:
                    f = b_counts.get(t)
                    if f:
                        best = max(best, wi * f * (broader.k1 + 1) / (f + b_norm))
                total += best
            out.append(total)
        return out

    def top(self, query: list[str], k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` best (index, score) pairs with a positive score, best first."""
        ranked = sorted(((s, -i) for i, s in enumerate(self.scores(query)) if s > 0), reverse=True)
        return [(-i, s) for s, i in ranked[:k]]
