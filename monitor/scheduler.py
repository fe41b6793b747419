"""The scheduler follows the trace's steps and asks each verifier's trigger which checks are due.

The monitor and :meth:`Verifier.scan` share it, so a verifier sees the same views offline as live. It also keeps
what each verifier's checks were about, so that when a run ends (and at a barrier) the generated text its
trigger left out (the last < n tokens of ``EveryNTokens``, the text around ``OnPattern``'s matches, a step cut
short by an injected answer prefix) is checked as one more step: no trigger lets text through unchecked.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

from interlock.monitor.phases import check_phase_filter
from interlock.monitor.steps import STEP_END
from interlock.monitor.trace import Step, Trace
from interlock.monitor.triggers import BoundTrigger, Due, Progress, bind_for_phase
from interlock.monitor.verdicts import Span

if TYPE_CHECKING:
    from interlock.monitor.verifier import Verifier

__all__ = ["Scheduler"]

_BOUNDARY_TAIL = frozenset(".!?\"'”’)]")


class _Coverage:
    """The parts of the trace one verifier's checks were about: sorted, disjoint ``[start, end)`` intervals."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, start: int, end: int) -> None:
        if start >= end:
            return
        starts, ends = self.starts, self.ends
        if not ends or start > ends[-1]:  # the usual case: checks come in trace order
            starts.append(start)
            ends.append(end)
            return
        lo = bisect.bisect_left(ends, start)  # the first interval that ends at or after ``start``
        hi = bisect.bisect_right(starts, end)  # intervals from ``hi`` on start after ``end``
        if lo < hi:
            start, end = min(start, starts[lo]), max(end, ends[hi - 1])
        starts[lo:hi] = [start]
        ends[lo:hi] = [end]

    def cut(self, pos: int) -> None:
        hi = bisect.bisect_left(self.starts, pos)
        del self.starts[hi:], self.ends[hi:]
        if self.ends and self.ends[-1] > pos:
            self.ends[-1] = pos

    def gaps(self, limit: int, also: Sequence[Span]) -> list[tuple[int, int]]:
        """The stretches of ``[0, limit)`` neither covered nor in ``also`` (injected text, provisional steps)."""
        marks = sorted([*zip(self.starts, self.ends, strict=True), *((s.start, s.end) for s in also)])
        out: list[tuple[int, int]] = []
        pos = 0
        for start, end in marks:
            if start > pos:
                out.append((pos, min(start, limit)))
            pos = max(pos, end)
            if pos >= limit:
                return out
        if pos < limit:
            out.append((pos, limit))
        return out


