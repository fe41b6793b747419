"""Batch replay: run verifiers over many recorded or imported traces, concurrently, and report per trace.

Each trace is streamed through the same :class:`Trace` and :class:`Scheduler` the live monitor uses, so a
verifier sees the same steps and views as it did live (feedback that a recorded run injected is never checked,
as live). A full :class:`Monitor` per trace is not needed: a replay cannot regenerate, so there is nothing to
arbitrate or roll back, and skipping it (its events, logs and task group) is what makes thousands of traces
a second possible. Checks of one trace run in order; traces run concurrently, at most ``concurrency`` at once.

The input streams: items are pulled from the iterable only as fast as they are replayed, and results are handed
on in input order as soon as they and all before them are done, so memory is bounded by ``concurrency`` (at most
``2 * concurrency`` traces held, in flight or waiting for an earlier one) whatever the input's size.

With worker processes (``processes``, the default when a verifier runs in a process) each record is held to a
deadline (``timeout``) and a worker that misses it is killed: a check hung in native code (sympy, z3) costs
one error record, never the batch (see :mod:`interlock.monitor.replay.workers`). In this process a record's
deadline can only cancel what awaits; a check stuck in native code on the event loop cannot be interrupted.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import anyio
from interlock.monitor.errors import ConfigError, TraceFileError
from interlock.monitor.replay.importers import ImportedTrace
from interlock.monitor.replay.results import ReadFailure, ReplayTotals, TraceReport, record_json, verdict_record
from interlock.monitor.replay.scanning import scan_trace
from interlock.monitor.replay.workers import run_in_workers
from interlock.monitor.verifier import Verifier

__all__ = ["DEFAULT_TIMEOUT", "ReadFailure", "ReplayTotals", "TraceReport", "load_verifier", "record_json",
           "replay_stream", "replay_traces", "scan_trace", "verdict_record"]

DEFAULT_TIMEOUT = 60.0  # seconds one record may take, all its checks together

Result = TraceReport | ReadFailure


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


class _InOrder:
    """Admits items into a bounded window and hands results on in input order.

    An item holds a place in the window from when it is taken until its result (and all before it) is handed
    on, so a slow record cannot make finished ones pile up without bound behind it.
    """

    def __init__(self, items: Iterable[ImportedTrace | TraceFileError], window: int,
                 on_result: Callable[[Result], None], on_done: Callable[[Result], None] | None) -> None:
        self.items = iter(items)
        self.window = anyio.Semaphore(window)
        self.lock = anyio.Lock()
        self.index = 0
        self.exhausted = False
        self.waiting: dict[int, Result] = {}
        self.next = 0
        self.on_result = on_result
        self.on_done = on_done

    async def take(self, n: int) -> list[tuple[int, ImportedTrace]]:
        """Up to ``n`` traces to replay, as ``(index, trace)``; unreadable items are handed on in place."""
        out: list[tuple[int, ImportedTrace]] = []
        async with self.lock:
            while len(out) < n and not self.exhausted:
                await self.window.acquire()
                try:
                    item = next(self.items)
                except StopIteration:
                    self.window.release()
                    self.exhausted = True
                    break
                index = self.index
                self.index += 1
                if isinstance(item, TraceFileError):
                    self.put(index, ReadFailure.from_error(item))
                else:
                    out.append((index, item))
        return out

    def put(self, index: int, result: Result) -> None:
        self.waiting[index] = result
        if self.on_done is not None:
            self.on_done(result)
        while (ready := self.waiting.pop(self.next, None)) is not None:
            self.next += 1
            self.window.release()
            self.on_result(ready)

    def check_complete(self) -> None:
        if self.waiting or self.next != self.index:
            raise RuntimeError(f"replay lost results: {self.index - self.next} of {self.index} not handed on")


async def replay_stream(items: Iterable[ImportedTrace | TraceFileError], verifiers: Sequence[Verifier], *,
                        on_result: Callable[[Result], None], on_done: Callable[[Result], None] | None = None,
                        concurrency: int = 64, processes: int | None = None,
                        timeout: float | None = DEFAULT_TIMEOUT) -> int:
    """Replay every item through ``verifiers``, calling ``on_result`` with each result in input order; keeps
    nothing, so memory stays bounded by ``concurrency`` however many items the iterable yields. Returns the count.

    - ``concurrency``: traces in flight at once (in this process, or in batches sent to the workers).
    - ``processes``: worker processes; ``None`` uses one per CPU (at most ``concurrency``) when a verifier runs in
      a process, none otherwise; ``0`` checks everything in this process.
    - ``timeout``: seconds a record may take (``None``: no limit). Past it the record is a ``ReadFailure`` with
      ``reason="timeout"``; in worker processes the worker is killed, so even a check hung in native code stops.
    - ``on_done`` is called as each trace finishes, in completion order (to advance a progress bar).
    """
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a positive integer, got {concurrency!r}")
    if processes is not None and (not isinstance(processes, int) or processes < 0):
        raise ConfigError(f"processes must be a non-negative integer or None, got {processes!r}")
    if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
        raise ConfigError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    verifiers = list(verifiers)
    if not verifiers:
        raise ConfigError("replay needs at least one verifier")
    if processes is None:
        heavy = any(v.runs_in == "process" for v in verifiers)
        processes = min(os.cpu_count() or 1, concurrency) if heavy else 0
    order = _InOrder(items, 2 * concurrency, on_result, on_done)
    if processes == 0:
        await _replay_here(order, verifiers, concurrency, timeout)
    else:
        workers = max(1, min(processes, concurrency))
        batch_size = max(1, min(64, concurrency // (2 * workers)))
        await run_in_workers(order.take, verifiers, workers=workers, batch_size=batch_size, timeout=timeout,
                             put=order.put)
    order.check_complete()
    return order.index


async def replay_traces(items: Iterable[ImportedTrace | TraceFileError], verifiers: Sequence[Verifier], *,
                        concurrency: int = 64, processes: int | None = None,
                        on_result: Callable[[Result], None] | None = None,
                        on_done: Callable[[Result], None] | None = None,
                        timeout: float | None = DEFAULT_TIMEOUT) -> list[Result]:
    """Replay every trace through ``verifiers``; returns a report (or a failure) per item, in input order.

    :func:`replay_stream` with the results kept (for an HTML report, or a batch small enough to hold); the
    options are the same.
    """
    results: list[Result] = []

    def keep(result: Result) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    await replay_stream(items, verifiers, on_result=keep, on_done=on_done, concurrency=concurrency,
                        processes=processes, timeout=timeout)
    return results


async def _replay_here(order: _InOrder, verifiers: list[Verifier], concurrency: int,
                       timeout: float | None) -> None:
    limiter = anyio.Semaphore(concurrency)

    async def one(index: int, item: ImportedTrace) -> None:
        try:
            with anyio.move_on_after(timeout) as scope:
                result: Result = await scan_trace(item, verifiers)
            if scope.cancelled_caught:
                result = ReadFailure(item.path, item.line, f"{item.id}: replay timed out after {timeout:g} s",
                                     reason="timeout", id=item.id)
            order.put(index, result)
        finally:
            limiter.release()

    async with anyio.create_task_group() as tg:
        while True:
            await limiter.acquire()
            taken = await order.take(1)
            if not taken:
                limiter.release()
                break
            tg.start_soon(one, *taken[0])
