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
import inspect
import math
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import anyio
import sniffio
from anyio.abc import TaskGroup
from interlock.monitor import telemetry
from interlock.monitor.checks import Checks
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError, GeneratorError
from interlock.monitor.events import ChunkAppended, Event, FeedbackInjected, RunFinished, RunStarted
from interlock.monitor.generation import Capabilities, GenerationRequest, Generator
from interlock.monitor.governor import Governor, InterventionLimit, OscillationGuard, uses_hook
from interlock.monitor.interventions import Interventions, Stop
from interlock.monitor.logs import debug_enabled, get_logger, info_enabled
from interlock.monitor.phases import ANSWER, THINKING, Phase, PhaseRuns
from interlock.monitor.result import Intervention, Restart, RunResult, StopReason, TokenCounts
from interlock.monitor.trace import Forker, Trace
from interlock.monitor.tracefile import TraceWriter
from interlock.monitor.verdicts import Pass, Span, ViolationError
from interlock.monitor.verifier import Verifier

if TYPE_CHECKING:
    from interlock.monitor.spans import RunSpans
    from opentelemetry.trace import TracerProvider

__all__ = ["DEFAULT_FEEDBACK_TEMPLATE", "DEFAULT_RESTART_TEMPLATE", "Fork", "Monitor", "Run"]

DEFAULT_FEEDBACK_TEMPLATE = "Wait, {feedback} Let me redo this step.\n"
DEFAULT_RESTART_TEMPLATE = "{prompt}\n\nEstablished so far (checked):\n{state}\n"
_ANSWER_LINE = re.compile(r"\S[^\n]*\n")  # a forced answer is complete at the end of its first non-empty line
_ChunkRecord = tuple[Chunk, int, int, float]  # a queued ChunkAppended: chunk, position, epoch, t


