"""Tokenizer for calculations written in prose: numbers, operators (plain, unicode, LaTeX), relations, words.

The lexer never evaluates anything; it only labels pieces of text with their offsets, so that the parser can
build an expression and the extractor can point a span at exactly the text of a claim. Pieces it cannot read
for sure (a number glued to letters like ``3x`` or ``5th``, a clock time ``3:45``, a date ``12/25/2023``) become
``BAD`` tokens, which no claim may contain: what is not read for sure is not judged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from interlock.verifiers.arithmetic.vocabulary import GLUED_UNITS, MULTIPLIERS

__all__ = ["Token", "TokenKind", "tokenize"]

TokenKind = Literal["NUM", "OP", "LP", "RP", "REL", "PCT", "CUR", "WORD", "FRAC", "SQRT", "BINOM", "FACT", "SEP",
                    "BAD"]


@dataclass(frozen=True, slots=True)
class Token:
    """One piece of text: ``kind``, canonical ``value`` (``"*"`` for ``×``, ``"approx"`` for ``≈``), offsets."""

    kind: TokenKind
    value: str
    start: int
    end: int
    glued: bool = False  # no whitespace between this token and the one before

    def __repr__(self) -> str:
        return f"{self.kind}({self.value!r}@{self.start})"


_MASTER = re.compile(
    r"""
      (?P<ws>\s+|\\[,;!:]|\\q?quad\b)
    | (?P<num>(?:\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)
    | (?P<linebreak>\\\\)
    | (?P<text>\\(?:text|mathrm|textrm|mbox)\s*\{(?P<textbody>\s*[A-Za-z]+(?:\s*/\s*[A-Za-z]+|\s+[A-Za-z]+){0,5}\s*)\})
    | (?P<latex>\\(?:left|right)\s*[(\[]|\\(?:left|right)\s*[)\]]|\\[A-Za-z]+|\\[$%{}()\[\]])
    | (?P<root>√)
    | (?P<sup>[²³])
    | (?P<deg>°[CF]?|\^\s*\{?\\circ\}?)
    | (?P<arrow>=+>|-+>|[→⇒⟹])
    | (?P<op>\*\*|[-+*/^×·⋅∗÷−])
    | (?P<rel>==?|≈|≃)
    | (?P<pct>%)
    | (?P<math>\$\$)
    | (?P<cur>[$€£¥₹₩₽₺₦฿₱])
    | (?P<cents>¢)
    | (?P<lp>[(\[{])
    | (?P<rp>[)\]}])
    | (?P<word>[A-Za-z]+(?:['’][A-Za-z]+)?)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

# LaTeX wrappers that only style what they hold: "\\boxed{18}" is 18.
_TRANSPARENT = {"\\boxed", "\\mathbf", "\\textbf", "\\displaystyle", "\\bf", "\\mathrm"}

_OPS = {"−": "-", "×": "*", "·": "*", "⋅": "*", "∗": "*", "÷": "/", "**": "^"}
_LATEX = {
    "\\times": ("OP", "*"), "\\cdot": ("OP", "*"), "\\div": ("OP", "/"), "\\ast": ("OP", "*"),
    "\\frac": ("FRAC", "frac"), "\\dfrac": ("FRAC", "frac"), "\\tfrac": ("FRAC", "frac"),
    "\\sqrt": ("SQRT", "sqrt"), "\\binom": ("BINOM", "binom"), "\\dbinom": ("BINOM", "binom"),
    "\\tbinom": ("BINOM", "binom"), "\\approx": ("REL", "approx"), "\\$": ("CUR", "$"), "\\%": ("PCT", "%"),
    "\\{": ("LP", "("), "\\}": ("RP", ")"), "\\(": ("SEP", "\\("), "\\)": ("SEP", "\\)"),
    "\\[": ("SEP", "\\["), "\\]": ("SEP", "\\]"), "\\neq": ("SEP", "!="), "\\ne": ("SEP", "!="),
    "\\le": ("SEP", "<="), "\\leq": ("SEP", "<="), "\\ge": ("SEP", ">="), "\\geq": ("SEP", ">="),
}
_ORDINAL = {"st", "nd", "rd", "th"}
_POWER_START = set("0123456789(-+{")  # "2**3", "2**(1/2)"; "**8**." closes bold before the full stop
_BOLD_VALUE = re.compile(r"-?[$€£¥₹₩₽₺₦฿₱]?\d")
_ALIGNED_RELATION = re.compile(r"\s*(?:=|≈|\\approx\b)")
_ALIGNED_NEXT = re.compile(r"\s*&\s*(?:=|≈|\\approx\b)")
_TEXT_PIECE = re.compile(r"[A-Za-z]+|/")


def _states(t: Token) -> bool:
    """Whether a token states a value that follows it: a relation sign or word ("=", "is", "equals")."""
    return t.kind == "REL" or (t.kind == "WORD" and t.value.lower() in {"is", "equals"})


def _text_words(m: re.Match[str], glued: bool) -> list[Token]:
    """``\\text{ dollars/hour}``: the words (and rate slashes) it holds, as if written in prose.

    The first piece starts at the backslash and the last ends at the closing brace, so spans cover the markup.
    """
    body_start = m.start("textbody")
    pieces = list(_TEXT_PIECE.finditer(m.group("textbody")))
    out: list[Token] = []
    for k, piece in enumerate(pieces):
        start = m.start() if k == 0 else body_start + piece.start()
        end = m.end() if k == len(pieces) - 1 else body_start + piece.end()
        # "5\\text{km}" is glued, "5\\text{ km}" is not
        joined = glued and piece.start() == 0 if k == 0 else pieces[k - 1].end() == piece.start()
        value = piece.group()
        kind: TokenKind = "OP" if value == "/" else "WORD"
        out.append(Token(kind, value.lower(), start, end, joined))
    return out


def _raw(text: str) -> list[Token]:
    out: list[Token] = []
    glued = False
    for m in _MASTER.finditer(text):
        kind = m.lastgroup
        s, e = m.span()
        if kind == "ws":
            glued = False
            continue
        piece = m.group()
        tok: Token
        if kind == "num":
            tok = Token("NUM", piece, s, e, glued)
        elif kind == "text":
            out.extend(_text_words(m, glued))
            glued = True
            continue
        elif kind == "latex":
            squashed = re.sub(r"\s+", "", piece)
            if piece in _TRANSPARENT:
                continue
            if piece == "\\sqrt" and text[e:e + 8].lstrip().startswith("["):
                out.append(Token("BAD", piece, s, e, glued))  # \sqrt[3]{27}: an n-th root is not read
                glued = True
                continue
            if squashed in {"\\left", "\\right"}:
                tok = Token("BAD", piece, s, e, glued)  # "\\left|", "\\left\\{": an absolute value or a set, not read
            elif squashed.startswith("\\left"):
                tok = Token("LP" if squashed[-1] in "([" else "RP", "(" if squashed[-1] in "([" else ")", s, e, glued)
            elif squashed.startswith("\\right"):
                tok = Token("RP" if squashed[-1] in ")]" else "LP", ")" if squashed[-1] in ")]" else "(", s, e, glued)
            else:
                k, v = _LATEX.get(piece, ("BAD", piece))
                tok = Token(k, v, s, e, glued)  # type: ignore[arg-type]
        elif kind == "op":
            after = text[e:e + 1]
            opens = after != "" and not after.isspace()
            if piece == "**" and (glued != opens or (glued and after not in _POWER_START)):
                if not glued and out and _states(out[-1]) and _BOLD_VALUE.match(text, e):
                    continue  # "= **$18**": bold on a stated value only styles it
                tok = Token("SEP", piece, s, e, glued)  # markdown bold around text: "**3 + 4 = 7**"
            else:
                tok = Token("OP", _OPS.get(piece, piece), s, e, glued)
        elif kind == "rel":
            tok = Token("REL", "approx" if piece in "≈≃" else "=", s, e, glued)
        elif kind == "pct":
            tok = Token("PCT", "%", s, e, glued)
        elif kind == "root":
            tok = Token("SQRT", "√", s, e, glued)
        elif kind == "sup":  # "5²" is 5^2
            out.append(Token("OP", "^", s, s, glued))
            tok = Token("NUM", "2" if piece == "²" else "3", s, e, True)
        elif kind == "arrow":
            tok = Token("SEP", "→", s, e, glued)  # "= 9 => 9 x 2 = 18": an arrow between steps, not "=" or "-"
        elif kind == "math":
            tok = Token("SEP", piece, s, e, glued)  # display-math delimiters, not two dollar signs
        elif kind == "cur" and piece == "$" and glued and s > 0 and (text[s - 1].isdigit() or text[s - 1] in ")}%"):
            continue  # "$3 + 4 = 7$", "$12\%$ of $50$ is $6$": a closing math delimiter only ends the math
        elif kind == "cur":
            tok = Token("CUR", piece, s, e, glued)
        elif kind == "lp":
            tok = Token("LP", "(", s, e, glued)
        elif kind == "rp":
            tok = Token("RP", ")", s, e, glued)
        elif kind == "word":
            tok = Token("WORD", piece, s, e, glued)
        elif kind == "cents":
            tok = Token("WORD", "cents", s, e, glued)
        elif kind == "deg":
            tok = Token("WORD", "degrees", s, e, glued)
        elif kind == "linebreak" and _ALIGNED_NEXT.match(text, e):
            continue  # "&= 12 + 5 \\\\ &= 17": the next line of an align goes on with the same chain
        elif (piece == "!" and glued and out and out[-1].kind in {"NUM", "RP"} and out[-1].end == s
              and text[e:e + 1] not in {"=", "!", "\n"}):
            tok = Token("FACT", "!", s, e, glued)  # "5!", "(n-1)!", "8!2!"; not "5!=6" (not equal) nor "5!!"
        elif piece == "&" and _ALIGNED_RELATION.match(text, e):
            continue  # "9 \\times 2 &= 18": an alignment mark in a LaTeX align environment
        else:
            tok = Token("SEP", piece, s, e, glued)
        out.append(tok)
        glued = True
    return out


def _glued_times(toks: list[Token], i: int) -> bool:
    """ "9x2": an x glued between two numbers is a times sign (but "0x1F" is hexadecimal)."""
    return (toks[i].kind == "WORD" and toks[i].value in {"x", "X"} and i >= 1 and toks[i].glued
            and toks[i - 1].kind == "NUM" and toks[i - 1].value != "0" and i + 1 < len(toks) and toks[i + 1].glued
            and toks[i + 1].kind == "NUM")


def _bad(t: Token) -> Token:
    return Token("BAD", t.value, t.start, t.end, t.glued)


def _resolve(toks: list[Token]) -> list[Token]:
    """Second pass: glued letters, ``x`` as a times sign, clock times, dates, hyphenated words, ``<`` and ``>``."""
    n = len(toks)
    out = list(toks)
    for i, t in enumerate(toks):
        prev = toks[i - 1] if i > 0 else None
        nxt = toks[i + 1] if i + 1 < n else None
        if t.kind == "NUM":
            if prev is not None and t.glued and (prev.kind == "WORD" or prev.value in {"_", "@", "#", "'"}) \
                    and not _glued_times(toks, i - 1):
                out[i] = _bad(t)  # "A4", "COVID19", "#3"
            elif prev is not None and t.glued and prev.kind == "SEP" and prev.value in {":", ".", ","} \
                    and i >= 2 and toks[i - 2].kind == "NUM" and prev.glued:
                out[i] = _bad(t)
            if nxt is not None and nxt.glued and nxt.kind == "SEP" and nxt.value in {":", ".", ","} and i + 2 < n \
                    and toks[i + 2].kind == "NUM" and toks[i + 2].glued:
                out[i] = _bad(t)  # 3:45, 1.2.3
            if nxt is not None and nxt.glued and nxt.kind == "WORD":
                w = nxt.value
                if w in {"x", "X"} and i + 2 < n and toks[i + 2].kind in {"NUM", "LP", "CUR"}:
                    pass  # "3x4", "3x (2+1)": a times sign, resolved below
                elif len(w) == 1 and not (w.lower() in MULTIPLIERS and prev is not None and prev.kind == "CUR"
                                          and t.glued):
                    out[i] = _bad(t)  # "3b", "2k + 1", "5m": a variable as often as a unit; "$50k" is money
                    out[i + 1] = _bad(nxt)
                elif w in GLUED_UNITS or w.lower() in MULTIPLIERS:
                    pass
                else:
                    out[i] = _bad(t)  # "5th", "3x", "10am", "1e6"
                    if w.lower() in _ORDINAL or len(w) <= 3:
                        out[i + 1] = _bad(nxt)
            # A date like 12/25/2023 or a version like 1-2-3 with no spaces: not a calculation.
            if (nxt is not None and nxt.glued and nxt.kind == "OP" and nxt.value == "/" and i + 4 < n
                    and toks[i + 2].kind == "NUM" and toks[i + 2].glued and toks[i + 3].value == "/"
                    and toks[i + 3].glued and toks[i + 4].kind == "NUM" and toks[i + 4].glued):
                for j in range(i, i + 5):
                    out[j] = _bad(toks[j])
            # "3-year-old": a hyphen glued to letters is a word hyphen, not a minus.
            if (nxt is not None and nxt.glued and nxt.kind == "OP" and nxt.value == "-" and i + 2 < n
                    and toks[i + 2].kind == "WORD" and toks[i + 2].glued):
                out[i] = _bad(t)
                out[i + 1] = _bad(nxt)
        elif t.kind == "WORD" and t.value in {"x", "X"} and prev is not None and nxt is not None:
            left_ok = prev.kind in {"NUM", "RP", "PCT"} or (
                prev.kind == "WORD" and i >= 2 and toks[i - 2].kind == "NUM") or (
                prev.kind == "WORD" and i >= 3 and toks[i - 2].value.lower() in {"square", "sq", "cubic", "cu"}
                and toks[i - 3].kind == "NUM")  # "120 square feet x $12"
            right_ok = nxt.kind in {"NUM", "LP", "CUR", "FRAC", "SQRT"}
            if left_ok and right_ok and (t.glued == nxt.glued):
                out[i] = Token("OP", "*", t.start, t.end, t.glued)
        elif (t.kind == "OP" and t.value == "/" and t.glued and prev is not None and prev.kind == "WORD"
              and nxt is not None and nxt.glued and nxt.kind == "NUM"):
            out[i] = _bad(t)  # "2 melt/15 minutes": a rate per 15 minutes, not a division by 15
        elif t.kind == "SEP" and t.value in {"<", ">", "≤", "≥", "≠", "!"}:
            out[i] = _bad(t)
        elif t.kind == "REL" and nxt is not None and nxt.glued and nxt.kind == "SEP" and nxt.value in {">", "<"}:
            out[i] = _bad(t)  # "=>" is an arrow, not an equality
        elif t.kind == "REL" and prev is not None and t.glued and prev.kind in {"SEP", "BAD"} \
                and prev.value in {"<", ">", "!", ":"}:
            out[i] = _bad(t)  # "<=", ">=", "!=", ":="
    return out


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens with offsets into ``text``."""
    return _resolve(_raw(text))
