"""An exact Game of 24 solver: can these numbers still make the target, and how.

Search over pairs with + - * / on Fractions (no floating point, so ``8 / (3 - 8 / 3)`` is found), memoised on
the sorted multiset, so a dead-end check during a run costs microseconds after the first call.

The search grows faster than exponentially with the count of numbers (6 numbers: about a million states in the
worst case; 8: billions), and the numbers can come from a user's prompt. :func:`solvable_within` is the bounded
form the verifier uses: at most :data:`MAX_NUMBERS` numbers, :data:`MAX_STATES` states visited and
:data:`MAX_SECONDS` seconds (100 ms of the searching thread's CPU time, not of waiting for a CPU); beyond any of
them it answers ``None`` (not known) instead of searching on.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from fractions import Fraction

from interlock.verifiers.game24.arith import format_number

__all__ = ["MAX_NUMBERS", "MAX_SECONDS", "MAX_STATES", "solvable", "solvable_within", "solve"]

MAX_NUMBERS = 6
MAX_STATES = 200_000
MAX_SECONDS = 0.1


def _combine(a: Fraction, b: Fraction) -> list[tuple[Fraction, str]]:
    """Every value one operation makes from ``a`` and ``b`` (with the operator written ``a op b``)."""
    out = [(a + b, "+"), (a * b, "*"), (a - b, "-"), (b - a, "-r")]
    if b != 0:
        out.append((a / b, "/"))
    if a != 0:
        out.append((b / a, "/r"))
    return out


def _key(values: Iterable[Fraction]) -> tuple[Fraction, ...]:
    return tuple(sorted(values))


@functools.lru_cache(maxsize=1 << 18)
def _solvable(key: tuple[Fraction, ...], target: Fraction) -> bool:
    if len(key) == 1:
        return key[0] == target
    n = len(key)
    seen: set[tuple[Fraction, Fraction]] = set()
    for i in range(n):
        for j in range(i + 1, n):
            if (key[i], key[j]) in seen:
                continue
            seen.add((key[i], key[j]))
            rest = key[:i] + key[i + 1:j] + key[j + 1:]
            for value, _ in _combine(key[i], key[j]):
                if _solvable(_key((*rest, value)), target):
                    return True
    return False


def solvable(numbers: Iterable[int | Fraction], target: int | Fraction = 24) -> bool:
    """Whether ``numbers`` (each used exactly once) can make ``target`` with + - * /."""
    values = _key(Fraction(x) for x in numbers)
    return bool(values) and _solvable(values, Fraction(target))


class _OverBudget(Exception):
    pass


def solvable_within(numbers: Iterable[int | Fraction], target: int | Fraction = 24, *,
                    max_numbers: int = MAX_NUMBERS, max_states: int = MAX_STATES,
                    seconds: float = MAX_SECONDS) -> bool | None:
    """:func:`solvable` under a bound: ``None`` for more than ``max_numbers`` numbers, or when the search visits
    more than ``max_states`` states or runs past ``seconds`` (what it found so far decides nothing)."""
    values = _key(Fraction(x) for x in numbers)
    goal = Fraction(target)
    if not values:
        return False
    if len(values) > max_numbers:
        return None
    if (values, goal) in _known:
        return _known[(values, goal)]
    memo: dict[tuple[Fraction, ...], bool] = {}
    deadline = time.thread_time() + seconds  # the search's own work: not the time it waits for a CPU
    visited = 0

    def search(key: tuple[Fraction, ...]) -> bool:
        nonlocal visited
        if len(key) == 1:
            return key[0] == goal
        if key in memo:
            return memo[key]
        visited += 1
        if visited > max_states or (visited % 256 == 0 and time.thread_time() > deadline):
            raise _OverBudget
        n = len(key)
        seen: set[tuple[Fraction, Fraction]] = set()
        found = False
        for i in range(n):
            for j in range(i + 1, n):
                if found or (key[i], key[j]) in seen:
                    continue
                seen.add((key[i], key[j]))
                rest = key[:i] + key[i + 1:j] + key[j + 1:]
                for value, _ in _combine(key[i], key[j]):
                    if search(_key((*rest, value))):
                        found = True
                        break
        memo[key] = found
        return found

    try:
        answer = search(values)
    except _OverBudget:
        return None
    if len(_known) < 4096:
        _known[(values, goal)] = answer
    return answer


_known: dict[tuple[tuple[Fraction, ...], Fraction], bool] = {}


def solve(numbers: Iterable[int | Fraction], target: int | Fraction = 24) -> str | None:
    """An expression using each number exactly once that equals ``target``, or None if there is none."""
    items = [(Fraction(x), format_number(Fraction(x))) for x in numbers]
    goal = Fraction(target)
    if not items or not _solvable(_key(v for v, _ in items), goal):
        return None
    while len(items) > 1:
        items = _step(items, goal)
    expr = items[0][1]
    return expr[1:-1] if expr.startswith("(") and _balanced(expr[1:-1]) else expr


def _step(items: list[tuple[Fraction, str]], goal: Fraction) -> list[tuple[Fraction, str]]:
    """Combine one pair so that the rest stays solvable (one exists: the caller checked)."""
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            (a, ea), (b, eb) = items[i], items[j]
            rest = items[:i] + items[i + 1:j] + items[j + 1:]
            for value, op in _combine(a, b):
                if _solvable(_key([*(v for v, _ in rest), value]), goal):
                    left, right = (eb, ea) if op.endswith("r") else (ea, eb)
                    return [*rest, (value, f"({left} {op[0]} {right})")]
    raise AssertionError("unreachable: the numbers were solvable")


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += 1 if ch == "(" else -1 if ch == ")" else 0
        if depth < 0:
            return False
    return depth == 0