class Scheduler:
    """Tracks step boundaries of one trace and turns progress into ``(verifier, due)`` pairs.

    A phase change (thinking to answer) always ends a step, so no step of the segmentation crosses it; a verifier
    or trigger restricted to one phase only gets checks about text of that phase.
    """

    def __init__(self, trace: Trace, verifiers: Sequence[Verifier]) -> None:
        self.trace = trace
        self.verifiers = list(verifiers)
        self._bound: list[BoundTrigger] = [
            bind_for_phase(v.trigger.bound(), check_phase_filter(getattr(v, "phase", "both"), f"verifier "
                                                                 f"{v.name!r}: phase"))
            for v in self.verifiers]
        self._covered = [_Coverage() for _ in self.verifiers]  # what each verifier's checks were about
        self._every_chunk = any(b.every_chunk for b in self._bound)  # else only new steps (or the end) matter
        # on a chunk that ends no step only these are asked (counting tokens, matching patterns)
        self._chunk_bound = [(v, b, c) for v, b, c in zip(self.verifiers, self._bound, self._covered, strict=True)
                             if b.every_chunk]
        self._starts: list[int] = [0]  # start of every step in the current trace, sorted
        self._current = 0  # start of the step still being written
        self._check_from = 0  # text before this was injected or precedes an injection: never checked
        self._index = 0
        self._scan_from = 0  # text before this holds no boundary that is still to be found
        self._changes = trace.phase_starts  # the trace's own list of phase starts (changed in place)
        self._phases = (trace.phase_starts, trace._phase_kinds)
        self.finalised = False

    def step_start(self, pos: int) -> int:
        """Start of the step that contains ``pos`` (a rollback cuts there)."""
        if not self._bound:  # with no verifier the steps are not followed chunk by chunk: catch up now
            self._scan(self.trace.text, [])
        i = bisect.bisect_right(self._starts, pos) - 1
        return self._starts[max(i, 0)]

    def advance(self, *, final: bool = False, cut: bool = False, close: bool = False) -> list[tuple[Verifier, Due]]:
        """Find the steps completed since the last call and the checks now due; ``cut``: generation was stopped,
        so a last step without a boundary may end mid-word; ``close``: end the step being written here, though
        generation goes on (the monitor ends the thinking)."""
        if not self._bound and not final:
            return []  # no verifier: nothing can be due, and nobody needs the steps before the end
        text = self.trace.text
        new_steps: list[Step] = []
        self._scan(text, new_steps)
        if final or close:
            if self._current < len(text):
                self._add_step(text, len(text), new_steps, cut=cut)
            if final:
                self.finalised = True
        elif not new_steps and not self._every_chunk:
            return []  # no step ended in this chunk and every trigger waits for steps: nothing can be due
        progress = Progress(text=text, new_steps=new_steps, tokens=self.trace.kept_tokens, final=final,
                            step_start=self.step_start, check_from=self._check_from, phases=self._phases)
        due: list[tuple[Verifier, Due]] = []
        injected = self.trace.injected_spans() if final else []
        asked = (zip(self.verifiers, self._bound, self._covered, strict=True) if new_steps or final
                 else self._chunk_bound)
        for verifier, bound, covered in asked:
            mine = bound.advance(progress)
            for d in mine:
                covered.add(d.step.span.start, d.step.span.end)
            if final and bound.covers_gaps:
                gaps = self._gap_dues(text, bound, covered, injected, cut=cut)
                for d in gaps:
                    covered.add(d.step.span.start, d.step.span.end)
                if gaps:
                    mine = sorted([*mine, *gaps], key=lambda d: (d.end, d.step.span.start))
            due.extend((verifier, d) for d in mine)
        return due

    def _progress(self, text: str, new_steps: list[Step], final: bool) -> Progress:
        return Progress(text=text, new_steps=new_steps, tokens=self.trace.kept_tokens, final=final,
                        step_start=self.step_start, check_from=self._check_from, phases=self._phases)

    def _gap_dues(self, text: str, bound: BoundTrigger, covered: _Coverage, also: Sequence[Span], *,
                  cut: bool) -> list[Due]:
        """One final check for each stretch of generated text that no check of this verifier was about, from the
        start of its step. A stretch that stops where no step ends (an answer prefix was injected mid-step) is a
        cut step, as is the last one of a stopped run. A stretch is split where a phase begins, and a trigger
        narrowed to one phase gets only the stretches of its phase."""
        dues: list[Due] = []
        for gap, end in self._by_phase(covered.gaps(len(text), also)):
            phase = self.trace.phase_at(gap)
            if not text[gap:end].strip() or not bound.wants(phase):
                continue
            # the step starts where the step holding the gap does (a claim the trigger's last check cut in two
            # is read whole), never inside injected text
            start = max(self.step_start(gap), max((s.end for s in also if s.end <= gap), default=0))
            piece = text[start:end]
            at = bisect.bisect_left(self._starts, end)
            ends_step = at < len(self._starts) and self._starts[at] == end
            step = Step(piece, Span(start, end), index=max(bisect.bisect_right(self._starts, start) - 1, 0),
                        cut=cut if end == len(text) else not ends_step, phase=phase)
            dues.append(Due(end, step, final=True))
        return dues

    def _by_phase(self, gaps: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """``gaps`` split where a phase begins (no check is about two phases)."""
        changes = self.trace.phase_starts
        if len(changes) == 1:
            return gaps
        out = []
        for start, end in gaps:
            for change in changes[bisect.bisect_right(changes, start):bisect.bisect_left(changes, end)]:
                out.append((start, change))
                start = change
            out.append((start, end))
        return out

    def _scan(self, text: str, new_steps: list[Step], end: int | None = None) -> None:
        """Add the steps that ended in the text not scanned yet (up to ``end``); a phase change ends a step."""
        end = len(text) if end is None else end
        changes = self._changes
        if changes[-1] > self._current:  # a phase began after the step being written began: it ends that step
            for change in changes[bisect.bisect_right(changes, self._current):]:
                if change > end:
                    break
                self._scan_upto(text, new_steps, change)
                if self._current < change:
                    self._add_step(text, change, new_steps)
        start = max(self._current, self._scan_from)
        if start >= end:
            return
        boundary = STEP_END.search(text, start, end)
        while boundary is not None:
            self._add_step(text, boundary.end(), new_steps)
            boundary = STEP_END.search(text, boundary.end(), end)
        # A boundary can only start in the trailing run of punctuation (it waits for its space): the next scan
        # starts there, so a long step without a boundary is not rescanned from its start at every chunk.
        tail = end
        while tail > self._current and text[tail - 1] in _BOUNDARY_TAIL:
            tail -= 1
        self._scan_from = tail

    def _scan_upto(self, text: str, new_steps: list[Step], end: int) -> None:
        """:meth:`_scan`'s boundary search up to a phase change."""
        start = max(self._current, self._scan_from)
        if start >= end:
            return
        boundary = STEP_END.search(text, start, end)
        while boundary is not None:
            self._add_step(text, boundary.end(), new_steps)
            boundary = STEP_END.search(text, boundary.end(), end)
        # A boundary can only start in the trailing run of punctuation (it waits for its space): the next scan
        # starts there, so a long step without a boundary is not rescanned from its start at every chunk.
        tail = end
        while tail > self._current and text[tail - 1] in _BOUNDARY_TAIL:
            tail -= 1
        self._scan_from = tail

    def _add_step(self, text: str, end: int, out: list[Step], *, cut: bool = False) -> None:
        start = self._current
        self._current = end
        self._starts.append(end)
        piece = text[start:end]
        if piece.strip():
            kinds = self._phases[1]
            phase = kinds[0] if len(kinds) == 1 else self.trace.phase_at(start)
            out.append(Step(piece, Span(start, end), index=self._index, cut=cut, phase=phase))
            self._index += 1

    def cut(self, pos: int) -> None:
        """The trace was cut at ``pos``: forget the steps after it and rewind the triggers."""
        i = bisect.bisect_right(self._starts, pos)
        del self._starts[i:]
        self._current = self._starts[-1] if self._starts else 0
        if not self._starts:
            self._starts = [0]
        self._check_from = self.trace.injected_end_before(pos)
        self._scan_from = self._current
        self.finalised = False
        for bound, covered in zip(self._bound, self._covered, strict=True):
            bound.rewind(pos, self.trace.kept_tokens)
            covered.cut(pos)

    def injected(self, start: int | None = None) -> None:
        """Text the monitor wrote was appended (at ``start``): the next step starts after it."""
        if not self._bound:  # steps are not followed chunk by chunk: catch up to the injected text first
            self._scan(self.trace.text, [], start)
        end = len(self.trace)
        self._current = end
        self._check_from = end
        self._scan_from = end
        if self._starts[-1] != end:
            self._starts.append(end)

    def provisional(self) -> list[tuple[Verifier, Due]]:
        """The checks that would be due if the step still being written ended now (as at the end of a run), without
        moving on: the barrier runs them so that a tool call made mid-step waits for the text it was made from.
        As at the end, the text a verifier's trigger has not covered yet is checked too."""
        text = self.trace.text
        start = max(self._current, self._check_from)
        piece = text[start:]
        new_steps = ([Step(piece, Span(start, len(text)), index=self._index, phase=self.trace.phase_at(start))]
                     if piece.strip() else [])
        progress = self._progress(text, new_steps, True)
        injected = self.trace.injected_spans()
        due: list[tuple[Verifier, Due]] = []
        for verifier, bound, covered in zip(self.verifiers, self._bound, self._covered, strict=True):
            mine = copy.deepcopy(bound).advance(progress) if new_steps else []
            if bound.covers_gaps:
                mine += self._gap_dues(text, bound, covered, [*injected, *(d.step.span for d in mine)], cut=False)
            due.extend((verifier, d) for d in mine)
        return due
