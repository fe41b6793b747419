"""Stream one imported trace through verifiers as the live monitor would: the unit every replay engine runs."""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import Any

from interlock.monitor.chunks import Chunk
from interlock.monitor.execute import run_check
from interlock.monitor.phases import ANSWER, THINKING
from interlock.monitor.replay.importers import ImportedTrace
from interlock.monitor.replay.results import TraceReport
from interlock.monitor.scan import chunking_matters
from interlock.monitor.scheduler import Scheduler
from interlock.monitor.trace import Trace, TraceView
from interlock.monitor.verdicts import Span, Verdict
from interlock.monitor.verifier import Verifier

__all__ = ["in_worker", "scan_trace"]


class _InThread(Verifier):
    """A ``runs_in="process"`` verifier run inside a pool worker: in a thread, so that its timeout holds."""

    def __init__(self, inner: Verifier) -> None:
        self.inner = inner
        super().__init__(name=inner.name, trigger=inner.trigger, runs_in="thread", timeout=inner.timeout,
                         action=inner.action, fail_closed=inner.fail_closed, phase=inner.phase)

    def extract(self, view: TraceView) -> Any:
        return self.inner.extract(view)

    def check(self, state: Any) -> Any:
        return self.inner.check(state)


def in_worker(verifier: Verifier) -> Verifier:
    """How a verifier runs inside a replay worker: a sync ``runs_in=\"process\"`` check in a thread."""
    sync = not (inspect.iscoroutinefunction(verifier.extract) or inspect.iscoroutinefunction(verifier.check))
    return _InThread(verifier) if verifier.runs_in == "process" and sync else verifier


async def scan_trace(item: ImportedTrace, verifiers: Sequence[Verifier]) -> TraceReport:
    """Stream one trace through the verifiers as the live monitor would (without rolling back).

    Step boundaries do not depend on chunking, so when no trigger counts tokens the scheduler is advanced once
    per run of generated chunks rather than after every chunk, and plain imported text is appended a line at
    a time rather than in word-sized pieces: the same steps, views and checks, in streaming order (only
    ``view.chunks`` differs, and plain text has no token data to carry). Recorded chunks are always kept, with
    their phases; plain text streams in the phases the importer found (its thinking tags, or the reasoning fields
    of an OpenAI-format log: :attr:`ImportedTrace.phases`).
    """
    started = time.perf_counter()
    trace = Trace(item.prompt)
    scheduler = Scheduler(trace, verifiers)
    per_chunk = any(chunking_matters(v.trigger) for v in verifiers)
    order = {id(v): i for i, v in enumerate(verifiers)}
    verdicts: list[Verdict] = []
    errors: list[str] = []
    injected: list[Span] = []

    async def run_due(final: bool) -> None:
        due = scheduler.advance(final=final)
        if not per_chunk:
            due.sort(key=lambda vd: (vd[1].end, order[id(vd[0])]))
        for v, d in due:
            outcome = await run_check(v, trace.view(d.end, d.step, final=d.final))
            verdicts.extend(outcome.verdicts)
            if outcome.error is not None:
                errors.append(f"{v.name}: {outcome.error}")

    if item.segments is None and not per_chunk:
        # Plain text and no trigger that counts tokens: stream it a line at a time (same steps, same checks).
        for text, phase in item.runs():  # each phase run on its own: a phase change ends a step
            for line in text.splitlines(keepends=True):
                trace.append(Chunk(line, phase=THINKING if phase == THINKING else ANSWER))
        thinking_tokens, answer_tokens = item.phase_tokens()
        tokens = thinking_tokens + answer_tokens
    else:
        tokens = thinking_tokens = 0
        for segment in item.pieces():
            if segment.injected:
                if not per_chunk:
                    await run_due(False)
                injected.append(trace.inject(segment.chunk.text, segment.chunk.phase))
                scheduler.injected(injected[-1].start)
                continue
            trace.append(segment.chunk)
            tokens += segment.chunk.n_tokens
            if segment.chunk.phase == THINKING:
                thinking_tokens += segment.chunk.n_tokens
            if per_chunk:
                await run_due(False)
    await run_due(False)
    await run_due(True)
    return TraceReport(id=item.id, text=trace.text, verdicts=tuple(verdicts), labels=dict(item.labels),
                       prompt=item.prompt, path=item.path, line=item.line, tokens=tokens,
                       injected=tuple(injected), errors=tuple(errors), seconds=time.perf_counter() - started,
                       warnings=item.warnings, phases=trace.phase_runs(len(trace)), thinking_tokens=thinking_tokens)
