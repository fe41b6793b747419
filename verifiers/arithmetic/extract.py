"""Find the calculation claims in a step of prose, each with the exact span of its text.

A claim is one link ``expression = stated value`` of a (possibly chained) equality written in the text or in
a calculator annotation ``<<expr=value>>``. The extractor is where soundness is won or lost, so it keeps only
links it reads for sure:

- the left side is a complete expression with an operator, the right side a single number (the result);
  ``a = b + c`` and ``60 minutes = 1 hour`` are not calculations it judges;
- the expression's edges are clean: no word before it that could be part of the calculation ("half of 10 + 2"),
  no word after the result that changes its meaning ("= 5 more than", "= 3 to 4"), no clock times, dates,
  ratios or numbers glued to letters;
- every chained link is a claim of its own, but a running total ("5 * 3 = 15 + 2 = 17") is not read as
  ``5 * 3 = 15 + 2``: a link whose right side is not a single number is never judged.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from interlock.verifiers.arithmetic.errors import TooComplex
from interlock.verifiers.arithmetic.lexer import Token, tokenize
from interlock.verifiers.arithmetic.numbers import parse_literal
from interlock.verifiers.arithmetic.parse import (
    AREA_WORDS,
    Bin,
    Func,
    Limits,
    Neg,
    Node,
    Num,
    Sqrt,
    is_unit_word,
    parse_expression,
)
from interlock.verifiers.arithmetic.vocabulary import (
    APPROX_WORDS,
    GLUED_ONLY_MULTIPLIERS,
    MULTIPLIERS,
    OPERATOR_WORDS,
    RELATION_WORDS,
    RISKY_AFTER,
    RISKY_BEFORE,
    unit_dimension,
    unit_key,
)

__all__ = ["Claim", "Context", "context_of", "extract_claims", "might_hold_claims"]

_QUICK = re.compile(r"[=≈≃]|\\approx|\b(?:" + "|".join(sorted(RELATION_WORDS)) + r")\b")
_DIGIT = re.compile(r"\d")
_ANNOTATION = re.compile(r"<<([^<>\n]{1,400})>>")
# A list marker or quote mark at the start of a line: "1.", "1)", "(a)", "b)", "iv)", "-", "*", "•", "> ".
_LIST_MARKER = re.compile(r"^\s*(?:>\s*)*(?:(?:\(?(?:\d{1,3}|[A-Za-z]|[ivx]{1,4})\)|\d{1,3}\.|[-*•])\s+)?")
# Marks that may touch a claim without changing it ("**3 + 4 = 7**", "`3+4=7`", "(3 + 4 = 7).");
# any other glued symbol ("√16 + 1", "3′", "π") may be part of the calculation, so the claim is not judged.
_SAFE_BEFORE = {"`", '"', "“", "**", "$$", "\\(", "\\[", "|", ">", "#", "&"}
_SAFE_AFTER = {".", ",", ";", ":", "?", "`", '"', "”", "**", "$$", "$", "\\)", "\\]", "|", "…", "&"}
# Chinese and Japanese glue words to numbers ("所以16 - 3 - 4 = 9个鸡蛋。"): such a character ends or starts a
# claim like a space, except those that take part in the calculation: multiplied/divided by, half, times, of,
# plus, minus before it, and numeral multipliers (万 is 10,000), "times" and "points" after it.
_CJK = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_CJK_RISKY_BEFORE = set("倍半加减乘除的分之和差积商")
_CJK_RISKY_AFTER = set("十百千万萬亿億兆倍分")
_NOT_RATES = {"cent", "cents", "centum", "mille", "mil", "annum"}  # "20 per cent" is 20%
# A word that, right after "(" following a stated value, may change what it means ("= 1200 (approx.)"), besides
# the words that do so without brackets ("= 1 (mod 7)", "= 5 (or 6)").
_ASIDE_RISKY = APPROX_WORDS | {"estimated", "estimate", "est", "rough"}
_ORDINAL_SUFFIXES = {"st", "nd", "rd", "th"}
# Nouns that name a whole expression after "of" ("the sum of 3 + 4"), unlike "half of 10 + 2"
_WHOLE_OF = {"sum", "total", "product", "difference", "quotient", "result", "value"}
# Rounding spoken of ("rounded up", "round to the nearest ten", "ceil"), not "a round trip" or "3 rounds".
_ROUNDING = re.compile(r"\b(?:rounded|rounding|nearest|ceil)\b|⌈|\bround(?:s)?\s+(?:it\s+|this\s+|that\s+|them\s+)?"
                       r"(?:up|down|off|to|it|this|that|them)\b", re.IGNORECASE)
# Modular arithmetic spoken of ("\\pmod{7}", "mod 7", "\\equiv", "\\mathbb{Z}_7", "congruent"): "3 * 5 = 1" may be
# a congruence. The numbers after "mod" are the moduli; a residue that fits one of them is not flagged.
_MODULAR = re.compile(r"\\[pb]?mod(?![A-Za-z])|\bmod(?:ulo|ular)?\b|≡|\\equiv\b|\\mathbb\s*\{?\s*Z|\bcongru"
                      r"|\bresidues?\b|\\(?:operatorname|text|mathrm)\s*\{\s*mod", re.IGNORECASE)
_MODULUS = re.compile(r"(?:\\[pb]?mod(?![A-Za-z])|\bmod(?:ulo)?\b)\s*(?:\}\s*)?(?:\\[ ,;:]|~|\s)*\{?\s*"
                      r"(\d{1,9})(?!\d|\.\d)|\\mathbb\s*\{?\s*Z\s*\}?\s*_\s*\{?\s*(\d{1,9})(?!\d)", re.IGNORECASE)
# A last digit spoken of ("the units digit", "last two digits"): a residue modulo 10, 100 or 1000.
_LAST_DIGITS = re.compile(r"\b(?:units?|ones|last(?:\s+(?:two|three|2|3))?)\s+digits?\b", re.IGNORECASE)
# Another base spoken of ("in base 6", "base $b$", "binary", "hexadecimal"): "4 + 5 = 13" may be base 6.
_BASE = re.compile(r"\bbase(?:[\s$\-{~]|\\[ ,;]|\\text\s*\{\s*)*(\d+|[A-Za-z](?![A-Za-z]))"
                   r"|\b(binary|octal|hexadecimal|hex|ternary|duodecimal)\b", re.IGNORECASE)
_BASE_WORDS = {"binary": 2, "ternary": 3, "octal": 8, "duodecimal": 12, "hexadecimal": 16, "hex": 16}
_REFUTING = {"wrong", "wrongly", "incorrect", "incorrectly", "mistake", "mistaken", "mistakenly", "error",
             "erroneous", "typo", "oops", "false",
             # a correction that follows: "7 * 8 = 54, but actually 56", "7 * 8 = 54 should be 56"
             "should", "instead", "actually"}
# Words before a claim that quote it or suppose it rather than state it: "Earlier I said 7 * 8 = 54",
# "suppose 2 + 2 = 5", "check whether 17 * 3 = 41" ("if" is left alone: "If she has 52-25 = 27 marbles" states).
_REFUTING_BEFORE = {"wrongly", "incorrectly", "mistakenly", "erroneously", "falsely", "supposedly", "whether",
                    "suppose", "supposing", "assume", "assuming"}
# "I said", "we wrote": the step quotes itself (but "she wrote 10 + 20 = 30 articles" tells a story).
_SAYING = {"said", "wrote", "thought", "claimed", "assumed"}
_QUOTING = _SAYING | {"had", "computed", "calculated", "got", "found"}
_EARLIER = {"earlier", "before", "previously", "first", "initially", "originally"}
# Words of a thinking model taking back what it just wrote: "7 * 8 = 54, no wait, 56", "= 54, wait, 56".
_CORRECTING = {"no", "nope", "wait"}
_REFUTING_MARKS = {"✗", "✘", "❌", "≠", "⨯"}
_TRUE = {"right", "correct", "true", "accurate"}
# Words before "with" that make what follows a quantity held, not an operand: "left with", "ends up with".
_ENDED_WITH = {"left", "up", "end", "ends", "ended", "ending", "start", "starts", "started", "starting", "finish",
               "finishes", "finished", "remain", "remains", "remained", "stay", "stays", "came", "comes", "come",
               "be", "is", "are", "was", "were"}
# Words after a stated value that are risky only with a number or "than" after them: "= 5 more than 10",
# "= 3 to 4", "= 2 to the power"; "= $45 more", "= 35 minutes to bake" state the value.
_RISKY_IF_FOLLOWED = {"more", "less", "fewer", "to", "higher", "lower", "greater", "smaller", "larger", "bigger"}
# A claim the text goes on to refute or to rewrite within its sentence (or the next): "3 * 5 = 16 (False)",
# "..., which is not true", "so x = 3 does not work", "0 + 14 * 61 = 855, which simplifies to 854".
_REFUTED_AFTER = re.compile(
    r"\((?:false|incorrect|wrong|no)\)|[✗✘❌]|\bnot\s+(?:true|correct|right|valid|equal|possible|a\s+solution)"
    r"|\b(?:does|do|did)(?:n['’]t|\s+not)\s+(?:work|hold|match|satisfy|equal|check)|\b(?:is|are)n['’]t\s+(?:true|correct"
    r"|right|equal)|\b(?:isn['’]t|not)\s+equal|\b(?:simplif(?:y|ies|ied)|reduces?|reduced)\s+to\b|\bcontradict"
    r"|\bimpossible\b|\bfails?\b|\bis\s+false\b|\bfalse\b", re.IGNORECASE)
_REFUTE_WINDOW = 200

# Words that number what follows ("Step 3 - ...", "Day 2 - ...").
_LABELS = {"step", "day", "week", "month", "year", "part", "question", "problem", "q", "round", "level", "stage",
           "phase", "case", "item", "no", "number", "page", "chapter", "section", "line", "row", "column", "room",
           "task", "exercise", "example", "option", "method", "approach", "scenario", "hour", "minute", "game",
           "match", "test", "trial", "turn", "lap", "floor", "box", "bag", "group", "team", "player", "person",
           "term", "element", "entry", "position", "index", "figure", "table", "equation", "eq", "grade", "class",
           "unit", "version", "pattern", "candidate", "digit", "place", "vertex", "node", "point"}
_DETERMINERS = {"the", "a", "an", "his", "her", "their", "its", "our", "my", "your", "this", "that", "these",
                "those", "each", "every"}


@dataclass(frozen=True)
class Claim:
    """One link ``lhs = rhs`` with the offsets of its text in the step (``start``/``end``, half-open).

    ``lhs`` is ``None`` when the expression could not be checked within the limits (``problem`` says why).
    """

    lhs_text: str
    rhs_text: str
    normalised: str
    start: int
    end: int
    lhs: Node | None
    rhs: Num | None
    rhs_sign: int = 1
    approx: bool = False
    source: str = "text"  # or "annotation"
    problem: str | None = None
    rhs_fraction: tuple[int, int] | None = None  # a result written as a fraction ("= 1/36", "= \\frac{1}{36}")
    rounding: bool = False  # the step speaks of rounding ("rounded up", "to the nearest ten"): ceilings, tens pass
    # The step speaks of modular arithmetic or of last digits: the moduli it names (empty: one it does not name).
    moduli: tuple[int, ...] | None = None
    base: int | None = None  # the step speaks of another base than ten (0: one it does not name, "base $b$")
    # A link between two expressions ("6 * 40 - 25 = 260 - 25"): the right side's tree (``rhs`` is then None).
    rhs_expr: Node | None = None
    reversed: bool = False  # written "221 = 13 * 17": the stated value first
    remainder: Num | None = None  # "400 \\div 17 = 23 remainder 9": the remainder (``rhs`` is the quotient)
    # What only the prompt or earlier steps say of moduli or bases: a mismatch is excused only by a reading that
    # fits it exactly (a reduced residue, a claim true in that base), never by the mere mention.
    outer_moduli: tuple[int, ...] | None = None
    outer_base: int | None = None
    # A comparison follows the value ("= $200 less", "= 75 more points"): a difference may be stated as the
    # amount one side exceeds the other by, whatever the order of the subtraction.
    comparative: bool = False


def might_hold_claims(text: str, end: int | None = None) -> bool:
    """A fast test that rejects most steps (no digit, or no relation) before any tokenizing; ``end``: look at
    the text before it only."""
    stop = len(text) if end is None else min(end, len(text))
    return bool(_DIGIT.search(text, 0, stop)) and (bool(_QUICK.search(text, 0, stop)) or "<<" in text[:stop])


def _squash(text: str) -> str:
    return " ".join(text.split())


def _literal(node: Node | None) -> tuple[Num, int] | None:
    if isinstance(node, Num):
        return node, 1
    if isinstance(node, Neg) and isinstance(node.arg, Num):
        return node.arg, -1
    return None


def _fraction(node: Node | None) -> tuple[int, int] | None:
    """A result written as a fraction of two whole numbers, signed: "1/36", "-3/4", "\\frac{5}{2}"."""
    sign = 1
    if isinstance(node, Neg):
        sign, node = -1, node.arg
    if not (isinstance(node, Bin) and node.op == "/" and not node.loose):
        return None
    parts: tuple[Node, Node] = (node.left, node.right)
    if isinstance(node.left, Neg) and sign == 1:  # "-2/1" parses as (-2)/1
        sign, parts = -1, (node.left.arg, node.right)
    if not all(isinstance(p, Num) and p.literal.den == 1 and not p.percent and p.multiplier is None
               and p.label is None for p in parts):
        return None
    num, den = (p.literal.num for p in parts if isinstance(p, Num))
    return (sign * num, den) if den else None


def _proper_share(node: Node | None, stated: Num) -> bool:
    """A proper fraction of whole numbers said to be a quantity of 1 or more: a share of something."""
    if not (isinstance(node, Bin) and node.op == "/" and isinstance(node.left, Num) and isinstance(node.right, Num)):
        return False
    a, b = node.left.literal, node.right.literal
    plain = all(n.label is None and n.multiplier is None and not n.percent for n in (node.left, node.right))
    return plain and a.decimals == b.decimals == 0 and 0 < a.num < b.num and stated.literal.num >= stated.literal.den


def _range(node: Node | None) -> bool:
    """ "pages 5-6 = 2": a glued minus from a smaller to a larger whole number reads as a range."""
    return (isinstance(node, Bin) and node.glued_minus and isinstance(node.left, Num)
            and isinstance(node.right, Num) and node.left.literal.decimals == node.right.literal.decimals == 0
            and node.left.literal.num < node.right.literal.num)


def _has_glued_minus(node: Node) -> bool:
    if isinstance(node, Bin):
        return node.glued_minus or _has_glued_minus(node.left) or _has_glued_minus(node.right)
    if isinstance(node, Neg | Sqrt):
        return _has_glued_minus(node.arg)
    return False


def _bare_fraction(seg: _Segment) -> bool:
    """A written fraction like 2/5 or 3/4 (two whole numbers, no spaces), which prose uses as a share."""
    t = seg.toks
    return (len(t) >= 3 and t[0].kind == "NUM" and t[1].value == "/" and t[1].glued and t[2].kind == "NUM"
            and t[2].glued and "." not in t[0].value + t[2].value and all(x.kind == "WORD" for x in t[3:]))


def _num_label(node: Node | None) -> bool:
    """Whether a stated value carries a unit, currency or multiplier."""
    lit = _literal(node)
    return lit is not None and (lit[0].label is not None or lit[0].multiplier is not None)


def _normal(toks: Sequence[Token]) -> str:
    parts = []
    for t in toks:
        if t.kind == "WORD":
            w = t.value.lower()
            if w in OPERATOR_WORDS:
                parts.append(OPERATOR_WORDS[w])
            elif w == "of":
                parts.append("*")
            elif w == "percent":
                parts.append("%")
            elif w in MULTIPLIERS:
                parts.append(w)
            continue
        if t.kind in {"CUR", "SEP", "BAD"}:
            continue
        value = t.value.replace("{,}", "").replace("\\,", "").replace(",", "")
        parts.append({"FRAC": "frac", "SQRT": "sqrt", "BINOM": "binom"}.get(t.kind, value))
    return "".join(parts)


class _Runs:
    """Split tokens into runs of expression material and relations, the units that claims are read from."""

    def __init__(self, toks: list[Token], skip_until: int) -> None:
        self.toks = toks
        self.skip_until = skip_until

    def member(self, i: int) -> bool:
        t = self.toks[i]
        if t.start < self.skip_until:
            return False
        if t.kind in {"NUM", "OP", "LP", "RP", "PCT", "FRAC", "SQRT", "BINOM", "FACT", "REL", "CUR"}:
            return True
        if t.kind != "WORD":
            return False
        w = t.value.lower()
        prev = self.toks[i - 1] if i > 0 else None
        if w in {"times", "plus", "minus"}:
            return True
        if w == "of":  # "20% of 150", "3/4 of 120"; but "= 22 slices of peach" says what is counted, and in
            # "a total of 30 + 120" the "of" only leads to the calculation
            return not (prev is not None and prev.kind == "WORD" and prev.value.lower() not in MULTIPLIERS
                        and prev.value.lower() != "percent")
        if w in {"divided", "multiplied"}:
            return i + 1 < len(self.toks) and self.toks[i + 1].value.lower() == "by"
        if w == "by":
            return prev is not None and prev.value.lower() in {"divided", "multiplied"}
        if w in RELATION_WORDS:
            return True
        if w in {"equal", "to"} and prev is not None and prev.value.lower() in {"is", "equal"}:
            return True
        if w in APPROX_WORDS and prev is not None and (prev.kind == "REL" or prev.value.lower() in RELATION_WORDS):
            return True
        if prev is None:
            return False
        if w == "percent" and prev.kind == "NUM":
            return True
        if w in MULTIPLIERS and prev.kind == "NUM":
            return t.glued or w not in GLUED_ONLY_MULTIPLIERS  # "40 m" is 40 metres, not a multiplier
        if prev.kind in {"NUM", "PCT", "RP"} or (prev.kind == "WORD" and prev.value.lower() in MULTIPLIERS):
            return is_unit_word(t.value)
        if (prev.kind == "WORD" and prev.value.lower() in AREA_WORDS and i >= 2 and self.toks[i - 2].kind == "NUM"
                and is_unit_word(t.value)):
            return True  # "120 square feet"
        if prev.kind == "OP" and prev.value == "/" and prev.glued and t.glued and i >= 2:
            before = self.toks[i - 2]
            if before.kind == "NUM":  # "$2/egg", "$15/hour": a rate, never a division by a word
                return _rate_unit(t.value)
            return before.kind == "WORD" and is_unit_word(before.value) and is_unit_word(t.value, rate=True)
        return False

    def runs(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        start: int | None = None
        for i in range(len(self.toks)):
            if self.member(i):
                if start is None:
                    start = i
            elif start is not None:
                out.append((start, i))
                start = None
        if start is not None:
            out.append((start, len(self.toks)))
        return out


def _relation(toks: list[Token], i: int) -> tuple[str, int] | None:
    """If a relation starts at ``i``: its kind ("=", "approx", "is") and the index after it."""
    t = toks[i]
    kind: str
    if t.kind == "REL":
        kind = t.value
        j = i + 1
    elif t.kind == "WORD" and t.value.lower() in RELATION_WORDS:
        kind = "is"
        j = i + 1
        if j + 1 < len(toks) and toks[j].value.lower() == "equal" and toks[j + 1].value.lower() == "to":
            j += 2
    else:
        return None
    nxt = toks[j] if j < len(toks) else None
    if nxt is not None and ((nxt.kind == "WORD" and nxt.value.lower() in APPROX_WORDS)
                            or (nxt.kind == "SEP" and nxt.value == "~" and kind == "=")):
        kind = "approx"
        j += 1
    return kind, j


def _left_clean(toks: list[Token], first: int, skip_until: int) -> bool:
    t = toks[first]
    if t.kind == "OP" and not (t.value == "-" and first + 1 < len(toks) and toks[first + 1].glued):
        return False
    if t.kind == "WORD":  # a seg starting with an operator word ("times 4")
        return False
    if first == 0 or toks[first - 1].end <= skip_until:
        return True
    prev = toks[first - 1]
    if t.kind == "OP" and prev.kind not in {"SEP"} and not (prev.kind == "WORD" and not t.glued):
        return False  # "half -10 = ...": a dangling minus after words (but "we get -381 - 662 = -1043")
    if prev.kind == "BAD":
        return False
    if prev.kind == "LP":
        return True  # "(3 + 4 = 7)": the bracket around an aside
    if prev.kind == "SEP":
        if t.glued and _CJK.fullmatch(prev.value):  # "所以16 - 3 = 13", but not "乘以3 + 4"
            return prev.value not in _CJK_RISKY_BEFORE and not (prev.value == "以" and first >= 2
                                                                and toks[first - 2].value in {"乘", "除"})
        return not t.glued or prev.value in _SAFE_BEFORE
    if prev.kind == "WORD":
        # "24 eggs in 1 tray x 2 trays = 48": a number a few words back may belong to the calculation.
        j = first - 1
        while j >= 0 and first - j <= 3 and toks[j].kind == "WORD" and toks[j].end > skip_until:
            j -= 1
        if (j >= 0 and toks[j].end > skip_until and toks[j].kind in {"NUM", "PCT"} and first - j <= 3
                and not _states_result(toks, j)):
            return False
        words = [prev.value.lower()]
        if (words[0] == "of" and first >= 2 and toks[first - 2].kind == "WORD"
                and toks[first - 2].value.lower() in _WHOLE_OF):
            return not t.glued  # "the sum of 3 + 4 is 7": the whole expression is what is named
        nxt = toks[first + 1] if first + 1 < len(toks) else None
        if (words[0] in _LABELS and t.kind == "NUM" and nxt is not None and nxt.kind == "OP" and nxt.value == "-"
                and not nxt.glued):
            return False  # "Step 3 - 16 - 3 - 4 = 9": a numbered label and a dash, not 3 - 16
        if words[0] in _LABELS and t.kind == "NUM" and not t.glued and prev.value[:1].isupper():
            return False  # "Term 2 + 2 = 1 + 2": Term 2 is a name, not the number 2
        if words[0] in _DETERMINERS and first >= 2 and toks[first - 2].kind == "WORD":
            words.append(toks[first - 2].value.lower())
        if words[0] == "with" and first >= 2 and toks[first - 2].value.lower() in _ENDED_WITH:
            words = words[1:]  # "she is left with 9 - 4 + 1 = 5": what she has, not "multiply 3 with 4 + 2"
        return not (t.glued or any(w in RISKY_BEFORE for w in words))
    return False


def _rate_unit(word: str) -> bool:
    """A unit that can follow "/" or "per" after a stated amount ("$2/egg", "= 128 per week")."""
    return len(word) >= 2 and is_unit_word(word) and word.lower() not in _NOT_RATES


def _right_clean(toks: list[Token], after: int, *, money: bool = False) -> bool:
    if after >= len(toks):
        return True
    nxt = toks[after]
    if (nxt.kind == "WORD" and nxt.value.lower() == "per" and after + 1 < len(toks)
            and toks[after + 1].kind == "WORD" and not toks[after + 1].glued and _rate_unit(toks[after + 1].value)):
        return _right_clean(toks, after + 2, money=money)  # "= 128 per week" (but "20 per cent", "3 per 4 days")
    if nxt.kind == "BAD":
        return not nxt.glued
    if nxt.kind == "SEP":
        if nxt.glued and _CJK.fullmatch(nxt.value):  # "= 9个鸡蛋", but not "= 6万" (60,000)
            return nxt.value not in _CJK_RISKY_AFTER
        return not nxt.glued or nxt.value in _SAFE_AFTER
    if nxt.kind == "WORD":
        if nxt.value.lower() in GLUED_ONLY_MULTIPLIERS and (nxt.value != "m" or money):
            return False  # "= $8 m" may be 8 million ("= 40 m" is 40 metres)
        found = [(t.value.lower(), after + j) for j, t in enumerate(toks[after:after + 3]) if t.kind == "WORD"][:2]
        if found[:1] and found[0][0] == "of" and toks[after - 1].kind == "WORD" and not nxt.glued:
            found = found[1:]  # "= 22 slices of peach": the label's "of" only says what is counted
        words = [w for w, _ in found]
        if any(w in RISKY_AFTER and not (w in _RISKY_IF_FOLLOWED and not _followed_by_amount(toks, j))
               for w, j in found):
            return False
        if words and words[0] in {"and", "&"} and after + 2 < len(toks):
            two, three = toks[after + 1], toks[after + 2]
            if (two.kind == "NUM" and three.glued and three.value == "/") or two.value.lower() in {"a", "one"}:
                return False  # "2 and 1/2", "3 and a half"
            if two.kind == "NUM" and three.kind == "WORD" and unit_dimension(unit_key(three.value)):
                return False  # "= 7 hours and 48 minutes", "= $5 and 50 cents": one amount in two units
        return not nxt.glued
    return True


_COMPARISONS = {"more", "less", "fewer", "cheaper", "higher", "lower", "longer", "shorter", "older", "younger",
                "bigger", "smaller", "larger", "greater", "taller", "heavier", "lighter", "faster", "slower",
                "extra", "difference", "apart", "behind", "ahead"}


def _comparison_follows(toks: list[Token], after: int) -> bool:
    """Whether a comparison follows a stated value within a few words ("= $200 less", "= 75 more points")."""
    for t in toks[after:after + 4]:
        if t.kind != "WORD":
            return False
        if t.value.lower() in _COMPARISONS:
            return True
    return False


def _followed_by_amount(toks: list[Token], j: int) -> bool:
    """Whether the word at ``j`` leads on to a number or a comparison: "more than", "to 4", "to the power"."""
    for t in toks[j + 1:j + 3]:
        if t.kind in {"NUM", "CUR", "BAD"} or t.value.lower() in {"than", "power"}:
            return True
        if t.kind != "WORD":
            return False
    return False


@lru_cache(maxsize=64)
def _refutations(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Where the text refutes or rewrites something, and where its paragraphs break (one pass over it)."""
    found = tuple(m.start() for m in _REFUTED_AFTER.finditer(text))
    breaks = tuple(m.start() for m in re.finditer(r"\n\n", text)) if found else ()
    return found, breaks


