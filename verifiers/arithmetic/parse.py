"""A small recursive-descent parser from tokens to an expression tree, with limits on size and nesting.

Grammar (one side of a claim)::

    expr    := term (("+" | "-" | "plus" | "minus") term)*
    term    := unary (("*" | "/" | "x" | "times" | "divided by" | "multiplied by" | "of"¹) unary | "("…")"²)*
    unary   := ("-" | "+") unary | power
    power   := postfix ("^" unary)?                        right-associative: 2^3^2 = 2^9
    postfix := primary ["%"] [multiplier] [unit ["/" unit]] [currency]
    primary := number [a/b]³ | currency primary | "(" expr ")" | \\frac{expr}{expr} | \\sqrt{expr}

¹ "of" only after a percentage or a fraction ("20% of 150", "3/4 of 120"). ² a bracket glued to a number or
a closing bracket multiplies ("2(3+4)"). ³ a mixed number "1 1/2".

The tree records where each number came from and what unit it carries, so that the judge can tell a
calculation from a unit conversion. Nothing here evaluates anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from interlock.verifiers.arithmetic.errors import TooComplex
from interlock.verifiers.arithmetic.lexer import Token
from interlock.verifiers.arithmetic.numbers import Literal, parse_literal
from interlock.verifiers.arithmetic.vocabulary import (
    GLUED_ONLY_MULTIPLIERS,
    MULTIPLIERS,
    NOT_UNITS,
    OPERATOR_WORDS,
    unit_key,
)

__all__ = ["AREA_WORDS", "Bin", "Func", "Limits", "Neg", "Node", "Num", "Sqrt", "parse_expression"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep a hostile or absurd expression from costing time or memory."""

    max_tokens: int = 160
    max_depth: int = 16
    max_literal_digits: int = 60
    max_exponent: int = 4096
    max_result_digits: int = 2000
    seconds: float = 0.1  # per step, for everything: a backstop behind the size limits (CPU time of judging)
    max_step_chars: int = 8000  # a longer step is read in windows of this size ...
    window_overlap: int = 1000  # ... that overlap by this much (a claim up to 600 characters is always whole)
    max_checked_chars: int = 32_000  # past this, the rest of a step is not read (Unknown) ...
    window_seconds: float = 0.25  # ... nor past this much (CPU) time reading a long step's windows
    max_claims: int = 64


@dataclass(frozen=True, slots=True)
class Num:
    literal: Literal
    percent: bool = False
    multiplier: int | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Neg:
    arg: Node


@dataclass(frozen=True, slots=True)
class Sqrt:
    arg: Node


@dataclass(frozen=True, slots=True)
class Bin:
    op: str  # + - * / ^
    left: Node
    right: Node
    glued_minus: bool = False  # "5-10": could be a range in prose
    loose: bool = False  # "3 / 1/2": also read as (3 / 1) / 2, the strict order of operations
    implicit: bool = False  # "6/2(1+2)": a product by juxtaposition, also read as binding first, 6/(2(1+2))


@dataclass(frozen=True, slots=True)
class Func:
    """A function of whole numbers written in its usual notation: ``5!`` ("factorial"), ``\\binom{5}{2}``."""

    name: str  # "factorial" or "binom"
    args: tuple[Node, ...]


Node = Num | Neg | Sqrt | Bin | Func


class _Fail(Exception):
    """Not a complete expression (the caller then judges nothing)."""


