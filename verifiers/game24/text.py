"""Reading model text for the Game of 24: one plain notation, and the ``a = b = c`` chains written in it.

Models write the same arithmetic in many notations (``×``, ``÷``, ``−``, LaTeX ``\\times``, ``\\frac{8}{3}``,
``$...$``, markdown bold, square brackets). :func:`normalize` rewrites a text into one plain notation and keeps,
for every character it writes, the span of the original text it came from, so that every verdict still points
at what the model wrote. :func:`chains` finds the ``expression = expression = ...`` runs of a line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from interlock.verifiers.game24.arith import ExpressionError, Parsed, parse_expression

__all__ = ["Chain", "Normalized", "Part", "chains", "close_enough", "decimals", "normalize", "read_at"]

_SINGLE = {"−": "-", "–": "-", "×": "*", "✕": "*", "✖": "*", "∗": "*", "⋅": "*", "·": "*", "÷": "/", "∕": "/",
           "[": "(", "]": ")", "$": " ", "`": " ", "＝": "="}
_LATEX = re.compile(r"\\(?:times|cdot|ast|div|left|right|[dt]?frac|text|mathrm|mathbf|approx|[,;:! ()\[\]])")
_LATEX_OUT = {"\\times": "*", "\\cdot": "*", "\\ast": "*", "\\div": "/", "\\left": "", "\\right": "",
              "\\approx": "≈"}


@dataclass(frozen=True)
class Normalized:
    """A text in the plain notation; ``start[i]``/``end[i]`` is the original span of its character ``i``."""

    text: str
    start: tuple[int, ...]
    end: tuple[int, ...]
    source: str  # the original text
    resume: tuple[int, int] = (0, 0)  # (original, normalised) offsets after the last line break outside braces

    def original(self, start: int, end: int) -> str:
        """What the model wrote for the normalised span ``[start, end)``."""
        a, b = self.span(start, end)
        return self.source[a:b]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the normalised span ``[start, end)``."""
        if start >= end:
            at = self.start[start] if start < len(self.text) else len(self.source)
            return at, at
        return self.start[start], self.end[end - 1]

    def index(self, original: int) -> int:
        """The first normalised offset whose character comes from at or after ``original``."""
        lo, hi = 0, len(self.text)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.start[mid] < original:
                lo = mid + 1
            else:
                hi = mid
        return lo


def normalize(text: str, previous: Normalized | None = None) -> Normalized:
    """Rewrite ``text`` into plain notation (``* / - ( )``, no LaTeX or markdown), keeping the offset map.

    ``previous``, the result for an earlier prefix of ``text`` (the trace before it grew), is reused up to its
    last line break, so a growing trace is read once, not once per step.
    """
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    braces: list[str] = []  # what each open "{" becomes when it closes
    i = 0
    resume = (0, 0)
    if previous is not None and text.startswith(previous.source):
        i, k = resume = previous.resume
        out, starts, ends = list(previous.text[:k]), list(previous.start[:k]), list(previous.end[:k])

    def emit(s: str, a: int, b: int) -> None:
        for ch in s:
            out.append(ch)
            starts.append(a)
            ends.append(b)

    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\n" and not braces:
            resume = (i + 1, len(out) + 1)
        if ch == "\\":
            m = _LATEX.match(text, i)
            if m is not None:
                word = m.group()
                if word.endswith("frac") and text.startswith("{", m.end()):
                    emit("((", i, m.end() + 1)
                    braces.append("frac")
                    i = m.end() + 1
                elif word in ("\\text", "\\mathrm", "\\mathbf") and text.startswith("{", m.end()):
                    emit(" ", i, m.end() + 1)
                    braces.append(" ")
                    i = m.end() + 1
                elif word in _LATEX_OUT:
                    emit(_LATEX_OUT[word], i, m.end())
                    i = m.end()
                elif len(word) == 2:  # \, \; \( \) \[ \] ...: spacing and math delimiters
                    emit(" ", i, m.end())
                    i = m.end()
                else:
                    emit(ch, i, i + 1)
                    i += 1
                continue
        if ch == "{":
            braces.append("}")
            emit("{", i, i + 1)
        elif ch == "}" and braces:
            kind = braces.pop()
            if kind == "frac":
                j = i + 1
                while j < n and text[j] in " \t":
                    j += 1
                if j < n and text[j] == "{":
                    emit(")/(", i, j + 1)
                    braces.append("))")
                    i = j + 1
                    continue
                emit(")", i, i + 1)
            else:
                emit(kind, i, i + 1)
        elif text.startswith("**", i) or text.startswith("__", i):
            emit(" ", i, i + 2)
            i += 2
            continue
        else:
            emit(_SINGLE.get(ch, ch), i, i + 1)
        i += 1
    return Normalized("".join(out), tuple(starts), tuple(ends), text, resume)


