"""Exact evaluation of a parsed expression with sympy, under limits, into the values it can be read as.

Most expressions have one reading. A few words and signs have two, and the judge flags a claim only when the
stated value fits none of them:

- a multiplier word: "2 dozen" is 24 or a label on 2 ("2 dozen * $3 = $6" prices dozens);
- a percentage added to a plain amount: "40 + 10% = 44" is 40 + 0.1 or 40 increased by 10%.

Exponents, digits and time are bounded before sympy is asked anything, so ``9**9**9**9`` is refused in
microseconds instead of being computed.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

from interlock.verifiers.arithmetic.errors import NotChecked, TooComplex
from interlock.verifiers.arithmetic.parse import Bin, Func, Limits, Neg, Node, Num, Sqrt
from interlock.verifiers.arithmetic.vocabulary import unit_dimension

__all__ = ["MAX_READINGS", "evaluate", "has_percent", "unit_conflict", "unit_of"]

MAX_READINGS = 16
MAX_FACTORIAL = 500  # 500! has 1,135 digits


def _digits(value: Any) -> int:
    import sympy

    if isinstance(value, sympy.Rational):
        return max(len(str(abs(int(value.p)))), len(str(int(value.q))))
    return 0


def _dedupe(values: list[Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    if len(out) > MAX_READINGS:
        raise TooComplex(f"more than {MAX_READINGS} readings")
    return tuple(out)


class _Evaluator:
    def __init__(self, limits: Limits, deadline: float, *, plain_percent: bool = False) -> None:
        import sympy

        self.sympy = sympy
        self.plain_percent = plain_percent
        self.limits = limits
        self.deadline = deadline

    def run(self, node: Node) -> tuple[Any, ...]:
        if time.thread_time() > self.deadline:  # (the deadline is on the judging thread's CPU clock)
            raise TooComplex(f"the time limit of {self.limits.seconds * 1000:g} ms per step")
        sp = self.sympy
        if isinstance(node, Num):
            base = sp.Rational(node.literal.num, node.literal.den)
            if node.percent and not self.plain_percent:
                base = base / 100
            if node.multiplier is not None:
                return _dedupe([base * node.multiplier, base])
            return (base,)
        if isinstance(node, Neg):
            negated = [-v for v in self.run(node.arg)]
            if isinstance(node.arg, Bin) and node.arg.op == "^":
                # "x = -3, so x^2 = -3^2 = 9": a minus before a power is also read as the base's sign
                with contextlib.suppress(NotChecked):
                    negated += [self._power(-a, b) for a in self.run(node.arg.left) for b in self.run(node.arg.right)]
            return _dedupe(negated)
        if isinstance(node, Func):
            return self._func(node)
        if isinstance(node, Sqrt):
            out = []
            for v in self.run(node.arg):
                if v.is_negative:
                    raise NotChecked("the square root of a negative number")
                out.append(sp.sqrt(v))
            return _dedupe(out)
        left = self.run(node.left)
        right = self.run(node.right)
        values: list[Any] = []
        for a in left:
            for b in right:
                values.append(self._binary(node.op, a, b))
        if node.implicit and isinstance(node.left, Bin) and node.left.op == "/" and not node.left.loose:
            for a in self.run(node.left.left):  # "6/2(1+2)" also as 6/(2(1+2)): juxtaposition binds first
                for b in self.run(node.left.right):
                    for c in right:
                        if b * c == 0:
                            raise NotChecked("a division by zero")
                        values.append(a / (b * c))
        if node.loose and isinstance(node.right, Bin):
            for a in left:
                for b in self.run(node.right.left):
                    for c in self.run(node.right.right):
                        if b == 0 or c == 0:
                            raise NotChecked("a division by zero")
                        values.append(a / b / c)
        if node.op in {"+", "-"}:
            pct = _bare_percent(node.right)
            if pct and not has_percent(node.left):
                sign = 1 if node.op == "+" else -1
                values.extend(a * (1 + sign * b) for a in left for b in right)
        return _dedupe(values)

    def _func(self, node: Func) -> tuple[Any, ...]:
        """``n!`` and ``\\binom{n}{k}`` of whole numbers, exactly; anything else is not checked."""
        import itertools

        sp = self.sympy
        out = []
        for args in itertools.product(*(self.run(a) for a in node.args)):
            if not all(isinstance(a, sp.Integer) and a >= 0 for a in args):
                raise NotChecked(f"{node.name} of a negative or fractional number")
            n = int(args[0])
            if n > MAX_FACTORIAL:
                raise TooComplex(f"{node.name} of {n} (the limit is {MAX_FACTORIAL})")
            out.append(sp.Integer(math.factorial(n) if node.name == "factorial" else math.comb(n, int(args[1]))))
        return _dedupe(out)

    def _binary(self, op: str, a: Any, b: Any) -> Any:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                raise NotChecked("a division by zero")
            return a / b
        return self._power(a, b)

    def _power(self, a: Any, b: Any) -> Any:
        sp = self.sympy
        lim = self.limits
        if not isinstance(b, sp.Rational):
            raise NotChecked("an irrational exponent")
        if b.q == 1:
            e = int(b.p)
            if abs(e) > lim.max_exponent:
                raise TooComplex(f"an exponent of {e} (the limit is {lim.max_exponent})")
            if isinstance(a, sp.Rational):
                if abs(e) * max(_digits(a), 1) > lim.max_result_digits and abs(a) != 1:
                    raise TooComplex(f"a power with more than {lim.max_result_digits} digits")
                if a == 0 and e < 0:
                    raise NotChecked("a division by zero")
            elif abs(e) > 64:
                raise TooComplex(f"an irrational base raised to {e}")
            return a**e
        if b.q > 12 or abs(b.p) > 64:
            raise TooComplex(f"the fractional exponent {b}")
        if not isinstance(a, sp.Rational) or a < 0:
            raise NotChecked("a root of a negative or irrational number")
        if math.log10(max(abs(int(a.p)), int(a.q), 2)) * abs(b) > lim.max_result_digits:
            raise TooComplex(f"a power with more than {lim.max_result_digits} digits")
        return sp.Pow(a, b)


def _bare_percent(node: Node) -> bool:
    return isinstance(node, Num) and node.percent


def has_percent(node: Node) -> bool:
    """Whether a percentage appears anywhere in the expression."""
    if isinstance(node, Num):
        return node.percent
    if isinstance(node, Func):
        return any(has_percent(a) for a in node.args)
    if isinstance(node, Neg | Sqrt):
        return has_percent(node.arg)
    return has_percent(node.left) or has_percent(node.right)


def unit_of(node: Node) -> str | None:
    """The unit label an expression carries: "3 hours * 2" is in hours, "$6 + $4" in dollars, 6 / 2 in none."""
    if isinstance(node, Num):
        return node.label
    if isinstance(node, Func):
        return None
    if isinstance(node, Neg | Sqrt):
        return unit_of(node.arg)
    a, b = unit_of(node.left), unit_of(node.right)
    if node.op in {"+", "-"}:
        return a if a == b or b is None else (b if a is None else None)
    if node.op == "*":
        return a if b is None else (b if a is None else None)
    if node.op == "/":
        return a if b is None else None
    return a


def unit_conflict(node: Node) -> bool:
    """Whether the expression adds or subtracts amounts in different units ("1 hour + 30 minutes")."""
    if isinstance(node, Num):
        return False
    if isinstance(node, Func):
        return any(unit_conflict(a) for a in node.args)
    if isinstance(node, Neg | Sqrt):
        return unit_conflict(node.arg)
    if unit_conflict(node.left) or unit_conflict(node.right):
        return True
    if node.op in {"+", "-"}:
        a, b = unit_of(node.left), unit_of(node.right)
        if a is not None and b is not None and a != b:
            return True
        if (a is None) != (b is None) and unit_dimension(a or b or "") - {"money", "count"}:
            # "2 hours + 30": the bare number may be in another unit of the same dimension ("$3 + 4" may not).
            return True
    return False


def evaluate(node: Node, limits: Limits, deadline: float) -> tuple[Any, ...]:
    """Every reading of ``node`` as an exact sympy number (the plain reading first).

    With a percentage in it, the expression is also read with each ``p%`` as the number ``p``: prose mixes
    percentages and percentage points ("28% - 0.49 = 27.51%", "18 / 100% = 0.18").
    """
    readings = _Evaluator(limits, deadline).run(node)
    if has_percent(node):
        with contextlib.suppress(NotChecked):
            readings = _dedupe([*readings, *_Evaluator(limits, deadline, plain_percent=True).run(node)])
    return readings