class _Parser:
    def __init__(self, toks: Sequence[Token], limits: Limits) -> None:
        self.toks = toks
        self.i = 0
        self.limits = limits
        self.depth = 0

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> Token:
        t = self.peek()
        if t is None:
            raise _Fail
        self.i += 1
        return t

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise TooComplex(f"nested deeper than {self.limits.max_depth} levels")

    # expr := term (addop term)*
    def expr(self) -> Node:
        self.enter()
        node = self.term()
        while True:
            t = self.peek()
            if t is None:
                break
            op = self._addop(t)
            if op is None:
                break
            j = self.i
            self.take()
            glued = (op == "-" and t.kind == "OP" and t.glued and j + 1 < len(self.toks)
                     and self.toks[j + 1].glued)
            node = Bin(op, node, self.term(), glued_minus=glued)
        self.depth -= 1
        return node

    @staticmethod
    def _addop(t: Token) -> str | None:
        if t.kind == "OP" and t.value in {"+", "-"}:
            return t.value
        if t.kind == "WORD" and t.value.lower() in {"plus", "minus"}:
            return OPERATOR_WORDS[t.value.lower()]
        return None

    def _mulop(self, left: Node) -> str | None:
        t = self.peek()
        if t is None:
            return None
        if t.kind == "OP" and t.value in {"*", "/"}:
            self.take()
            return t.value
        if t.kind == "WORD":
            w = t.value.lower()
            if w == "times":
                self.take()
                return "*"
            if w in {"divided", "multiplied"}:
                nxt = self.peek(1)
                if nxt is not None and nxt.kind == "WORD" and nxt.value.lower() == "by":
                    self.take()
                    self.take()
                    return OPERATOR_WORDS[w]
                return None
            if w == "of" and _is_share(left):
                self.take()
                return "*"
        if t.kind == "LP" and t.glued:
            return "*"  # "2(3+4)", "(2)(3)": the bracket is parsed as the next factor
        after = self.peek(1)
        if (t.kind == "NUM" and self.toks[self.i - 1].kind == "FACT" and after is not None and after.kind == "FACT"
                and after.glued):
            return "*"  # "\\frac{10!}{8!2!}": factorials side by side multiply
        return None

    def term(self) -> Node:
        node = self.unary()
        while True:
            spaced_divide = (t := self.peek()) is not None and t.kind == "OP" and t.value == "/" and not t.glued
            op = self._mulop(node)
            if op is None:
                break
            fraction = self._glued_fraction() if spaced_divide else None
            # "1 1/2 / 1/2": a written fraction binds first (and is also read left to right).
            if fraction is not None:
                node = Bin("/", node, fraction, loose=True)
            else:
                implicit = t is not None and t.kind == "LP"
                node = Bin(op, node, self.unary(), implicit=implicit)
        return node

    def _glued_fraction(self) -> Node | None:
        a, b, c, after = self.peek(), self.peek(1), self.peek(2), self.peek(3)
        if (a is not None and b is not None and c is not None and a.kind == "NUM" and not a.glued
                and b.kind == "OP" and b.value == "/" and b.glued and c.kind == "NUM" and c.glued
                and not (after is not None and after.glued and after.kind in {"OP", "PCT", "LP"})
                and "." not in a.value + c.value):
            self.i += 3
            return Bin("/", Num(parse_literal(a.value)), Num(parse_literal(c.value)))
        return None

    def unary(self) -> Node:
        t = self.peek()
        if t is not None and t.kind == "OP" and t.value in {"-", "+"}:
            self.take()
            self.enter()
            arg = self.unary()
            self.depth -= 1
            return Neg(arg) if t.value == "-" else arg
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        t = self.peek()
        if t is not None and t.kind == "OP" and t.value == "^" and self.toks[self.i - 1].kind == "WORD":
            raise _Fail  # "4 m² + 5 m²": the exponent belongs to the unit
        if t is not None and t.kind == "OP" and t.value == "^":
            self.take()
            self.enter()
            braced = (b := self.peek()) is not None and b.kind == "LP"
            exp = self.unary()
            self.depth -= 1
            if not braced and isinstance(exp, Func):
                raise _Fail  # "2^3!": 2^(3!) or (2^3)!
            return Bin("^", base, exp)
        return base

    def postfix(self) -> Node:
        node = self.primary()
        t = self.peek()
        if t is not None and t.kind == "FACT":
            self.take()
            if isinstance(node, Num) and node.label is not None:  # "$5! = 120$": the "$" opens the math
                node = Num(node.literal)
            return Func("factorial", (node,))
        if isinstance(node, Num):
            node = self._decorate(node)
        else:
            self._skip_unit()
        return node

    def _decorate(self, node: Num) -> Num:
        percent, mult, label = node.percent, node.multiplier, node.label
        t = self.peek()
        if t is not None and (t.kind == "PCT" or (t.kind == "WORD" and t.value.lower() == "percent")):
            self.take()
            percent = True
        t = self.peek()
        # "k" only glued ("$50k"); the word forms with a space or glued.
        if (t is not None and t.kind == "WORD" and t.value.lower() in MULTIPLIERS and not percent
                and (t.value.lower() not in GLUED_ONLY_MULTIPLIERS or t.glued)):
            self.take()
            mult = MULTIPLIERS[t.value.lower()]
        unit = self._skip_unit()
        if unit is not None and label is None:
            label = unit  # a currency sign stays the label: "$0.5 cheaper" is in dollars
        if unit is None:
            self._skip_rate()
        t = self.peek()
        if t is not None and t.kind == "CUR" and t.glued:
            self.take()
            label = "$" if t.value == "$" else t.value
        return Num(node.literal, percent, mult, label)

    def _skip_unit(self) -> str | None:
        t = self.peek()
        if t is None or t.kind != "WORD" or not is_unit_word(t.value):
            return None
        if t.glued and self.toks[self.i - 1].kind == "RP":
            raise _Fail  # "\\frac{1}{2}bh": letters glued to a bracket are variables, not a unit
        self.take()
        label = unit_key(t.value)
        after = self.peek()
        if (label in AREA_WORDS and after is not None and after.kind == "WORD" and not after.glued
                and is_unit_word(after.value)):
            self.take()  # "120 square feet": one unit in two words
            label = f"{label} {unit_key(after.value)}"
        nxt = self.peek()
        after = self.peek(1)
        if (nxt is not None and nxt.kind == "OP" and nxt.value == "/" and after is not None
                and after.kind == "WORD" and is_unit_word(after.value, rate=True)):
            self.take()
            self.take()  # a rate: "$6/movie", "4 slices/adult"
        return label

    def _skip_rate(self) -> None:
        """ "$2/egg", "$15/hour": a slash glued between an amount and a unit word makes a rate, not a division."""
        t, word = self.peek(), self.peek(1)
        if (t is not None and word is not None and t.kind == "OP" and t.value == "/" and t.glued
                and word.kind == "WORD" and word.glued and len(word.value) >= 2 and is_unit_word(word.value)):
            self.take()
            self.take()

    def primary(self) -> Node:
        t = self.take()
        if t.kind == "NUM":
            digits = sum(c.isdigit() for c in t.value)
            if digits > self.limits.max_literal_digits:
                raise TooComplex(f"a number with {digits} digits")
            lit = parse_literal(t.value)
            mixed = self._mixed(lit)
            return mixed if mixed is not None else Num(lit)
        if t.kind == "CUR":
            inner = self.primary()
            if isinstance(inner, Num):
                return Num(inner.literal, inner.percent, inner.multiplier, "$" if t.value == "$" else t.value)
            return inner
        if t.kind == "LP":
            self.enter()
            node = self.expr()
            self.depth -= 1
            if self.take().kind != "RP":
                raise _Fail
            return node
        if t.kind == "FRAC":
            nxt = self.peek()
            if nxt is not None and nxt.kind == "NUM" and nxt.glued and len(nxt.value) == 2 and nxt.value.isdigit():
                self.take()  # "\\frac12" is \\frac{1}{2}: TeX takes one digit for each argument
                return Bin("/", Num(parse_literal(nxt.value[0])), Num(parse_literal(nxt.value[1])))
            num = self._braced()
            den = self._braced()
            return Bin("/", num, den)
        if t.kind == "BINOM":
            return Func("binom", (self._braced(), self._braced()))
        if t.kind == "SQRT":
            nxt = self.peek()
            if t.value == "√" and nxt is not None and nxt.kind == "NUM" and nxt.glued:
                self.take()  # "√16"
                return Sqrt(Num(parse_literal(nxt.value)))
            return Sqrt(self._braced())
        raise _Fail

    def _braced(self) -> Node:
        t = self.take()
        if t.kind != "LP":
            raise _Fail
        self.enter()
        node = self.expr()
        self.depth -= 1
        if self.take().kind != "RP":
            raise _Fail
        return node

    def _mixed(self, whole: Literal) -> Node | None:
        """``1 1/2`` (a whole number, a space, a glued fraction of integers) is one and a half."""
        a, b, c = self.peek(), self.peek(1), self.peek(2)
        if (whole.decimals == 0 and a is not None and b is not None and c is not None and a.kind == "NUM"
                and not a.glued and b.kind == "OP" and b.value == "/" and b.glued and c.kind == "NUM" and c.glued
                and "." not in a.value and "." not in c.value and "," not in a.value + c.value):
            after = self.peek(3)
            if after is not None and after.glued and after.kind in {"OP", "NUM"}:
                return None
            self.i += 3
            num, den = int(a.value), int(c.value)
            if den == 0 or num >= den:
                raise _Fail
            frac = Bin("/", Num(parse_literal(a.value)), Num(parse_literal(c.value)))
            return Bin("+", Num(whole), frac)
        return None


