"""Answer text -> a clean LaTeX core -> a sympy object.

Gold answers and model answers arrive as LaTeX with every kind of wrapping: ``\\boxed{$...$}``, ``\\text{}``
units, ``\\left``/``\\right``, Chinese labels ("当...时："), conditions ("... if $r \\ll r_m$"), several equal
forms ("T = A = B"), alternatives ("$T = A$ or $T = B$"). ``answer_alternatives`` peels all that off and
returns the candidate answers; ``parse_latex`` turns one into sympy (symbols keep their case: M and m differ).

Normalisations that matter for physics answers, each a known way a correct answer fails to parse:
unbraced subscripts (``m_e c^2`` -> ``m_{e} c^{2}``), ``\\varepsilon``/``\\epsilon`` (and phi, theta, rho),
``d^2z/dt^2`` vs ``\\ddot{z}``, primes and stars as part of a symbol's name, ``E_b`` (which the LaTeX grammar
reads as a number's exponent), ``\\Gamma`` (read as Euler's constant).
"""

from __future__ import annotations

import functools
import re

from lyceum.olympiad.extract import strip_boxed

# ---------------------------------------------------------------------------------------------------------
# text clean-up

_UNICODE = {
    "−": "-", "–": "-", "—": "-", "×": r"\times ", "·": r"\cdot ", "⋅": r"\cdot ", "≈": "=", "≃": "=",
    "≤": r"\le ", "≥": r"\ge ", "≪": r"\ll ", "≫": r"\gg ", "∞": r"\infty ", "π": r"\pi ", "μ": r"\mu ",
    "µ": r"\mu ", "Ω": r"\Omega ", "ω": r"\omega ", "θ": r"\theta ", "°": r"^{\circ}", "：": ":", "，": ",",
    "（": "(", "）": ")", "；": ";", "√": r"\sqrt ", "＝": "=", "Δ": r"\Delta ", "λ": r"\lambda ",
    "α": r"\alpha ", "β": r"\beta ", "γ": r"\gamma ", "ρ": r"\rho ", "σ": r"\sigma ", "φ": r"\phi ",
    "ε": r"\epsilon ", "τ": r"\tau ", "η": r"\eta ", "ν": r"\nu ", "ħ": r"\hbar ", "\u00a0": " ",
}
_UNWRAP = ("text", "textrm", "textit", "textbf", "textnormal", "mathrm", "mathit", "mathbf", "mathsf", "mathtt",
           "boldsymbol", "bm", "operatorname", "mbox", "vec", "overrightarrow", "mathbb", "rm", "emph")
_UNWRAP_RE = re.compile(r"\\(?:" + "|".join(_UNWRAP) + r")\s*\{")
_DROP = re.compile(r"\\[,;:!>]|\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits|middle|mathstrut|quad|qquad"
                   r"|[bB]ig{1,2}[lr]?|[bB]igg[lr]?)(?![a-zA-Z])")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)\s*(?:\.|(?=[\\(\[|{)\]}<>/]))")
_VARIANTS = {r"\varepsilon": r"\epsilon", r"\varphi": r"\phi", r"\vartheta": r"\theta", r"\varrho": r"\rho",
             r"\varsigma": r"\sigma", r"\dfrac": r"\frac", r"\tfrac": r"\frac", r"\cfrac": r"\frac",
             r"\lvert": "|", r"\rvert": "|", r"\vert": "|", r"\|": "|", r"\lbrace": r"\{", r"\rbrace": r"\}",
             r"\lbrack": "[", r"\rbrack": "]", r"\ast": "*", r"\odot": "sun", r"\leq": r"\le ", r"\geq": r"\ge ",
             r"\leqslant": r"\le ", r"\geqslant": r"\ge ", r"\dots": r"\ldots", r"\cdots": r"\ldots",
             r"\tau": r"\tau", r"\tao": r"\tau"}
