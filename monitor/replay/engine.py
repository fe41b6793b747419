"""Batch replay: run verifiers over many recorded or imported traces, concurrently, and report per trace.

Each trace is streamed through the same :class:`Trace` and :class:`Scheduler` the live monitor uses, so a
verifier sees the same steps and views as it did live (feedback that a recorded run injected is never checked,
as live). A full :class:`Monitor` per trace is not needed: a replay cannot regenerate, so there is nothing to
arbitrate or roll back, and skipping it (its events, logs and task group) is what makes thousands of traces
a second possible. Checks of one trace run in order; traces run concurrently, at most ``concurrency`` at once.

Where a verifier is CPU-heavy (``runs_in="process"``), whole batches of traces go to a process pool, one
event loop per worker for its whole life, rather than every check being shipped to a process on its own.
Results come back in input order.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import importlib
import inspect
import itertools
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError, TraceFileError
from interlock.monitor.execute import run_check
from interlock.monitor.replay.importers import ImportedTrace
from interlock.monitor.scheduler import Scheduler
from interlock.monitor.steps import step_ends
from interlock.monitor.trace import Trace, TraceView
from interlock.monitor.triggers import AnyOf, AtEnd, OnPattern, StepBoundary, Trigger
from interlock.monitor.verdicts import Fail, Span, Unknown, Verdict
from interlock.monitor.verifier import Verifier

__all__ = ["ReadFailure", "ReplayTotals", "TraceReport", "load_verifier", "replay_traces", "scan_trace",
           "verdict_record"]


def load_verifier(spec: str) -> Verifier:
    """A verifier by registered name (``arithmetic``) or by ``module:attribute`` (an instance, or a class to
    instantiate), so that a user's own verifier can be replayed without registering it."""
    from interlock.monitor.registry import create_verifier

    if ":" not in spec:
        return create_verifier(spec)
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"verifier {spec!r}: {type(exc).__name__}: {exc}") from None
    if isinstance(obj, type) and issubclass(obj, Verifier):
        obj = obj()
    if not isinstance(obj, Verifier):
        raise ConfigError(f"verifier {spec!r} is {type(obj).__name__}, not a Verifier")
    return obj


def verdict_record(verdict: Verdict, text: str) -> dict[str, Any]:
    """A verdict as the JSON report writes it: verifier, kind, action, message, span ``[start, end)``, quote."""
    span = verdict.span
    record: dict[str, Any] = {"verifier": verdict.verifier, "kind": verdict.kind,
                              "action": verdict.action.value if isinstance(verdict, Fail) and verdict.action else None,
                              "message": verdict.message if isinstance(verdict, Fail | Unknown) else verdict.note,
                              "span": span.to_list() if span is not None else None,
                              "text": text[span.start:span.end] if span is not None else None}
    if isinstance(verdict, Fail):
        record["feedback"] = verdict.feedback_text
        record["claim"] = verdict.claim
    return record


@dataclass(frozen=True)
class TraceReport:
    """What the verifiers said about one trace, with the trace's id, labels and where it came from."""

    id: str
    text: str
    verdicts: tuple[Verdict, ...]
    labels: Mapping[str, Any] = field(default_factory=dict)
    prompt: str = ""
    path: str | None = None
    line: int | None = None
    tokens: int = 0
    injected: tuple[Span, ...] = ()  # text the recorded run's monitor wrote (feedback): shown, never checked
    errors: tuple[str, ...] = ()  # verifiers that raised or timed out (their verdict is Unknown)
    seconds: float = 0.0

    @property
    def failures(self) -> tuple[Fail, ...]:
        return tuple(v for v in self.verdicts if isinstance(v, Fail))

    @property
    def first_violation(self) -> Fail | None:
        """The failure the live monitor would have acted on: earliest span, then the strongest action."""
        fails = self.failures
        if not fails:
            return None
        return min(fails, key=lambda v: ((v.span or Span(0, 0)).start, -(v.action.strength if v.action else 0)))

    @property
    def passed(self) -> bool:
        """No verifier failed this trace (an ``Unknown`` is not a failure; see ``errors`` and the verdicts)."""
        return not self.failures

    def steps(self) -> list[tuple[Span, bool]]:
        """The trace's steps as the scheduler cuts them, with whether each is injected text."""
        cuts = {0, len(self.text)}
        for span in self.injected:
            cuts.update((span.start, span.end))
        cuts.update(step_ends(self.text, 0))
        bounds = sorted(c for c in cuts if 0 <= c <= len(self.text))
        out = []
        for start, end in itertools.pairwise(bounds):
            if end > start:
                out.append((Span(start, end), any(s.contains(Span(start, end)) for s in self.injected)))
        return out

    def to_dict(self) -> dict[str, Any]:
        first = self.first_violation
        return {"type": "trace", "id": self.id, "labels": dict(self.labels), "path": self.path, "line": self.line,
                "passed": self.passed, "tokens": self.tokens, "chars": len(self.text),
                "verdicts": [verdict_record(v, self.text) for v in self.verdicts],
                "first_violation": verdict_record(first, self.text) if first is not None else None,
                "errors": list(self.errors)}


