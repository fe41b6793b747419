"""Arbitration: which of the violations known so far the monitor acts on, whatever order they arrived in.

A candidate (a failed verdict, or a governor's decision) has a *position*: the start of the step where its
action applies. It is *ready* once no check still running is about text at or before that position, so a
slow check on an early step is waited for rather than overtaken. Among ready candidates the earliest position
wins, then the strongest action (interrupt > stop > rollback > warn), then the earliest span, then the source
name: the first decision is the same for every arrival order of the same verdicts.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from interlock.monitor.verdicts import Action, Span, Verdict

__all__ = ["Arbiter", "Candidate"]


@dataclass(frozen=True)
class Candidate:
    """Something the monitor may act on."""

    position: int
    action: Action
    source: str
    span: Span
    epoch: int = 0
    feedback: str = ""
    message: str = ""
    claim: str | None = None
    verdict: Verdict | None = field(default=None, compare=False)
    abstain: bool = False

    def sort_key(self) -> tuple[int, int, int, str]:
        return (self.position, -self.action.strength, self.span.start, self.source)


class Arbiter:
    """Holds the checks still running (by the start of the step they are about) and the candidates."""

    def __init__(self) -> None:
        self._pending: dict[Hashable, int] = {}
        self._candidates: list[Candidate] = []

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return tuple(self._candidates)

    def open(self, check: Hashable, scope_start: int) -> None:
        """A check about the step starting at ``scope_start`` has started."""
        self._pending[check] = scope_start

    def close(self, check: Hashable, candidates: list[Candidate] | tuple[Candidate, ...] = ()) -> None:
        """The check finished (or was cancelled) with these candidates."""
        self._pending.pop(check, None)
        self._candidates.extend(candidates)

    def add(self, candidate: Candidate) -> None:
        self._candidates.append(candidate)

    def is_ready(self, candidate: Candidate) -> bool:
        return all(start > candidate.position for start in self._pending.values())

    def decide(self) -> Candidate | None:
        """The candidate to act on now, or ``None`` (nothing known, or an earlier check still running)."""
        ready = [c for c in self._candidates if self.is_ready(c)]
        return min(ready, key=Candidate.sort_key) if ready else None

    def remove(self, candidate: Candidate) -> None:
        self._candidates.remove(candidate)

    def cut(self, pos: int) -> None:
        """The trace was cut at ``pos``: candidates about removed text are stale."""
        self._candidates = [c for c in self._candidates if c.position < pos and c.span.end <= pos]

    def clear(self) -> None:
        self._candidates.clear()