def _refuted_later(text: str, end: int) -> bool:
    """Whether the text refutes or rewrites the claim ending at ``end`` soon after (within its paragraph)."""
    found, breaks = _refutations(text)
    k = bisect.bisect_left(found, end)
    if k == len(found) or found[k] >= end + _REFUTE_WINDOW:
        return False
    b = bisect.bisect_left(breaks, end)
    return b == len(breaks) or breaks[b] >= found[k]


def _doubted(toks: list[Token], first: int | None, after: int) -> bool:
    """A claim quoted to be asked about or refuted is not one the step makes: "is 340 + 51 = 381?",
    "3 + 4 = 8 is wrong", "3 + 4 = 8 ❌", "I wrongly wrote 3 + 4 = 8", "7 * 8 = 54, no wait, 56"."""
    if after < len(toks) and toks[after].value == "?":
        return True
    said: set[str] = set()
    for j, t in enumerate(toks[after:after + 6]):
        if t.kind in {"NUM", "REL"}:
            if t.kind == "NUM" and said & _CORRECTING and not _goes_on(toks, after + j + 1):
                return True  # "7 * 8 = 54, no, 56": a corrected value follows
            break
        w = t.value.lower()
        said.add(w)
        if "wait" in said and said & {"no", "nope"}:
            return True  # "7 * 8 = 54, no wait, 56", "= 54 — wait, no"
        if j < 2 and t.value in _REFUTING_MARKS:
            return True
        if t.kind == "WORD" and (w in _REFUTING or (w == "not" and after + j + 1 < len(toks)
                                                    and toks[after + j + 1].value.lower() in _TRUE)):
            return True
    if first is not None:
        for k in range(first - 1, max(0, first - 4) - 1, -1):
            t = toks[k]
            if t.kind in {"NUM", "REL"}:
                break
            w = t.value.lower()
            if t.kind == "WORD" and (w in _REFUTING_BEFORE or (w in _QUOTING and _quoted_by(toks, k))):
                return True
    return False


