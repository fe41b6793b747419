"""Exact reasoning over the two orders a spatial map states: east-west and north-south.

"A is to the Northeast of B" says A is east of B and north of B: two strict inequalities, one per axis. The axes
never mix, so what the map entails about x is decided by the x statements alone, and likewise for y. With only
strict "less than" facts, ``a < b`` follows exactly when a chain of facts leads from ``a`` to ``b``, and
``b <= a`` (so ``a < b`` is contradicted) exactly when a chain leads from ``b`` to ``a`` or ``a`` is ``b``.
The chain is the explanation: "B is to the Southwest of C; C is to the Southwest of A".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["AXES", "Fact", "Orders"]

AXES = ("x", "y")  # x grows to the east, y to the north


@dataclass(frozen=True)
class Fact:
    """``low < high`` on ``axis``, because of statement ``source`` (an index into the map's statements)."""

    axis: str
    low: str
    high: str
    source: int


class Orders:
    """The strict orders the facts give on each axis, with reachability queries and the chains behind them."""

    def __init__(self, facts: Iterable[Fact]) -> None:
        self.edges: dict[str, dict[str, list[Fact]]] = {axis: {} for axis in AXES}
        for fact in facts:
            self.edges[fact.axis].setdefault(fact.low, []).append(fact)

    def chain(self, axis: str, low: str, high: str) -> list[Fact] | None:
        """A shortest chain of facts showing ``low < high`` on ``axis``, or None when the facts do not show it."""
        if low == high:
            return None
        edges = self.edges[axis]
        came: dict[str, Fact | None] = {low: None}
        queue = deque([low])
        while queue:
            here = queue.popleft()
            for fact in edges.get(here, ()):
                if fact.high in came:
                    continue
                came[fact.high] = fact
                if fact.high == high:
                    out: list[Fact] = []
                    node = high
                    while (step := came[node]) is not None:
                        out.append(step)
                        node = step.low
                    return out[::-1]
                queue.append(fact.high)
        return None

    def less(self, axis: str, low: str, high: str) -> bool | None:
        """``low < high`` on ``axis``: True if entailed, False if contradicted (``high <= low`` entailed), None if
        the facts allow both."""
        if low == high:
            return False
        if self.chain(axis, low, high) is not None:
            return True
        if self.chain(axis, high, low) is not None:
            return False
        return None

    def consistent(self) -> bool:
        """Whether the facts allow any placement: no cycle on either axis (Kahn's algorithm, no recursion)."""
        for axis in AXES:
            edges = self.edges[axis]
            indegree: dict[str, int] = {}
            for low, facts in edges.items():
                indegree.setdefault(low, 0)
                for fact in facts:
                    indegree[fact.high] = indegree.get(fact.high, 0) + 1
            queue = deque(n for n, d in indegree.items() if d == 0)
            seen = 0
            while queue:
                node = queue.popleft()
                seen += 1
                for fact in edges.get(node, ()):
                    indegree[fact.high] -= 1
                    if indegree[fact.high] == 0:
                        queue.append(fact.high)
            if seen != len(indegree):
                return False
        return True


def sources(chains: Sequence[list[Fact] | None]) -> list[int]:
    """The statements the given chains use, in order, each once."""
    out: list[int] = []
    for chain in chains:
        for fact in chain or ():
            if fact.source not in out:
                out.append(fact.source)
    return out