@dataclass(frozen=True)
class ReadFailure:
    """A trace (or a record of a file) that could not be read; the batch went on without it."""

    path: str | None
    line: int | None
    message: str

    @classmethod
    def from_error(cls, error: TraceFileError) -> ReadFailure:
        return cls(error.path, error.line, str(error))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "error", "path": self.path, "line": self.line, "message": self.message}


@dataclass
class ReplayTotals:
    """Counts over a batch: traces, read failures, verdicts by kind and verifier, throughput, and for every
    boolean label (``is_correct``) how many traces of each value a verifier flagged."""

    traces: int = 0
    read_errors: int = 0
    passed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    verdicts: collections.Counter[str] = field(default_factory=collections.Counter)
    by_verifier: dict[str, collections.Counter[str]] = field(default_factory=dict)
    by_label: dict[str, dict[str, collections.Counter[str]]] = field(default_factory=dict)

    def add(self, item: TraceReport | ReadFailure) -> None:
        if isinstance(item, ReadFailure):
            self.read_errors += 1
            return
        self.traces += 1
        self.passed += item.passed
        self.tokens += item.tokens
        for v in item.verdicts:
            self.verdicts[v.kind] += 1
            self.by_verifier.setdefault(v.verifier, collections.Counter())[v.kind] += 1
        for key, value in item.labels.items():
            if isinstance(value, bool):
                counts = self.by_label.setdefault(key, {}).setdefault(str(value).lower(), collections.Counter())
                counts["traces"] += 1
                counts["flagged"] += not item.passed

    @property
    def failed(self) -> int:
        return self.traces - self.passed

    def to_dict(self) -> dict[str, Any]:
        def rate(n: int) -> float | None:
            return round(n / self.seconds, 2) if self.seconds > 0 else None

        return {"type": "totals", "traces": self.traces, "passed": self.passed, "failed": self.failed,
                "read_errors": self.read_errors,
                "verdicts": {k: self.verdicts.get(k, 0) for k in ("pass", "fail", "unknown")},
                "by_verifier": {name: {k: c.get(k, 0) for k in ("pass", "fail", "unknown")}
                                for name, c in sorted(self.by_verifier.items())},
                "by_label": {key: {value: dict(c) for value, c in sorted(values.items())}
                             for key, values in sorted(self.by_label.items())},
                "tokens": self.tokens, "seconds": round(self.seconds, 4),
                "traces_per_s": rate(self.traces), "tokens_per_s": rate(self.tokens)}


class _InThread(Verifier):
    """A ``runs_in="process"`` verifier run inside a pool worker: in a thread, so that its timeout holds."""

    def __init__(self, inner: Verifier) -> None:
        self.inner = inner
        super().__init__(name=inner.name, trigger=inner.trigger, runs_in="thread", timeout=inner.timeout,
                         action=inner.action, fail_closed=inner.fail_closed)

    def extract(self, view: TraceView) -> Any:
        return self.inner.extract(view)

    def check(self, state: Any) -> Any:
        return self.inner.check(state)


def _in_worker(verifier: Verifier) -> Verifier:
    sync = not (inspect.iscoroutinefunction(verifier.extract) or inspect.iscoroutinefunction(verifier.check))
    return _InThread(verifier) if verifier.runs_in == "process" and sync else verifier