def _goes_on(toks: list[Token], i: int) -> bool:
    """Whether the number before ``i`` starts a calculation ("no, 26 - 10 = 16"), not a value on its own."""
    return i < len(toks) and toks[i].kind in {"OP", "REL", "NUM", "LP", "PCT", "FACT"}


def _quoted_by(toks: list[Token], k: int) -> bool:
    """Whether the verb at ``k`` quotes the writer's own earlier work: "I said", "we thought", "I had
    earlier" or "earlier I got" (but "she wrote 10 + 20 = 30 articles" and "I got 12" state it)."""
    if k == 0 or toks[k - 1].value.lower() not in {"i", "we"}:
        return False
    if toks[k].value.lower() in _SAYING:
        return True
    return any(t.value.lower() in _EARLIER for t in toks[max(0, k - 4):k + 3])


def _states_result(toks: list[Token], j: int) -> bool:
    """Whether the number at ``j`` is the result of a relation ("= 48 and 48 / 6"), not an operand in words."""
    k = j - 1
    if k >= 0 and toks[k].kind == "CUR":
        k -= 1
    return k >= 0 and (toks[k].kind == "REL" or (toks[k].kind == "WORD" and toks[k].value.lower() in RELATION_WORDS))


def _strip_parens(seg: list[Token], *, leading: bool) -> list[Token]:
    depth = sum(1 if t.kind == "LP" else -1 if t.kind == "RP" else 0 for t in seg)
    if leading and depth > 0 and seg and seg[0].kind == "LP":
        return seg[1:]
    if not leading and depth < 0 and seg and seg[-1].kind == "RP":
        return seg[:-1]
    return seg