# -- chains -------------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[-+*/()=]|(?<![A-Za-z])[xX](?![A-Za-z])|[ \t]+")
# a character right before a run (or before the blank before it) that makes the run part of something unread
_GLUE_BEFORE = set("^√!²³%'\"\\_|<>≈≠≤≥~") | set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_GLUE_AFTER = set("^!²³%√_\\≈≠<>≤≥") | set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OPS = set("+-*/xX")


@dataclass(frozen=True)
class Part:
    """One side of an equality in a chain: its normalised span and its exact value (None: not arithmetic)."""

    start: int
    end: int
    parsed: Parsed | None

    @property
    def leaves(self) -> int:
        return 0 if self.parsed is None else len(self.parsed.leaves)


@dataclass(frozen=True)
class Chain:
    """``part = part = ...`` within one line; ``question`` when a ``?`` follows it (a question, not a claim)."""

    parts: tuple[Part, ...]
    question: bool


def _parse(text: str) -> Parsed | None:
    try:
        return parse_expression(text)
    except ExpressionError:
        return None


def _tokens(line: str, offset: int) -> list[tuple[str, int, int]]:
    """Expression tokens of a line (blanks dropped); any other character is a token of kind 'other'."""
    out: list[tuple[str, int, int]] = []
    pos = 0
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if m is None:
            out.append(("other", offset + pos, offset + pos + 1))
            pos += 1
            continue
        if not m.group().isspace():
            out.append((m.group(), offset + m.start(), offset + m.end()))
        pos = m.end()
    return out


def chains(norm: str, start: int = 0, end: int | None = None) -> Iterator[Chain]:
    """The equality chains of ``norm[start:end]``, line by line, with what a model can be held to.

    The first part is the longest clean expression before the first ``=`` (nothing glued in front of it, such
    as ``^`` or a letter); the last part is the longest expression that reads after the last ``=``. A part that
    does not read breaks the chain there.
    """
    end = len(norm) if end is None else end
    for line_m in re.finditer(r"[^\n]+", norm[start:end]):
        offset = start + line_m.start()
        for chain in _line_chains(line_m.group()):
            yield Chain(tuple(Part(p.start + offset, p.end + offset, p.parsed) for p in chain.parts), chain.question)


@functools.lru_cache(maxsize=4096)
def _line_chains(line: str) -> tuple[Chain, ...]:
    """The chains of one line, at offsets within it (cached: a growing trace asks for the same lines again)."""
    out = []
    toks = _tokens(line, 0)
    i = 0
    while i < len(toks):
        if toks[i][0] == "other":
            i += 1
            continue
        j = i
        while j < len(toks) and toks[j][0] != "other":
            j += 1
        run = toks[i:j]
        if any(t[0] == "=" for t in run):
            chain = _chain(line, run, toks[j] if j < len(toks) else None)
            if chain is not None:
                out.append(chain)
        i = j
    return tuple(out)


def read_at(norm: str, pos: int, end: int) -> Chain | None:
    """The expression (or chain) that starts at ``pos``, read up to the first character that is no arithmetic
    (before ``end`` and the end of the line); its first part must read whole. None if nothing reads there."""
    line_end = norm.find("\n", pos, end)
    toks = _tokens(norm[pos:end if line_end < 0 else line_end], pos)
    j = 0
    while j < len(toks) and toks[j][0] != "other":
        j += 1
    if j == 0:
        return None
    return _chain(norm, toks[:j], toks[j] if j < len(toks) else None, anchored=True)


