"""Triggers say when a verifier is due: at each step boundary, every N tokens, on a pattern, at the end.

A trigger is an immutable description; :meth:`Trigger.bind` makes the per-run state that follows one trace
(and is rewound by a rollback). Combine triggers with ``|``. Every trigger takes ``phase=``: ``"thinking"`` or
``"answer"`` makes it due only for text of that phase (its step cut down to it), ``"both"`` (the default) for
all text; a verifier's own ``phase`` narrows its trigger the same way.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from interlock.monitor.errors import ConfigError
from interlock.monitor.phases import ANSWER, BOTH, Phase, PhaseFilter, check_phase_filter
from interlock.monitor.trace import Step
from interlock.monitor.verdicts import Span

__all__ = ["AnyOf", "AtEnd", "BoundTrigger", "Due", "EveryNTokens", "OnPattern", "PhaseFiltered", "Progress",
           "StepBoundary", "Trigger", "bind_for_phase"]


@dataclass(frozen=True)
class Due:
    """A check to run: over the trace up to ``end``, about ``step`` (its scope)."""

    end: int
    step: Step
    final: bool = False


@dataclass(frozen=True)
class Progress:
    """What changed in the trace since the last call: the steps completed and the tokens generated."""

    text: str
    new_steps: Sequence[Step]
    tokens: int
    final: bool
    step_start: Callable[[int], int]
    check_from: int = 0
    # The trace's phase runs: (where each begins, its phase), the trace's own two lists, not copies.
    phases: tuple[Sequence[int], Sequence[Phase]] = ((0,), (ANSWER,))

    def phase_at(self, pos: int) -> Phase:
        """The phase of the text at ``pos``."""
        starts, kinds = self.phases
        if len(starts) == 1:
            return kinds[0]
        return kinds[max(0, bisect.bisect_right(starts, pos) - 1)]


class BoundTrigger(ABC):
    """A trigger's state for one run.

    ``every_chunk``: whether it can become due without a new step (it counts tokens, it matches patterns), so
    the scheduler must show it every chunk; a trigger that only reacts to completed steps or to the end sets it
    False and is not called for the chunks in between (most chunks end no step).
    """

    every_chunk: bool = True
    # Whether text its checks left out is checked at the end and at a barrier (see Scheduler): every trigger's
    # but AtEnd's, whose one check is about the answer as a whole (its view holds all the text).
    covers_gaps: bool = True

    @abstractmethod
    def advance(self, progress: Progress) -> list[Due]: ...

    def wants(self, phase: Phase) -> bool:
        """Whether text of ``phase`` is this trigger's business (a trigger narrowed to one phase says no to the
        other): the scheduler asks before it checks text the trigger left out."""
        return True

    def rewind(self, pos: int, tokens: int) -> None:  # noqa: B027 - stateless triggers need nothing
        """The trace was cut at ``pos`` (``tokens`` generated tokens remain)."""


class Trigger(ABC):
    """When a verifier is due. Subclasses implement :meth:`bind`; a ``phase`` attribute (``"thinking"``,
    ``"answer"``, default ``"both"``) restricts them to text of one phase."""

    phase: PhaseFilter = BOTH

    @abstractmethod
    def bind(self) -> BoundTrigger: ...

    def bound(self) -> BoundTrigger:
        """:meth:`bind`, narrowed to this trigger's ``phase`` (what the scheduler uses)."""
        return bind_for_phase(self.bind(), check_phase_filter(getattr(self, "phase", BOTH), f"{self!r}.phase"))

    def __or__(self, other: Trigger) -> AnyOf:
        mine = self.triggers if isinstance(self, AnyOf) else (self,)
        theirs = other.triggers if isinstance(other, AnyOf) else (other,)
        return AnyOf(mine + theirs)


class _Steps(BoundTrigger):
    every_chunk = False

    def advance(self, progress: Progress) -> list[Due]:
        return [Due(s.end, s, final=progress.final) for s in progress.new_steps]


@dataclass(frozen=True)
class StepBoundary(Trigger):
    """Due at each completed step (a line or sentence end) and at the final, unterminated step."""

    phase: PhaseFilter = BOTH

    def bind(self) -> BoundTrigger:
        return _Steps()


class _End(BoundTrigger):
    every_chunk = False
    covers_gaps = False

    def advance(self, progress: Progress) -> list[Due]:
        if not progress.final:
            return []
        text = progress.text
        start = progress.check_from
        return [Due(len(text), Step(text[start:], Span(start, len(text)), index=-1,
                                    phase=progress.phase_at(len(text) - 1)), final=True)]


@dataclass(frozen=True)
class AtEnd(Trigger):
    """Due once, when generation has ended; its step is the whole generated text after the last injection
    (with ``phase=``, its part in that phase: ``AtEnd(phase="answer")`` judges the answer alone)."""

    phase: PhaseFilter = BOTH

    def bind(self) -> BoundTrigger:
        return _End()


class _EveryN(BoundTrigger):
    def __init__(self, n: int) -> None:
        self.n = n
        self.last_tokens = 0
        self.last_pos = 0

    def advance(self, progress: Progress) -> list[Due]:
        if progress.tokens // self.n <= self.last_tokens // self.n:
            return []
        end = len(progress.text)
        start = max(self.last_pos, progress.check_from)
        self.last_tokens, self.last_pos = progress.tokens, end
        return [Due(end, Step(progress.text[start:end], Span(start, end), phase=progress.phase_at(end - 1)),
                    final=progress.final)]

    def rewind(self, pos: int, tokens: int) -> None:
        self.last_tokens = min(self.last_tokens, tokens)
        self.last_pos = min(self.last_pos, pos)