class Monitor:
    """Runs a generator under watch of verifiers and governors.

    - ``feedback_template``: what is injected after a rollback; ``{feedback}`` is the verdict's feedback
      (ending in punctuation), ``{message}`` its message and ``{source}`` the verifier's name.
    - ``on_unresumable``: what to do when a rollback is due but the generator cannot resume from a prefix
      (a replay, a plain async iterator): ``"continue"`` records what would have been done and goes on,
      ``"stop"`` ends the run.
    - ``max_interventions`` and ``oscillation_limit`` configure the :class:`InterventionLimit` and
      :class:`OscillationGuard` governors added unless ``governors`` already holds one.
    - ``record``: a path to write the trace file of every run to (``run(record=...)`` overrides it; with
      restarts it holds every attempt, each abandoned one followed by a ``restart`` event).
    - ``max_restarts``: how many times a governor's ``restart`` may start a fresh attempt in :meth:`run`
      (past it a restart is a stop). The next attempt's prompt is ``restart_template`` filled with the
      original ``{prompt}`` and the ``{state}`` of the abandoned attempt: ``restart_state(result)`` if given,
      else :meth:`Run.verified_claims` (the text of every check that passed and is still in the trace, before
      the point the restarting governor names); with no
      state the original prompt is used again. Tokens of abandoned attempts count as discarded.
    - ``tracer_provider``: trace this monitor's runs to this OpenTelemetry provider (default: only when
      ``interlock.telemetry.enable()`` turned tracing on; see :mod:`interlock.monitor.telemetry`).
    """

    def __init__(self, generator: Generator, verifiers: Sequence[Verifier | str] = (),
                 governors: Sequence[Governor] = (), *, feedback_template: str = DEFAULT_FEEDBACK_TEMPLATE,
                 on_unresumable: Literal["continue", "stop"] = "continue", max_interventions: int = 8,
                 oscillation_limit: int = 2, record: str | os.PathLike[str] | None = None,
                 meta: dict[str, Any] | None = None, max_restarts: int = 2,
                 restart_state: Callable[[RunResult], str | None] | None = None,
                 restart_template: str = DEFAULT_RESTART_TEMPLATE,
                 tracer_provider: TracerProvider | None = None) -> None:
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
        if max_restarts < 0:
            raise ConfigError(f"max_restarts must be >= 0, got {max_restarts}")
        if restart_state is not None and not callable(restart_state):
            raise ConfigError(f"restart_state must be a function of the abandoned attempt's RunResult, got "
                              f"{restart_state!r}")
        try:
            restart_template.format(prompt="", state="")
        except (KeyError, ValueError, IndexError) as exc:
            raise ConfigError(f"restart_template {restart_template!r} may only use {{prompt}} and {{state}}: "
                              f"{exc}") from None
        self.max_restarts = max_restarts
        self.restart_state = restart_state
        self.restart_template = restart_template
        self.tracer_provider = tracer_provider

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
        """Run to the end and return the result; a governor's ``restart`` ends an attempt and this starts the
        next (see ``max_restarts``), recording each abandoned attempt in ``result.restarts``."""
        spans = self._spans(prompt, end_on_finish=False)  # one span for every attempt (None: tracing is off)
        try:
            result = await self._attempts(prompt, record, spans)
        except BaseException as exc:
            if spans is not None:
                spans.end(error_type="cancelled" if isinstance(exc, anyio.get_cancelled_exc_class())
                          else type(exc).__qualname__, error_message=str(exc))
            raise
        if spans is not None:
            spans.finish(result)
            spans.end()
        return result

    async def _attempts(self, prompt: str, record: str | os.PathLike[str] | None,
                        spans: RunSpans | None) -> RunResult:
        restarts: list[Restart] = []
        attempt_prompt = prompt
        carried = TokenCounts()
        started = time.perf_counter()
        writer: TraceWriter | None = None  # one trace file for every attempt
        try:
            while True:
                # Nobody reads this run's events: it does not queue them, nor build one per chunk.
                async with self._open(attempt_prompt, record=record, events=False, carried=carried,
                                      restarts_left=self.max_restarts - len(restarts), spans=spans, writer=writer,
                                      restartable=True) as run:
                    await run.wait()
                writer = run.trace_writer
                result = run.result
                if result.stop_reason is not StopReason.RESTART:
                    break
                state = self._carried_state(result, run)
                own = TokenCounts(kept=result.tokens.kept, discarded=result.tokens.discarded - carried.discarded,
                                  fork=result.tokens.fork - carried.fork)
                attempt_prompt = self.restart_template.format(prompt=prompt, state=state) if state else prompt
                restarts.append(Restart(attempt=len(restarts) + 1, source=run.stop_source, reason=result.detail,
                                        state=state, prompt=attempt_prompt, text=result.text, tokens=own))
                if writer is not None:  # the next attempt goes on in the same file, after this line
                    record_of = {k: v for k, v in restarts[-1].to_dict().items() if k != "text"}
                    writer.event({"kind": "restart", **record_of, "t": round(writer.elapsed(), 6)})
                carried = TokenCounts(discarded=result.tokens.kept + result.tokens.discarded,
                                      fork=result.tokens.fork)
        finally:
            if writer is not None:
                writer.close()  # the last attempt wrote the end line; cancelled between attempts, the file ends here
        if not restarts:
            return result
        return dataclasses.replace(result, prompt=prompt, restarts=tuple(restarts),
                                   wall_seconds=time.perf_counter() - started)

    def _carried_state(self, result: RunResult, run: Run) -> str:
        if self.restart_state is None:
            return run.verified_claims(run.stop_position)
        state = self.restart_state(result)
        if state is not None and not isinstance(state, str):
            raise ConfigError(f"restart_state returned {type(state).__name__}, not a string or None")
        return (state or "").strip()

    @asynccontextmanager
    async def stream(self, prompt: str, *, record: str | os.PathLike[str] | None = None,
                     spans: RunSpans | None = None) -> AsyncIterator[Run]:
        """Start a run; iterate the yielded :class:`Run` for its events. Leaving the block cancels it.

        ``spans``: the run's tracing, made by a caller that ends the span itself (the proxy); by default the
        monitor traces the run when tracing is on, and the run span is the current span inside the block."""
        async with self._open(prompt, record=record, events=True, carried=TokenCounts(),
                              restarts_left=self.max_restarts, spans=spans) as run:
            yield run

    def _spans(self, prompt: str, *, end_on_finish: bool) -> RunSpans | None:
        """The tracing of a run, or None when tracing is off (the only cost a run pays then)."""
        tracer = telemetry.get_tracer(self.tracer_provider)
        if tracer is None:
            return None
        from interlock.monitor.spans import RunSpans, describe_generator

        return RunSpans(tracer, describe_generator(self.generator, self.meta), end_on_finish=end_on_finish,
                        capture_content=telemetry.capture_content())

    @asynccontextmanager
    async def _open(self, prompt: str, *, record: str | os.PathLike[str] | None, events: bool,
                    carried: TokenCounts, restarts_left: int, spans: RunSpans | None = None,
                    writer: TraceWriter | None = None, restartable: bool = False) -> AsyncIterator[Run]:
        if not isinstance(prompt, str):
            raise ConfigError(f"prompt must be a string, got {type(prompt).__name__}")
        if spans is None:
            spans = self._spans(prompt, end_on_finish=True)
        run = Run(self, prompt, record if record is not None else self.record, events=events, carried=carried,
                  restarts_left=restarts_left, spans=spans, writer=writer,
                  restartable=restartable)
        token = spans.activate() if spans is not None else None
        try:
            async with anyio.create_task_group() as tg:
                run._start(tg)
                try:
                    yield run
                finally:
                    if not run.finished:
                        tg.cancel_scope.cancel()
        finally:
            if spans is not None:
                spans.deactivate(token)