def _rhs_end(seg: list[Token]) -> int:
    """End of the stated value's text: the number with its %, currency and multiplier, not a unit word."""
    end = seg[0].end
    for i, t in enumerate(seg):
        word = t.value.lower()
        if t.kind == "OP" and t.value == "/" and i + 1 < len(seg) and seg[i + 1].kind == "WORD":
            break  # "= $100/year": the value is $100, the rest is its unit
        if t.kind in {"NUM", "PCT", "CUR", "OP", "LP", "RP"} or (
                t.kind == "WORD" and (word == "percent" or word in MULTIPLIERS)):
            end = t.end
        elif t.kind == "WORD":
            break
    return end


def _single_value(seg: list[Token]) -> bool:
    """Whether a stated side is one number (signed, with its currency, percent or unit word): what a result is."""
    nums = [t for t in seg if t.kind in {"NUM", "PCT"}]
    return len(nums) == 1 and all(t.kind in {"NUM", "PCT", "CUR", "WORD"} or (t.kind == "OP" and t.value == "-")
                                  for t in seg)


@dataclass
class _Segment:
    toks: list[Token]
    node: Node | None = None
    problem: str | None = None


def _parse(seg: list[Token], limits: Limits) -> _Segment:
    out = _Segment(seg)
    if not seg:
        return out
    try:
        out.node = _cached_parse(tuple((t.kind, t.value, t.glued) for t in seg), limits)
    except TooComplex as exc:
        out.problem = f"too complex to check: {exc}"
    return out