@dataclass(frozen=True)
class EveryNTokens(Trigger):
    """Due each time another ``n`` generated tokens have arrived; the step is the text since the last time.

    The last tokens of a run (fewer than ``n``) are checked when it ends, and at a barrier."""

    n: int
    phase: PhaseFilter = BOTH

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"EveryNTokens needs n >= 1, got {self.n}")

    def bind(self) -> BoundTrigger:
        return _EveryN(self.n)


MAX_MATCH = 256


class _Pattern(BoundTrigger):
    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.searched_to = 0

    def advance(self, progress: Progress) -> list[Due]:
        text = progress.text
        due: list[Due] = []
        pos = max(self.searched_to, progress.check_from)
        for m in self.pattern.finditer(text, pos):
            # A match that touches the end may still grow ("Wait" -> "Waiting"): decide it later.
            if m.end() >= len(text) and not progress.final:
                break
            if m.end() == m.start():
                continue
            start = min(progress.step_start(m.start()), m.start())
            due.append(Due(m.end(), Step(text[start:m.end()], Span(start, m.end()), phase=progress.phase_at(m.start())),
                           final=progress.final))
            self.searched_to = m.end()
        # Matches are at most MAX_MATCH characters long: older text need not be searched again.
        self.searched_to = max(self.searched_to, len(text) - MAX_MATCH)
        return due

    def rewind(self, pos: int, tokens: int) -> None:
        self.searched_to = min(self.searched_to, pos)


@dataclass(frozen=True)
class OnPattern(Trigger):
    """Due when ``pattern`` (a regular expression) matches new text, e.g. ``OnPattern(r"\\bWait\\b")``.

    A match must be shorter than 256 characters: text older than that is not searched again. The text no match's
    step covered (before, between and after the matches) is checked when the run ends, and at a barrier.
    """

    pattern: str | re.Pattern[str]
    phase: PhaseFilter = BOTH

    def bind(self) -> BoundTrigger:
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ConfigError(f"OnPattern: invalid regular expression {self.pattern!r}: {exc}") from None
        return _Pattern(compiled)


class _Any(BoundTrigger):
    def __init__(self, parts: list[BoundTrigger]) -> None:
        self.parts = parts
        self.every_chunk = any(p.every_chunk for p in parts)
        self.covers_gaps = any(p.covers_gaps for p in parts)

    def wants(self, phase: Phase) -> bool:
        return any(p.wants(phase) for p in self.parts if p.covers_gaps)

    def advance(self, progress: Progress) -> list[Due]:
        seen: set[tuple[int, int, int]] = set()
        out: list[Due] = []
        for part in self.parts:
            for due in part.advance(progress):
                key = (due.end, due.step.span.start, due.step.span.end)
                if key not in seen:
                    seen.add(key)
                    out.append(due)
        return sorted(out, key=lambda d: (d.end, d.step.span.start))

    def rewind(self, pos: int, tokens: int) -> None:
        for part in self.parts:
            part.rewind(pos, tokens)


@dataclass(frozen=True)
class AnyOf(Trigger):
    """Due whenever any of its triggers is (the same check is not run twice for one step)."""

    triggers: tuple[Trigger, ...]
    phase: PhaseFilter = BOTH

    def bind(self) -> BoundTrigger:
        return _Any([t.bound() for t in self.triggers])


class PhaseFiltered(BoundTrigger):
    """A bound trigger narrowed to one phase: its checks about text of the other phase are dropped, and a step
    that crosses a phase change is cut down to its last stretch in the wanted phase."""

    def __init__(self, inner: BoundTrigger, phase: Phase) -> None:
        self.inner = inner
        self.phase = phase
        self.every_chunk = inner.every_chunk
        self.covers_gaps = inner.covers_gaps

    def wants(self, phase: Phase) -> bool:
        return phase == self.phase and self.inner.wants(phase)

    def advance(self, progress: Progress) -> list[Due]:
        out = []
        for due in self.inner.advance(progress):
            narrowed = _narrow(due, self.phase, progress)
            if narrowed is not None:
                out.append(narrowed)
        return out

    def rewind(self, pos: int, tokens: int) -> None:
        self.inner.rewind(pos, tokens)


def bind_for_phase(bound: BoundTrigger, phase: PhaseFilter) -> BoundTrigger:
    """``bound`` narrowed to ``phase`` (itself for ``"both"``)."""
    return bound if phase == BOTH else PhaseFiltered(bound, phase)


def _narrow(due: Due, phase: Phase, progress: Progress) -> Due | None:
    step = due.step
    starts, kinds = progress.phases
    if len(starts) == 1:
        return due if kinds[0] == phase else None
    # the runs of the wanted phase that overlap the step; keep the last
    lo = max(0, bisect.bisect_right(starts, step.start) - 1)
    best: tuple[int, int] | None = None
    for i in range(lo, len(starts)):
        run_start = starts[i]
        if run_start >= step.end and not (run_start == step.start == step.end):
            break
        run_end = starts[i + 1] if i + 1 < len(starts) else len(progress.text)
        if kinds[i] == phase:
            a, b = max(run_start, step.start), min(run_end, step.end)
            if b > a:
                best = (a, b)
    if best is None:
        return None
    a, b = best
    if (a, b) == (step.start, step.end):
        return due if step.phase == phase else dataclasses.replace(due, step=dataclasses.replace(step, phase=phase))
    text = progress.text
    narrowed = Step(text[a:b], Span(a, b), index=step.index, cut=step.cut and b == step.end, phase=phase)
    return dataclasses.replace(due, step=narrowed)
