"""Numeric and date constraints decided by z3: ``holds("balance >= difference", balance=..., difference=...)``.

The expression is parsed once, when the rule is made (Python's parser, walked node by node; nothing is evaluated):
numbers, the named values, ``+ - * /``, ``abs``, ``min``, ``max``, comparisons (chained too), ``and``, ``or``,
``not``. Each name is bound to a function of the :class:`RuleContext` returning a number (``int``, ``float``,
``Decimal``, ``Fraction``), a ``date`` (counted in days) or a ``datetime`` (in seconds). Values are exact:
``49.99`` is 4999/100, so money adds up without rounding error.

A value that is ``None`` is unknown. z3 then decides whether the constraint holds whatever the unknowns are
(allowed), can hold for none of them (refused), or depends on them (undecided, which refuses unless the rule is
added with ``fail_closed=False``). Each check runs in its own z3 context, so rules may run in several threads.
"""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from interlock.monitor.policies.context import RuleContext
from interlock.monitor.policies.errors import PolicyDefinitionError
from interlock.monitor.policies.outcomes import Outcome, Refuse, Undecided

__all__ = ["holds"]

_EPOCH = dt.date(1970, 1, 1)
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_FUNCTIONS = ("abs", "min", "max")
MAX_NODES = 200


def _check_tree(node: ast.AST, names: set[str], source: str) -> None:
    for count, sub in enumerate(ast.walk(node), 1):
        if count > MAX_NODES:
            raise PolicyDefinitionError(f"the constraint {source!r} is too long (more than {MAX_NODES} parts)")
        ok = isinstance(sub, ast.Expression | ast.Compare | ast.BoolOp | ast.And | ast.Or | ast.UnaryOp | ast.Not
                        | ast.USub | ast.UAdd | ast.BinOp | ast.Load | ast.Name | ast.Call) or \
            type(sub) in _COMPARE or type(sub) in _ARITH
        if isinstance(sub, ast.Constant):
            ok = isinstance(sub.value, int | float) and not isinstance(sub.value, bool)
        if isinstance(sub, ast.Call):
            ok = isinstance(sub.func, ast.Name) and sub.func.id in _FUNCTIONS and not sub.keywords and \
                bool(sub.args) and (sub.func.id != "abs" or len(sub.args) == 1)
        if isinstance(sub, ast.Name) and sub.id not in names and sub.id not in _FUNCTIONS:
            raise PolicyDefinitionError(f"the constraint {source!r} uses {sub.id!r}, which is not one of its values "
                                        f"({', '.join(sorted(names)) or 'none'})")
        if not ok:
            raise PolicyDefinitionError(f"the constraint {source!r} uses {type(sub).__name__}: only numbers, its "
                                        f"values, + - * /, abs/min/max, comparisons, and/or/not are allowed")


def _exact(value: Any, name: str) -> Fraction:
    if isinstance(value, bool):
        raise TypeError(f"{name} is a bool, not a number")
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return Fraction(Decimal(str(aware.timestamp())))
    if isinstance(value, dt.date):
        return Fraction((value - _EPOCH).days)
    if isinstance(value, int | Fraction):
        return Fraction(value)
    if isinstance(value, float | Decimal):
        return Fraction(Decimal(str(value)))
    raise TypeError(f"{name} is a {type(value).__name__}, not a number or a date")


def _term(node: ast.AST, env: dict[str, Any], z3: Any, ctx: Any) -> Any:
    if isinstance(node, ast.Expression):
        return _term(node.body, env, z3, ctx)
    if isinstance(node, ast.Constant):
        v = _exact(node.value, "a constant")
        return z3.RealVal(f"{v.numerator}/{v.denominator}", ctx)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        inner = _term(node.operand, env, z3, ctx)
        if isinstance(node.op, ast.Not):
            return z3.Not(inner, ctx)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp):
        a, b = _term(node.left, env, z3, ctx), _term(node.right, env, z3, ctx)
        arith = _ARITH[type(node.op)]
        return a + b if arith == "+" else a - b if arith == "-" else a * b if arith == "*" else a / b
    if isinstance(node, ast.BoolOp):
        parts = [_term(v, env, z3, ctx) for v in node.values]
        return z3.And(*parts) if isinstance(node.op, ast.And) else z3.Or(*parts)
    if isinstance(node, ast.Compare):
        left = _term(node.left, env, z3, ctx)
        conj = []
        for comparison, right_node in zip(node.ops, node.comparators, strict=True):
            right = _term(right_node, env, z3, ctx)
            sym = _COMPARE[type(comparison)]
            conj.append({"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right,
                         "==": left == right, "!=": left != right}[sym])
            left = right
        return conj[0] if len(conj) == 1 else z3.And(*conj)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        args = [_term(a, env, z3, ctx) for a in node.args]
        if node.func.id == "abs":
            return z3.If(args[0] >= 0, args[0], -args[0])
        best = args[0]
        for a in args[1:]:
            best = z3.If(a < best, a, best) if node.func.id == "min" else z3.If(a > best, a, best)
        return best
    raise PolicyDefinitionError(f"cannot use {type(node).__name__} in a constraint")  # pragma: no cover


def _shown(value: Any) -> str:
    if isinstance(value, float | Fraction):
        return f"{float(value):.10g}"  # 21.10000000000001 (a sum of floats) reads 21.1
    return str(value)


def holds(expression: str, *, reason: str | None = None, timeout_ms: int = 2000,
          **values: Callable[[RuleContext], Any]) -> Callable[[RuleContext], Outcome]:
    """A rule that the constraint ``expression`` over ``values`` holds, decided by z3.

    ``reason``: the refusal's text, formatted with the values (``"the balance {balance} does not cover
    {difference}"``); by default it names the constraint and the values."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise PolicyDefinitionError(f"the constraint {expression!r} does not parse: {exc.msg}") from None
    _check_tree(tree, set(values), expression)
    if not isinstance(tree.body, ast.Compare | ast.BoolOp) and not (
            isinstance(tree.body, ast.UnaryOp) and isinstance(tree.body.op, ast.Not)):
        raise PolicyDefinitionError(f"the constraint {expression!r} is not a comparison")

    def rule(ctx: RuleContext) -> Outcome:
        import z3

        got = {name: fn(ctx) for name, fn in values.items()}
        zctx = z3.Context()
        env: dict[str, Any] = {}
        unknown = []
        for name, value in got.items():
            if value is None:
                env[name] = z3.Real(name, zctx)
                unknown.append(name)
            else:
                v = _exact(value, name)
                env[name] = z3.RealVal(f"{v.numerator}/{v.denominator}", zctx)
        formula = _term(tree, env, z3, zctx)
        for goal, verdict in ((z3.Not(formula, zctx), "valid"), (formula, "impossible")):
            solver = z3.Solver(ctx=zctx)
            solver.set("timeout", int(timeout_ms))
            solver.add(goal)
            answer = solver.check()
            if answer == z3.unknown:
                return Undecided(f"z3 could not decide {expression!r} within {timeout_ms} ms")
            if answer == z3.unsat:
                if verdict == "valid":
                    return None
                shown = {k: _shown(v) for k, v in got.items()}
                if reason is not None:
                    return Refuse(reason.format(**shown))
                known = ", ".join(f"{k} = {v}" for k, v in shown.items() if got[k] is not None)
                return Refuse(f"the constraint {expression} does not hold ({known})")
        return Undecided(f"{expression!r} depends on values that are not known: {', '.join(unknown)}")

    rule.__name__ = rule.__qualname__ = "holds"
    rule.__doc__ = f"{expression} (decided by z3)."
    return rule