@lru_cache(maxsize=4096)
def _cached_parse(key: tuple[tuple[str, str, bool], ...], limits: Limits) -> Node | None:
    toks = [Token(k, v, 0, 0, g) for k, v, g in key]  # type: ignore[arg-type]
    return parse_expression(toks, limits)


def _claims_in(text: str, toks: list[Token], limits: Limits, *, skip_until: int, source: str,
               whole: bool = False) -> list[Claim]:
    claims: list[Claim] = []
    rounding = bool(_ROUNDING.search(text))
    spoken = context_of(text)
    moduli, base = spoken.moduli, spoken.base
    for a, b in _Runs(toks, skip_until).runs():
        if whole and (a != 0 or b != len(toks)):
            continue  # an annotation is judged whole or not at all ("<<2*L/10*20=40>>")
        segs: list[list[Token]] = [[]]
        rels: list[str] = []
        i = a
        while i < b:
            rel = _relation(toks, i)
            if rel is not None:
                rels.append(rel[0])
                segs.append([])
                i = min(rel[1], b)
                continue
            segs[-1].append(toks[i])
            i += 1
        if not rels:
            continue
        segs[0] = _strip_parens(segs[0], leading=True)
        segs[-1] = _strip_parens(segs[-1], leading=False)
        if _aside_follows(toks, segs[-1], b):
            segs[-1] = segs[-1][:-1]  # "= 12 (eggs)": words in brackets after the value are an aside
        segs[-1] = _drop_unit_power(segs[-1])
        parsed = [_parse(s, limits) for s in segs]
        for k, kind in enumerate(rels):
            left, right = parsed[k], parsed[k + 1]
            if not left.toks or not right.toks:
                continue
            last = k == len(rels) - 1
            lit = _literal(right.node)
            fraction = _fraction(right.node) if lit is None else None
            if lit is None and fraction is None:
                fraction = _mixed_number(right.toks)
            if fraction is not None:
                assert isinstance(right.node, Bin | Neg)
                lit = (Num(parse_literal(str(abs(fraction[0])))), 1 if fraction[0] >= 0 else -1)
            remainder = None
            if last and not whole and left.node is not None and _whole_division(left.node):
                remainder = _remainder_after(toks, toks.index(right.toks[0], a))
                if remainder is not None:
                    lit = (Num(parse_literal(right.toks[0].value)), 1)
                    fraction = None
            # A stated value past a limit ("= 1000…0" with 70 digits) is a claim too, one that cannot be judged:
            # it goes through the same tests as any other and is then "unknown", never silently left out.
            unreadable = right.problem if _single_value(right.toks) else None
            if unreadable is not None:
                lit, fraction = (Num(parse_literal("0")), 1), None
            if lit is None or (right.problem is not None and unreadable is None):
                if not whole and right.problem is None:
                    link = _link(text, toks, a, skip_until, left, right, kind, k=k, last=last)
                    if link is not None:
                        claims.append(dataclasses.replace(link, source=source, rounding=rounding, moduli=moduli,
                                                          base=base))
                continue
            if left.node is None and left.problem is None:
                continue
            if left.node is not None and _literal(left.node) is not None:
                if not whole and fraction is not None:
                    link = _link(text, toks, a, skip_until, left, right, kind, k=k, last=last)
                    if link is not None:  # "0.5 = 1/2": the value written first
                        claims.append(dataclasses.replace(link, source=source, rounding=rounding, moduli=moduli,
                                                          base=base))
                continue  # "60 minutes = 1 hour", "x = 5": not a calculation
            first = toks.index(left.toks[0], a)
            if not whole and k == 0 and not _left_clean(toks, first, skip_until):
                continue
            last_index = toks.index(right.toks[-1], a)
            if remainder is not None:
                last_index = remainder[1]
            money = any(t.kind == "CUR" for t in right.toks)
            if not whole and last and not _right_clean(toks, last_index + 1, money=money):
                continue
            if not whole and _doubted(toks, first if k == 0 else None, last_index + 1):
                continue
            if _bare_fraction(left) and (len(left.toks) > 3 or _num_label(right.node) or kind == "is"):
                continue  # "2/5 is equal to 12.8 hectares": the fraction of an amount, not a division
            if (kind == "is" or lit[0].label is not None) and _proper_share(left.node, lit[0]):
                continue  # "2 ÷ 5 is equal to 12.8 hectares": a share of the land, not 0.4
            if _range(left.node):
                continue
            if kind == "is" and left.node is not None and _has_glued_minus(left.node):
                continue  # "5-10 minutes is ...": a range, not a subtraction
            if (kind == "is" and first > 0 and toks[first - 1].kind == "WORD"
                    and toks[first - 1].value.lower() == "for"):
                continue  # "the coefficient for 5^3 is 4": what the value belongs to, not its calculation
            start = left.toks[0].start
            end = _rhs_end(right.toks) if remainder is None else toks[remainder[1]].end
            if not whole and _refuted_later(text, end):
                continue
            if _inline_math_dollar(text, left.toks[0], end):
                start += 1  # "$48 + 16 = 22$": the first $ opens the math, it is no part of the claim
            lhs_text = _squash(text[start:left.toks[-1].end])
            rhs_text = _squash(text[right.toks[0].start:end])
            if rhs_text[:1] in "({" and rhs_text[-1:] in ")}" and len(right.toks) >= 3:
                rhs_text = rhs_text[1:-1].strip()  # "\\boxed{19}" states 19
            num, sign = lit
            comparative = not whole and _comparison_follows(toks, last_index + 1)
            claims.append(Claim(
                lhs_text=lhs_text, rhs_text=rhs_text,
                normalised=f"{_normal(left.toks)}={_normal(right.toks)}",
                start=start, end=end, lhs=left.node if unreadable is None else None,
                rhs=num if unreadable is None else None, rhs_sign=sign, approx=kind == "approx",
                source=source, problem=left.problem or unreadable, rhs_fraction=fraction, rounding=rounding,
                moduli=moduli, base=base, remainder=remainder[0] if remainder is not None else None,
                comparative=comparative))
    return claims