class Fork:
    """A :class:`~interlock.monitor.trace.Forker` at a point of a run's trace: side questions to the model about
    the trace up to there, which never enter it (their tokens count as fork tokens).

    ``await fork(suffix, max_tokens)`` continues in the phase of the text before the fork point, so a fork in a
    thinking is a fork *inside* the thinking; ``answer="..."`` ends the thinking after ``suffix`` (the closing tag
    where the backend keeps tags in its text, the reasoning field where the server has one) and starts the answer
    with ``answer``. :meth:`chunks` returns the fork's chunks (logprobs and entropy included) instead of its text.
    """

    def __init__(self, run: Run, end: int | None) -> None:
        self._run = run
        self.end = len(run.trace) if end is None else max(0, min(end, len(run.trace)))
        self.epoch = run.trace.epoch

    def request(self, suffix: str, max_tokens: int, *, answer: str | None = None) -> GenerationRequest:
        """The request this fork sends (what a test or a probe cache keys on)."""
        trace = self._run.trace
        if not trace.still_valid(self.epoch, Span(0, self.end)):
            raise GeneratorError("this fork's text was rolled back: the trace no longer holds it")
        return self._run.fork_request(self.end, suffix, max_tokens, answer=answer)

    async def chunks(self, suffix: str, max_tokens: int, *, answer: str | None = None) -> list[Chunk]:
        return await self._run.fork_chunks(self.request(suffix, max_tokens, answer=answer))

    async def __call__(self, suffix: str, max_tokens: int, /, *, answer: str | None = None) -> str:
        return "".join(c.text for c in await self.chunks(suffix, max_tokens, answer=answer))


