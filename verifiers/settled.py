"""The shape the structured-reasoning verifiers share: read the problem from the prompt, read the trace step by
step, and judge each step's claims once the text has had its chance to take them back.

:class:`SettledClaims` does the common part: a problem per prompt (cached, a few at once, as replay runs many
traces through one verifier), an incremental reading of the trace (:class:`~interlock.verifiers.stepwise.
StepwiseReader`), the choice of the steps due at each check (``settle_steps`` steps late, the rest at the end),
and the skipping of claims the text does not assert or takes back (:mod:`interlock.verifiers.revisions`).
A subclass says how to build the problem (:meth:`build`), what a step's claims are (:meth:`claims`), how one is
judged (:meth:`judge`) and what is checked at the end (:meth:`finish`).
"""

from __future__ import annotations

import bisect
import collections
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from interlock import AnyOf, AtEnd, Pass, Span, Step, TraceView, Trigger, Unknown, Verdict, Verifier
from interlock.monitor.phases import BOTH, PhaseFilter
from interlock.monitor.steps import STEP_END
from interlock.monitor.triggers import BoundTrigger, Due, Progress
from interlock.verifiers.errors import VerifierConfigError
from interlock.verifiers.revisions import NONE, mask_mentions, retraction_points, unescape
from interlock.verifiers.stepwise import StepRecord, StepwiseReader, tail_range

__all__ = ["Claimed", "NoProblem", "SettledClaims", "SettledSteps", "TraceState"]

_MAX_CONTEXTS = 32


class _Lagged(BoundTrigger):
    """Due at each completed step, but about the text from ``lag`` steps back: the step whose claims the check
    judges (the arbiter then waits for this check before acting on anything at or after that step)."""

    every_chunk = False

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.starts: list[int] = []

    def advance(self, progress: Progress) -> list[Due]:
        out = []
        for step in progress.new_steps:
            self.starts.append(step.start)
            start = self.starts[max(0, len(self.starts) - 1 - self.lag)]
            out.append(Due(step.end, Step(progress.text[start:step.end], Span(start, step.end), index=step.index,
                                          cut=step.cut, phase=step.phase), final=progress.final))
        return out

    def rewind(self, pos: int, tokens: int) -> None:
        self.starts = [s for s in self.starts if s < pos]


@dataclass(frozen=True)
class SettledSteps(Trigger):
    """Due at each completed step, like :class:`StepBoundary`, with the check's scope reaching back ``lag``
    steps: the claims it judges were written there. ``phase`` narrows it as for every trigger."""

    lag: int = 2
    phase: PhaseFilter = BOTH

    def bind(self) -> BoundTrigger:
        return _Lagged(self.lag)


class Claimed(Protocol):
    """What a step's claim must tell: where it is and whether its step asserts it."""

    @property
    def asserted(self) -> bool: ...

    @property
    def end(self) -> int: ...


class _HasReader(Protocol):
    stepwise: StepwiseReader[Any, Any]


@dataclass(frozen=True)
class NoProblem:
    """What :meth:`SettledClaims.build` returns when the prompt holds no problem of its kind: the verifier has
    nothing to check (a vacuous pass, so a run it alone watched reads as *unchecked*), unlike a problem it found
    and could not use (a string: ``Unknown`` at the end)."""

    reason: str


@dataclass(frozen=True)
class TraceState:
    """What a check judges: the text, the prompt it answers, the step that made the check due."""

    text: str
    prompt: str
    step: Span
    final: bool
    at_end: bool  # the check that judges the tail of the trace and the final answer (once a run)
    index: int = 0  # the step's index; -1 for AtEnd's check