# Words before a value written first ("so 221 = 13 * 17") that leave it a stated value, not a label ("Day 2").
_BEFORE_REVERSED = {"so", "thus", "hence", "therefore", "then", "and", "check", "checking", "indeed", "since",
                    "because", "as", "get", "gives", "is", "means", "that", "i.e", "ie", "verify", "verifying",
                    "confirm", "yes", "which", "we", "both", "but", "now", "here"}
_REMAINDER_WORDS = {"remainder", "rem", "r"}


def _whole_division(node: Node) -> bool:
    """ "400 \\div 17": a division of two whole numbers, the left side of a division with remainder."""
    return (isinstance(node, Bin) and node.op == "/" and isinstance(node.left, Num) and isinstance(node.right, Num)
            and all(n.literal.den == 1 and not n.percent and n.multiplier is None for n in (node.left, node.right)))


def _remainder_after(toks: list[Token], q: int) -> tuple[Num, int] | None:
    """ "23 remainder 9", "23 R 9", "23 r9", "23 with a remainder of 9": the remainder after the quotient at
    ``q`` and the index of its token."""
    if toks[q].kind != "NUM" or "." in toks[q].value:
        return None
    j = q + 1
    if j < len(toks) and toks[j].value.lower() in {"with", "and"}:
        j += 1
        if j < len(toks) and toks[j].value.lower() == "a":
            j += 1
    if not (j < len(toks) and toks[j].kind == "WORD" and toks[j].value.lower() in _REMAINDER_WORDS):
        return None
    j += 1
    if j < len(toks) and toks[j].value.lower() == "of":
        j += 1
    if j < len(toks) and toks[j].kind == "SEP" and toks[j].value in {":", "="}:
        j += 1
    if not (j < len(toks) and toks[j].kind in {"NUM", "BAD"} and toks[j].value.isdigit()):
        return None
    if toks[j].kind == "BAD" and toks[j - 1].value.lower() not in _REMAINDER_WORDS:
        return None  # "R9" is read, "9th" is not
    nxt = toks[j + 1] if j + 1 < len(toks) else None
    if nxt is not None and (nxt.kind in {"NUM", "OP", "PCT", "LP", "REL", "FACT"} or (
            nxt.glued and nxt.kind in {"WORD", "BAD"})):
        return None  # "with a remainder of 555 - (4*125) = 55": the remainder is what follows
    return Num(parse_literal(toks[j].value)), j


_CURRENCY = {"$", "€", "£", "¥", "₹", "₩", "₽", "₺", "₦", "฿", "₱"}


def _node_labels(node: Node) -> set[str]:
    if isinstance(node, Num):
        return {node.label} if node.label is not None else set()
    if isinstance(node, Neg | Sqrt):
        return _node_labels(node.arg)
    if isinstance(node, Func):
        return set().union(*(_node_labels(x) for x in node.args))
    return _node_labels(node.left) | _node_labels(node.right)


def _percent_in(node: Node) -> bool:
    if isinstance(node, Num):
        return node.percent
    if isinstance(node, Neg | Sqrt):
        return _percent_in(node.arg)
    if isinstance(node, Func):
        return any(_percent_in(x) for x in node.args)
    return _percent_in(node.left) or _percent_in(node.right)


def _expr_end(seg: list[Token]) -> int:
    """End of an expression's text on the right of a link: its last token that is not a unit word after it."""
    for t in reversed(seg):
        if t.kind != "WORD" or t.value.lower() in OPERATOR_WORDS or t.value.lower() in MULTIPLIERS:
            return t.end
    return seg[-1].end


# Marks before the first expression of a link that leave it whole: a label's colon, a comma, math delimiters.
_LINK_SAFE_BEFORE = {":", ",", ";", ".", "\\[", "\\(", "$$", "**", "`", "—", "–", "\"", "“", "|", "#", ">"}