class Run:
    """One monitored generation. Iterate it for events; ``result`` once it has finished.

    The run is three parts, one file each: this class drives the generator (``_drive``: generate, accept each
    chunk, hand new text to the checks, stop when a decision needs applying), :class:`~.checks.Checks` schedules
    and runs the verifiers' checks and collects their verdicts for the arbiter, and
    :class:`~.interventions.Interventions` applies decisions (rollback, interrupt, stop, a forced answer).
    """

    def __init__(self, monitor: Monitor, prompt: str, record: str | os.PathLike[str] | None, *,
                 events: bool = True, carried: TokenCounts | None = None, restarts_left: int = 0,
                 spans: RunSpans | None = None, writer: TraceWriter | None = None,
                 restartable: bool = False) -> None:
        self.monitor = monitor
        self.carried = carried or TokenCounts()  # earlier attempts abandoned by restarts: counted as discarded
        self.restarts_left = restarts_left
        self.restartable = restartable  # Monitor.run starts the next attempt after a restart; a stream cannot
        self.stop_source = ""  # who ended the run (a restart is recorded with it)
        self.stop_position: int | None = None  # where a restart's trouble began
        self.run_id = uuid.uuid4().hex[:12]
        self._prompt = prompt
        self.trace = Trace(prompt)
        self._caps = monitor.capabilities
        self.checks = Checks(self, monitor.verifiers)
        self.intervener = Interventions(self)
        self.errors: list[str] = []
        # The queue of events for whoever iterates the run (``events=False``: nobody will). A chunk is queued as
        # a plain tuple and becomes a ChunkAppended only when read: most chunks are never looked at one by one.
        self._events_wanted = events
        self._send, self._recv = anyio.create_memory_object_stream[Event | _ChunkRecord](math.inf)
        # Only the governors that use the per-chunk hooks are called per chunk (the default two use neither).
        self._capping = [g for g in monitor.governors if uses_hook(g, "token_allowance")]
        self._watching = [g for g in monitor.governors if uses_hook(g, "on_chunk")]
        self._thinking_capping = [g for g in monitor.governors if uses_hook(g, "thinking_allowance")]
        self._fork_tokens = 0
        self._changed = anyio.Event()
        self._watchers = 0  # tasks waiting for _changed: with none, a notification has nobody to wake
        self._finished = anyio.Event()
        self._gen_scope: anyio.CancelScope | None = None
        self._result: RunResult | None = None
        self._first_chunk: float | None = None
        self._generator_cut = False  # the last stream ended at the generator's own token limit
        self._t0 = time.perf_counter()
        self._tg: TaskGroup | None = None
        self._log = get_logger(run_id=self.run_id)
        self._debug = debug_enabled()
        # The trace file; a restarted attempt goes on in its predecessor's, on the same clock.
        self._writer = writer if writer is not None else (
            TraceWriter(record, prompt=prompt, meta={"run_id": self.run_id, **monitor.meta}, started=self._t0)
            if record is not None else None)
        self._t_base = self._t0 - writer.started if writer is not None else 0.0
        self._observed = events or self._writer is not None or self._debug  # someone wants each chunk
        self.on_asyncio = False  # checks dispatch without a task on asyncio only (set when the run starts)
        self.spans = spans  # the run's tracing (None: off): it sees every event and every check
        if spans is not None:
            spans.bind(self)

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
        return TokenCounts(kept=self.trace.kept_tokens, discarded=self.trace.discarded_tokens + self.carried.discarded,
                           fork=self._fork_tokens + self.carried.fork, thinking=self.trace.thinking_tokens)

    @property
    def phase(self) -> Phase:
        """The phase the trace is in: ``"thinking"`` while a reasoning model thinks, else ``"answer"``."""
        return self.trace.phase

    @property
    def interventions(self) -> tuple[Intervention, ...]:
        return tuple(self.intervener.records)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def forcing_answer(self) -> bool:
        return self.intervener.forced is not None

    def fork_at(self, end: int | None = None) -> Forker | None:
        return Fork(self, end) if self._caps.fork else None

    # -- public API ----------------------------------------------------------------------------------
    @property
    def trace_writer(self) -> TraceWriter | None:
        """The trace file this run writes to (``record=``), or None."""
        return self._writer

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
        async for item in self._recv:
            if isinstance(item, tuple):
                chunk, position, epoch, t = item
                yield ChunkAppended(chunk=chunk, position=position, epoch=epoch, t=t)
            else:
                yield item

    async def barrier(self, timeout: float = 60.0) -> None:
        """Wait until the text so far has been checked; raise :class:`ViolationError` if a check failed.

        The barrier waits for every check already running and for the checks of the step still being written,
        run now as if that step had ended (as at the end of a run), and for a decision those checks made due to be
        applied (a rollback). Violations that a rollback has already removed from the trace do not count: a caller
        that acted on text must see whether it is still there (:func:`~interlock.guard_tool` does). Raises
        ``TimeoutError`` after ``timeout`` seconds.
        """
        with anyio.fail_after(timeout):
            self.checks.schedule_provisional()
            running = self.checks.running
            waiting = set(running)
            while not self.finished and (waiting & running.keys() or self.intervener.decision_ready):
                await self._wait_changed()
        violations = self.checks.barrier_violations()
        if violations:
            raise ViolationError(violations)

    def verified_claims(self, upto: int | None = None) -> str:
        """The state a restart carries by default: the text of each passed check still in the trace (and ending
        by ``upto``, where the trouble began), one per line, in trace order, without repeats: what a verifier
        vouched for, none of the reasoning around it."""
        claims: list[str] = []
        end = len(self.trace) if upto is None else upto
        passed = [v for v in self.checks.verdicts if isinstance(v, Pass) and v.span is not None and len(v.span)
                  and v.span.end <= end and self.trace.still_valid(v.epoch, v.span)]
        for v in sorted(passed, key=lambda v: v.span.start if v.span is not None else 0):
            assert v.span is not None
            claim = self.trace.text[v.span.start:v.span.end].strip()
            if claim and claim not in claims:
                claims.append(claim)
        return "\n".join(claims)

    # -- shared by the parts -------------------------------------------------------------------------
    @property
    def task_group(self) -> TaskGroup:
        assert self._tg is not None, "the run has not started"
        return self._tg

    def notify(self) -> None:
        """Wake whoever waits for a check to finish or a decision to be taken (the barrier, the driver)."""
        if self._watchers:  # (a waiter checks its condition and starts waiting without yielding in between)
            self._changed.set()
            self._changed = anyio.Event()

    async def _wait_changed(self) -> None:
        self._watchers += 1
        try:
            await self._changed.wait()
        finally:
            self._watchers -= 1

    def stop_generation(self) -> None:
        """Make the driver stop reading the generator now (a decision is due)."""
        if self._gen_scope is not None:
            self._gen_scope.cancel()

    @property
    def emits_events(self) -> bool:
        """Whether an event emitted now would reach anyone (a reader, the trace file, the log): when not, the
        parts do not build it."""
        return self._events_wanted or self._writer is not None or info_enabled()

    def emit(self, event: Event) -> None:
        """Time-stamp an event and hand it to whoever wants it: the run's readers, the trace file, the log."""
        if isinstance(event, ChunkAppended):
            self._chunk_appended(event.chunk, event.position, event.epoch)
            return
        if self.spans is not None:
            self.spans.on_event(event)
        writing = self._writer is not None and not isinstance(event, RunFinished)
        logged = info_enabled()
        if not (self._events_wanted or writing or logged):
            return  # nobody reads, records or logs it
        event = dataclasses.replace(event, t=self.elapsed)
        if self._events_wanted:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._send.send_nowait(event)
        if not (writing or logged):
            return
        record = event.to_dict()
        if writing:
            assert self._writer is not None
            self._writer.event({**record, "t": round(event.t + self._t_base, 6)} if self._t_base else record)
        if logged:
            self._log.info(event.kind, **{k: v for k, v in record.items() if k != "kind"})

    def _chunk_appended(self, chunk: Chunk, position: int, epoch: int) -> None:
        """The token path's emit: nothing is built for a chunk that nobody reads, records or logs."""
        if not self._observed:
            return
        t = self.elapsed
        if self._events_wanted:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._send.send_nowait((chunk, position, epoch, t))
        if self._writer is not None:
            self._writer.chunk(chunk, t + self._t_base)
        if self._debug:
            event = ChunkAppended(chunk=chunk, position=position, epoch=epoch, t=t)
            self._log.debug(event.kind, **event.to_dict())

    def allowance(self) -> int | None:
        """Tokens the governors still allow (the smallest of their allowances), or None when unlimited."""
        forced = self.intervener.forced
        if not self._capping and forced is None:
            return None
        limits = [a for g in self._capping if (a := g.token_allowance(self)) is not None]
        if forced is not None:  # a forced answer gets its few tokens, within every hard cap
            limits.append(forced.tokens_left)
        return min(limits) if limits else None

    def inject(self, text: str, phase: Phase | None = None) -> None:
        """Append text the monitor wrote (feedback, an answer prefix): never checked. It belongs to ``phase``
        (default: the phase the trace is in, so feedback after a rollback into the thinking is thinking)."""
        position = len(self.trace)
        self.trace.inject(text, phase)
        self.checks.scheduler.injected(position)
        self.emit(FeedbackInjected(text=text, position=position, epoch=self.trace.epoch,
                                   phase=self.trace.phase_at(position) if text else self.trace.phase))

    def close_thinking(self) -> None:
        """End the thinking here (the monitor's own decision: a thinking budget, a probe): the closing tag is
        written for a backend that keeps tags in the text, and the trace goes on in the answer."""
        if self.trace.phase != THINKING:
            return
        tags = self.monitor.capabilities.thinking_tags
        if tags is not None and not self.trace.text.rstrip().endswith(tags[1]):
            self.inject(tags[1], THINKING)
        self.trace.set_phase(ANSWER)

    def fork_request(self, base_end: int | None, suffix: str, max_tokens: int, *,
                     answer: str | None = None) -> GenerationRequest:
        """The request a fork at ``base_end`` makes: the trace up to there and ``suffix`` in the phase of the
        text before the fork point; with ``answer``, the thinking ended after ``suffix`` and ``answer`` begun."""
        trace = self.trace
        end = len(trace) if base_end is None else max(0, min(base_end, len(trace)))
        base = trace.text[:end]
        phase = trace.phase if end >= len(trace) else trace.phase_at(max(0, end - 1))
        runs: list[tuple[int, Phase]] = list(trace.phase_runs(end))
        if (runs[-1][1] if runs else ANSWER) != phase:
            runs.append((end, phase))
        prefix = base + suffix
        if answer is not None:
            if phase == THINKING:
                tags = self.monitor.capabilities.thinking_tags
                if tags is not None and not prefix.rstrip().endswith(tags[1]):
                    prefix += tags[1]
                runs.append((len(prefix), ANSWER))
            prefix += answer
        phases: PhaseRuns = tuple(runs) if any(p != ANSWER for _, p in runs) else ()
        return GenerationRequest(self._prompt, prefix=prefix, max_new_tokens=max_tokens, purpose="fork",
                                 greedy=True, phases=phases)

    async def fork_text(self, base: str, suffix: str, max_tokens: int, *, answer: str | None = None) -> str:
        """Generate up to ``max_tokens`` after ``base + suffix`` without touching the trace (fork probes and
        extractors); fork tokens count towards every total cap. ``base`` must be a start of the trace text (its
        phases are the trace's); see :class:`Fork` for ``answer``."""
        end = len(base) if self.trace.text.startswith(base) else None
        if end is None:
            request = GenerationRequest(self._prompt, prefix=base + suffix + (answer or ""), max_new_tokens=max_tokens,
                                        purpose="fork", greedy=True)
        else:
            request = self.fork_request(end, suffix, max_tokens, answer=answer)
        return "".join(c.text for c in await self.fork_chunks(request))

    async def fork_chunks(self, request: GenerationRequest) -> list[Chunk]:
        """Stream a fork request (see :meth:`fork_request`) and return its chunks (token data and phases kept, for
        probes that read logprobs); fork tokens count towards every total cap."""
        chunks: list[Chunk] = []
        produced = 0
        max_tokens = request.max_new_tokens if request.max_new_tokens is not None else 1 << 30
        left = self.allowance()
        if left is not None:
            max_tokens = min(max_tokens, left)
            if max_tokens <= 0:
                return []
            request = dataclasses.replace(request, max_new_tokens=max_tokens)
        stream = self.monitor.generator.stream(request)
        try:
            async for chunk in stream:
                left = self.allowance()
                if left is not None and chunk.n_tokens > left:
                    break
                chunks.append(chunk)
                produced += chunk.n_tokens
                self._fork_tokens += chunk.n_tokens
                if produced >= max_tokens:
                    break
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with anyio.move_on_after(5, shield=True):
                    await aclose()
        return chunks

    # -- driving the generator -----------------------------------------------------------------------
    def _start(self, tg: TaskGroup) -> None:
        self._tg = tg
        self.on_asyncio = sniffio.current_async_library() == "asyncio"
        tg.start_soon(self._drive)

    async def _drive(self) -> None:
        """Generate until the end, applying each decision the checks or governors make on the way."""
        acts = self.intervener
        stop = Stop(StopReason.CANCELLED, "")
        try:
            for g in self.monitor.governors:
                g.start(self)
            self.emit(RunStarted(run_id=self.run_id, prompt=self._prompt))
            while True:
                ended = await self._generate()
                if ended == "again":
                    continue
                acts.cancel_probes()  # a probe about text being cut, or after generation ended, is moot
                if ended == "decision":
                    candidate = acts.take()
                    if candidate is None or acts.apply(candidate):
                        continue
                    break
                # a run stopped by a budget or a governor may end mid-step ("= 1" of "= 1536"): its last step is cut
                self.checks.schedule(final=True, cut=acts.stop is not None or self._generator_cut)
                await self._quiesce()
                candidate = acts.take()
                if candidate is not None and acts.apply(candidate):
                    continue
                break
            stop = acts.stop if acts.stop is not None else (
                Stop(StopReason.LENGTH, "the generator stopped at its own token limit (max_new_tokens)")
                if self._generator_cut else Stop(StopReason.COMPLETE, ""))
        except GeneratorError as exc:
            stop = Stop(StopReason.ERROR, str(exc))
            self.errors.append(stop.detail)
        except Exception as exc:
            stop = Stop(StopReason.ERROR, f"generator failed: {type(exc).__name__}: {exc}")
            self.errors.append(stop.detail)
        finally:
            self.checks.cancel_all()
            acts.cancel_probes()
            self._finish(stop)

    async def _quiesce(self) -> None:
        """After generation: wait for the checks still running, or for a decision that needs the driver."""
        while self.checks.running and not self.intervener.decision_ready:
            await self._wait_changed()

    def _finish(self, stop: Stop) -> None:
        self.stop_source, self.stop_position = stop.source, stop.position
        for g in self.monitor.governors:
            g.on_end(self)
        checks = self.checks
        self._result = RunResult(
            run_id=self.run_id, prompt=self._prompt, text=self.trace.text, stop_reason=stop.reason,
            verdicts=tuple(checks.verdicts), interventions=self.interventions, tokens=self.tokens,
            wall_seconds=self.elapsed, first_chunk_seconds=self._first_chunk, check_seconds=checks.seconds,
            epochs=self.trace.epoch + 1, detail=stop.detail, abstained=stop.abstain,
            stale_verdicts=checks.stale,
            errors=tuple(self.errors), open_violations=checks.open_violations(), undecided=checks.undecided(),
            phases=self.trace.phase_runs(len(self.trace)))
        self.emit(RunFinished(result=self._result))
        if self._writer is not None and not (stop.reason is StopReason.RESTART and self.restartable):
            self._writer.end({"outcome": self._result.outcome.value, "stop_reason": stop.reason.value,
                              "detail": stop.detail, "text": self.trace.text,
                              **({"phases": [list(r) for r in self._result.phases]} if self._result.phases else {}),
                              "tokens": self.tokens.to_dict(), "passed": self._result.passed,
                              "t": round(self.elapsed + self._t_base, 6)})
        self._send.close()
        self._finished.set()
        self.notify()

    async def _generate(self) -> Literal["decision", "end", "stop", "again"]:
        """Stream from the generator until it ends, a decision is due, or a governor stops the run."""
        acts = self.intervener
        if acts.stop is not None:
            return "stop"
        allowance = self.allowance()
        if allowance is not None and allowance <= 0:
            acts.exhausted()
            if acts.stop is not None:
                return "stop"
            allowance = self.allowance()
        forcing = acts.forced is not None
        crossed = False
        produced = 0
        finish: str | None = None  # the last chunk's finish_reason: "length" = the generator's own limit
        self._generator_cut = False
        trace = self.trace
        thinking_left = None
        if self._thinking_capping:
            budgets = [b for g in self._thinking_capping if (b := g.thinking_allowance(self)) is not None]
            thinking_left = min(budgets) if budgets else None
        request = GenerationRequest(self._prompt, prefix=trace.text, max_new_tokens=allowance,
                                    phases=trace.phase_runs(), max_thinking_tokens=thinking_left)
        acts.restream = False  # this is the fresh stream a change the monitor wrote asked for
        with anyio.CancelScope() as scope:
            self._gen_scope = scope
            if acts.decision_ready:
                scope.cancel()
            stream = self.monitor.generator.stream(request)
            try:
                async for chunk in stream:
                    if scope.cancel_called:  # a decision came while this chunk was on its way: it is not kept
                        break
                    if not isinstance(chunk, Chunk):
                        raise GeneratorError(f"generator yielded {type(chunk).__name__}, not a monitor.Chunk")
                    if not self._accept(chunk):
                        crossed = True
                        break
                    produced += chunk.n_tokens
                    finish = chunk.finish_reason
                    if (acts.decision_ready or acts.stop is not None or acts.restream
                            or (acts.forced is not None and not forcing)):
                        break
                    if self.checks.behind():  # process checks fall behind: let them catch up, not time out
                        await self.checks.catch_up()
            finally:
                self._gen_scope = None
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    with anyio.move_on_after(5, shield=True):
                        await aclose()
        if acts.decision_ready:
            return "decision"
        if acts.stop is not None:
            return "stop"
        if acts.restream:  # the monitor wrote into the trace (it ended or extended the thinking): ask afresh
            acts.restream = False
            return "again"
        if acts.forced is not None:
            if forcing:  # the forced answer's stream ended: so does the run
                acts.stop = acts.forced.stop()
                return "stop"
            return "again"  # an answer prefix was injected: generate the answer after it
        if crossed:  # a chunk would have crossed a cap and another governor's share was topped up
            return "again"
        now = self.allowance()
        if allowance is not None and produced >= allowance and finish != "stop" and (now is None or now > 0):
            return "again"  # the stream stopped at max_new_tokens and a governor has allowed more since (or the
            # cap was the thinking's, and the model went on to its answer within the same stream)
        allowance = self.allowance()
        if allowance is not None and allowance <= 0:  # the generator stopped at max_new_tokens
            acts.exhausted()
            return "stop" if acts.stop is not None else "again"
        # cut by the generator's own limit, not ours: the last step is checked as cut, like a budget stop, and a
        # rollback it calls for still happens (the next stream has a limit of its own)
        self._generator_cut = finish == "length"
        return "end"

    def _accept(self, chunk: Chunk) -> bool:
        """Append one chunk, let the governors see it, schedule the checks it makes due; False when it would
        cross a token cap (it is not appended). This runs once per chunk: it does only what the run needs."""
        acts = self.intervener
        if chunk.injected:  # a replay playing back what a monitor wrote: append it unchecked
            self.inject(chunk.text, chunk.phase)
            return True
        forced = acts.forced
        if self._capping or forced is not None:
            allowance = self.allowance()
            if allowance is not None and chunk.n_tokens > allowance:
                acts.exhausted(chunk.n_tokens)
                return False
        if (forced is not None and chunk.text.lstrip(" \t").startswith("\n")
                and self.trace.text[forced.starts_at:].strip()):
            acts.stop = forced.stop()  # the forced answer's line is complete: the next one is not kept
            return True
        if self._first_chunk is None:
            self._first_chunk = self.elapsed
        trace = self.trace
        position = trace.add(chunk)
        if forced is not None:
            forced.tokens_left -= chunk.n_tokens
        if self._observed:
            self._chunk_appended(chunk, position, trace.epoch)
        for g in self._watching:
            decision = g.on_chunk(self, chunk)
            if inspect.isawaitable(decision):
                acts.start_probe(g, decision)
            elif decision is not None:
                acts.governor_decision(g, decision)
        forced = acts.forced
        if forced is not None and acts.stop is None and _ANSWER_LINE.search(trace.text, forced.starts_at):
            acts.stop = forced.stop()  # the forced answer ends with its first line
        self.checks.schedule()
        return True

