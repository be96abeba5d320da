"""Final answers out of a model response: the last N ``\\boxed{}`` (N = number of gold sub-answers).

HiPhO asks the model to box every final answer; the official grader reads the last N boxes in order. Braces
nest (``\\boxed{\\frac{a}{b}}``), boxes can be truncated (``\\boxed{x + `` at the end of a cut-off response), and
some responses put answers in an ``<answer>...</answer>`` block instead, so both are handled here.
"""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)


def _matching_brace(text: str, open_index: int) -> int:
    """Index of the '}' that closes the '{' at ``open_index``, or -1. Escaped braces (\\{ \\}) do not count."""
    depth = 0
    i = open_index
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def boxed_contents(text: str) -> list[str]:
    """The contents of every top-level ``\\boxed{...}`` in order (nested boxes stay inside their parent).

    An unclosed box (a truncated response, or a typo such as a missing final brace) runs to the end of its line.
    """
    out: list[str] = []
    pos = 0
    while True:
        m = _BOX.search(text, pos)
        if not m:
            return out
        open_index = m.end() - 1
        close = _matching_brace(text, open_index)
        if close < 0:
            line_end = text.find("\n", open_index)
            close = len(text) if line_end < 0 else line_end
            out.append(text[open_index + 1 : close].strip())
            pos = close
        else:
            out.append(text[open_index + 1 : close].strip())
            pos = close + 1


def strip_boxed(text: str) -> str:
    """``\\boxed{x}`` -> ``x`` for a single answer string (and the ``$\\boxed{$...$}$`` wrappings in the data)."""
    t = text.strip()
    for _ in range(3):  # \boxed{\boxed{x}} happens
        boxes = boxed_contents(t)
        if len(boxes) != 1:
            break
        t = boxes[0]
    return t


def extract_answers(response: str, n: int) -> list[str]:
    """The model's final answers: the last ``n`` boxes, padded at the end with "" when there are fewer.

    Order matters (sub-answer i is compared with gold i). With fewer boxes than answers the missing ones are
    taken to be the last ones, the usual case being a response cut off before its final part. Without any box, an
    ``<answer>`` block is used: its boxes if it has any, otherwise its non-empty lines (the whole block for n=1).
    """
    if n <= 0:
        return []
    boxes = boxed_contents(response)
    if not boxes:
        blocks = _ANSWER_BLOCK.findall(response)
        if blocks:
            block = blocks[-1].strip()
            boxes = boxed_contents(block)
            if not boxes:
                lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
                boxes = [block] if n == 1 or len(lines) < n else lines
    picked = boxes[-n:]
    return picked + [""] * (n - len(picked))
