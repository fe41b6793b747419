"""The checks of one run: schedule them at their triggers, run each beside generation, collect their verdicts.

:class:`Checks` is the part of a :class:`~interlock.monitor.monitor.Run` that turns new text into due checks
(through the :class:`~interlock.monitor.scheduler.Scheduler`), runs every check where its verifier asked, under its
timeout, never raising (:mod:`interlock.monitor.execute`), and hands each finished check's failures to the
:class:`~interlock.monitor.arbiter.Arbiter` as candidates. What the monitor then does about them is
:mod:`interlock.monitor.interventions`' job.

A check costs no task unless it is async: a sync ``runs_in="loop"`` check runs inline at the step end (its verdict
is delivered before the next chunk is read, in step order), a thread or process check is a job whose outcome comes
back as a callback on the loop. Async checks, the barrier's checks and any check on an event loop other than
asyncio run as tasks of the run's task group.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from interlock.monitor.arbiter import Arbiter, Candidate
from interlock.monitor.events import VerdictReceived, VerifierError
from interlock.monitor.execute import (
    CheckOutcome,
    PendingCheck,
    Placement,
    backlog_limit,
    behind,
    catch_up,
    placement,
    run_check,
    run_inline,
    start_check,
)
from interlock.monitor.scheduler import Scheduler
from interlock.monitor.trace import TraceView
from interlock.monitor.verdicts import Action, Fail, Span, Unknown, Verdict
from interlock.monitor.verifier import Verifier

if TYPE_CHECKING:
    from interlock.monitor.monitor import Run

__all__ = ["Check", "Checks"]


@dataclass(eq=False, slots=True)
class Check:
    """One check in a task of the run: a verifier on a view of the trace, cancellable through its scope. (A thread
    or process check is its :class:`~interlock.monitor.execute.PendingCheck`, cancelled the same way.)"""

    id: int
    verifier: Verifier
    view: TraceView
    scope: anyio.CancelScope
    provisional: bool = False  # run for the barrier on an unfinished step: its verdicts refuse, never intervene

    def cancel(self) -> None:
        self.scope.cancel()


class Checks:
    """Schedules, runs and collects the checks of one run; owns the run's scheduler and arbiter."""

    def __init__(self, run: Run, verifiers: list[Verifier]) -> None:
        self._run = run
        self.verifiers = verifiers
        self.scheduler = Scheduler(run.trace, verifiers)
        self.arbiter = Arbiter()
        self.running: dict[int, Check | PendingCheck] = {}
        self.verdicts: list[Verdict] = []  # verdicts about text still in the trace when they arrived
        self.stale = 0  # verdicts that arrived about text a rollback had removed
        self.seconds = 0.0  # time spent in checks, summed
        self._ids = itertools.count()
        self._fail_closed = frozenset(v.name for v in verifiers if v.fail_closed)
        self._provisional_at: tuple[int, int] | None = None  # (epoch, length) of the last provisional checks
        self._provisional: list[Verdict] = []  # their verdicts
        self._placement: dict[int, Placement] = {id(v): placement(v) for v in verifiers}
        in_processes = [v.timeout for v in verifiers if self._placement[id(v)] == "process"]
        self._backlog = backlog_limit(in_processes) if in_processes else 0.0  # 0: no process checks
        self._catch_up_for = max(in_processes, default=0.0)  # how long it waits for them at most
        self._queued = False  # process checks started since the backlog was last found short

    def schedule(self, *, final: bool = False, cut: bool = False, close: bool = False) -> None:
        """Start the checks that the text so far makes due; ``final``: generation has ended (the last step is
        complete), ``cut``: it was stopped, so that last step may end mid-word; ``close``: the step being written
        ends here although generation goes on (the monitor ends the thinking)."""
        due_now = self.scheduler.advance(final=final, cut=cut, close=close)
        if not due_now:
            return
        run = self._run
        trace = run.trace
        tasks_only = not run.on_asyncio
        inline: list[tuple[int, Verifier, TraceView]] = []
        for verifier, due in due_now:
            check_id = next(self._ids)
            fork = run.fork_at(due.end)
            view = trace.view(due.end, due.step, final=due.final, fork=fork, chunks=verifier.reads_chunks)
            # every check made due now is open before any of them is answered: arbitration waits for them all
            self.arbiter.open(check_id, due.step.span.start)
            where = "task" if tasks_only else self._placement[id(verifier)]
            if where == "inline":
                inline.append((check_id, verifier, view))
                continue
            if where == "task":
                check = Check(check_id, verifier, view, anyio.CancelScope())
                self.running[check_id] = check
                run.task_group.start_soon(self._run_check, check, name=f"check {verifier.name} #{check_id}")
            else:
                self.running[check_id] = start_check(verifier, view, self._job_done, check_id)
                self._queued = self._queued or where == "process"
        for check_id, verifier, view in inline:  # at the step end, before the next chunk: no task, no scope
            self._deliver(check_id, verifier, view, run_inline(verifier, view))

    def behind(self) -> bool:
        """Whether the run should let its process checks catch up before it reads on: more is queued for the
        workers than they work through in :func:`~interlock.monitor.execute.backlog_limit` seconds (otherwise
        those checks would time out). The backlog grows only when checks are started and shrinks otherwise, so
        it is looked at only after a start (not on every chunk)."""
        if not self._queued:
            return False
        if self._run.on_asyncio and behind(self._backlog):
            return True
        self._queued = False
        return False

    async def catch_up(self) -> None:
        await catch_up(self._backlog, self._catch_up_for)

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
            self._run.spans.check(check.verifier, check.view, outcome, provisional=True)
        if outcome is not None:
            self.seconds += outcome.seconds
            if outcome.error is not None:
                self._run.errors.append(f"{check.verifier.name}: {outcome.error}")
                self._run.emit(VerifierError(verifier=check.verifier.name, error=outcome.error))
            if at == self._provisional_at:  # not a barrier at a later point, where this step may read otherwise
                self._provisional.extend(outcome.verdicts)
        self._run.notify()

    async def _run_check(self, check: Check) -> None:
        outcome = None
        with check.scope:
            outcome = await run_check(check.verifier, check.view)
        self.running.pop(check.id, None)
        run = self._run
        if outcome is None:  # cancelled: a rollback removed the text it was about
            if run.spans is not None:
                run.spans.check(check.verifier, check.view, None)
            self.arbiter.close(check.id)
            run.intervener.settle()
            run.notify()
            return
        self._deliver(check.id, check.verifier, check.view, outcome)

    def _job_done(self, job: PendingCheck, outcome: CheckOutcome) -> None:
        """A thread or process check came back (a cancelled one never does)."""
        if self.running.pop(job.tag, None) is not None:
            self._deliver(job.tag, job.verifier, job.view, outcome)

    def _deliver(self, check_id: int, verifier: Verifier, view: TraceView, outcome: CheckOutcome) -> None:
        """Record a finished check's verdicts, hand its failures to the arbiter, act on what is decided."""
        run = self._run
        if run.spans is not None:
            run.spans.check(verifier, view, outcome)
        self.seconds += outcome.seconds
        if outcome.error is not None:
            run.errors.append(f"{verifier.name}: {outcome.error}")
            run.emit(VerifierError(verifier=verifier.name, error=outcome.error))
        candidates: list[Candidate] = []
        events = run.emits_events
        trace = run.trace
        for verdict in outcome.verdicts:
            stale = not trace.still_valid(verdict.epoch, verdict.span)
            if events:
                run.emit(VerdictReceived(verdict=verdict, seconds=outcome.seconds, stale=stale))
            if stale:
                self.stale += 1
                continue
            self.verdicts.append(verdict)
            if isinstance(verdict, Fail) or (isinstance(verdict, Unknown) and verifier.fail_closed):
                candidate = self._candidate(verifier, verdict)
                if candidate is not None:
                    candidates.append(candidate)
        self.arbiter.close(check_id, candidates)
        if candidates or self.arbiter.candidates:
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
        for check_id, check in list(self.running.items()):
            if check.view.end > pos:
                if not isinstance(check, Check) and self._run.spans is not None:  # a job never answers now
                    self._run.spans.check(check.verifier, check.view, None)  # (before cancel lets go of the view)
                check.cancel()
                if not (isinstance(check, Check) and check.provisional):
                    self.arbiter.close(check_id)
                del self.running[check_id]
        self.arbiter.cut(pos)
        self.scheduler.cut(pos)

    def cancel_all(self) -> None:
        for check in list(self.running.values()):
            check.cancel()
