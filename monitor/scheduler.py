"""The scheduler follows the trace's steps and asks each verifier's trigger which checks are due.

The monitor and :meth:`Verifier.scan` share it, so a verifier sees the same views offline as live.
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
        self._every_chunk = any(b.every_chunk for b in self._bound)  # else only new steps (or the end) matter
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
        for verifier, bound in zip(self.verifiers, self._bound, strict=True):
            due.extend((verifier, d) for d in bound.advance(progress))
        return due

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
        for bound in self._bound:
            bound.rewind(pos, self.trace.kept_tokens)

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
        moving on: the barrier runs them so that a tool call made mid-step waits for the text it was made from."""
        text = self.trace.text
        start = max(self._current, self._check_from)
        piece = text[start:]
        if not piece.strip():
            return []
        step = Step(piece, Span(start, len(text)), index=self._index, phase=self.trace.phase_at(start))
        progress = Progress(text=text, new_steps=[step], tokens=self.trace.kept_tokens, final=True,
                            step_start=self.step_start, check_from=self._check_from, phases=self._phases)
        due: list[tuple[Verifier, Due]] = []
        for verifier, bound in zip(self.verifiers, self._bound, strict=True):
            due.extend((verifier, d) for d in copy.deepcopy(bound).advance(progress))
        return due
