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

from interlock.verifiers.arithmetic.errors import NotChecked
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

    @property
    def feedback(self) -> str:
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
    if claim.base is not None:
        digits = "".join(str(lit.num) for lit in [*_literals(claim.lhs), claim.rhs.literal])
        if claim.rhs_fraction is not None:
            digits += "".join(str(abs(n)) for n in claim.rhs_fraction)
        if claim.base == 0 or max(int(d) for d in digits) < claim.base:
            return f"a numeral in base {claim.base or 'b'}, which the step speaks of"
    return None


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
    if claim.lhs is None or claim.rhs is None:
        return Judgement("unknown", claim, reason=claim.problem or "not parsed")
    try:
        readings = evaluate(claim.lhs, limits, deadline)
    except NotChecked as exc:
        return Judgement("unknown", claim, reason=f"{claim.lhs_text}: not checked ({exc})")
    stated = claim.rhs.literal
    import sympy

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
    if claim.moduli is not None and len(claim.moduli) == 1 and q == 1:
        text += f", which is {p % claim.moduli[0]} modulo {claim.moduli[0]}"  # "is 56, which is 2 modulo 9"
    return Judgement("wrong", claim, expected=text if exact else f"about {text}")
