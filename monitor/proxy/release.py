"""Release only verified text: run one monitored generation and pass on each step once its checks have passed.

A streaming client cannot be asked to forget text, so nothing leaves before it is verified. With ``hold="step"``
(the default) a completed step is released as soon as every check scheduled so far has come back without a
standing violation (the run's write barrier); the step being written, and any step with a check still running,
stay held. A rollback therefore only ever cuts text the client has not seen, and the latency a client pays is
about one step plus one check. ``hold="end"`` releases everything at the end, for verifiers that judge the
whole text only once it is complete (``AtEnd``), whose verdicts may reach back into earlier steps.

The text injected after a rollback (``"Wait, ... Let me redo this step."``) is part of the trace the model
continues from, but it is the monitor's, not the model's: it is left out of what the client receives unless
``show_feedback``. An interrupted run releases the text before the step that holds the standing violation.

A reasoning model's thinking is released like the answer, under the same barrier, as :class:`Thought` pieces (text
of the thinking phase; plain ``str`` pieces are answer text), so a client never receives thinking that a check
rolled back; a phase change is a point where held text may be released (the thinking's last step, once the answer
begins).

Tool calls (chunks that carry them; their marker lines in the trace) are stricter still: text is released only up
to the first call, and the calls go out at the end of the run, those the final trace still holds before any
standing violation, so a call whose checks failed, or that a later rollback removed, never reaches the client.

:meth:`ReleasedRun.produce` runs the whole monitored generation in the task that calls it and hands the released
pieces to a memory stream: the monitor's task group is entered and left by that one task, whatever the consumer
does (reads slowly, times out, disconnects).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import ObjectSendStream
from interlock.monitor.chunks import ToolCallRequest
from interlock.monitor.events import ChunkAppended, Event
from interlock.monitor.monitor import Monitor, Run
from interlock.monitor.phases import ANSWER, THINKING, Phase
from interlock.monitor.result import RunResult, StopReason
from interlock.monitor.spans import finish_reason_of
from interlock.monitor.steps import step_ends
from interlock.monitor.verdicts import Action, Fail, Verdict, ViolationError

if TYPE_CHECKING:
    from interlock.monitor.proxy.tracing import RequestSpans

__all__ = ["Hold", "Piece", "ReleasedRun", "Thought", "finish_reason"]

Hold = Literal["step", "end"]


class Thought(str):
    """Released text of the thinking (a ``str``: consumers that do not tell the phases apart see text)."""

    __slots__ = ()


Piece = str | ToolCallRequest  # released text (a Thought: of the thinking), or a released tool call

def finish_reason(result: RunResult) -> str:
    """The OpenAI ``finish_reason`` of a run (one table for the proxy and the run's span: see
    :func:`interlock.monitor.spans.finish_reason_of`)."""
    return finish_reason_of(result)


def _feedback_spans(run: Run) -> list[tuple[int, int]]:
    """Where the feedback of each applied rollback sits in the trace now, read from the run's interventions (which
    change together with the trace, unlike the event queue, which may lag behind it)."""
    spans: list[tuple[int, int]] = []
    for i in run.interventions:
        if i.applied and i.action is Action.ROLLBACK:
            spans = [(a, b) for a, b in spans if a < i.position]  # the cut removed later text, feedback included
            if i.feedback:
                spans.append((i.position, i.position + len(i.feedback)))
    return spans


def _add_run(runs: list[tuple[Phase, str]], phase: Phase, text: str) -> None:
    """Append ``text`` of ``phase`` to ``runs``, joining it to the last run when that has the same phase."""
    if not text:
        return
    if runs and runs[-1][0] == phase:
        runs[-1] = (phase, runs[-1][1] + text)
    else:
        runs.append((phase, text))


def _blocking(verdicts: tuple[Verdict, ...]) -> list[Verdict]:
    """Violations that keep text from the client: all but warnings."""
    return [v for v in verdicts if not (isinstance(v, Fail) and v.action is Action.WARN)]


@dataclass
class _CallSpan:
    start: int
    text: str  # the chunk's text: an optional line end, then the markers
    calls: tuple[ToolCallRequest, ...]
    first: int  # the position of its first call among every call the model made (``seen_calls``)

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass
class ReleasedRun:
    """One monitored request. ``await produce(stream)`` sends the verified pieces; ``result`` afterwards.

    ``observe``: called with every event of the run (the proxy's metrics); ``on_hold``: called with the seconds
    each released piece of text was held back after it was generated; ``tracing``: the request's span
    (:mod:`~interlock.monitor.proxy.tracing`), ended when the release ends; ``on_finish``: called with the run
    once it has a result, before the last piece is received.
    """

    monitor: Monitor
    prompt: str
    hold: Hold = "step"
    show_feedback: bool = False
    barrier_timeout: float = 60.0
    observe: Callable[[Event], None] | None = None
    on_hold: Callable[[float], None] | None = None
    sent: str = ""  # the text the client has received: thinking and answer, in order
    released_phases: list[tuple[Phase, int, int]] = field(default_factory=list)  # (phase, start, end) in sent
    calls: list[ToolCallRequest] = field(default_factory=list)  # the tool calls released
    seen_calls: list[ToolCallRequest] = field(default_factory=list)  # every call the model made
    # which of seen_calls were released, by position: an upstream may give every call the same id ("call_1")
    released_positions: set[int] = field(default_factory=set)
    retracted: bool = False  # a late verdict reached into released text (possible only with AtEnd checks)
    released_tokens: int = 0  # the generated tokens of what the client got (the kept ones, less any withheld)
    released_thinking_tokens: int = 0  # ... of them, those of the thinking
    run_id: str = ""
    begun: anyio.Event = field(default_factory=anyio.Event)  # set at the first chunk, or when the run ends
    tracing: RequestSpans | None = None
    on_finish: Callable[[ReleasedRun], None] | None = None  # called once the run has a result, before the end
    _result: RunResult | None = None
    _run: Run | None = None
    _spans: list[_CallSpan] = field(default_factory=list)
    _arrivals: list[tuple[int, float]] = field(default_factory=list)  # (end position of a chunk, when)

    @property
    def result(self) -> RunResult:
        if self._result is None:
            raise RuntimeError("the run has not finished")
        return self._result

    def _call_spans(self, text: str) -> list[_CallSpan]:
        """The tool-call chunks the trace still holds where they were appended."""
        self._spans = [s for s in self._spans if text[s.start:s.end] == s.text]
        return self._spans

    def _kept(self, text: str, end: int) -> list[tuple[int, int]]:
        """The stretches of ``text[:end]`` a client may see: without the feedback rollbacks injected (unless
        ``show_feedback``) and without tool-call markers."""
        hidden = [(s.start, s.end) for s in self._call_spans(text)]
        if not self.show_feedback and self._run is not None:
            hidden += _feedback_spans(self._run)
        out: list[tuple[int, int]] = []
        pos = 0
        for a, b in sorted(hidden):
            if a >= end:
                break
            if a > pos:
                out.append((pos, a))
            pos = max(pos, min(b, end))
        if end > pos:
            out.append((pos, end))
        return out

    def visible(self, text: str, end: int) -> str:
        """``text[:end]`` as a client may see it (see :meth:`_kept`)."""
        return "".join(text[a:b] for a, b in self._kept(text, end))

    def visible_runs(self, text: str, end: int) -> list[tuple[Phase, str]]:
        """:meth:`visible` split by phase: ``(phase, text)`` runs in order."""
        runs = self._run.trace.phase_runs() if self._run is not None else ()
        out: list[tuple[Phase, str]] = []
        for a, b in self._kept(text, end):
            if not runs:
                _add_run(out, ANSWER, text[a:b])
                continue
            for i, (start, phase) in enumerate(runs):
                stop = runs[i + 1][0] if i + 1 < len(runs) else b
                lo, hi = max(a, start), min(b, stop)
                if lo < hi:
                    _add_run(out, phase, text[lo:hi])
        return out

    def released_pieces(self) -> list[Piece]:
        """What the client got, in order: the text run by phase (a :class:`Thought` for the thinking), then the
        calls."""
        pieces: list[Piece] = [Thought(self.sent[a:b]) if p == THINKING else self.sent[a:b]
                               for p, a, b in self.released_phases]
        return [*pieces, *self.calls]

    def text_of(self, phase: Phase) -> str:
        """The released text of one phase."""
        return "".join(self.sent[a:b] for p, a, b in self.released_phases if p == phase)

    def _advance(self, text: str, end: int) -> list[str]:
        """The new visible pieces up to ``end`` (a :class:`Thought` for each stretch of thinking), or none when
        nothing is new (or it would contradict what was sent)."""
        runs = self.visible_runs(text, end)
        visible = "".join(t for _, t in runs)
        if len(visible) <= len(self.sent):
            return []
        if not visible.startswith(self.sent):
            self.retracted = True
            return []
        skip = at = len(self.sent)
        pieces: list[str] = []
        for phase, run_text in runs:
            if skip >= len(run_text):
                skip -= len(run_text)
                continue
            part, skip = run_text[skip:], 0
            pieces.append(Thought(part) if phase == THINKING else part)
            spans = self.released_phases
            if spans and spans[-1][0] == phase and spans[-1][2] == at:
                spans[-1] = (phase, spans[-1][1], at + len(part))
            else:
                spans.append((phase, at, at + len(part)))
            at += len(part)
        self.sent = visible
        return pieces

    def _held(self, end: int) -> None:
        """Report how long the text before ``end`` waited after it was generated."""
        if self.on_hold is None or not self._arrivals:
            return
        arrived = next((t for pos, t in self._arrivals if pos >= end), self._arrivals[-1][1])
        self.on_hold(max(0.0, time.perf_counter() - arrived))

    def _see(self, event: Event) -> None:
        if self.observe is not None:
            self.observe(event)
        if not isinstance(event, ChunkAppended):
            return
        if not self.begun.is_set():
            self.begun.set()
        chunk = event.chunk
        end = event.position + len(chunk.text)
        while self._arrivals and self._arrivals[-1][0] >= end:
            self._arrivals.pop()  # text cut by a rollback
        self._arrivals.append((end, time.perf_counter()))
        if chunk.tool_calls:
            self._spans = [s for s in self._spans if s.start < event.position]
            markers = [c.marker() for c in chunk.tool_calls]
            lead = len(chunk.text) - sum(map(len, markers))
            first = len(self.seen_calls)
            if lead >= 0 and chunk.text[lead:] == "".join(markers):  # one span per call: each is checked alone
                start = event.position
                for i, (call, marker) in enumerate(zip(chunk.tool_calls, markers, strict=True)):
                    text = chunk.text[:lead] + marker if i == 0 else marker
                    self._spans.append(_CallSpan(start, text, (call,), first + i))
                    start += len(text)
            else:
                self._spans.append(_CallSpan(event.position, chunk.text, chunk.tool_calls, first))
            self.seen_calls.extend(chunk.tool_calls)

    async def collect(self) -> list[Piece]:
        """Run to the end and return every released piece, in order (for tests and batch use)."""
        out, inbox = anyio.create_memory_object_stream[Piece](math.inf)
        pieces: list[Piece] = []
        async with anyio.create_task_group() as tg, inbox:
            tg.start_soon(self.produce, out)
            async for piece in inbox:
                pieces.append(piece)
        return pieces

    async def produce(self, out: ObjectSendStream[Piece]) -> None:
        """Run the monitored generation in this task, sending text as it becomes safe and the tool calls at the
        end; closes ``out`` when done (also when cancelled)."""
        async with out:
            try:
                await self._produce(out)
                if self.on_finish is not None and self._result is not None:
                    self.on_finish(self)  # before the stream ends: a client reading the end sees its effect
            finally:
                self.begun.set()
                if self.tracing is not None:
                    self.tracing.end(self)

    async def _produce(self, out: ObjectSendStream[Piece]) -> None:
        boundary_chars = ("\n", ".", "!", "?")
        async with self.monitor.stream(self.prompt, spans=self.tracing.spans if self.tracing else None) as run:
            self._run = run
            self.run_id = run.run_id
            safe_end = 0  # a step boundary in the current text up to which everything was released
            async for event in run:
                self._see(event)
                if self.hold == "end" or event.kind != "chunk":
                    continue
                if not isinstance(event, ChunkAppended) or event.epoch != run.epoch:
                    continue  # the trace has moved on since: wait for the events to catch up
                # only text whose events have been seen (a tool call's span is known from its event)
                text = run.text[:event.position + len(event.chunk.text)]
                safe_end = min(safe_end, len(text))  # a late verdict cut into released text (see retracted)
                spans = self._call_spans(text)
                limit = spans[0].start if spans else len(text)  # text after a tool call waits for the end
                if limit <= safe_end:
                    continue
                # a phase change ends a step too (the thinking's last one, once the answer begins)
                changes = [s for s, _ in run.trace.phase_runs() if safe_end < s <= limit]
                if not changes and not any(c in text[safe_end:limit] for c in boundary_chars):
                    continue
                ends = [e for e in step_ends(text, safe_end) if e <= limit] + changes
                if not ends:
                    continue
                cut = max(ends)
                try:
                    await run.barrier(timeout=self.barrier_timeout)
                except ViolationError as exc:
                    if _blocking(exc.verdicts):
                        continue  # a rollback or an interrupt is on its way; the events will tell
                except TimeoutError:
                    continue
                if not run.text.startswith(text[:cut]):
                    continue  # cut meanwhile
                safe_end = cut
                pieces = self._advance(text, cut)
                if pieces:
                    self._held(cut)
                    for piece in pieces:
                        await out.send(piece)
        result = run.result
        self._result = result
        text = result.text
        end = len(text)
        blocking = _blocking(result.open_violations)
        if blocking:
            starts = [run.checks.scheduler.step_start(v.span.start) if v.span is not None else 0 for v in blocking]
            end = min(starts)
        pieces = self._advance(text, end)
        if pieces:
            self._held(end)
            for piece in pieces:
                await out.send(piece)
        # usage counts what the client gets: the tokens of the text withheld after `end` are not its tokens
        withheld = withheld_thinking = 0
        if end < len(text) and run.trace.text == text:
            withheld = run.trace.tokens_after(end)
            withheld_thinking = run.trace.tokens_after(end, THINKING) if result.tokens.thinking else 0
        self.released_tokens = max(0, result.tokens.kept - withheld)
        self.released_thinking_tokens = max(0, result.tokens.thinking - withheld_thinking)
        if result.stop_reason in (StopReason.ERROR, StopReason.CANCELLED):
            return
        for span in self._call_spans(text):
            if span.end <= end:
                for i, call in enumerate(span.calls):
                    self.calls.append(call)
                    self.released_positions.add(span.first + i)
                    await out.send(call)

    def summary(self) -> dict[str, Any]:
        """The ``interlock`` field of the response: what the monitor did to this answer."""
        r = self.result
        counts = {"pass": 0, "fail": 0, "unknown": 0}
        for v in r.verdicts:
            counts[v.kind] += 1
        out = {
            "run_id": r.run_id, "passed": r.passed, "outcome": r.outcome.value, "stop_reason": r.stop_reason.value,
            "detail": r.detail,
            "interventions": [{"action": i.action.value, "source": i.source, "message": i.message,
                               "feedback": i.feedback, "applied": i.applied, "removed_text": i.removed_text,
                               "tokens_discarded": i.tokens_discarded} for i in r.interventions],
            "verdicts": counts, "tokens": r.tokens.to_dict(), "retracted": self.retracted,
            "wall_seconds": round(r.wall_seconds, 6),
        }
        if self.seen_calls:
            out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments, "released": released}
                                 for c, released in self.call_outcomes()]
        return out

    def call_outcomes(self) -> list[tuple[ToolCallRequest, bool]]:
        """Every call the model made, in order, and whether it was released (by its position in the trace, never
        by its id, which an upstream may reuse)."""
        return [(c, i in self.released_positions) for i, c in enumerate(self.seen_calls)]
