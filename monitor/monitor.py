"""The monitor: stream one trace from a generator, run the verifiers beside it, act on their verdicts.

``await Monitor(generator, verifiers=[...]).run(prompt)`` returns a :class:`RunResult`;
``async with monitor.stream(prompt) as run`` yields events as they happen and offers ``await run.barrier()``.
Checks run in tasks of the run's task group, never on the token path: the generator only stops when a
decision must be applied (rollback, interrupt, stop). Leaving the ``async with`` block or cancelling the caller
cancels everything the run started.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import inspect
import itertools
import math
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup
from interlock.monitor.arbiter import Arbiter, Candidate
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError, GeneratorError, ViolationError
from interlock.monitor.events import (
    ChunkAppended,
    Event,
    FeedbackInjected,
    GovernorDecided,
    Intervened,
    RunFinished,
    RunStarted,
    VerdictReceived,
    VerifierError,
)
from interlock.monitor.execute import run_check
from interlock.monitor.generation import Capabilities, GenerationRequest, Generator
from interlock.monitor.governor import Governor, GovernorDecision, InterventionLimit, OscillationGuard, normalise_claim
from interlock.monitor.logs import debug_enabled, get_logger
from interlock.monitor.result import Intervention, RunResult, StopReason, TokenCounts
from interlock.monitor.scheduler import Scheduler
from interlock.monitor.trace import Forker, Trace, TraceView
from interlock.monitor.tracefile import TraceWriter
from interlock.monitor.verdicts import Action, Fail, Span, Unknown, Verdict
from interlock.monitor.verifier import Verifier

__all__ = ["DEFAULT_FEEDBACK_TEMPLATE", "Monitor", "Run"]

DEFAULT_FEEDBACK_TEMPLATE = "Wait, {feedback} Let me redo this step.\n"
_ANSWER_LINE = re.compile(r"\S[^\n]*\n")  # a forced answer is complete at the end of its first non-empty line


# Words that start a sentence with a capital only because they start it: "Wait, you made..." (never "I", names,
# acronyms or anything else, which keep their capital).
_COMMON_FIRST_WORDS = frozenset(
    "a an the this that these those it its there here you your we our they their he she his her my one some no not "
    "each every all both either neither if when while since because so but and or then now first next also let "
    "check recheck compute calculate recompute look note remember recall consider try use make keep be do did does "
    "is are was were what which who why how where please careful instead actually rather".split())


def _lower_first_word(text: str) -> str:
    """``text`` with its first word in lower case when that word is a common one written with a capital."""
    word = re.match(r"[A-Za-z]+", text)
    if word is None or not word.group().istitle() or word.group().lower() not in _COMMON_FIRST_WORDS:
        return text
    return text[0].lower() + text[1:]


class Monitor:
    """Runs a generator under watch of verifiers and governors.

    - ``feedback_template``: what is injected after a rollback; ``{feedback}`` is the verdict's feedback
      (ending in punctuation), ``{message}`` its message and ``{source}`` the verifier's name.
    - ``on_unresumable``: what to do when a rollback is due but the generator cannot resume from a prefix
      (a replay, a plain async iterator): ``"continue"`` records what would have been done and goes on,
      ``"stop"`` ends the run.
    - ``max_interventions`` and ``oscillation_limit`` configure the :class:`InterventionLimit` and
      :class:`OscillationGuard` governors added unless ``governors`` already holds one.
    - ``record``: a path to write the trace file of every run to (``run(record=...)`` overrides it).
    """

    def __init__(self, generator: Generator, verifiers: Sequence[Verifier | str] = (),
                 governors: Sequence[Governor] = (), *, feedback_template: str = DEFAULT_FEEDBACK_TEMPLATE,
                 on_unresumable: Literal["continue", "stop"] = "continue", max_interventions: int = 8,
                 oscillation_limit: int = 2, record: str | os.PathLike[str] | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        if not callable(getattr(generator, "stream", None)):
            raise ConfigError(f"generator {generator!r} has no stream(request) method")
        self.generator = generator
        self.verifiers = [self._resolve(v) for v in verifiers]
        names = [v.name for v in self.verifiers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"two verifiers share the name {duplicates[0]!r}; give one another name=")
        for g in governors:
            if not isinstance(g, Governor):
                raise ConfigError(f"governor {g!r} is not a monitor.Governor")
        self.governors = list(governors)
        if not any(isinstance(g, InterventionLimit) for g in self.governors):
            self.governors.append(InterventionLimit(max_interventions))
        if not any(isinstance(g, OscillationGuard) for g in self.governors):
            self.governors.append(OscillationGuard(oscillation_limit))
        for g in self.governors:
            g.validate(self.capabilities)  # e.g. EntropyStop on a backend without entropy: fail here, clearly
        try:
            feedback_template.format_map(collections.defaultdict(str))
        except (ValueError, IndexError) as exc:
            raise ConfigError(f"feedback_template {feedback_template!r} is not a valid format string: {exc}") from None
        self.feedback_template = feedback_template
        if on_unresumable not in ("continue", "stop"):
            raise ConfigError(f"on_unresumable must be 'continue' or 'stop', got {on_unresumable!r}")
        self.on_unresumable = on_unresumable
        self.record = record
        self.meta = dict(meta or {})

    @staticmethod
    def _resolve(v: Verifier | str) -> Verifier:
        if isinstance(v, str):
            from interlock.monitor.registry import create_verifier

            return create_verifier(v)
        if not isinstance(v, Verifier):
            raise ConfigError(f"{v!r} is not a Verifier (make one with @verifier or a Verifier subclass)")
        return v

    @property
    def capabilities(self) -> Capabilities:
        caps = getattr(self.generator, "capabilities", None)
        return caps if isinstance(caps, Capabilities) else Capabilities()

    async def run(self, prompt: str, *, record: str | os.PathLike[str] | None = None) -> RunResult:
        """Run to the end and return the result."""
        async with self.stream(prompt, record=record) as run:
            async for _ in run:
                pass
        return run.result

    @asynccontextmanager
    async def stream(self, prompt: str, *,
                     record: str | os.PathLike[str] | None = None) -> AsyncIterator[Run]:
        """Start a run; iterate the yielded :class:`Run` for its events. Leaving the block cancels it."""
        if not isinstance(prompt, str):
            raise ConfigError(f"prompt must be a string, got {type(prompt).__name__}")
        run = Run(self, prompt, record if record is not None else self.record)
        async with anyio.create_task_group() as tg:
            run._start(tg)
            try:
                yield run
            finally:
                if not run.finished:
                    tg.cancel_scope.cancel()


@dataclass(eq=False)
class _Check:
    id: int
    verifier: Verifier
    view: TraceView
    scope: anyio.CancelScope


class Run:
    """One monitored generation. Iterate it for events; ``result`` once it has finished."""

    def __init__(self, monitor: Monitor, prompt: str, record: str | os.PathLike[str] | None) -> None:
        self.monitor = monitor
        self.run_id = uuid.uuid4().hex[:12]
        self._prompt = prompt
        self.trace = Trace(prompt)
        self.scheduler = Scheduler(self.trace, monitor.verifiers)
        self.arbiter = Arbiter()
        self._caps = monitor.capabilities
        self._send, self._recv = anyio.create_memory_object_stream[Event](math.inf)
        self._checks: dict[int, _Check] = {}
        self._ids = itertools.count()
        self._verdicts: list[Verdict] = []
        self._interventions: list[Intervention] = []
        self._errors: list[str] = []
        self._stale = 0
        self._check_seconds = 0.0
        self._fork_tokens = 0
        self._claims: collections.Counter[tuple[str, str]] = collections.Counter()
        self._changed = anyio.Event()
        self._finished = anyio.Event()
        self._gen_scope: anyio.CancelScope | None = None
        self._decision_ready = False
        self._stop: tuple[StopReason, str, bool] | None = None
        self._extra: int | None = None  # tokens still allowed after a forced-answer injection
        self._forced: tuple[StopReason, str] | None = None  # why the answer was forced (ends the run)
        self._answer_from = 0  # where the forced answer starts in the trace
        self._probes: set[anyio.CancelScope] = set()  # governors' pending async decisions (fork probes)
        self._result: RunResult | None = None
        self._first_chunk: float | None = None
        self._t0 = time.perf_counter()
        self._tg: TaskGroup | None = None
        self._log = get_logger(run_id=self.run_id)
        self._debug = debug_enabled()
        self._writer = (TraceWriter(record, prompt=prompt, meta={"run_id": self.run_id, **monitor.meta})
                        if record is not None else None)

    # -- RunContext (what governors see) -------------------------------------------------------------
    @property
    def prompt(self) -> str:
        return self._prompt

    @property
    def text(self) -> str:
        return self.trace.text

    @property
    def epoch(self) -> int:
        return self.trace.epoch

    @property
    def tokens(self) -> TokenCounts:
        return TokenCounts(kept=self.trace.kept_tokens, discarded=self.trace.discarded_tokens,
                           fork=self._fork_tokens)

    @property
    def interventions(self) -> tuple[Intervention, ...]:
        return tuple(self._interventions)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def forcing_answer(self) -> bool:
        return self._forced is not None

    def fork_at(self, end: int | None = None) -> Forker | None:
        return functools.partial(self._fork, self.trace.text[:end]) if self._caps.fork else None

    # -- public API ----------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def result(self) -> RunResult:
        if self._result is None:
            raise RuntimeError("the run has not finished: iterate it or await run.wait() first")
        return self._result

    async def wait(self, timeout: float | None = None) -> RunResult:
        """Wait for the run to end and return its result."""
        with anyio.fail_after(timeout):
            await self._finished.wait()
        return self.result

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        async for event in self._recv:
            yield event

    async def barrier(self, timeout: float = 60.0) -> None:
        """Wait until every check of the trace so far has finished; raise :class:`ViolationError` if one failed.

        Violations that a rollback has already removed from the trace do not count. Raises ``TimeoutError``
        after ``timeout`` seconds.
        """
        waiting = set(self._checks)
        with anyio.fail_after(timeout):
            while not self.finished and (waiting & self._checks.keys() or self._decision_ready):
                await self._changed.wait()
        violations = self._open_violations()
        if violations:
            raise ViolationError(violations)

    # -- internals -----------------------------------------------------------------------------------
    def _start(self, tg: TaskGroup) -> None:
        self._tg = tg
        tg.start_soon(self._drive)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _emit(self, event: Event) -> None:
        event = dataclasses.replace(event, t=self.elapsed)
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._send.send_nowait(event)
        if isinstance(event, ChunkAppended):
            if self._writer is not None:
                self._writer.chunk(event.chunk, event.t)
            if self._debug:
                self._log.debug(event.kind, **event.to_dict())
            return
        record = event.to_dict()
        if self._writer is not None and not isinstance(event, RunFinished):
            self._writer.event(record)
        self._log.info(event.kind, **{k: v for k, v in record.items() if k != "kind"})

    def _allowance(self) -> int | None:
        limits = [a for g in self.monitor.governors if (a := g.token_allowance(self)) is not None]
        if self._extra is not None:  # a forced answer gets its few tokens, within every hard cap
            limits.append(self._extra)
        return min(limits) if limits else None

    async def _drive(self) -> None:
        reason = StopReason.CANCELLED
        detail = ""
        abstain = False
        try:
            for g in self.monitor.governors:
                g.start(self)
            self._emit(RunStarted(run_id=self.run_id, prompt=self._prompt))
            while True:
                ended = await self._generate()
                if ended == "again":
                    continue
                self._cancel_probes()  # a probe about text being cut, or after generation ended, is moot
                if ended == "decision":
                    candidate = self._take_decision()
                    if candidate is None or self._apply(candidate):
                        continue
                    break
                self._schedule(final=True)
                await self._quiesce()
                candidate = self._take_decision()
                if candidate is not None and self._apply(candidate):
                    continue
                break
            if self._stop is not None:
                reason, detail, abstain = self._stop
            else:
                reason = StopReason.COMPLETE
        except GeneratorError as exc:
            reason, detail = StopReason.ERROR, str(exc)
            self._errors.append(detail)
        except Exception as exc:
            reason, detail = StopReason.ERROR, f"generator failed: {type(exc).__name__}: {exc}"
            self._errors.append(detail)
        finally:
            for check in list(self._checks.values()):
                check.scope.cancel()
            self._cancel_probes()
            self._finish(reason, detail, abstain)

    def _finish(self, reason: StopReason, detail: str, abstain: bool) -> None:
        for g in self.monitor.governors:
            g.on_end(self)
        self._result = RunResult(
            run_id=self.run_id, prompt=self._prompt, text=self.trace.text, stop_reason=reason,
            verdicts=tuple(self._verdicts), interventions=tuple(self._interventions), tokens=self.tokens,
            wall_seconds=self.elapsed, first_chunk_seconds=self._first_chunk, check_seconds=self._check_seconds,
            epochs=self.trace.epoch + 1, detail=detail, abstained=abstain, stale_verdicts=self._stale,
            errors=tuple(self._errors), open_violations=self._open_violations())
        self._emit(RunFinished(result=self._result))
        if self._writer is not None:
            self._writer.end({"stop_reason": reason.value, "detail": detail, "text": self.trace.text,
                              "tokens": self.tokens.to_dict(), "passed": self._result.passed,
                              "t": round(self.elapsed, 6)})
        self._send.close()
        self._finished.set()
        self._notify()

    def _open_violations(self) -> tuple[Verdict, ...]:
        closed = {v.name for v in self.monitor.verifiers if v.fail_closed}
        return tuple(v for v in self._verdicts
                     if (isinstance(v, Fail) or (isinstance(v, Unknown) and v.verifier in closed))
                     and self.trace.still_valid(v.epoch, v.span))

    async def _generate(self) -> Literal["decision", "end", "stop", "again"]:
        if self._stop is not None:
            return "stop"
        allowance = self._allowance()
        if allowance is not None and allowance <= 0:
            self._exhausted()
            if self._stop is not None:
                return "stop"
            allowance = self._allowance()
        forcing = self._forced is not None
        crossed = False
        produced = 0
        finish: str | None = None  # the last chunk's finish_reason: "length" = the generator's own limit
        request = GenerationRequest(self._prompt, prefix=self.trace.text, max_new_tokens=allowance)
        with anyio.CancelScope() as scope:
            self._gen_scope = scope
            if self._decision_ready:
                scope.cancel()
            stream = self.monitor.generator.stream(request)
            try:
                async for chunk in stream:
                    if not isinstance(chunk, Chunk):
                        raise GeneratorError(f"generator yielded {type(chunk).__name__}, not a monitor.Chunk")
                    if not self._accept(chunk):
                        crossed = True
                        break
                    produced += chunk.n_tokens
                    finish = chunk.finish_reason
                    if self._decision_ready or self._stop is not None or (self._forced is not None and not forcing):
                        break
            finally:
                self._gen_scope = None
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    with anyio.move_on_after(5, shield=True):
                        await aclose()
        if self._decision_ready:
            return "decision"
        if self._stop is not None:
            return "stop"
        if self._forced is not None:
            if forcing:  # the forced answer's stream ended: so does the run
                self._stop = (*self._forced, False)
                return "stop"
            return "again"  # an answer prefix was injected: generate the answer after it
        if crossed:  # a chunk would have crossed a cap and another governor's share was topped up
            return "again"
        if allowance is not None and produced >= allowance and (self._allowance() or 0) > 0:
            return "again"  # the stream stopped at max_new_tokens and a governor has allowed more since
        allowance = self._allowance()
        if allowance is not None and allowance <= 0:  # the generator stopped at max_new_tokens
            self._exhausted()
            return "stop" if self._stop is not None else "again"
        if finish == "length":  # cut by the generator's own limit, not ours: its last step is cut like a budget stop
            self._stop = (StopReason.LENGTH, "the generator stopped at its own token limit (max_new_tokens)", False)
            return "stop"
        return "end"

    def _accept(self, chunk: Chunk) -> bool:
        if chunk.injected:  # a replay playing back what a monitor wrote: append it unchecked
            self._inject(chunk.text)
            return True
        allowance = self._allowance()
        if allowance is not None and chunk.n_tokens > allowance:
            self._exhausted(chunk.n_tokens)
            return False
        if (self._forced is not None and chunk.text.lstrip(" \t").startswith("\n")
                and self.trace.text[self._answer_from:].strip()):
            self._stop = (*self._forced, False)  # the forced answer's line is complete: the next one is not kept
            return True
        if self._first_chunk is None:
            self._first_chunk = self.elapsed
        position = len(self.trace)
        self.trace.append(chunk)
        if self._extra is not None:
            self._extra -= chunk.n_tokens
        self._emit(ChunkAppended(chunk=chunk, position=position, epoch=self.trace.epoch))
        for g in self.monitor.governors:
            decision = g.on_chunk(self, chunk)
            if inspect.isawaitable(decision):
                self._start_probe(g, decision)
            elif decision is not None:
                self._governor_decision(g, decision)
        if self._forced is not None and self._stop is None and _ANSWER_LINE.search(self.trace.text, self._answer_from):
            self._stop = (*self._forced, False)  # the forced answer ends with its first line
        self._schedule()
        return True

    def _exhausted(self, need: int = 1) -> None:
        """A governor allows fewer than ``need`` more tokens: force the answer if it asks to, else stop."""
        if self._forced is not None:
            self._stop = (*self._forced, False)
            return
        for g in self.monitor.governors:
            allowance = g.token_allowance(self)
            if allowance is None or allowance >= need:
                continue
            decision = g.on_exhausted(self)
            self._emit(GovernorDecided(governor=g.name, action=(decision.action.value if decision else "stop"),
                                       reason=decision.reason if decision else "token budget exhausted",
                                       tokens_saved=0))
            if decision is not None and decision.inject is not None and self._force_answer(g, decision):
                return
            self._stop = (*self._forced, False) if self._forced else (
                StopReason.BUDGET, f"{g.name}: token budget exhausted", False)
            return
        # Every governor allows ``need`` tokens again (a pool topped a share up): generation goes on.

    def _force_answer(self, g: Governor, d: GovernorDecision) -> bool:
        """Inject ``d.inject`` (end of thinking, answer prefix) and allow ``d.allow_tokens`` more, within every
        cap; the run ends after the answer's first line. False when no token is left for the answer."""
        assert d.inject is not None
        self._forced = (d.stop_reason, f"{g.name}: {d.reason}; the answer was forced")
        self._extra = max(0, d.allow_tokens or 0)
        self._inject(d.inject)
        self._answer_from = len(self.trace)
        return (self._allowance() or 0) > 0

    def _start_probe(self, g: Governor, pending: Awaitable[GovernorDecision | None]) -> None:
        """A governor's decision that needs a wait (a fork probe) runs beside generation; it is dropped if the
        trace was cut or generation ended meanwhile."""
        assert self._tg is not None
        scope = anyio.CancelScope()
        self._probes.add(scope)
        self._tg.start_soon(self._probe, g, pending, scope, self.trace.epoch, name=f"governor {g.name} probe")

    async def _probe(self, g: Governor, pending: Awaitable[GovernorDecision | None], scope: anyio.CancelScope,
                     epoch: int) -> None:
        decision = None
        with scope:
            decision = await pending
        self._probes.discard(scope)
        if (decision is None or scope.cancel_called or self._stop is not None or self._forced is not None
                or self.trace.epoch != epoch):
            return
        self._governor_decision(g, decision)
        if (self._stop is not None or self._forced is not None) and self._gen_scope is not None:
            self._gen_scope.cancel()  # stop now, and never append the old stream's text after an injection

    def _cancel_probes(self) -> None:
        for scope in self._probes:
            scope.cancel()
        self._probes.clear()

    def _inject(self, text: str) -> None:
        position = len(self.trace)
        self.trace.inject(text)
        self.scheduler.injected()
        self._emit(FeedbackInjected(text=text, position=position, epoch=self.trace.epoch))

    def _governor_decision(self, g: Governor, d: GovernorDecision) -> None:
        saved = d.tokens_saved
        forcing = d.action is Action.STOP and d.inject is not None and (d.allow_tokens or 0) > 0
        if saved is None and d.action in (Action.STOP, Action.INTERRUPT):
            left = self._allowance()  # estimate: the budget left when the governor ended the run
            if left is not None:
                saved = max(0, left - (d.allow_tokens or 0 if forcing else 0))
        self._emit(GovernorDecided(governor=g.name, action=d.action.value, reason=d.reason, tokens_saved=saved))
        end = len(self.trace)
        if d.action is Action.WARN:
            return
        if d.action is Action.ROLLBACK:
            position = end if d.position is None else max(0, min(d.position, end))
            self.arbiter.add(Candidate(position=position, action=Action.ROLLBACK, source=g.name,
                                       span=Span(position, end), epoch=self.trace.epoch, feedback=d.inject or "",
                                       message=d.reason, claim=d.reason))
            self._settle()
            return
        if forcing:
            if self._forced is None and not self._force_answer(g, d) and self._forced is not None:
                self._stop = (*self._forced, False)
            return  # (an answer already being forced goes on)
        self._record(Intervention(action=d.action, source=g.name, position=end, span=Span(end, end),
                                  epoch=self.trace.epoch, message=d.reason, reason=d.reason))
        self._stop = (d.stop_reason, f"{g.name}: {d.reason}", d.abstain)

    def _schedule(self, *, final: bool = False) -> None:
        assert self._tg is not None
        # a run stopped by a budget or a governor may end mid-step ("= 1" of "= 1536"): its last step is cut
        for verifier, due in self.scheduler.advance(final=final, cut=final and self._stop is not None):
            check_id = next(self._ids)
            fork = (functools.partial(self._fork, self.trace.text[:due.end])
                    if self._caps.fork else None)
            view = self.trace.view(due.end, due.step, final=due.final, fork=fork)
            check = _Check(check_id, verifier, view, anyio.CancelScope())
            self._checks[check_id] = check
            self.arbiter.open(check_id, due.step.span.start)
            self._tg.start_soon(self._run_check, check, name=f"check {verifier.name} #{check_id}")

    async def _fork(self, base: str, suffix: str, max_tokens: int) -> str:
        request = GenerationRequest(self._prompt, prefix=base + suffix, max_new_tokens=max_tokens,
                                    purpose="fork", greedy=True)
        pieces: list[str] = []
        produced = 0
        left = self._allowance()  # fork tokens count towards every total cap
        if left is not None:
            max_tokens = min(max_tokens, left)
            if max_tokens <= 0:
                return ""
            request = dataclasses.replace(request, max_new_tokens=max_tokens)
        stream = self.monitor.generator.stream(request)
        try:
            async for chunk in stream:
                left = self._allowance()
                if left is not None and chunk.n_tokens > left:
                    break
                pieces.append(chunk.text)
                produced += chunk.n_tokens
                self._fork_tokens += chunk.n_tokens
                if produced >= max_tokens:
                    break
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with anyio.move_on_after(5, shield=True):
                    await aclose()
        return "".join(pieces)

    async def _run_check(self, check: _Check) -> None:
        outcome = None
        with check.scope:
            outcome = await run_check(check.verifier, check.view)
        self._checks.pop(check.id, None)
        if outcome is None:  # cancelled: a rollback removed the text it was about
            self.arbiter.close(check.id)
            self._settle()
            self._notify()
            return
        self._check_seconds += outcome.seconds
        if outcome.error is not None:
            self._errors.append(f"{check.verifier.name}: {outcome.error}")
            self._emit(VerifierError(verifier=check.verifier.name, error=outcome.error))
        candidates: list[Candidate] = []
        for verdict in outcome.verdicts:
            stale = not self.trace.still_valid(verdict.epoch, verdict.span)
            self._emit(VerdictReceived(verdict=verdict, seconds=outcome.seconds, stale=stale))
            if stale:
                self._stale += 1
                continue
            self._verdicts.append(verdict)
            candidate = self._candidate(check.verifier, verdict)
            if candidate is not None:
                candidates.append(candidate)
        self.arbiter.close(check.id, candidates)
        self._settle()
        self._notify()

    def _candidate(self, verifier: Verifier, verdict: Verdict) -> Candidate | None:
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

    def _settle(self) -> None:
        """Apply what needs no new generation (warnings, reports of rollbacks a replay cannot make); wake the
        driver for the rest."""
        while (candidate := self.arbiter.decide()) is not None:
            if candidate.action is Action.WARN:
                self.arbiter.remove(candidate)
                self._record(self._intervention(candidate))
                continue
            if (candidate.action is Action.ROLLBACK and not self._caps.resumable
                    and self.monitor.on_unresumable == "continue"):
                self.arbiter.remove(candidate)
                self._record(dataclasses.replace(self._intervention(candidate), applied=False,
                                                 reason="the generator cannot resume from a prefix"))
                continue
            self._decision_ready = True
            if self._gen_scope is not None:
                self._gen_scope.cancel()
            break
        self._notify()

    def _take_decision(self) -> Candidate | None:
        self._decision_ready = False
        self._settle()
        self._decision_ready = False
        return self.arbiter.decide()

    async def _quiesce(self) -> None:
        """After generation: wait for the checks still running, or for a decision that needs the driver."""
        while self._checks and not self._decision_ready:
            await self._changed.wait()

    def _intervention(self, c: Candidate) -> Intervention:
        return Intervention(action=c.action, source=c.source, position=c.position, span=c.span, epoch=c.epoch,
                            message=c.message, feedback=c.feedback,
                            repeat=self._claims[normalise_claim(c.source, c.claim or c.message)])

    def _record(self, intervention: Intervention) -> None:
        self._interventions.append(intervention)
        self._emit(Intervened(intervention=intervention))

    def _apply(self, c: Candidate) -> bool:
        """Act on a decision; True when generation should go on."""
        self.arbiter.remove(c)
        proposal = self._intervention(c)
        if c.action is not Action.ROLLBACK:
            self._record(proposal)
            self._stop = (StopReason.INTERRUPTED, f"{c.source}: {c.message}", c.abstain)
            self.arbiter.clear()
            return False
        if self._stop is not None:
            self._record(dataclasses.replace(proposal, applied=False, reason="the run is already stopping"))
            return False
        if self._forced is not None:  # out of budget: the forced answer goes on, the violation stays open
            self._record(dataclasses.replace(proposal, applied=False, reason="the answer is being forced"))
            return True
        if not self._caps.resumable:
            self._record(dataclasses.replace(proposal, applied=False,
                                             reason="the generator cannot resume from a prefix"))
            self._stop = (StopReason.UNRESUMABLE, f"{c.source}: {c.message}", False)
            return False
        allowance = self._allowance()
        if allowance is not None and allowance <= 0:
            self._record(dataclasses.replace(proposal, applied=False, reason="no token budget left to regenerate"))
            self._exhausted()  # a budget that forces the answer gets it written now
            if self._stop is None and self._forced is not None:
                return True
            self._stop = (StopReason.BUDGET, "token budget exhausted before a rollback could regenerate", False)
            return False
        for g in self.monitor.governors:
            d = g.on_intervention(self, proposal)
            if d is None:
                continue
            if d.action in (Action.INTERRUPT, Action.STOP):
                self._emit(GovernorDecided(governor=g.name, action=d.action.value, reason=d.reason,
                                           tokens_saved=d.tokens_saved if d.tokens_saved is not None else allowance))
                self._record(dataclasses.replace(proposal, action=d.action, reason=d.reason, applied=True))
                self._stop = (d.stop_reason, f"{g.name}: {d.reason}", d.abstain)
                self.arbiter.clear()
                return False
            if d.feedback is not None:
                proposal = dataclasses.replace(proposal, feedback=d.feedback, reason=d.reason)
        self._claims[normalise_claim(c.source, c.claim or c.message)] += 1
        self._cut(proposal)
        return True

    def _cut(self, proposal: Intervention) -> None:
        pos = proposal.position
        before = self.trace.discarded_tokens
        removed = self.trace.cut(pos)
        for check in list(self._checks.values()):
            if check.view.end > pos:
                check.scope.cancel()
                self.arbiter.close(check.id)
                del self._checks[check.id]
        self.arbiter.cut(pos)
        self.scheduler.cut(pos)
        feedback = self._format_feedback(proposal)
        self._record(dataclasses.replace(proposal, feedback=feedback, removed_text=removed,
                                         tokens_discarded=self.trace.discarded_tokens - before))
        if feedback:
            self._inject(feedback)
        self._notify()

    def _format_feedback(self, proposal: Intervention) -> str:
        text = proposal.feedback.strip()
        if not text:
            return ""
        if text[-1] not in ".!?)\"'":
            text += "."
        template = self.monitor.feedback_template
        at = template.find("{feedback}")
        if at > 0 and template[:at].rstrip().endswith(","):  # "Wait, {feedback}": the feedback goes on a sentence
            text = _lower_first_word(text)
        values = collections.defaultdict(str, feedback=text, message=proposal.message, source=proposal.source)
        return self.monitor.feedback_template.format_map(values)
