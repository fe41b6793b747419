"""A small, safe expression language over the problem's names: ``x + 2*y <= 7``, ``abs(a - b) = 1``.

Used for the ``expr`` constraints of a spec file and for symbolic claims in a trace (``x = 3``). It is parsed
by hand into plain-data nodes: nothing is ever evaluated, and names are only those of the vocabulary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from interlock.verifiers.constraints.nodes import COMPARE, Node
from interlock.verifiers.constraints.vocabulary import Vocabulary
from interlock.verifiers.errors import VerifierConfigError

__all__ = ["ExpressionError", "Token", "parse_expression", "tokenize"]

_OPS = {"==": "==", "=": "==", "!=": "!=", "≠": "!=", "<=": "<=", "≤": "<=", ">=": ">=", "≥": ">=", "<": "<",
        ">": ">", "+": "+", "-": "-", "−": "-", "*": "*", "×": "*", "·": "*", "/": "/", "÷": "/", "(": "(",
        ")": ")", ",": ","}
_OP_RE = r"==|!=|<=|>=|[=≠≤≥<>+\-−*×·/÷(),]"
_NUMBER_RE = r"\d+(?:\.\d+)?"
_KEYWORDS = ("and", "or", "not", "abs", "true", "false")
_MAX_TOKENS = 400


class ExpressionError(VerifierConfigError):
    """An expression could not be read; the message says where and why."""


@dataclass(frozen=True)
class Token:
    kind: str  # "name" | "num" | "op" | "kw" | "other"
    value: object
    start: int
    end: int


def tokenize(text: str, vocab: Vocabulary, *, strict: bool = True) -> list[Token]:
    """Split ``text`` into tokens; unknown words raise (``strict``) or become ``other`` tokens."""
    scanner = re.compile(
        rf"(?P<ws>\s+)|(?P<name>{vocab.pattern.pattern})|(?P<num>{_NUMBER_RE})(?![\w])"
        rf"|(?P<kw>\b(?:{'|'.join(_KEYWORDS)})\b)|(?P<op>{_OP_RE})|(?P<other>\w+|.)",
        re.IGNORECASE)
    tokens: list[Token] = []
    for m in scanner.finditer(text):
        kind = m.lastgroup or "other"
        if kind == "ws":
            continue
        word = m.group()
        if kind == "name":
            node = vocab.lookup(word)
            assert node is not None
            tokens.append(Token("name", node, m.start(), m.end()))
        elif kind == "num":
            tokens.append(Token("num", Fraction(word), m.start(), m.end()))
        elif kind == "kw":
            tokens.append(Token("kw", word.lower(), m.start(), m.end()))
        elif kind == "op":
            tokens.append(Token("op", _OPS[word], m.start(), m.end()))
        else:
            if strict:
                raise ExpressionError(f"unknown name {word!r} at offset {m.start()} in {text!r}")
            tokens.append(Token("other", word, m.start(), m.end()))
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token], text: str) -> None:
        if len(tokens) > _MAX_TOKENS:
            raise ExpressionError(f"expression of {len(tokens)} tokens is longer than {_MAX_TOKENS}")
        self.tokens = tokens
        self.i = 0
        self.text = text

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def error(self, what: str) -> ExpressionError:
        tok = self.peek()
        where = f"at offset {tok.start}" if tok else "at the end"
        return ExpressionError(f"{what} {where} in {self.text!r}")

    def accept(self, kind: str, value: object) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == kind and tok.value == value:
            self.i += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.disjunction()
        tok = self.peek()
        if tok is not None:
            raise self.error(f"unexpected {self.text[tok.start:tok.end]!r}")
        return node

    def disjunction(self) -> Node:
        items = [self.conjunction()]
        while self.accept("kw", "or"):
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else ("or", tuple(items))

    def conjunction(self) -> Node:
        items = [self.negation()]
        while self.accept("kw", "and"):
            items.append(self.negation())
        return items[0] if len(items) == 1 else ("and", tuple(items))

    def negation(self) -> Node:
        if self.accept("kw", "not"):
            return ("not", self.negation())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        parts: list[Node] = []
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.value in COMPARE:
            self.i += 1
            right = self.additive()
            parts.append((tok.value, left, right))
            left = right
        if not parts:
            return left
        return parts[0] if len(parts) == 1 else ("and", tuple(parts))

    def additive(self) -> Node:
        node = self.term()
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.value in ("+", "-"):
            self.i += 1
            node = (tok.value, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.value in ("*", "/"):
            self.i += 1
            node = (tok.value, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.accept("op", "-"):
            return ("neg", self.unary())
        if self.accept("op", "+"):
            return self.unary()
        return self.atom()

    def atom(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise self.error("expected a value")
        if tok.kind == "name":
            self.i += 1
            node: Node = tok.value  # type: ignore[assignment]
            return node
        if tok.kind == "num":
            self.i += 1
            return ("num", tok.value)
        if tok.kind == "kw" and tok.value in ("true", "false"):
            self.i += 1
            return ("bool", tok.value == "true")
        if tok.kind == "kw" and tok.value == "abs":
            self.i += 1
            if not self.accept("op", "("):
                raise self.error("expected '(' after abs")
            inner = self.disjunction()
            if not self.accept("op", ")"):
                raise self.error("expected ')'")
            return ("abs", inner)
        if self.accept("op", "("):
            inner = self.disjunction()
            if not self.accept("op", ")"):
                raise self.error("expected ')'")
            return inner
        raise self.error(f"unexpected {self.text[tok.start:tok.end]!r}")


def parse_expression(text: str, vocab: Vocabulary) -> Node:
    """Parse ``text`` into a node; raises :class:`ExpressionError` naming the offending place."""
    return _Parser(tokenize(text, vocab), text).parse()


def parse_tokens(tokens: list[Token], text: str) -> Node:
    """Parse an already tokenized slice (used for symbolic claims)."""
    return _Parser(tokens, text).parse()