def _chunking_matters(trigger: Trigger) -> bool:
    """Whether a trigger can fire differently depending on how the text was chunked (token counts can)."""
    if isinstance(trigger, AnyOf):
        return any(_chunking_matters(t) for t in trigger.triggers)
    return not isinstance(trigger, StepBoundary | AtEnd | OnPattern)


async def scan_trace(item: ImportedTrace, verifiers: Sequence[Verifier]) -> TraceReport:
    """Stream one trace through the verifiers as the live monitor would (without rolling back).

    Step boundaries do not depend on chunking, so when no trigger counts tokens the scheduler is advanced once
    per run of generated chunks rather than after every chunk, and plain imported text is appended a line at
    a time rather than in word-sized pieces: the same steps, views and checks, in streaming order (only
    ``view.chunks`` differs, and plain text has no token data to carry). Recorded chunks are always kept.
    """
    started = time.perf_counter()
    trace = Trace(item.prompt)
    scheduler = Scheduler(trace, verifiers)
    per_chunk = any(_chunking_matters(v.trigger) for v in verifiers)
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
        for line in item.text.splitlines(keepends=True):
            trace.append(Chunk(line))
        tokens = item.tokens
    else:
        tokens = 0
        for segment in item.pieces():
            if segment.injected:
                if not per_chunk:
                    await run_due(False)
                injected.append(trace.inject(segment.chunk.text))
                scheduler.injected()
                continue
            trace.append(segment.chunk)
            tokens += segment.chunk.n_tokens
            if per_chunk:
                await run_due(False)
    await run_due(False)
    await run_due(True)
    return TraceReport(id=item.id, text=trace.text, verdicts=tuple(verdicts), labels=dict(item.labels),
                       prompt=item.prompt, path=item.path, line=item.line, tokens=tokens,
                       injected=tuple(injected), errors=tuple(errors), seconds=time.perf_counter() - started)


# -- the process pool ---------------------------------------------------------------------------------------
_worker_verifiers: list[Verifier] = []
_worker_runner: asyncio.Runner | None = None


def _init_worker(verifiers: list[Verifier]) -> None:
    global _worker_runner
    _worker_verifiers[:] = [_in_worker(v) for v in verifiers]
    _worker_runner = asyncio.Runner()  # one event loop for the worker's whole life, not one per trace


async def _scan_many(items: list[ImportedTrace]) -> list[TraceReport]:
    return [await scan_trace(item, _worker_verifiers) for item in items]


def _scan_batch(items: list[ImportedTrace]) -> list[TraceReport]:
    assert _worker_runner is not None, "the pool worker was not initialised"
    return _worker_runner.run(_scan_many(items))


def _batch_timeout(items: Sequence[ImportedTrace], verifiers: Sequence[Verifier]) -> float:
    """A bound on how long a batch may take: every check of every step timing out, plus a minute."""
    steps = sum(len(step_ends(i.text, 0)) + 2 for i in items)
    return 60.0 + steps * sum(v.timeout for v in verifiers)


def _pool_context() -> Any:
    # fork copies the parent's threads' locks; forkserver starts clean workers and still imports quickly.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


async def replay_traces(items: Iterable[ImportedTrace | TraceFileError], verifiers: Sequence[Verifier], *,
                        concurrency: int = 64, processes: int | None = None,
                        on_result: Callable[[TraceReport | ReadFailure], None] | None = None,
                        on_done: Callable[[TraceReport | ReadFailure], None] | None = None,
                        ) -> list[TraceReport | ReadFailure]:
    """Replay every trace through ``verifiers``; returns a report (or a read failure) per item, in input order.

    - ``concurrency``: traces in flight at once (in this process, or in batches sent to the pool).
    - ``processes``: pool workers; ``None`` uses one per CPU (at most ``concurrency``) when a verifier runs in a
      process, none otherwise; ``0`` checks everything in this process.
    - ``on_result`` is called with each result in input order as soon as it and all before it are done (to
      stream output); ``on_done`` as each trace finishes, in completion order (to advance a progress bar).
    """
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a positive integer, got {concurrency!r}")
    if processes is not None and (not isinstance(processes, int) or processes < 0):
        raise ConfigError(f"processes must be a non-negative integer or None, got {processes!r}")
    verifiers = list(verifiers)
    if not verifiers:
        raise ConfigError("replay needs at least one verifier")
    if processes is None:
        heavy = any(v.runs_in == "process" for v in verifiers)
        processes = min(os.cpu_count() or 1, concurrency) if heavy else 0
    work = list(items)
    collector = _Collector(len(work), on_result, on_done)
    for index, item in enumerate(work):
        if isinstance(item, TraceFileError):
            collector.put(index, ReadFailure.from_error(item))
    todo = [i for i, item in enumerate(work) if isinstance(item, ImportedTrace)]
    traces: list[ImportedTrace] = [work[i] for i in todo]  # type: ignore[misc]
    if processes == 0:
        await _replay_here(todo, traces, verifiers, concurrency, collector)
    else:
        await _replay_pool(todo, traces, verifiers, concurrency, processes, collector)
    return collector.ordered()