def _link_ends(toks: list[Token], after: int) -> bool:
    """Whether an expression on the right of a link ends at ``after``: nothing that could go on with it follows
    ("= 16 - 2(ac + bd)", "= 144 + 2 \\sum", "= 1.5 + 0.\\overline{3}" are cut short, not whole)."""
    if after >= len(toks):
        return True
    nxt = toks[after]
    if nxt.kind in {"LP", "OP", "NUM", "BAD", "FRAC", "SQRT", "BINOM", "FACT", "PCT", "CUR", "REL"}:
        return False
    if nxt.kind == "WORD" and nxt.glued:
        return False
    if nxt.kind == "SEP" and nxt.glued and after + 1 < len(toks) and toks[after + 1].glued:
        return False  # "0.\\overline{3}", "2,5"
    return _right_clean(toks, after)


def _link(text: str, toks: list[Token], a: int, skip_until: int, left: _Segment, right: _Segment, kind: str, *,
          k: int, last: bool) -> Claim | None:
    """A link whose right side is an expression: between two expressions ("6 * 40 - 25 = 260 - 25") or with the
    stated value first ("221 = 13 * 17"). Only "=" links are read (not "is", not "≈")."""
    if kind != "=" or left.node is None or right.node is None or left.problem or right.problem:
        return None
    reversed_ = _literal(left.node) is not None
    if reversed_ and _literal(right.node) is not None:
        return None
    if reversed_ and (label := left.node.label if isinstance(left.node, Num) else None) is not None \
            and label not in _CURRENCY and label not in _node_labels(right.node):
        return None  # "100 Ah = 100 * 0.001": a unit the other side does not carry may be a conversion
    if reversed_ and _percent_in(right.node):
        return None  # "48 = 100% + 20% = 120% of the actual number": shares of an amount, not a sum
    if last and right.toks[-1].kind == "FACT":
        return None  # "So 3 + 2 = 5!": an exclamation after a result
    first = toks.index(left.toks[0], a)
    if k == 0:
        if not _left_clean(toks, first, skip_until):
            return None
        if first > 0 and toks[first - 1].end > skip_until:
            prev = toks[first - 1]
            if reversed_ and prev.kind == "WORD" and prev.value.lower() not in _BEFORE_REVERSED:
                return None  # "Day 2 = 10 + 5": a label, not a value
            if prev.kind == "SEP" and prev.value not in _LINK_SAFE_BEFORE:
                return None  # "9 \\& 2 = ...", "a @ b = ...": an operation the verifier does not know
            if prev.kind not in {"WORD", "SEP", "LP"}:
                return None
    last_index = toks.index(right.toks[-1], a)
    if last and not _link_ends(toks, last_index + 1):
        return None
    if last and any(t.kind == "FACT" for t in right.toks) and len(text) - right.toks[-1].end <= 3:
        return None  # "= (7*6*5*4!)" at the end of a step: "!) " ended the step, the expression may go on
    if _doubted(toks, first if k == 0 else None, last_index + 1):
        return None
    if _range(left.node) or _range(right.node) or _bare_fraction(right):
        return None
    start = left.toks[0].start
    end = _expr_end(right.toks)
    if _refuted_later(text, end):
        return None
    if _inline_math_dollar(text, left.toks[0], end):
        start += 1
    left_text = _squash(text[start:_expr_end(left.toks)])
    right_text = _squash(text[right.toks[0].start:end])
    if reversed_:
        lit = _literal(left.node)
        assert lit is not None
        return Claim(lhs_text=right_text, rhs_text=left_text, normalised=f"{_normal(right.toks)}={_normal(left.toks)}",
                     start=start, end=end, lhs=right.node, rhs=lit[0], rhs_sign=lit[1], reversed=True)
    return Claim(lhs_text=left_text, rhs_text=right_text, normalised=f"{_normal(left.toks)}={_normal(right.toks)}",
                 start=start, end=end, lhs=left.node, rhs=None, rhs_expr=right.node)


_CLOSE_DISPLAY = {"\\]", "$$"}
_OPEN_DISPLAY = {"\\[", "$$"}
_WHICH = {"which", "that"}
_WHICH_STATES = {"is", "gives", "equals", "makes", "yields", "comes"}


def _prepare(toks: list[Token]) -> list[Token]:
    """Joins what continues a calculation across markup and words: a display that goes on in the next one
    (``\\[ 48 \\times 111 \\] \\[ = 5328 \\]``) and a result after ", which is" / "that gives" ("12 * 13, which
    is 156"), read as "is"."""
    out: list[Token] = []
    i, n = 0, len(toks)
    while i < n:
        t = toks[i]
        if (t.kind == "SEP" and t.value in _CLOSE_DISPLAY and i + 2 < n and toks[i + 1].kind == "SEP"
                and toks[i + 1].value in _OPEN_DISPLAY and toks[i + 2].kind == "REL"):
            i += 2  # "\\] \\[ =": the chain goes on in the next display
            continue
        j = i + 1 if t.kind == "SEP" and t.value == "," else i
        if (out and out[-1].kind in {"NUM", "RP", "PCT", "WORD"} and j + 1 < n and toks[j].kind == "WORD"
                and toks[j].value.lower() in _WHICH and toks[j + 1].kind == "WORD"
                and toks[j + 1].value.lower() in _WHICH_STATES
                and not any(x.kind == "WORD" and x.value.lower() in OPERATOR_WORDS for x in out[-12:])):
            # (not after operators in words: "2250 minus 6 times 360, which is 2160" may name the last product)
            end = j + 2
            if toks[j + 1].value.lower() == "comes" and end < n and toks[end].value.lower() == "to":
                end += 1
            out.append(Token("WORD", "is", t.start, toks[end - 1].end, t.glued))
            i = end
            continue
        out.append(t)
        i += 1
    return out


def _moduli(text: str) -> tuple[int, ...] | None:
    """The moduli a step names if it speaks of modular arithmetic or last digits (``()``: none it names)."""
    found: set[int] = set()
    if _MODULAR.search(text):
        found.update(int(m.group(1) or m.group(2)) for m in _MODULUS.finditer(text))
        if not found:
            return ()  # "\\equiv 1" with the modulus in another step, "mod n"
    if _LAST_DIGITS.search(text):
        found.update((10, 100, 1000))
    return tuple(sorted(m for m in found if m >= 2)) if found else None


def _base(text: str) -> int | None:
    """The base other than ten a step speaks of: "in base 6" is 6, "base $b$" is 0 (unnamed), "binary" 2."""
    base: int | None = None
    for m in _BASE.finditer(text):
        if m.group(2):
            b = _BASE_WORDS[m.group(2).lower()]
        elif m.group(1).isdigit():
            b = int(m.group(1))
        else:
            b = 0
        if b != 10:
            base = b if base is None or base == b else 0
    return base


