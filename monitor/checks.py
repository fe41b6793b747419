"""The checks of one run: schedule them at their triggers, run each beside generation, collect their verdicts.

:class:`Checks` is the part of a :class:`~interlock.monitor.monitor.Run` that turns new text into due checks
(through the :class:`~interlock.monitor.scheduler.Scheduler`), runs every check as a task of the run's task group
(:func:`~interlock.monitor.execute.run_check`: where the verifier asked, under its timeout, never raising), and
hands each finished check's failures to the :class:`~interlock.monitor.arbiter.Arbiter` as candidates. What the
monitor then does about them is :mod:`interlock.monitor.interventions`' job.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from interlock.monitor.arbiter import Arbiter, Candidate
from interlock.monitor.events import VerdictReceived, VerifierError
from interlock.monitor.execute import run_check
from interlock.monitor.scheduler import Scheduler
from interlock.monitor.trace import TraceView
from interlock.monitor.verdicts import Action, Fail, Span, Unknown, Verdict
from interlock.monitor.verifier import Verifier

if TYPE_CHECKING:
    from interlock.monitor.monitor import Run

__all__ = ["Check", "Checks"]


@dataclass(eq=False)
class Check:
    """One check in flight: a verifier on a view of the trace, cancellable through its scope."""

    id: int
    verifier: Verifier
    view: TraceView
    scope: anyio.CancelScope
    provisional: bool = False  # run for the barrier on an unfinished step: its verdicts refuse, never intervene


class Checks:
    """Schedules, runs and collects the checks of one run; owns the run's scheduler and arbiter."""

    def __init__(self, run: Run, verifiers: list[Verifier]) -> None:
        self._run = run
        self.verifiers = verifiers
        self.scheduler = Scheduler(run.trace, verifiers)
        self.arbiter = Arbiter()
        self.running: dict[int, Check] = {}
        self.verdicts: list[Verdict] = []  # verdicts about text still in the trace when they arrived
        self.stale = 0  # verdicts that arrived about text a rollback had removed
        self.seconds = 0.0  # time spent in checks, summed
        self._ids = itertools.count()
        self._fail_closed = frozenset(v.name for v in verifiers if v.fail_closed)
        self._provisional_at: tuple[int, int] | None = None  # (epoch, length) of the last provisional checks
        self._provisional: list[Verdict] = []  # their verdicts

    def schedule(self, *, final: bool = False, cut: bool = False, close: bool = False) -> None:
        """Start the checks that the text so far makes due; ``final``: generation has ended (the last step is
        complete), ``cut``: it was stopped, so that last step may end mid-word; ``close``: the step being written
        ends here although generation goes on (the monitor ends the thinking)."""
        run = self._run
        trace = run.trace
        for verifier, due in self.scheduler.advance(final=final, cut=cut, close=close):
            check_id = next(self._ids)
            fork = run.fork_at(due.end)
            view = trace.view(due.end, due.step, final=due.final, fork=fork, chunks=verifier.reads_chunks)
            check = Check(check_id, verifier, view, anyio.CancelScope())
            self.running[check_id] = check
            self.arbiter.open(check_id, due.step.span.start)
            run.task_group.start_soon(self._run_check, check, name=f"check {verifier.name} #{check_id}")

    def schedule_provisional(self) -> None:
        """Check the step still being written as if it had ended now (the barrier's checks of a call made
        mid-step). Their failures refuse tool calls but start no intervention: the step may still end otherwise
        (``= 1`` of ``= 15``), and it is checked again, for real, when it does."""
        run = self._run
        trace = run.trace
        at = (trace.epoch, len(trace))
        if at == self._provisional_at:
            return
        self._provisional_at = at  # verdicts of checks at another trace point are forgotten
        self._provisional = []
        if run.finished:
            return
        for verifier, due in self.scheduler.provisional():
            check_id = next(self._ids)
            fork = run.fork_at(due.end)
            view = trace.view(due.end, due.step, final=due.final, fork=fork)
            check = Check(check_id, verifier, view, anyio.CancelScope(), provisional=True)
            self.running[check_id] = check
            run.task_group.start_soon(self._run_provisional, check, at,
                                      name=f"check {verifier.name} #{check_id} (barrier)")

    async def _run_provisional(self, check: Check, at: tuple[int, int]) -> None:
        outcome = None
        with check.scope:
            outcome = await run_check(check.verifier, check.view)
        self.running.pop(check.id, None)
        if self._run.spans is not None:
            self._run.spans.check(check, outcome)
        if outcome is not None:
            self.seconds += outcome.seconds
            if outcome.error is not None:
                self._run.errors.append(f"{check.verifier.name}: {outcome.error}")
                self._run.emit(VerifierError(verifier=check.verifier.name, error=outcome.error))
            if at == self._provisional_at:  # not a barrier at a later point, where this step may read otherwise
                self._provisional.extend(outcome.verdicts)
        self._run.notify()

    async def _run_check(self, check: Check) -> None:
        run = self._run
        outcome = None
        with check.scope:
            outcome = await run_check(check.verifier, check.view)
        self.running.pop(check.id, None)
        if run.spans is not None:
            run.spans.check(check, outcome)
        if outcome is None:  # cancelled: a rollback removed the text it was about
            self.arbiter.close(check.id)
            run.intervener.settle()
            run.notify()
            return
        self.seconds += outcome.seconds
        if outcome.error is not None:
            run.errors.append(f"{check.verifier.name}: {outcome.error}")
            run.emit(VerifierError(verifier=check.verifier.name, error=outcome.error))
        candidates: list[Candidate] = []
        for verdict in outcome.verdicts:
            stale = not run.trace.still_valid(verdict.epoch, verdict.span)
            run.emit(VerdictReceived(verdict=verdict, seconds=outcome.seconds, stale=stale))
            if stale:
                self.stale += 1
                continue
            self.verdicts.append(verdict)
            candidate = self._candidate(check.verifier, verdict)
            if candidate is not None:
                candidates.append(candidate)
        self.arbiter.close(check.id, candidates)
        run.intervener.settle()
        run.notify()

    def _candidate(self, verifier: Verifier, verdict: Verdict) -> Candidate | None:
        """What the monitor may act on: a failure, or an undecided verdict of a fail-closed verifier."""
        span = verdict.span or Span(0, 0)
        position = self.scheduler.step_start(span.start)
        if isinstance(verdict, Fail):
            action = verdict.action or verifier.action
            return Candidate(position=position, action=action, source=verifier.name, span=span,
                             epoch=verdict.epoch, feedback=verdict.feedback_text, message=verdict.message,
                             claim=verdict.claim, verdict=verdict)
        if isinstance(verdict, Unknown) and verifier.fail_closed:
            return Candidate(position=position, action=Action.INTERRUPT, source=verifier.name, span=span,
                             epoch=verdict.epoch, message=f"undecided and fail-closed: {verdict.reason}",
                             verdict=verdict)
        return None

    def open_violations(self) -> tuple[Verdict, ...]:
        """Failures (and undecided verdicts of fail-closed verifiers) about text still in the trace."""
        trace = self._run.trace
        return tuple(v for v in self.verdicts
                     if (isinstance(v, Fail) or (isinstance(v, Unknown) and v.verifier in self._fail_closed))
                     and trace.still_valid(v.epoch, v.span))

    def undecided(self) -> tuple[Verdict, ...]:
        """Undecided verdicts of verifiers that are not fail-closed about text still in the trace: they keep a run
        from being shown as verified."""
        trace = self._run.trace
        return tuple(v for v in self.verdicts if isinstance(v, Unknown) and v.verifier not in self._fail_closed
                     and trace.still_valid(v.epoch, v.span))

    def barrier_violations(self) -> tuple[Verdict, ...]:
        """:meth:`open_violations` and the failures of the barrier's checks of the unfinished step."""
        trace = self._run.trace
        found = list(self.open_violations())
        for v in self._provisional:
            if ((isinstance(v, Fail) or (isinstance(v, Unknown) and v.verifier in self._fail_closed))
                    and trace.still_valid(v.epoch, v.span) and v not in found):
                found.append(v)
        return tuple(found)

    def cut(self, pos: int) -> None:
        """The trace was cut at ``pos``: cancel the checks about removed text and forget what they were about."""
        for check in list(self.running.values()):
            if check.view.end > pos:
                check.scope.cancel()
                if not check.provisional:
                    self.arbiter.close(check.id)
                del self.running[check.id]
        self.arbiter.cut(pos)
        self.scheduler.cut(pos)

    def cancel_all(self) -> None:
        for check in list(self.running.values()):
            check.scope.cancel()