class _Collector:
    """Keeps results by input index and hands them to ``on_result`` in input order."""

    def __init__(self, total: int, on_result: Callable[[TraceReport | ReadFailure], None] | None,
                 on_done: Callable[[TraceReport | ReadFailure], None] | None) -> None:
        self.results: list[TraceReport | ReadFailure | None] = [None] * total
        self.next = 0
        self.on_result = on_result
        self.on_done = on_done

    def put(self, index: int, result: TraceReport | ReadFailure) -> None:
        self.results[index] = result
        if self.on_done is not None:
            self.on_done(result)
        while self.next < len(self.results) and (ready := self.results[self.next]) is not None:
            if self.on_result is not None:
                self.on_result(ready)
            self.next += 1

    def ordered(self) -> list[TraceReport | ReadFailure]:
        missing = [i for i, r in enumerate(self.results) if r is None]
        if missing:
            raise RuntimeError(f"replay lost {len(missing)} results (first: item {missing[0]})")
        return [r for r in self.results if r is not None]


async def _replay_here(indices: list[int], traces: list[ImportedTrace], verifiers: list[Verifier],
                       concurrency: int, collector: _Collector) -> None:
    limiter = anyio.Semaphore(concurrency)

    async def one(index: int, item: ImportedTrace) -> None:
        try:
            collector.put(index, await scan_trace(item, verifiers))
        finally:
            limiter.release()

    async with anyio.create_task_group() as tg:
        for index, item in zip(indices, traces, strict=True):
            await limiter.acquire()
            tg.start_soon(one, index, item)


async def _replay_pool(indices: list[int], traces: list[ImportedTrace], verifiers: list[Verifier],
                       concurrency: int, processes: int, collector: _Collector) -> None:
    workers = max(1, min(processes, concurrency))
    batch_size = max(1, min(64, concurrency // (2 * workers)))
    limiter = anyio.Semaphore(max(1, concurrency // batch_size))
    executor = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(),
                                                      initializer=_init_worker, initargs=(verifiers,))

    broken: list[BaseException] = []

    async def one(batch: list[int], items: list[ImportedTrace], scope: anyio.CancelScope) -> None:
        reports: list[TraceReport | None]
        future: concurrent.futures.Future[list[TraceReport]] | None = None
        try:
            future = executor.submit(_scan_batch, items)
            reports = list(await anyio.to_thread.run_sync(future.result, _batch_timeout(items, verifiers),
                                                          abandon_on_cancel=True))
        except TimeoutError:
            if future is not None:
                future.cancel()
            reports = [None] * len(items)
        except Exception as exc:  # the pool broke or a verifier does not pickle: every batch would fail alike
            broken.append(exc)
            scope.cancel()
            return
        finally:
            limiter.release()
        for index, item, report in zip(batch, items, reports, strict=True):
            collector.put(index, report if report is not None else ReadFailure(
                item.path, item.line, f"{item.id}: replay timed out in the process pool"))

    try:
        async with anyio.create_task_group() as tg:
            for start in range(0, len(traces), batch_size):
                await limiter.acquire()
                tg.start_soon(one, indices[start:start + batch_size], traces[start:start + batch_size],
                              tg.cancel_scope)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    if broken:
        exc = broken[0]
        raise ConfigError(f"the replay process pool failed ({type(exc).__name__}: {exc}); verifiers that run in a "
                          "process must pickle: define them at the top level of an importable module") from exc
