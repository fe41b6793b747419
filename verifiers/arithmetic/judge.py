"""Judge one claim: evaluate its expression exactly and compare with the stated value under the rounding rule.

A claim is wrong only when the stated value fits no reading of the expression: not the plain one, not a
percentage read as a number ("30/150*100 = 20%"), not a multiplier word read as a label. A mismatch between
amounts in different units of one dimension ("2 * 1.5 hours = 180 minutes") is a conversion the verifier
cannot follow, so it is left alone rather than flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from interlock.verifiers.arithmetic.errors import NotChecked, TooComplex
from interlock.verifiers.arithmetic.evaluate import evaluate, has_percent, unit_conflict, unit_of
from interlock.verifiers.arithmetic.extract import Claim
from interlock.verifiers.arithmetic.numbers import consistent, format_value, to_rational
from interlock.verifiers.arithmetic.parse import Bin, Func, Limits, Neg, Num, Sqrt
from interlock.verifiers.arithmetic.vocabulary import unit_dimension

__all__ = ["Judgement", "judge"]

_COINS = {"cent", "penny", "nickel", "dime", "quarter"}
_MIXED = re.compile(r"-?\d+ \d+/\d+$")


@dataclass(frozen=True)
class Judgement:
    """``status`` "ok", "wrong", "unknown" (not checkable) or "unsure" (a mismatch that may be a conversion)."""

    status: Literal["ok", "wrong", "unknown", "unsure"]
    claim: Claim
    expected: str = ""  # the right value as written for the model ("9", "about 0.33", "$18", "20%")
    reason: str = ""

    rhs_value: str = ""  # for a link between two expressions: the right side's value

    @property
    def feedback(self) -> str:
        if self.claim.rhs_expr is not None:
            return f"{self.claim.lhs_text} is {self.expected}, but {self.claim.rhs_text} is {self.rhs_value}."
        return f"{self.claim.lhs_text} is {self.expected}, not {self.claim.rhs_text}."


# Factors between units of one dimension (time, length, mass, volume, coins): a mismatch that one of them
# explains is a conversion ("2 * 1.5 hours = 180 minutes"), not an arithmetic error.
_FACTORS = (2, 3, 4, 7, 8, 10, 12, 16, 24, 30, 36, 52, 60, 100, 365, 1000, 1440, 1760, 3600, 5280)


def _convertible(label: str | None) -> bool:
    if label is None:
        return False
    return bool(unit_dimension(label) - {"money", "count"}) or label in _COINS


def _labels(node: Any) -> set[str]:
    if isinstance(node, Num):
        return {node.label} if node.label is not None else set()
    if isinstance(node, Neg | Sqrt):
        return _labels(node.arg)
    if isinstance(node, Bin):
        return _labels(node.left) | _labels(node.right)
    return set()


def _conversion(claim: Claim, readings: tuple[Any, ...]) -> bool:
    """Whether a mismatch may be a unit conversion the verifier cannot follow."""
    import sympy

    assert claim.lhs is not None and claim.rhs is not None
    if unit_conflict(claim.lhs):
        return True
    labels = _labels(claim.lhs) | ({claim.rhs.label} if claim.rhs.label else set())
    if not any(_convertible(label) for label in labels):
        return False
    left, right = unit_of(claim.lhs), claim.rhs.label
    if left is not None and right is not None and left != right:
        return True
    if len(labels) == 1 and not unit_dimension(next(iter(labels))) & {"time", "money"}:
        return False  # "he walked 40 - 6 - 21 = 12 miles": one unit all along is a word, not a conversion
    stated = claim.rhs.literal
    for value in readings:
        for f in _FACTORS:
            for g in (sympy.Integer(f), sympy.Rational(1, f)):
                p, q = to_rational(value * g, stated.decimals)
                if consistent(p, q, stated, approx=claim.approx, sign=claim.rhs_sign):
                    return True
    return False


def _literals(node: Any) -> list[Any]:
    if isinstance(node, Num):
        return [node.literal]
    if isinstance(node, Neg | Sqrt):
        return _literals(node.arg)
    if isinstance(node, Bin):
        return _literals(node.left) + _literals(node.right)
    if isinstance(node, Func):
        return [lit for a in node.args for lit in _literals(a)]
    return []


def _other_system(claim: Claim, readings: tuple[Any, ...]) -> str | None:
    """Why a mismatch may be right in the number system the step speaks of, or ``None``.

    In a step about modular arithmetic "3 * 5 = 1" is a congruence: a residue of a reading modulo a modulus the
    step names is not flagged (nor anything, where it names none). In a step about another base "4 + 5 = 13"
    may be base 6: a claim whose digits all fit that base is not flagged.
    """
    import sympy

    assert claim.rhs is not None
    if claim.moduli is not None:
        if claim.rhs_fraction is not None:
            stated = sympy.Rational(*claim.rhs_fraction)
        else:
            stated = claim.rhs_sign * sympy.Rational(claim.rhs.literal.num, claim.rhs.literal.den)
        integers = stated.is_integer and all(isinstance(v, sympy.Integer) for v in readings)
        if not claim.moduli or not integers or any((v - stated) % m == 0 for v in readings for m in claim.moduli):
            return "a residue in modular arithmetic, which the step speaks of"
    if claim.outer_moduli is not None and _outer_residue(claim, readings):
        return "a residue in modular arithmetic, which the problem speaks of"
    if claim.outer_base is not None and _true_in_another_base(claim):
        return "a numeral in another base, which the problem speaks of"
    if claim.base is not None:
        digits = "".join(str(lit.num) for lit in [*_literals(claim.lhs), claim.rhs.literal])
        if claim.rhs_fraction is not None:
            digits += "".join(str(abs(n)) for n in claim.rhs_fraction)
        if claim.base == 0 or max(int(d) for d in digits) < claim.base:
            return f"a numeral in base {claim.base or 'b'}, which the step speaks of"
    return None


def _stated_value(claim: Claim) -> Any:
    import sympy

    assert claim.rhs is not None
    if claim.rhs_fraction is not None:
        return sympy.Rational(*claim.rhs_fraction)
    return claim.rhs_sign * sympy.Rational(claim.rhs.literal.num, claim.rhs.literal.den)


def _outer_residue(claim: Claim, readings: tuple[Any, ...]) -> bool:
    """Whether the claim is true modulo a modulus the problem names: the stated value and a reading are congruent,
    one of them reduced ("3 * 5 = 1", "12 = 1 + 2" when it says "mod 9"). Where it names none, whether some
    modulus makes the stated value a reduced residue of a reading (the difference itself is the largest such
    modulus: "3 * 5 = 1" is true modulo 14, "17 * 3 = 41" modulo nothing larger than 41). The problem's text
    is not trusted further: a sentence in a prompt must not excuse a claim false under what it names."""
    import sympy

    stated = _stated_value(claim)
    if not (stated.is_integer and stated >= 0 and all(isinstance(v, sympy.Integer) for v in readings)):
        return False
    if not claim.outer_moduli:
        return any(abs(v - stated) > max(stated, 1) for v in readings)
    reduced = claim.reversed  # "1234 = 1 + 2 + 3 + 4": a number and its digit sum, congruent modulo 9
    return any((v - stated) % m == 0 and (reduced or stated < m or 0 <= v < m)
               for v in readings for m in claim.outer_moduli)


def _rebased(node: Any, base: int) -> Any:
    """The expression with every whole-number literal read in ``base`` (``None`` if a digit does not fit)."""
    from interlock.verifiers.arithmetic.numbers import Literal as Lit

    if isinstance(node, Num):
        lit = node.literal
        if lit.den != 1 or lit.num < 0:
            return None
        try:
            value = int(str(lit.num), base)
        except ValueError:
            return None
        return Num(Lit(value, 1, 0, 0, len(str(value))), node.percent, node.multiplier, node.label)
    if isinstance(node, Neg | Sqrt):
        arg = _rebased(node.arg, base)
        return None if arg is None else type(node)(arg)
    if isinstance(node, Bin):
        a, b = _rebased(node.left, base), _rebased(node.right, base)
        if a is None or b is None:
            return None
        return Bin(node.op, a, b, node.glued_minus, node.loose, node.implicit)
    return None


def _true_in_another_base(claim: Claim) -> bool:
    """Whether the claim holds with its numerals read in the base the problem names (any base from 2 to 16 where
    it names none): "4 + 5 = 13" is true in base 6."""
    import sympy
    from interlock.verifiers.arithmetic.parse import Limits as _Limits

    if claim.rhs is None or claim.lhs is None or claim.rhs_fraction is not None or claim.rhs.literal.den != 1:
        return False
    bases = [claim.outer_base] if claim.outer_base else list(range(2, 17))
    for b in bases:
        if b is None or b == 10:
            continue
        lhs = _rebased(claim.lhs, b)
        try:
            stated = claim.rhs_sign * int(str(claim.rhs.literal.num), b)
        except ValueError:
            continue
        if lhs is None:
            continue
        try:
            values = evaluate(lhs, _Limits(), float("inf"))
        except (NotChecked, TooComplex):  # a reading that cannot be evaluated excuses nothing
            continue
        if any(v == sympy.Integer(stated) for v in values):
            return True
    return False


def _judge_remainder(claim: Claim) -> Judgement:
    """ "400 \\div 17 = 23 remainder 9": the quotient and the remainder of a whole division, exactly."""
    assert isinstance(claim.lhs, Bin) and isinstance(claim.lhs.left, Num) and isinstance(claim.lhs.right, Num)
    assert claim.rhs is not None and claim.remainder is not None
    a, b = claim.lhs.left.literal.num, claim.lhs.right.literal.num
    if b == 0:
        return Judgement("unknown", claim, reason="a division by zero")
    q, r = claim.rhs.literal.num, claim.remainder.literal.num
    if claim.rhs.literal.den != 1 or claim.remainder.literal.den != 1:
        return Judgement("unknown", claim, reason="a remainder that is not a whole number")
    right_q, right_r = divmod(a, b)
    if (q, r) == (right_q, right_r):
        return Judgement("ok", claim)
    return Judgement("wrong", claim, expected=f"{right_q} remainder {right_r}")


def _leftmost(node: Any) -> Any:
    while isinstance(node, Bin):
        node = node.left
    return node


_MONEY = {"$", "€", "£", "¥", "₹", "₩", "₽", "₺", "₦", "฿", "₱"}


def _signed_literals(node: Any, sign: int = 1) -> list[tuple[int, int]]:
    if isinstance(node, Num):
        return [(sign * node.literal.num, node.literal.den)]
    if isinstance(node, Neg):
        return _signed_literals(node.arg, -sign)
    if isinstance(node, Sqrt):
        return [(0, 0)]  # a root is never a part of a sum worked out first
    if isinstance(node, Bin):
        return _signed_literals(node.left, sign) + _signed_literals(node.right, sign)
    return [(0, 0)]


def _part_of(right: Any, left: Any) -> bool:
    """ "256 - 400 + 240 - 36 = 256 - 400 = -144; ...": the right side's numbers are some of the left side's,
    a part of a sum worked out first, not a rewriting of the whole."""
    from collections import Counter

    r = Counter(_signed_literals(right))
    lf = Counter(_signed_literals(left))
    return bool(r) and r != lf and not (r - lf)


def _chain(node: Any) -> tuple[Any, list[tuple[str, Any]]]:
    """A left-to-right chain "h op a op b" as its head and its (operator, operand) tail."""
    tail: list[tuple[str, Any]] = []
    while isinstance(node, Bin) and node.op in {"+", "-", "*", "/"} and isinstance(_signed(node.right), Num):
        tail.append((node.op, _signed(node.right)))
        node = node.left
    return node, tail[::-1]


def _signed(node: Any) -> Any:
    return node.arg if isinstance(node, Neg) and isinstance(node.arg, Num) else node


def _same_tail(left: Any, right: Any) -> bool:
    """ "24 * 5 * 3 = 360 * 3", "(-8) + 0 + 6 - 8 = (-10) + 6 - 8": the right side ends with the same operations
    on the same numbers as the left one, and its head stands for the rest of the left side ("24 * 5" as 360):
    a rewriting of the left side, not a running total that goes on from its value ("13 * 1.5 = 19.5 times $1.5"
    is one: its head replaces a single number, which needs no rewriting)."""
    lhead, ltail = _chain(left)
    rhead, rtail = _chain(right)
    if not rtail or not isinstance(_signed(rhead), Num) or len(rtail) >= len(ltail) + (not isinstance(lhead, Num)):
        return False
    if ltail[len(ltail) - len(rtail):] != rtail:
        return False
    return len(ltail) > len(rtail) or isinstance(lhead, Bin)


def _labels_convertible(claim: Claim) -> bool:
    labels = _labels(claim.lhs) | _labels(claim.rhs_expr)
    return any(_convertible(label) for label in labels)


def _decimal_literals(node: Any) -> bool:
    return any(lit.decimals > 0 for lit in _literals(node))


def _interval(node: Any) -> tuple[Any, Any] | None:
    """The range of values the expression may stand for when each decimal it holds is rounded or truncated to
    the decimals it is written with (``None``: an expression this does not bound)."""
    from fractions import Fraction

    if isinstance(node, Num):
        if node.percent or node.multiplier is not None:
            return None
        v = Fraction(node.literal.num, node.literal.den)
        if node.literal.decimals == 0:
            return v, v
        e = Fraction(1, 10**node.literal.decimals)
        return v - e, v + e
    if isinstance(node, Neg):
        inner = _interval(node.arg)
        return None if inner is None else (-inner[1], -inner[0])
    if not isinstance(node, Bin) or node.op not in {"+", "-", "*", "/"} or node.loose or node.implicit:
        return None
    a, b = _interval(node.left), _interval(node.right)
    if a is None or b is None:
        return None
    if node.op == "+":
        return a[0] + b[0], a[1] + b[1]
    if node.op == "-":
        return a[0] - b[1], a[1] - b[0]
    if node.op == "/":
        if b[0] <= 0 <= b[1]:
            return None
        b = (1 / b[1], 1 / b[0])
    products = [x * y for x in a for y in b]
    return min(products), max(products)


def judge_link(claim: Claim, limits: Limits, deadline: float) -> Judgement:
    """A link between two expressions ("6 * 40 - 25 = 260 - 25"): wrong only when no reading of the left side
    equals any reading of the right, the right side's decimals allowed their rounding, and the link is not a
    running total ("5 * 3 = 15 + 2 = 17" writes on from the left side's value)."""
    import sympy

    assert claim.lhs is not None and claim.rhs_expr is not None
    try:
        left = evaluate(claim.lhs, limits, deadline)
        right = evaluate(claim.rhs_expr, limits, deadline)
    except NotChecked as exc:
        return Judgement("unknown", claim, reason=f"{claim.lhs_text}: not checked ({exc})")
    if any(a == b for a in left for b in right):
        return Judgement("ok", claim)
    rational = all(isinstance(v, sympy.Rational) for v in (*left, *right))
    if not rational:
        return Judgement("unsure", claim, reason="an irrational value compared with another expression")
    from fractions import Fraction

    if _decimal_literals(claim.rhs_expr) or _decimal_literals(claim.lhs):
        span = _interval(claim.rhs_expr)
        if span is None:
            return Judgement("unsure", claim, reason="rounded decimals the verifier cannot bound")
        lo, hi = span
        if any(lo <= Fraction(int(v.p), int(v.q)) <= hi for v in left):
            return Judgement("ok", claim)
        if _decimal_literals(claim.lhs):
            other = _interval(claim.lhs)
            if other is None or not (other[1] < lo or hi < other[0]):
                return Judgement("unsure", claim, reason="rounded decimals on both sides")
    head, sign = _leftmost(claim.rhs_expr), 1
    if isinstance(head, Neg) and isinstance(head.arg, Num):
        head, sign = head.arg, -1
    if isinstance(head, Num) and not _same_tail(claim.lhs, claim.rhs_expr):
        for v in left:
            p, q = to_rational(v, head.literal.decimals)
            if consistent(p, q, head.literal, sign=sign):
                return Judgement("unsure", claim, reason="a running total (\"5 * 3 = 15 + 2\")")
    if _part_of(claim.rhs_expr, claim.lhs):
        return Judgement("unsure", claim, reason="a running total: a part of the left side worked out first")
    if _labels(claim.lhs) - _MONEY != _labels(claim.rhs_expr) - _MONEY:
        return Judgement("unsure", claim, reason="units on one side the other side does not carry")
    if claim.moduli is not None or claim.base is not None or claim.outer_moduli is not None \
            or claim.outer_base is not None:
        return Judgement("unsure", claim, reason="the step or the problem speaks of modular arithmetic or a base")
    if _labels_convertible(claim) or unit_conflict(claim.lhs) or unit_conflict(claim.rhs_expr):
        return Judgement("unsure", claim, reason="units the verifier does not convert")
    decimal = _decimal_literals(claim.lhs) or _decimal_literals(claim.rhs_expr)
    return Judgement("wrong", claim, expected=_show(left[0], decimal), rhs_value=_show(right[0], decimal))


def _show(value: Any, decimal: bool) -> str:
    """A value as the link was written: a fraction where it holds none but whole numbers, else a decimal."""
    p, q = to_rational(value, 6)
    text, exact = format_value(p, q, decimals=0)
    if q != 1 and (not decimal or not exact):
        return f"{p}/{q}" if len(str(q)) <= 6 else f"about {text}"
    return text


def _judge_fraction(claim: Claim, readings: tuple[Any, ...]) -> Judgement:
    """A result written as a fraction is exact: it must equal a reading of the expression."""
    import sympy

    assert claim.rhs_fraction is not None
    target = sympy.Rational(*claim.rhs_fraction)
    if any(v == target for v in readings):  # sympy reduces sqrt(4) to 2: an irrational never equals a fraction
        return Judgement("ok", claim)
    if readings[0] == claim.rhs_fraction[0]:
        return Judgement("unsure", claim, reason="a running total (\"12 * 4 = 48 / 6\")")
    if (other := _other_system(claim, readings)) is not None:
        return Judgement("unsure", claim, reason=other)
    if _conversion(claim, readings):
        return Judgement("unsure", claim, reason="a unit conversion the verifier does not follow")
    v = readings[0]
    if isinstance(v, sympy.Rational) and v.q != 1 and _MIXED.match(claim.rhs_text):
        whole, part = divmod(abs(int(v.p)), int(v.q))  # "is 3 3/4, not 3 1/4": as the claim wrote it
        sign = "-" if v < 0 else ""
        text = f"{sign}{whole} {part}/{int(v.q)}" if whole else f"{sign}{part}/{int(v.q)}"
        return Judgement("wrong", claim, expected=text)
    if isinstance(v, sympy.Rational):
        text = str(int(v.p)) if v.q == 1 else (
            f"\\frac{{{int(v.p)}}}{{{int(v.q)}}}" if "frac" in claim.rhs_text else f"{int(v.p)}/{int(v.q)}")
        return Judgement("wrong", claim, expected=text)
    p, q = to_rational(v, 4)
    return Judgement("wrong", claim, expected=f"about {format_value(p, q, decimals=4)[0]}")


def _rounded_up(p: int, q: int, stated: Any, sign: int) -> bool:
    """Whether the stated value is ``p/q`` rounded up to the decimals it is written with ("100 / 30 = 4 buses")."""
    scale = 10**stated.decimals
    ceiling = -((-p * scale) // q)  # ceil(p/q * 10**d)
    return bool(sign * stated.num * scale == ceiling * stated.den)


def judge(claim: Claim, limits: Limits, deadline: float) -> Judgement:
    """Check one claim exactly; never raises for a claim it cannot check (that is ``"unknown"``)."""
    if claim.lhs is not None and claim.rhs_expr is not None:
        return judge_link(claim, limits, deadline)
    if claim.lhs is None or claim.rhs is None:
        return Judgement("unknown", claim, reason=claim.problem or "not parsed")
    try:
        readings = evaluate(claim.lhs, limits, deadline)
    except NotChecked as exc:
        return Judgement("unknown", claim, reason=f"{claim.lhs_text}: not checked ({exc})")
    stated = claim.rhs.literal
    import sympy

    if claim.remainder is not None:
        return _judge_remainder(claim)
    if claim.rhs_fraction is not None:
        return _judge_fraction(claim, readings)

    primary = sympy.Integer(100 if claim.rhs.percent else 1)
    factors: list[Any] = [primary]
    if claim.rhs.percent or has_percent(claim.lhs):
        factors += [sympy.Integer(1), sympy.Integer(100)]
    if claim.rhs.multiplier is not None:  # "= 2.5 million" for 2,500,000
        factors += [f / claim.rhs.multiplier for f in list(factors)]
    for value in readings:
        for f in factors:
            p, q = to_rational(value * f, stated.decimals)
            if consistent(p, q, stated, approx=claim.approx or claim.rounding, sign=claim.rhs_sign):
                return Judgement("ok", claim)
            if claim.rounding and _rounded_up(p, q, stated, claim.rhs_sign):
                return Judgement("ok", claim)
    if (other := _other_system(claim, readings)) is not None:
        return Judgement("unsure", claim, reason=other)
    if _conversion(claim, readings):
        return Judgement("unsure", claim, reason="a unit conversion the verifier does not follow")
    if claim.comparative and any(consistent(*to_rational(-v, stated.decimals), stated, sign=claim.rhs_sign)
                                 for v in readings):
        return Judgement("unsure", claim, reason="a difference stated as how much more or less")
    suffix = ""
    if claim.rhs.multiplier is not None:  # "is 8m, not 9m": in the multiplier the claim was written with
        primary = primary / claim.rhs.multiplier
        found = re.search(r"\s?[A-Za-z]+$", claim.rhs_text)
        suffix = found.group() if found else ""
    p, q = to_rational(readings[0] * primary, stated.decimals)
    text, exact = format_value(p, q, decimals=stated.decimals, thousands="," in claim.rhs_text)
    label = claim.rhs.label
    text += suffix
    if claim.rhs.percent:
        text += "%"
    elif label is not None and label in {"$", "€", "£", "¥", "₹", "₩", "₽", "₺", "₦", "฿", "₱"}:
        if exact and re.fullmatch(r"-?[\d,]+\.\d", text):
            text += "0"  # money is written with cents: "$15.50", not "$15.5"
        text = f"-{label}{text[1:]}" if text.startswith("-") else f"{label}{text}"
    named = claim.moduli if claim.moduli is not None else claim.outer_moduli
    if named is not None and len(named) == 1 and q == 1:
        text += f", which is {p % named[0]} modulo {named[0]}"  # "is 56, which is 2 modulo 9"
    return Judgement("wrong", claim, expected=text if exact else f"about {text}")