def _inline_math_dollar(text: str, first: Token, end: int) -> bool:
    """Whether the claim is a whole inline math span, "$48 + 16 = 22$": it starts with a ``$`` glued to what
    follows, a ``$`` closes it right after its result, and no other ``$`` stands between (so "$5 + $3 = $8" and
    "$5 + 3 = 8 dollars" keep their currency)."""
    if not (first.kind == "CUR" and first.value == "$" and first.end < len(text) and not text[first.end].isspace()
            and "$" not in text[first.end:end]):
        return False
    if text[end:end + 1] == "$" and text[end + 1:end + 2] != "$":
        return True
    # "$7 \\cdot 8 = 2 \\pmod{9}$": LaTeX in the claim and a "$" later on its line close the math.
    return "\\" in text[first.end:end] and "$" in text[end:].split("\n", 1)[0]


def _drop_unit_power(seg: list[Token]) -> list[Token]:
    """ "= 96 m²", "= 24 cm^3": the power of the unit after a stated value is not part of the value."""
    if (len(seg) >= 4 and seg[-3].kind == "WORD" and seg[-2].kind == "OP" and seg[-2].value == "^"
            and seg[-1].kind == "NUM" and seg[-1].value in {"2", "3"} and seg[-2].glued and seg[-1].glued
            and seg[-3].glued is False and is_unit_word(seg[-3].value) and seg[-4].kind == "NUM"):
        return seg[:-2]
    return seg


def _mixed_number(seg: list[Token]) -> tuple[int, int] | None:
    """A result written as a mixed number, "3 3/4" or "-1 1/2", as a signed fraction."""
    sign = 1
    while len(seg) > 4 and seg[-1].kind == "WORD" and is_unit_word(seg[-1].value):
        seg = seg[:-1]  # "= 3 3/4 hours"
    if seg and seg[0].kind == "OP" and seg[0].value == "-" and len(seg) == 5 and seg[1].glued:
        sign, seg = -1, seg[1:]
    if not (len(seg) == 4 and [t.kind for t in seg] == ["NUM", "NUM", "OP", "NUM"] and seg[2].value == "/"
            and not seg[1].glued and seg[2].glued and seg[3].glued
            and all(c.isdigit() for t in (seg[0], seg[1], seg[3]) for c in t.value)):
        return None
    whole, num, den = (int(t.value) for t in (seg[0], seg[1], seg[3]))
    if not 0 < num < den:
        return None
    return sign * (whole * den + num), den


def _aside_follows(toks: list[Token], seg: list[Token], run_end: int) -> bool:
    """Whether ``seg`` ends with a "(" that opens words ("12 (eggs)"), not more of the calculation."""
    if len(seg) < 2 or seg[-1].kind != "LP" or seg[-1].value != "(" or run_end >= len(toks):
        return False
    word = toks[run_end]
    w = word.value.lower()
    if (toks[run_end - 1] is seg[-1] and word.kind == "BAD" and word.glued and word.value.isdigit()
            and run_end + 1 < len(toks) and toks[run_end + 1].value.lower() in _ORDINAL_SUFFIXES
            and toks[run_end + 1].glued):
        return True  # "= 24 girls (4th grade)": an ordinal opens the aside
    return (toks[run_end - 1] is seg[-1] and word.kind == "WORD" and word.glued and len(w) >= 2
            and w not in RISKY_AFTER and w not in MULTIPLIERS and w not in _ASIDE_RISKY)


def _annotation_claims(text: str, limits: Limits) -> list[Claim]:
    out: list[Claim] = []
    for m in _ANNOTATION.finditer(text):
        body = m.group(1)
        if body.count("=") != 1:
            continue
        toks = [Token(t.kind, t.value, t.start + m.start(1), t.end + m.start(1), t.glued) for t in tokenize(body)]
        for c in _claims_in(text, toks, limits, skip_until=0, source="annotation", whole=True):
            out.append(dataclasses.replace(c, start=m.start(), end=m.end(), source="annotation"))
    return out


def _surface(text: str) -> tuple[str, list[int]]:
    """The text with annotations removed, and for each of its characters the offset in ``text``."""
    pieces: list[str] = []
    index: list[int] = []
    pos = 0
    for m in _ANNOTATION.finditer(text):
        pieces.append(text[pos:m.start()])
        index.extend(range(pos, m.start()))
        pos = m.end()
    pieces.append(text[pos:])
    index.extend(range(pos, len(text)))
    index.append(len(text))
    return "".join(pieces), index


@dataclass(frozen=True)
class Context:
    """What the text around a step (earlier steps, the prompt) says that holds for the step too: that the work is
    modular (``moduli``, as for a step: ``()`` when no modulus is named) or in another base."""

    moduli: tuple[int, ...] | None = None
    base: int | None = None


_CONTEXT_HINTS = ("mod", "≡", "equiv", "mathbb", "congru", "residue", "digit")
_BASE_HINTS = ("base", "binary", "octal", "hex", "ternary", "duodecimal")


def context_of(text: str) -> Context:
    """The context a text sets for the steps after it ("We work mod 7." makes "3 * 5 = 1" a congruence)."""
    lowered = text.lower()  # substring tests first: most texts speak of neither, and the regexes cost more
    moduli = _moduli(text) if any(h in lowered for h in _CONTEXT_HINTS) else None
    base = _base(text) if any(h in lowered for h in _BASE_HINTS) else None
    return Context(moduli, base)


def _in_context(claim: Claim, context: Context) -> Claim:
    """The claim with what the prompt or earlier steps say of moduli and bases: only a reading that fits them
    exactly excuses a mismatch (``253 \\cdot 341 = 86373`` is still judged when the problem asks for a digit)."""
    if context.moduli is None and context.base is None:
        return claim
    return dataclasses.replace(claim, outer_moduli=context.moduli, outer_base=context.base)


def extract_claims(text: str, limits: Limits | None = None, context: Context | None = None) -> list[Claim]:
    """Every claim in ``text`` (one step), annotation claims and written claims, in text order; ``context``: what
    the text around the step says of modular arithmetic or another base."""
    limits = limits or Limits()
    if not might_hold_claims(text):
        return []
    claims = _extract_cached(text, limits)
    if context is not None and (context.moduli is not None or context.base is not None):
        return [_in_context(c, context) for c in claims]
    return list(claims)


@lru_cache(maxsize=2048)
def _extract_cached(text: str, limits: Limits) -> tuple[Claim, ...]:
    claims = _annotation_claims(text, limits) if "<<" in text else []
    surface, index = _surface(text) if claims or "<<" in text else (text, [])
    marker = _LIST_MARKER.match(surface)
    skip = marker.end() if marker else 0
    written = _claims_in(surface, _prepare(tokenize(surface)), limits, skip_until=skip, source="text")
    if index:
        written = [dataclasses.replace(c, start=index[c.start], end=index[c.end - 1] + 1) for c in written]
    return tuple(sorted(claims + written, key=lambda c: (c.start, c.end)))