AREA_WORDS = {"square", "sq", "cubic", "cu"}


def is_unit_word(word: str, *, rate: bool = False) -> bool:
    """Whether a word after a number can be read as a unit label ("eggs", "km") without changing the value.

    A single letter is a unit only as the denominator of a rate ("km/h"); elsewhere it may be a variable.
    """
    w = word.lower()
    if w in NOT_UNITS or w in OPERATOR_WORDS or (w in MULTIPLIERS and w not in GLUED_ONLY_MULTIPLIERS):
        return False
    return len(w) >= 2 or (rate and word in {"m", "g", "l", "L", "s", "h"})


def _is_share(node: Node) -> bool:
    """Whether "of" after this node multiplies: a percentage or a fraction ("20% of", "3/4 of")."""
    if isinstance(node, Num):
        return node.percent
    return isinstance(node, Bin) and node.op == "/"


def parse_expression(toks: Sequence[Token], limits: Limits | None = None) -> Node | None:
    """The expression the tokens spell out completely, or ``None``; raises :class:`TooComplex` past a limit."""
    limits = limits or Limits()
    if not toks:
        return None
    if len(toks) > limits.max_tokens:
        raise TooComplex(f"an expression of {len(toks)} tokens")
    p = _Parser(toks, limits)
    try:
        node = p.expr()
    except _Fail:
        return None
    if p.i != len(toks):
        return None
    return node