def _chain(norm: str, run: list[tuple[str, int, int]], after: tuple[str, int, int] | None, *,
           anchored: bool = False) -> Chain | None:
    groups: list[list[tuple[str, int, int]]] = [[]]
    for tok in run:
        if tok[0] == "=":
            groups.append([])
        else:
            groups[-1].append(tok)
    if any(not g for g in groups[1:-1]) or (len(groups) < 2 and not anchored) or not groups[0]:
        return None
    if anchored and len(groups) == 1:
        groups.append([])  # no "=": the expression alone
    # first part: the longest suffix that reads, and only if nothing unread is glued in front of it
    first = groups[0]
    part0: Part | None = None
    for k in range(1 if anchored else len(first)):
        sign = k == 0 and first[0][0] == "-" and len(first) > 1 and first[1][1] == first[0][2] \
            and first[1][0][0].isdigit()
        if (first[k][0] in _OPS and not sign) or first[k][0] == ")":
            continue  # (a "-" right before the first number is its sign, "-3 + 9"; "- 13 - 9" is a bullet)
        if k > 0 and first[k - 1][0] in _OPS:
            break  # "4 ^ 2 - 10" cut after an operator: the left side is not all there
        parsed = _parse(norm[first[k][1]:first[-1][2]])
        if parsed is not None:
            if k == 0 and not anchored and _glued_before(norm, first[0][1]):
                return None
            part0 = Part(first[k][1], first[-1][2], parsed)
            break
    if part0 is None:
        return None
    parts = [part0]
    for g in groups[1:-1]:
        parsed = _parse(norm[g[0][1]:g[-1][2]])
        if parsed is None:
            return Chain(tuple(parts), False) if len(parts) > 1 else None
        parts.append(Part(g[0][1], g[-1][2], parsed))
    last = groups[-1]
    tail: Part | None = None
    for k in range(len(last), 0, -1):
        if last[k - 1][0] in _OPS or last[k - 1][0] == "(":
            continue
        parsed = _parse(norm[last[0][1]:last[k - 1][2]])
        if parsed is not None:
            stop = last[k - 1][2]
            if k == len(last) and after is not None and after[1] == stop and _glued_after(norm, stop):
                break
            if k < len(last) and last[k][0] not in ("(", ")"):
                break  # "= 6 * " followed by something unread: the right side is not all there
            tail = Part(last[0][1], stop, parsed)
            break
    if tail is not None:
        parts.append(tail)
    if len(parts) < 2 and not anchored:
        return None
    rest = norm[parts[-1].end:parts[-1].end + 3].lstrip(" \t*")
    return Chain(tuple(parts), rest.startswith("?"))


def _glued_before(norm: str, pos: int) -> bool:
    j = pos - 1
    if j >= 0 and norm[j] in _GLUE_BEFORE | set(".,"):
        return norm[j] not in ".," or (j > 0 and norm[j - 1].isdigit() and norm[j] == ".")
    while j >= 0 and norm[j] in " \t":
        j -= 1
    return j >= 0 and norm[j] in set("^√≈≠<>≤≥~")


def _glued_after(norm: str, pos: int) -> bool:
    return pos < len(norm) and norm[pos] in _GLUE_AFTER


def decimals(text: str) -> int:
    """Digits after the point of a decimal written in ``text`` (0 for an integer or fraction)."""
    return len(text.split(".", 1)[1]) if "." in text else 0


def close_enough(true: Fraction, stated: Fraction, stated_text: str, leaf_texts: list[str]) -> bool:
    """Whether ``stated`` is ``true`` as a model writes it: exactly, or rounded where decimals are rounded.

    A decimal result may be rounded (or cut) to its last digit when the exact value has no such decimal
    (``8 / 3 = 2.67``); operands written with two or more decimals may be rounded values themselves
    (``7 * 3.4286 = 24``), so their rounding carries into the result. Integers are held exactly.
    """
    if true == stated:
        return True
    tol = Fraction(0)
    k = decimals(stated_text)
    if k and (true * 10 ** k).denominator != 1:
        tol += Fraction(1, 10 ** k)
    for leaf in leaf_texts:
        d = decimals(leaf)
        value = abs(Fraction(leaf))
        if d >= 2 and value:
            tol += abs(true) * Fraction(1, 10 ** d) / value
    return abs(true - stated) < tol
