"""Number literals, the rounding rule, and how a right value is written back to the model.

The rounding rule. A stated value ``s`` written with ``d`` decimals (``0.33`` has 2, ``18`` has 0, ``3.50`` has
2) is consistent with the exact value ``v`` when

- ``s == v``, or
- ``s`` is ``v`` rounded to ``d`` decimals: ``|v - s| <= 0.5 * 10**-d`` (either way at a tie, since half-up and
  half-to-even are both in use), or
- ``s`` is ``v`` truncated to ``d`` decimals (``2/3 = 0.66``: calculators and people cut digits off), or
- a value written with decimals and 15 or more significant digits is a binary floating-point result copied
  from a calculator (``11/18*162 = 99.00000000000001``); it passes within a relative ``1e-12`` of ``v`` (a whole
  number is exact: ``1000000000000007 + 1000000000000007 = 2000000000000015`` is wrong), or
- for ``≈`` ("approximately") only, an integer ``s`` with ``k`` trailing zeros may be rounded to ``10**k``
  (``≈ 1200`` for 1234), and one of two or more significant digits that end in 5 to ``5 * 10**k`` (``≈ 450``
  for 437, ``≈ 45`` for 43): estimates are written in round figures.

Why: a model writes the digits it keeps, so the precision a value is written with is the only tolerance it
states; anything closer than that is what the model meant, anything farther is a wrong value
(``1/3 = 0.35`` fails, ``1/3 = 0.33`` and ``1/3 = 0.333`` pass). No relative tolerance is used: it would let
``1000001 - 1 = 1000001`` through and flag nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

__all__ = ["Literal", "consistent", "format_value", "parse_literal", "to_rational"]


@dataclass(frozen=True, slots=True)
class Literal:
    """A number as written: its exact value (numerator, denominator), decimals written, and trailing zeros."""

    num: int
    den: int
    decimals: int
    trailing_zeros: int
    significant: int = 0


def parse_literal(text: str) -> Literal:
    """``"1,200.50"`` -> 120050/100 with 2 decimals. Thousands separators are dropped, the value is exact."""
    plain = text.replace("{,}", "").replace("\\,", "").replace(",", "")
    if "." in plain:
        whole, frac = plain.split(".", 1)
    else:
        whole, frac = plain, ""
    den = 10 ** len(frac)
    num = int((whole or "0") + frac)
    stripped = (whole or "0").lstrip("0")
    zeros = len(stripped) - len(stripped.rstrip("0")) if not frac and stripped else 0
    return Literal(num, den, len(frac), zeros, len(str(num).lstrip("0")) if num else 1)


def to_rational(value: Any, digits: int) -> tuple[int, int]:
    """An exact sympy number as a fraction; an irrational one approximated well past ``digits`` decimals."""
    import sympy

    if isinstance(value, sympy.Rational):
        return int(value.p), int(value.q)
    approx = sympy.Rational(str(sympy.N(value, digits + 30)))
    return int(approx.p), int(approx.q)


def consistent(vp: int, vq: int, stated: Literal, *, approx: bool = False, sign: int = 1) -> bool:
    """Whether the stated literal (times ``sign``) agrees with the exact value ``vp/vq`` under the rounding rule."""
    sp, sq = sign * stated.num, stated.den
    # Compare v and s on the common denominator vq * sq.
    diff = abs(vp * sq - sp * vq)  # |v - s| * vq * sq
    if diff == 0:
        return True
    scale = vq * sq
    if 2 * diff * 10**stated.decimals <= scale:  # |v - s| <= 0.5 * 10**-d
        return True
    if diff * 10**stated.decimals < scale and (sp == 0 or (sp > 0) == (vp > 0)) and abs(sp) * vq < abs(vp) * sq:
        return True  # truncation toward zero
    if stated.decimals and stated.significant >= 15 and diff * 10**12 <= max(abs(vp) * sq, scale):
        return True  # |v - s| <= 1e-12 * max(|v|, 1): a float's last digits (a whole number is exact, not a float)
    if approx and stated.decimals == 0:
        unit = 10**stated.trailing_zeros  # "≈ 1200": to the hundred
        if stated.significant - stated.trailing_zeros >= 2 and (abs(stated.num) // unit) % 10 == 5:
            unit *= 5  # "≈ 450", "≈ 45": a round figure to the nearest 50 or 5, as estimates are written
        return unit > 1 and bool(2 * diff <= scale * unit)
    return False


def _decimal(p: int, q: int, places: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = max(50, len(str(abs(p))) + places + 5)
        return (Decimal(p) / Decimal(q)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def _plain(d: Decimal) -> str:
    text = f"{d:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def format_value(p: int, q: int, *, decimals: int = 0, thousands: bool = False) -> tuple[str, bool]:
    """Write ``p/q`` for the model: exactly when it has at most 6 decimals, else rounded; returns (text, exact).

    ``thousands`` groups the digits with commas, as the stated value was written.
    """
    text, exact = _format(p, q, decimals)
    if thousands:
        whole, dot, frac = text.partition(".")
        sign = "-" if whole.startswith("-") else ""
        text = f"{sign}{int(whole.lstrip('-')):,}{dot}{frac}"
    return text, exact


def _format(p: int, q: int, decimals: int) -> tuple[str, bool]:
    qq = q
    for f in (2, 5):
        while qq % f == 0:
            qq //= f
    if qq == 1:
        places = 0
        while (p * 10**places) % q:
            places += 1
        if places <= max(6, decimals):
            return _plain(_decimal(p, q, places)), True
    places = max(decimals, 2)
    return _plain(_decimal(p, q, places)), False