_EQUALS = re.compile(r"\\(?:approx|simeq|sim|cong|equiv|doteq|eqsim|thickapprox)(?![a-zA-Z])|:=|==")
_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SUPERSCRIPTS = re.compile(r"[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def _unwrap_commands(s: str) -> str:
    """``\\text{m/s}`` -> ``m/s``, ``\\mathrm{d}`` -> ``d``, ``\\vec{F}`` -> ``F`` (brace-matched, so nesting is fine)."""
    for _ in range(20):
        m = _UNWRAP_RE.search(s)
        if not m:
            return s
        start, open_i = m.start(), m.end() - 1
        depth, i = 0, open_i
        while i < len(s):
            if s[i] == "\\":
                i += 2
                continue
            if s[i] == "{":
                depth += 1
            elif s[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        # spaces around, so "\mu\mathrm{m}" does not become "\mum"; spaces before _ and ^ go again below
        s = s[:start] + " " + s[open_i + 1 : i] + " " + s[i + 1 :]
    return s


def _brace_scripts(s: str) -> str:
    """Unbraced sub/superscripts get braces: ``m_e c^2`` -> ``m_{e} c^{2}``, ``s^-1`` -> ``s^{-1}``; so do
    accents: ``\\ddot q`` -> ``\\ddot{q}``."""
    # an accent takes the next command or letter: "\dot\phi", "\ddot \phi", "\hat x" (a letter needs the space)
    s = re.sub(r"\\(dot|ddot|hat|bar|tilde)(?:\s*(\\[a-zA-Z]+)|\s+([A-Za-z]))",
               lambda m: "\\" + m.group(1) + "{" + (m.group(2) or m.group(3)) + "}", s)
    s = re.sub(r"\^\s*(-?\d)", r"^{\1}", s)
    return re.sub(r"([_^])\s*(\\[a-zA-Z]+|[A-Za-z0-9])", r"\1{\2}", s)


def _fix_frac_sqrt(s: str) -> str:
    r"""``\frac12`` -> ``\frac{1}{2}``, ``\frac1x`` -> ``\frac{1}{x}``, ``\sqrt2`` -> ``\sqrt{2}``."""
    s = re.sub(r"\\frac\s*(\d|[a-zA-Z])\s*(\d|[a-zA-Z])", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*(\d|[a-zA-Z])(?![a-zA-Z{])", r"\\frac\1{\2}", s)
    s = re.sub(r"\\frac\s*(\d|[a-zA-Z])\s*(\{)", r"\\frac{\1}\2", s)
    return re.sub(r"\\sqrt\s*(\d+|[a-zA-Z])", r"\\sqrt{\1}", s)


_TOKEN = r"(?:\\(?:dot|ddot|hat|bar|tilde)\{[^{}]*\}|\\[a-zA-Z]+|[A-Za-z])(?:_\{[^{}]*\}|_\{[^{}]*\{[^{}]*\}[^{}]*\})?"
_DERIV = re.compile(r"\\frac\{\s*(d|\\partial)\s*(?:\^\{(\d)\})?\s*(" + _TOKEN + r")\s*\}\{\s*(?:d|\\partial)\s*("
                    + _TOKEN + r")\s*(?:\^\{(\d)\})?\s*\}")
_DERIV_OP = re.compile(r"\\frac\{\s*(d|\\partial)\s*(?:\^\{(\d)\})?\s*\}\{\s*(?:d|\\partial)\s*(" + _TOKEN
                       + r")\s*(?:\^\{(\d)\})?\s*\}\s*(" + _TOKEN + r")")


def _name(token: str) -> str:
    return re.sub(r"[\\{}\s]", "", token)


def _derivative(kind: str, order: str | None, what: str, var: str) -> str:
    """``d^2z/dt^2`` -> ``\\ddot{z}`` (time derivatives, so both notations compare equal); others -> one symbol."""
    n = int(order or 1)
    if kind == "d" and var == "t" and n in (1, 2):
        m = re.match(r"(\\[a-zA-Z]+|[A-Za-z])(_\{.*\})?$", what)
        if m:
            return (r"\dot{" if n == 1 else r"\ddot{") + m.group(1) + "}" + (m.group(2) or "")
    return r"D_{" + f"{'d' if kind == 'd' else 'p'}{n},{_name(what)},{_name(var)}" + "}"


def _rewrite_derivatives(s: str) -> str:
    s = _DERIV.sub(lambda m: _derivative(m.group(1), m.group(2), m.group(3), m.group(4)), s)
    return _DERIV_OP.sub(lambda m: _derivative(m.group(1), m.group(2), m.group(5), m.group(3)), s)


_PRIMES = re.compile(r"(?P<base>\\[a-zA-Z]+|[A-Za-z])(?P<sub>_\{[^{}]*\})?\s*(?P<mark>'+|\^\{\s*(?:\\prime|\\star|\*|"
                     r"\\prime\\prime)\s*\}|\^\{?\*\}?)(?P<sub2>_\{[^{}]*\})?")


def _name_marks(s: str) -> str:
    """Primes and stars belong to a symbol's name: ``T^{\\star}`` -> ``T_{star}``, ``x_1'`` -> ``x_{1,prime}``.

    Left alone, the LaTeX grammar reads ``T^{\\star}`` as a power and silently drops ``'``, so ``T'`` would
    equal ``T``.
    """

    def repl(m: re.Match) -> str:
        mark = m.group("mark")
        tag = "star" if ("star" in mark or "*" in mark) else "prime" * max(1, mark.count("'") + mark.count("prime"))
        subs = [x[2:-1] for x in (m.group("sub"), m.group("sub2")) if x]
        return m.group("base") + "_{" + ",".join(subs + [tag]) + "}"

    return _PRIMES.sub(repl, s)


_FUNCTION_ALIASES = {"asin": "arcsin", "acos": "arccos", "atan": "arctan"}
_FUNCTION_WORDS = re.compile(r"(?<![\\a-zA-Z])(arcsin|arccos|arctan|asin|acos|atan|sinh|cosh|tanh|sin|cos|tan|cot|sec"
                             r"|csc|ln|log|exp)(?![a-zA-Z])")


def clean_latex(text: str) -> str:
    """Normalise one answer's LaTeX: no boxes or dollars, no font commands or spacing, braced scripts."""
    s = strip_boxed(text)
    s = _SUPERSCRIPTS.sub(lambda m: "^{" + m.group(0).translate(_SUPERSCRIPT_DIGITS) + "}", s)  # 10⁻³ -> 10^{-3}
    for a, b in _UNICODE.items():
        s = s.replace(a, b)
    # "1.5\text{e}3", "1.5\mathrm{E}{-3}": an exponent marker written as text
    s = re.sub(r"(\d)\s*\\(?:text|mathrm|rm)\s*\{\s*([eE])\s*\}\s*\{?\s*([-+]?\d+)\s*\}?", r"\1e\3", s)
    s = s.replace("$", " ").replace(r"\(", " ").replace(r"\)", " ").replace(r"\[", " ").replace(r"\]", " ")
    s = _DROP.sub(" ", s)
    s = _LEFT_RIGHT.sub("", s)
    s = re.sub(r"\\(?:left|right)(?![a-zA-Z])", "", s)
    for a, b in sorted(_VARIANTS.items(), key=lambda kv: -len(kv[0])):
        s = re.sub(re.escape(a) + r"(?![a-zA-Z])", lambda _m, b=b: b, s)
    s = re.sub(r"\\SI\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"\1 \2", s)  # siunitx: \SI{3.2}{m/s}
    s = re.sub(r"\\(?:si|num)\s*\{([^{}]*)\}", r" \1 ", s)
    s = _unwrap_commands(s)
    s = re.sub(r"\s+([_^'])", r"\1", s)
    s = re.sub(r"(?<![\d.])(\d{1,3})(?:\s(\d{3}))+(?![\d.])", lambda m: m.group(0).replace(" ", ""), s)
    s = re.sub(r"(?<=\d)\{,\}(?=\d{3})", "", s)  # "80{,}600": LaTeX's thousands separator
    s = _EQUALS.sub("=", s)
    s = s.replace("~", " ")
    s = re.sub(r"(?<!\\)\\ ", " ", s)  # "\ " is a space, "\\" (a matrix row break) stays
    s = re.sub(r"_\{\s*\\(max|min|rm|text)\s*\}", r"_{\1}", s)
    s = re.sub(r"\{\s*\\(sin|cos|tan|cot|sec|csc|sinh|cosh|tanh|ln|log|exp)\s*\}", r"\\\1", s)
    # \hat{M_{12}} -> \hat{M}_{12}: the grammar accepts a decorated letter with a subscript, not the reverse
    s = re.sub(r"\\(dot|ddot|hat|bar|tilde)\{\s*(\\[a-zA-Z]+|[A-Za-z])\s*(_\{[^{}]*\})\s*\}", r"\\\1{\2}\3", s)
    s = _FUNCTION_WORDS.sub(lambda m: "\\" + _FUNCTION_ALIASES.get(m.group(1), m.group(1)) + " ", s)
    s = _brace_scripts(s)
    s = _fix_frac_sqrt(s)
    s = _rewrite_derivatives(s)
    s = _name_marks(s)
    s = re.sub(r"\s+", " ", s).strip()
    return s.rstrip(".;,").strip()


def string_key(text: str) -> str:
    """A comparison key: the cleaned LaTeX with no whitespace and no braces around single characters."""
    s = clean_latex(text)
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"\{(\\?[A-Za-z0-9])\}", r"\1", s)
    return s


# ---------------------------------------------------------------------------------------------------------
# peeling conditions, labels and alternatives

_CONDITION = re.compile(r"(?:,?\s+|^)(?:for|if|when|whenever|where|with|provided|assuming|given|while|as)\s",
                        re.IGNORECASE)
_ALTERNATIVE = re.compile(r"\s+(?:or)\s+|或")


def _outside_math(text: str) -> list[tuple[int, int]]:
    """Spans of ``text`` that are outside $...$."""
    spans, start, inside = [], 0, False
    for m in re.finditer(r"\$", text):
        if not inside:
            spans.append((start, m.start()))
        else:
            start = m.end()
        inside = not inside
    if not inside:
        spans.append((start, len(text)))
    return spans


def _cut_condition(text: str) -> str:
    """Drop a trailing condition written in prose: "$x = R/2$ for $t > T$" -> "$x = R/2$"."""
    has_dollars = "$" in text
    for a, b in _outside_math(text) if has_dollars else [(0, len(text))]:
        m = _CONDITION.search(text, a, b)
        if m and m.start() > 0 and text[: m.start()].strip(" ,$"):
            return text[: m.start()]
    return text


def _drop_cjk_parentheticals(text: str) -> str:
    return re.sub(r"[（(][^（）()]*[\u3400-\u9fff][^（）()]*[）)]", " ", text)


def _drop_label(text: str) -> str:
    """Drop a leading prose label: "Segment 1: slope = $x$" -> "slope = $x$", "当...时：$x$" -> "$x$"."""
    m = re.match(r"^\s*([^$:：]*?)[:：]", text)
    if m and (CJK.search(m.group(1)) or re.search(r"[A-Za-z]{2,}\s", m.group(1) + " ")) and "\\" not in m.group(1):
        rest = text[m.end() :]
        if rest.strip():
            return rest
    # CJK words with no colon before the first $: "当自转和公转方向相同时$...$"
    if "$" in text and CJK.search(text.split("$", 1)[0]):
        return text[text.index("$") :]
    return text


def split_top_level(s: str, sep: str) -> list[str]:
    """Split on ``sep`` outside any (), [], {}."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i : i + 2])
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if depth == 0 and s.startswith(sep, i):
            parts.append("".join(cur))
            cur = []
            i += len(sep)
            continue
        cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _peel(text: str) -> str:
    raw = strip_boxed(text)
    for a in "：（）":
        raw = raw.replace(a, _UNICODE[a])
    raw = _drop_cjk_parentheticals(raw)
    raw = _drop_label(raw)
    return _cut_condition(raw)


def _finish(s: str) -> str:
    c = clean_latex(s)
    c = _drop_label(c) if not c.startswith("\\") else c
    return CJK.sub(" ", c).strip(" ,.;:")


def answer_core(text: str) -> str:
    """One answer with its wrappers, label and trailing condition removed, cleaned (no splitting on "or")."""
    return _finish(_peel(text))


def answer_alternatives(text: str) -> list[str]:
    """The acceptable forms of one gold answer, each cleaned: conditions, labels and prose wrappers removed.

    "$T = A$ or $T = B$, where $a = 1$" -> ["T = A", "T = B"]. Each result may still contain '=' (see
    ``right_hand_sides``).
    """
    raw = _peel(text)
    pieces = [raw]
    if "$" in raw:  # "or" between two math segments only
        outside = [raw[a:b] for a, b in _outside_math(raw)]
        if any(_ALTERNATIVE.search(o) for o in outside):
            pieces = re.findall(r"\$([^$]+)\$", raw)
    out = [c for c in (_finish(p) for p in pieces) if c]
    return out or [clean_latex(raw)]


def right_hand_sides(s: str) -> list[str]:
    """Candidate values of a cleaned answer: everything right of the first '=' in "v = A = B" -> [A, B].

    Without '=' it is the whole string; "LHS = value" yields the value.
    """
    parts = [p.strip() for p in split_top_level(s, "=")]
    if len(parts) == 1:
        return parts
    return [p for p in parts[1:] if p] or parts[:1]


# ---------------------------------------------------------------------------------------------------------
# sympy

def _sympy():
    import sympy

    return sympy


def _canonical_name(name: str) -> str:
    # \mathit{E}_b (our E_b work-around) and \dot{x_1} vs \dot{x}_1 all map to the same plain name
    name = re.sub(r"\\?math(?:it)?\{", "{", name)
    return re.sub(r"[\\{}\s]", "", name)


def _canonicalise(expr):
    """Rename symbols canonically and replace things a comparison must treat as opaque names."""
    sympy = _sympy()
    if not isinstance(expr, sympy.Basic):
        return expr
    if expr.has(sympy.EulerGamma):  # \Gamma in physics is a quantity, not Euler's constant
        expr = expr.subs(sympy.EulerGamma, sympy.Symbol("Gamma"))
    derivs = {d: sympy.Symbol("D_" + _canonical_name(str(d))) for d in expr.atoms(sympy.Derivative)}
    if derivs:
        expr = expr.xreplace(derivs)
    mapping = {s: sympy.Symbol(_canonical_name(s.name)) for s in expr.free_symbols if isinstance(s, sympy.Symbol)}
    return expr.xreplace(mapping)


_COMMAND = re.compile(r"(\\[a-zA-Z]+)")


def _protect_names(s: str) -> str:
    r"""Keep physics names from turning into sympy constants on the way through the LaTeX grammar.

    The grammar reads I as the imaginary unit (and drops its subscript: I_0 -> I), \gamma and \Gamma as
    Euler's constant (so \rho^{\gamma-2} becomes rho**zoo), E_1 and e_x as a number's exponent, \pi_+ as 3.14.
    As ``\mathit{...}`` each is an ordinary symbol; ``_canonicalise`` strips the wrapper from the name again.
    """
    out = []
    for i, part in enumerate(_COMMAND.split(s)):
        if i % 2:  # a command
            if part in (r"\gamma", r"\Gamma"):
                part = r"\mathit{" + part[1:] + "}"
            out.append(part)
            continue
        part = re.sub(r"(?<![a-zA-Z])I(?![a-zA-Z])", r"\\mathit{I}", part)
        if r"\int" not in s:  # a lone d is a distance, not a differential ("M g d")
            part = re.sub(r"(?<![a-zA-Z])d(?![a-zA-Z])", r"\\mathit{d}", part)
        part = re.sub(r"(?<![a-zA-Z])([Ee])(?=_)", r"\\mathit{\1}", part)
        out.append(part)
    t = "".join(out)
    t = re.sub(r"\\pi(?=_)", r"\\mathit{pi}", t)
    t = re.sub(r"\\log(?!_)", r"\\ln", t)  # physicists' log is natural unless a base is written
    return t.replace("_{+}", "_{plus}").replace("_{-}", "_{minus}")


@functools.lru_cache(maxsize=4096)
def parse_latex(s: str):
    """Parse a cleaned LaTeX answer into sympy, or None when it is not parseable.

    Call it under a time limit: the grammar is fast but simplification inside the converter is not bounded.
    """
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig

    if not s or CJK.search(s) or len(s) > 2000:
        return None
    t = _protect_names(s).replace(r"\ldots", "")
    config = ConversionConfig(lowercase_symbols=False, interpret_as_mixed_fractions=False)
    try:
        expr = latex2sympy(t, normalization_config=None, conversion_config=config)
    except Exception:  # noqa: BLE001 - any parser failure means "not parseable"
        return None
    try:
        return _canonicalise(expr)
    except Exception:  # noqa: BLE001
        return None