class SettledClaims(Verifier):
    """Base of the ``zebra``, ``maze`` and ``spatialmap`` verifiers; see the module docstring.

    - ``settle_steps``: how many steps after a claim the text has to take it back before it is judged.
    - ``max_chars``: traces longer than this are not read (``Unknown``).
    """

    runs_in = "thread"
    timeout = 30.0
    trigger: Trigger = SettledSteps() | AtEnd()
    reads_chunks = False

    def __init__(self, *, settle_steps: int = 2, max_chars: int = 400_000, **options: Any) -> None:
        if not isinstance(settle_steps, int) or isinstance(settle_steps, bool) or settle_steps < 0:
            raise VerifierConfigError(f"{type(self).__name__}: settle_steps must be a non-negative integer, "
                                      f"got {settle_steps!r}")
        if not isinstance(max_chars, int) or max_chars < 1:
            raise VerifierConfigError(f"{type(self).__name__}: max_chars must be a positive integer, "
                                      f"got {max_chars!r}")
        self.settle_steps = settle_steps
        self.max_chars = max_chars
        self._contexts: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._lock = threading.Lock()
        options.setdefault("trigger", SettledSteps(settle_steps) | AtEnd())
        super().__init__(**options)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_contexts"] = collections.OrderedDict()
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- what a subclass says ---------------------------------------------------------------------------
    def build(self, prompt: str) -> Any:
        """The problem's context for ``prompt`` (with a ``stepwise`` reader), :class:`NoProblem` when the prompt holds
        none of its kind, or a string saying why the problem it holds cannot be used."""
        raise NotImplementedError

    def claims(self, ctx: Any, record: StepRecord[Any, Any]) -> Iterable[Any]:
        """The claims of one step (each with ``asserted`` and ``end``)."""
        return record.items

    def judge(self, ctx: Any, claim: Any, state: TraceState) -> list[Verdict]:
        """The verdicts on one asserted claim that the text did not take back ([] when it holds)."""
        raise NotImplementedError

    def finish(self, ctx: Any, state: TraceState, records: Sequence[StepRecord[Any, Any]]) -> list[Verdict]:
        """What is judged once the trace has ended (the final answer)."""
        return []

    # -- the common part --------------------------------------------------------------------------------
    def context(self, prompt: str) -> Any:
        """The problem for ``prompt`` (cached), or why there is none."""
        with self._lock:
            if prompt in self._contexts:
                self._contexts.move_to_end(prompt)
                return self._contexts[prompt]
        try:
            made = self.build(prompt)
        except VerifierConfigError as exc:
            made = f"the problem in the prompt cannot be used: {exc}"
        with self._lock:
            self._contexts[prompt] = made
            while len(self._contexts) > _MAX_CONTEXTS:
                self._contexts.popitem(last=False)
        return made

    def extract(self, view: TraceView) -> TraceState:
        return TraceState(view.text, view.prompt, view.step.span, view.final, _is_end_check(view), view.step.index)

    def check(self, state: TraceState) -> list[Verdict]:
        if len(state.text) > self.max_chars:
            return [Unknown(reason=f"not checked: the trace is {len(state.text):,} characters long (the limit is "
                                   f"{self.max_chars:,})", span=state.step)]
        ctx = self.context(state.prompt)
        if isinstance(ctx, NoProblem):  # nothing of this verifier's kind to check: vacuous, not undecided
            return [Pass(note=ctx.reason, checked=False, span=state.step if state.at_end else None)]
        if isinstance(ctx, str):
            if state.at_end:
                return [Unknown(reason=ctx, span=state.step)]
            return [Pass(note=ctx, checked=False)]
        records: list[StepRecord[Any, Any]] = ctx.stepwise.read(state.text)
        # steps as the monitor counts them: blank ones are no steps (no check is due at their end)
        live = [r for r in records if state.text[r.start:r.end].strip()]
        ends = [r.end for r in live]
        if state.index == -1:
            # AtEnd's check: the tail, when it is the end check; nothing when the last step's check was
            due = tail_range(ends, self.settle_steps) if state.at_end else range(0)
        else:
            # the step this check was made for is the last one ending by its end; its claims wait, those of the
            # step ``settle_steps`` before it are due now
            i = bisect.bisect_right(ends, state.step.end) - 1
            due = range(max(0, i - self.settle_steps), max(0, i + 1 - self.settle_steps))
            if state.at_end or (state.final and not _has_at_end(self.trigger)):
                due = range(due.start, len(ends))
        verdicts: list[Verdict] = []
        checked = 0
        marks: dict[int, list[int]] = {}
        for j in due:
            if live[j].skipped:
                verdicts.append(Unknown(reason=f"a step of {live[j].end - live[j].start:,} characters is not read "
                                               f"(the limit is {ctx.stepwise.max_step:,})",
                                        span=Span(live[j].start, live[j].end)))
                continue
            for claim in self.claims(ctx, live[j]):
                if not claim.asserted or self.taken_back(ctx, state.text, live, j, claim.end, marks):
                    continue
                checked += 1
                verdicts.extend(self.judge(ctx, claim, state))
        if state.at_end:
            verdicts.extend(self.finish(ctx, state, records))
        if not verdicts:
            return [Pass(note=f"{checked} claim(s) checked", checked=checked > 0)]
        return verdicts

    def taken_back(self, ctx: Any, text: str, records: Sequence[StepRecord[Any, Any]], j: int, end: int,
                   marks: dict[int, list[int]] | None = None) -> bool:
        """Whether the text takes back a claim (ending at ``end``, in step ``j``) within ``settle_steps`` steps:
        a retraction after it, before the text states anything else (a retraction is about what was said last;
        a supposition or another claim in between is what a later "wait, no" refers to). ``marks`` caches each
        step's retraction points across the claims of one check."""
        marks = {} if marks is None else marks
        last = min(j + self.settle_steps, len(records) - 1)
        for k in range(j, last + 1):
            record = records[k]
            if k not in marks:
                following = records[k + 1].end if k + 1 < len(records) else record.end
                step = mask_mentions(unescape(text[record.start:record.end]))
                marks[k] = [record.start + p for p in retraction_points(step, text[record.end:following])]
            after = [p for p in marks[k] if p >= end]
            if k == j:
                if after:
                    return True
                continue
            at = after[0] if after else None
            stated = [c for c in self.claims(ctx, record) if at is None or c.end <= at]
            opened = getattr(record.state, "carry", NONE) != NONE  # the step supposes or hedges something
            if stated or opened:
                return False
            if at is not None:
                return True
        return False


def _is_end_check(view: TraceView) -> bool:
    """Whether this check is the one that judges the end (the tail and the final answer), exactly once a run.

    When the text ends without a step boundary its last step is checked when generation ends, and that check
    (the same step as AtEnd's when the text is one step, in which case only one runs) judges the end; when the text
    ends on a boundary, the last step was checked before the end and AtEnd's check judges it."""
    if not view.final:
        return False
    text = view.text
    boundary = any(m.end() == len(text) for m in STEP_END.finditer(text, max(0, len(text) - 8)))
    if view.step.index == -1:
        return boundary
    return view.step.end == len(text) and not boundary


def _has_at_end(trigger: Trigger) -> bool:
    parts = trigger.triggers if isinstance(trigger, AnyOf) else (trigger,)
    return any(isinstance(t, AtEnd) for t in parts)
