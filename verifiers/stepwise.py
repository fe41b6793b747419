"""Read a growing trace step by step, resuming from what was read of it before.

A verifier is asked about the same trace again and again as it grows (and, after a rollback, about a shorter
one that then grows differently). Reading it from the start each time costs time quadratic in its length, so
:class:`StepwiseReader` keeps, for a few branches of text, the result of reading each complete step, and
resumes from the longest prefix still valid: a step's reading depends only on the text up to its end and on
the state the step before left. Steps are the monitor's own (:data:`interlock.monitor.steps.STEP_END`): a line,
or a sentence ended by ``.``, ``!`` or ``?`` and a space.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from interlock.monitor.steps import STEP_END

__all__ = ["StepRecord", "StepwiseReader", "settled_range", "tail_range"]

S = TypeVar("S")
I = TypeVar("I")  # noqa: E741 - the item type


@dataclass(frozen=True)
class StepRecord(Generic[S, I]):
    """One step: its span ``[start, end)``, the state after it and what was read from it."""

    start: int
    end: int
    state: S
    items: tuple[I, ...]
    skipped: bool = False  # longer than the reader reads: nothing was read from it


@dataclass
class _Branch(Generic[S, I]):
    text: str
    records: list[StepRecord[S, I]]


def _common_prefix(a: str, b: str) -> int:
    if b.startswith(a):
        return len(a)
    if a.startswith(b):
        return len(b)
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class StepwiseReader(Generic[S, I]):
    """Reads texts step by step with ``step(state, text, start, end) -> (state, items)`` (the step is
    ``text[start:end]``; the whole text is there for look-behind), caching complete steps per branch.

    Thread-safe: verifier checks of different traces may run at once in worker threads.
    """

    def __init__(self, initial: S, step: Callable[[S, str, int, int], tuple[S, Sequence[I]]], *,
                 branches: int = 8, max_step: int = 20_000) -> None:
        self.initial = initial
        self.step = step
        self.max_step = max_step  # a longer step (a 5 MB line) is not read: its record says so
        self.max_branches = branches
        self._branches: list[_Branch[S, I]] = []
        self._lock = threading.Lock()
        self.steps_read = 0  # steps read (not taken from the cache), for tests and benchmarks

    def read(self, text: str) -> list[StepRecord[S, I]]:
        """Every step of ``text``: the complete ones (cached) and the unfinished tail, if any (not cached)."""
        with self._lock:
            branch, shared = None, -1
            for b in self._branches:
                n = _common_prefix(b.text, text)
                if n > shared:
                    branch, shared = b, n
            kept: list[StepRecord[S, I]] = []
            if branch is not None:
                kept = [r for r in branch.records if r.end <= shared]
            if branch is None or len(kept) != len(branch.records) or shared < len(branch.text):
                branch = _Branch(text, kept)
                self._branches.append(branch)
                del self._branches[:-self.max_branches]
            self._branches.remove(branch)
            self._branches.append(branch)
            branch.text = text
            records = branch.records
            state = records[-1].state if records else self.initial
            pos = records[-1].end if records else 0
            for m in STEP_END.finditer(text, pos):
                end = m.end()
                records.append(self._read(state, text, pos, end))
                state = records[-1].state
                self.steps_read += 1
                pos = end
            out = list(records)
        if pos < len(text):
            out.append(self._read(state, text, pos, len(text)))
        return out

    def _read(self, state: S, text: str, start: int, end: int) -> StepRecord[S, I]:
        if end - start > self.max_step:
            return StepRecord(start, end, state, (), skipped=True)
        after, items = self.step(state, text, start, end)
        return StepRecord(start, end, after, tuple(items))

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_branches"] = []
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def settled_range(ends: Sequence[int], since: int, upto: int, settle: int) -> range:
    """The indices of the steps (given by their sorted ``ends``) that become due when the text grows from
    position ``since`` to ``upto``: a step is due once ``settle`` more steps have ended after it (the text may
    still take it back until then), and is due exactly once."""
    n_upto = bisect.bisect_right(ends, upto)
    n_since = bisect.bisect_right(ends, since)
    return range(max(0, n_since - settle), max(0, n_upto - settle))


def tail_range(ends: Sequence[int], settle: int) -> range:
    """The steps never due by :func:`settled_range` because the text ended first: the last ``settle``."""
    return range(max(0, len(ends) - settle), len(ends))
