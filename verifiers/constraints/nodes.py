"""Constraints as plain data: nested tuples that pickle, hash and compare, built into z3 only inside the solver.

A node is one of::

    ("var", name)            a declared variable (canonical name)
    ("val", value)           a value of a finite domain (canonical name)
    ("num", Fraction)        a number
    ("bool", True|False)     a truth value
    (op, a, b)               op in + - * / and == != < <= > >=
    ("neg", a) ("abs", a) ("not", a)
    ("and", (a, ...)) ("or", (a, ...)) ("distinct", (a, ...))
    ("z3", function)         a callable (variables by name -> z3 BoolRef), for power users
    ("smt2", text)           SMT-LIB2 assertions over the declared variables, for power users

Keeping the problem as data is what lets a verifier cross a process boundary: z3 objects never do.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

__all__ = [
    "ARITH",
    "COMPARE",
    "Node",
    "all_different",
    "canon",
    "describe",
    "different",
    "distance",
    "equal",
    "left_of",
    "next_to",
    "num",
    "right_of",
]

Node = tuple[Any, ...]
COMPARE = ("==", "!=", "<", "<=", ">", ">=")
ARITH = ("+", "-", "*", "/")


def canon(name: str) -> str:
    """The canonical spelling of a name: lower case, single spaces (so "The  Norwegian" == "the norwegian")."""
    return " ".join(name.lower().split())


def num(value: int | Fraction | str) -> Node:
    return ("num", Fraction(value))


def equal(a: Node, b: Node) -> Node:
    return ("==", a, b)


def different(a: Node, b: Node) -> Node:
    return ("!=", a, b)


def next_to(a: Node, b: Node) -> Node:
    return distance(a, b, 1)


def distance(a: Node, b: Node, d: int | Fraction) -> Node:
    return ("==", ("abs", ("-", a, b)), num(d))


def left_of(a: Node, b: Node, *, directly: bool = False) -> Node:
    return ("==", ("+", a, num(1)), b) if directly else ("<", a, b)


def right_of(a: Node, b: Node, *, directly: bool = False) -> Node:
    return ("==", a, ("+", b, num(1))) if directly else (">", a, b)


def all_different(items: tuple[Node, ...]) -> Node:
    return ("distinct", tuple(items))


_PREC = {"or": 1, "and": 2, "not": 3, **dict.fromkeys(COMPARE, 4), "+": 5, "-": 5, "*": 6, "/": 6}


def describe(node: Node, names: dict[str, str] | None = None) -> str:
    """A readable rendering of a node (``x + 1 == y``), with the user's spelling of names where known."""
    names = names or {}

    def go(n: Node, outer: int) -> str:
        tag = n[0]
        if tag in ("var", "val"):
            return str(names.get(n[1], n[1]))
        if tag == "num":
            f: Fraction = n[1]
            return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
        if tag == "bool":
            return "true" if n[1] else "false"
        if tag == "neg":
            return "-" + go(n[1], 7)
        if tag == "abs":
            return f"|{go(n[1], 0)}|"
        if tag == "not":
            return "not " + go(n[1], 3)
        if tag in ("and", "or"):
            text = f" {tag} ".join(go(x, _PREC[tag] + 1) for x in n[1])
            return f"({text})" if outer > _PREC[tag] else text
        if tag == "distinct":
            return "all different(" + ", ".join(go(x, 0) for x in n[1]) + ")"
        if tag == "z3":
            return getattr(n[1], "__name__", "z3 expression")
        if tag == "smt2":
            return "smt2: " + " ".join(str(n[1]).split())
        prec = _PREC[tag]
        op = "=" if tag == "==" else tag
        text = f"{go(n[1], prec)} {op} {go(n[2], prec + 1)}"
        return f"({text})" if outer > prec else text

    return go(node, 0)
