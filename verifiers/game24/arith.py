"""Exact arithmetic for the Game of 24: numbers as Fractions and a small expression parser.

Model text is parsed by hand (numbers, ``+ - * / × ÷ x`` and LaTeX's ``\\times \\cdot \\div``, brackets;
``(10 - 4)(13 - 9)`` multiplies), never evaluated, with limits on length and nesting. The parser keeps the span
of every number so that a verdict can point at the one misused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from interlock.verifiers.errors import VerifiersError

__all__ = ["NUMBER", "ExpressionError", "Leaf", "Parsed", "format_number", "parse_expression", "parse_number"]

NUMBER = r"-?\d+(?:\.\d+)?(?:/\d+)?"
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<op>\\times|\\cdot|\\div|[-+*/()×÷−·xX]))")
_OPS = {"+": "+", "-": "-", "−": "-", "*": "*", "×": "*", "·": "*", "x": "*", "X": "*", "/": "/", "÷": "/",
        "\\times": "*", "\\cdot": "*", "\\div": "/"}
_MAX_CHARS = 400
_MAX_DEPTH = 32


class ExpressionError(VerifiersError):
    """Text that is not an arithmetic expression (or too large to read)."""


@dataclass(frozen=True)
class Leaf:
    """A number of an expression and its offsets in the parsed text."""

    value: Fraction
    start: int
    end: int


@dataclass(frozen=True)
class Parsed:
    """An expression's exact value (None after a division by zero) and its numbers, in order."""

    value: Fraction | None
    leaves: tuple[Leaf, ...]


def parse_number(text: str) -> Fraction:
    """``"6"``, ``"6.5"``, ``"13/2"``, ``"-3"`` -> an exact Fraction."""
    try:
        return Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise ExpressionError(f"{text!r} is not a number") from None


def format_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > _MAX_CHARS:
            raise ExpressionError(f"expression of {len(text)} characters is longer than {_MAX_CHARS}")
        self.text = text
        self.tokens: list[tuple[str, str, int, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                if text[pos:].strip() == "":
                    break
                raise ExpressionError(f"unexpected {text[pos:].strip()[:1]!r} at offset {pos} in {text!r}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind), m.start(kind), m.end(kind)))
            pos = m.end()
        self.i = 0
        self.depth = 0
        self.leaves: list[Leaf] = []

    def peek(self) -> tuple[str, str, int, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def op(self, *ops: str) -> str | None:
        tok = self.peek()
        if tok is not None and tok[0] == "op" and _OPS.get(tok[1], tok[1]) in ops:
            self.i += 1
            return _OPS.get(tok[1], tok[1])
        return None

    def parse(self) -> Parsed:
        value = self.expr()
        tok = self.peek()
        if tok is not None:
            raise ExpressionError(f"unexpected {tok[1]!r} at offset {tok[2]} in {self.text!r}")
        if not self.leaves:
            raise ExpressionError(f"no numbers in {self.text!r}")
        return Parsed(value, tuple(self.leaves))

    def expr(self) -> Fraction | None:
        value = self.term()
        while (op := self.op("+", "-")) is not None:
            right = self.term()
            value = None if value is None or right is None else (value + right if op == "+" else value - right)
        return value

    def term(self) -> Fraction | None:
        value = self.factor()
        while (op := self.op("*", "/")) is not None:
            right = self.factor()
            if value is None or right is None:
                value = None
            elif op == "*":
                value = value * right
            else:
                value = None if right == 0 else value / right
        return value

    def factor(self) -> Fraction | None:
        if self.op("-") is not None:
            inner = self.factor()
            return None if inner is None else -inner
        tok = self.peek()
        if tok is None:
            raise ExpressionError(f"expression {self.text!r} ends early")
        if tok[0] == "num":
            self.i += 1
            value = Fraction(tok[1])
            self.leaves.append(Leaf(value, tok[2], tok[3]))
            return value
        if self.op("(") is not None:
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise ExpressionError(f"brackets nested deeper than {_MAX_DEPTH}")
            inner = self.expr()
            if self.op(")") is None:
                raise ExpressionError(f"missing ')' in {self.text!r}")
            self.depth -= 1
            tok = self.peek()
            if tok is not None and tok[1] == "(":  # "(10 - 4)(13 - 9)": brackets side by side multiply
                right = self.factor()
                return None if inner is None or right is None else inner * right
            return inner
        raise ExpressionError(f"unexpected {tok[1]!r} at offset {tok[2]} in {self.text!r}")


def parse_expression(text: str) -> Parsed:
    """Parse and evaluate ``text`` exactly; raises :class:`ExpressionError` for anything else."""
    return _Parser(text).parse()
