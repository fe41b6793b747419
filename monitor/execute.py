"""Run one check (extract + check) where the verifier asked, under its timeout, and never let it raise.

An exception, a timeout or a result that is not a verdict becomes an ``Unknown`` verdict plus an error
message for the error event: a verifier can never pass silently by failing.

The timeout is a guarantee, whatever the check does:

- a sync check runs in a worker thread by default (``runs_in="thread"``); at its timeout the verdict is ``Unknown``
  and the thread is abandoned (it is a daemon: it never keeps the interpreter alive);
- ``runs_in="process"``: a warm worker process; at the timeout it is killed, and a check cancelled by a rollback
  finishes in its worker (its result dropped), so the worker stays warm for the next check;
- ``runs_in="loop"`` is the opt-in for checks measured to be cheap and bounded (the built-in arithmetic): they run
  on the event loop, cannot be pre-empted, and one that overruns its timeout is ``Unknown``, never ``Pass``;
- an async check runs in a task of its own: at the timeout it is cancelled and the run moves on, even if it
  swallows the cancellation.

``KeyboardInterrupt`` and ``SystemExit`` raised inside a check are the check's errors (``Unknown``), not the
process's: a Ctrl-C reaches an asyncio program as cancellation of its main task, never inside a check.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_process
import anyio.to_thread
import sniffio
from interlock.monitor.trace import TraceView
from interlock.monitor.verdicts import Fail, Pass, Unknown, Verdict

if TYPE_CHECKING:
    from interlock.monitor.verifier import Verifier

__all__ = ["CheckOutcome", "VerdictTypeError", "call_async_bounded", "call_in_thread", "normalize_verdicts",
           "run_check", "worker_stats"]

MAX_THREADS = 32  # a check that never returns holds one for good: past this, checks queue (and time out)
MAX_PROCESSES = max(1, os.cpu_count() or 1)


class VerdictTypeError(TypeError):
    """A verifier returned something that is not a verdict; the monitor reports it as ``Unknown``."""


class CheckExit(Exception):
    """``KeyboardInterrupt`` or ``SystemExit`` raised inside a check: an error of the check, not of the run."""


class RemoteCheckError(Exception):
    """A check failed in its worker process; the message names the exception it raised there."""


class OverranTimeout(Exception):
    """A check on the event loop returned after its timeout: its verdict cannot be trusted to be complete."""


@dataclass(frozen=True)
class CheckOutcome:
    verdicts: list[Verdict]
    error: str | None
    seconds: float


def _extract_and_check(verifier: Verifier, view: TraceView) -> Any:
    return verifier.check(verifier.extract(view))


def _check_only(verifier: Verifier, state: Any) -> Any:
    return verifier.check(state)


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    try:
        if sniffio.current_async_library() != "asyncio":
            return None
        return asyncio.get_running_loop()
    except (sniffio.AsyncLibraryNotFoundError, RuntimeError):
        return None


# -- threads ------------------------------------------------------------------------------------------------


class _DaemonThreads:
    """A pool of daemon worker threads: cheap to hand work to, and an abandoned one never blocks interpreter exit
    (``concurrent.futures`` and anyio join their threads at exit, so one hung check would hang the process)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...],
                                            Callable[[bool, Any], None]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.threads = 0
        self.idle = 0

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], done: Callable[[bool, Any], None]) -> None:
        with self._lock:
            if self.idle == 0 and self.threads < self.limit:
                self.threads += 1
                threading.Thread(target=self._work, name=f"interlock-check-{self.threads}", daemon=True).start()
            else:
                self.idle -= 1
        self._jobs.put((fn, args, done))

    def _work(self) -> None:
        while True:
            fn, args, done = self._jobs.get()
            try:
                ok, value = True, fn(*args)
            except BaseException as exc:
                ok, value = False, exc
            with contextlib.suppress(RuntimeError):  # the loop that asked has closed: nobody waits any more
                done(ok, value)
            del fn, args, done, value
            with self._lock:
                self.idle += 1


    def forget(self) -> None:
        """In a forked child: the parent's threads do not exist here; start afresh."""
        self.__init__(self.limit)  # type: ignore[misc]


_THREADS = _DaemonThreads(MAX_THREADS)


def _deliver(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the check was cancelled or timed out: its result is dropped
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(_as_check_error(value))


def _as_check_error(exc: BaseException) -> BaseException:
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return CheckExit(f"{type(exc).__name__} raised inside the check")
    return exc


async def call_in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)`` in a daemon worker thread; cancelling the caller abandons the call (never waits for it)."""
    loop = _asyncio_loop()
    if loop is None:  # another event loop library: anyio's threads (they are joined at exit)
        return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)
    future: asyncio.Future[Any] = loop.create_future()

    def done(ok: bool, value: Any) -> None:
        loop.call_soon_threadsafe(_deliver, future, ok, value)

    _THREADS.submit(fn, args, done)
    return await future


# -- processes ----------------------------------------------------------------------------------------------


def _process_main(conn: Connection) -> None:
    """A worker process: run (function, args) jobs one at a time, send back (ok, value or error text)."""
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        fn, args = job
        try:
            reply: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:
            reply = (False, f"{type(exc).__name__}: {exc}" if not isinstance(exc, KeyboardInterrupt | SystemExit)
                     else f"{type(exc).__name__} raised inside the check")
        try:
            conn.send(reply)
        except Exception as exc:
            conn.send((False, f"the result could not be sent back: {type(exc).__name__}: {exc}"))


class _Worker:
    """One warm worker process, the event loop that reads its replies, and the job it runs, if any."""

    def __init__(self, context: Any) -> None:
        parent, child = context.Pipe()
        self.conn: Connection = parent
        self.process = context.Process(target=_process_main, args=(child,), daemon=True,
                                       name="interlock-check-process")
        self.process.start()
        child.close()
        self.reading: asyncio.AbstractEventLoop | None = None  # the loop its replies are read on (kept registered)
        self.job_loop: asyncio.AbstractEventLoop | None = None  # set while a job runs
        self.future: asyncio.Future[Any] | None = None  # None once the job's caller gave up (result dropped)
        self.kill_timer: asyncio.TimerHandle | None = None

    @property
    def busy(self) -> bool:
        return self.job_loop is not None

    def read_on(self, loop: asyncio.AbstractEventLoop, callback: Callable[[_Worker], None]) -> None:
        if self.reading is not loop:
            self.stop_reading()
            loop.add_reader(self.conn.fileno(), callback, self)
            self.reading = loop

    def stop_reading(self) -> None:
        if self.reading is not None and not self.reading.is_closed():
            with contextlib.suppress(Exception):
                self.reading.remove_reader(self.conn.fileno())
        self.reading = None

    def kill(self) -> None:
        self.stop_reading()
        if self.kill_timer is not None:
            self.kill_timer.cancel()
            self.kill_timer = None
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.process.join(timeout=1)


class _WarmProcesses:
    """Worker processes kept warm across checks and runs. A check cancelled by a rollback finishes in its worker
    and its result is dropped; only a check that overruns its timeout costs a worker (it is killed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.workers: list[_Worker] = []
        self.started = 0
        self.killed = 0

    def _reap(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget workers still running a job for an event loop that has closed (nobody will read the reply)."""
        for w in list(self.workers):
            if w.busy and w.job_loop is not loop and w.job_loop is not None and w.job_loop.is_closed():
                self._discard(w)

    def _discard(self, w: _Worker) -> None:
        w.kill()
        self.killed += 1
        if w in self.workers:
            self.workers.remove(w)

    async def _acquire(self, loop: asyncio.AbstractEventLoop) -> _Worker:
        while True:
            self._reap(loop)
            for w in self.workers:
                if not w.busy:
                    return w
            if len(self.workers) < self.limit:
                w = await call_in_thread(_Worker, multiprocessing.get_context("spawn"))
                self.started += 1
                self.workers.append(w)
                continue
            await anyio.sleep(0.005)  # every worker is busy: wait for one (the check's deadline still runs)

    async def call(self, fn: Callable[..., Any], args: tuple[Any, ...], deadline: float) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        for attempt in range(2):
            worker = await self._acquire(loop)
            worker.read_on(loop, self._on_reply)
            try:
                worker.conn.send((fn, args))
            except OSError:  # it died while idle: a fresh one, once
                self._discard(worker)
                if attempt:
                    raise
                continue
            worker.job_loop, worker.future = loop, future
            break
        try:
            return await future
        except BaseException:
            if worker.busy and worker.future is future:
                remaining = deadline - time.monotonic()
                if remaining <= 0:  # it overran its timeout: kill it, a fresh worker replaces it on demand
                    self._discard(worker)
                else:  # cancelled (a rollback): let it finish warm, unless it overruns its timeout
                    worker.future = None
                    worker.kill_timer = loop.call_later(remaining, self._overran, worker)
            raise

    def _on_reply(self, worker: _Worker) -> None:
        future = worker.future
        try:
            ok, value = worker.conn.recv()
        except (EOFError, OSError) as exc:  # the worker died (killed, out of memory, a crash)
            self._discard(worker)
            if future is not None and not future.done():
                future.set_exception(RemoteCheckError(f"the check's worker process died ({type(exc).__name__})"))
            return
        if worker.kill_timer is not None:
            worker.kill_timer.cancel()
            worker.kill_timer = None
        worker.job_loop = worker.future = None
        if future is not None and not future.done():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(RemoteCheckError(value))

    def _overran(self, worker: _Worker) -> None:
        worker.kill_timer = None
        if worker.busy and worker in self.workers:
            self._discard(worker)

    def stats(self) -> dict[str, int]:
        return {"processes_alive": len(self.workers), "processes_started": self.started,
                "processes_killed": self.killed}


_PROCESSES = _WarmProcesses(MAX_PROCESSES)


def _after_fork_in_child() -> None:
    _THREADS.forget()
    _PROCESSES.workers = []  # the parent's workers and pipes are the parent's


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def worker_stats() -> dict[str, int]:
    """How many check workers exist (threads, idle threads, warm processes) and how many processes were started
    and killed so far: what the tests and benchmarks read to see that workers stay warm."""
    return {"threads": _THREADS.threads, "threads_idle": _THREADS.idle, **_PROCESSES.stats()}


async def _call_in_process(fn: Callable[..., Any], args: tuple[Any, ...], deadline: float) -> Any:
    if _asyncio_loop() is None:
        return await anyio.to_process.run_sync(fn, *args, cancellable=True)
    return await _PROCESSES.call(fn, args, deadline)


# -- async checks -------------------------------------------------------------------------------------------

_ABANDONED: set[asyncio.Task[Any]] = set()  # async checks that ignored their cancellation, until they end


async def _shielded_from_exit(coro: Awaitable[Any]) -> Any:
    try:
        return await coro
    except (KeyboardInterrupt, SystemExit) as exc:  # would otherwise stop the event loop itself
        raise _as_check_error(exc) from None


async def call_async_bounded(coro: Awaitable[Any]) -> Any:
    """Await ``coro`` in a task of its own: cancelling the caller (a timeout, a rollback) cancels it and returns at
    once, even when the coroutine swallows its cancellation (it is then left to end by itself)."""
    loop = _asyncio_loop()
    if loop is None:
        return await coro
    task = loop.create_task(_shielded_from_exit(coro))
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: asyncio.Task[Any]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    try:
        await waiter
    finally:
        if not task.done():
            task.remove_done_callback(wake)
            task.cancel()
            _ABANDONED.add(task)
            task.add_done_callback(_forget)
    return task.result()


def _forget(task: asyncio.Task[Any]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "exception was never retrieved"


# -- one check ----------------------------------------------------------------------------------------------


async def _invoke(verifier: Verifier, view: TraceView, deadline: float) -> Any:
    async_extract = verifier.extracts_async
    async_check = verifier.checks_async
    if async_check or (async_extract and verifier.runs_in == "loop"):
        return await call_async_bounded(_async_extract_and_check(verifier, view))
    if verifier.runs_in == "loop":
        started = time.perf_counter()
        try:
            result = verifier.extract(view)
            result = verifier.check(result)
        except (KeyboardInterrupt, SystemExit) as exc:
            raise _as_check_error(exc) from None
        took = time.perf_counter() - started
        if took > verifier.timeout:
            raise OverranTimeout(f"ran {took:.3g} s on the event loop, past its timeout of {verifier.timeout:g} s")
        return result
    if async_extract:
        state = await call_async_bounded(verifier.extract(view))
        if verifier.runs_in == "thread":
            return await call_in_thread(_check_only, verifier, state)
        return await _call_in_process(_check_only, (verifier, state), deadline)
    if verifier.runs_in == "thread":
        return await call_in_thread(_extract_and_check, verifier, view)
    # A process cannot receive the view's fork handle; it only needs the text.
    plain = dataclasses.replace(view, fork=None)
    return await _call_in_process(_extract_and_check, (verifier, plain), deadline)


async def _async_extract_and_check(verifier: Verifier, view: TraceView) -> Any:
    state = verifier.extract(view)
    if inspect.isawaitable(state):
        state = await state
    result = verifier.check(state)
    return await result if inspect.isawaitable(result) else result


async def run_check(verifier: Verifier, view: TraceView) -> CheckOutcome:
    """Run ``verifier`` on ``view``; cancellation (a rollback removed the text) propagates."""
    started = time.perf_counter()
    deadline = time.monotonic() + verifier.timeout
    error: str | None = None
    try:
        with anyio.fail_after(verifier.timeout):
            result = await _invoke(verifier, view, deadline)
        verdicts = normalize_verdicts(result, verifier=verifier, view=view)
    except TimeoutError:
        error = f"timed out after {verifier.timeout:g} s"
    except (VerdictTypeError, OverranTimeout, CheckExit, RemoteCheckError) as exc:
        error = str(exc)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    if error is not None:
        verdicts = [Unknown(reason=error, verifier=verifier.name, epoch=view.epoch, span=view.step.span)]
    return CheckOutcome(verdicts=verdicts, error=error, seconds=time.perf_counter() - started)


def normalize_verdicts(result: Any, *, verifier: Verifier, view: TraceView) -> list[Verdict]:
    """Turn what ``check`` returned into verdicts with the verifier's name, the epoch and a valid span.

    Raises :class:`VerdictTypeError` for anything that is not a verdict, a bool, ``None`` or a list of verdicts,
    and for a span outside the text the verifier saw.
    """
    scope = view.step.span
    items: Sequence[Any]
    if result is None or result is True:
        items = [Pass()]
    elif result is False:
        items = [Fail(f"{verifier.name} rejected this step", feedback=None)]
    elif isinstance(result, Pass | Fail | Unknown):
        items = [result]
    elif isinstance(result, list | tuple):
        items = list(result) or [Pass()]
    else:
        raise VerdictTypeError(f"verifier {verifier.name!r} returned {type(result).__name__}, not a verdict")
    out: list[Verdict] = []
    for item in items:
        if not isinstance(item, Pass | Fail | Unknown):
            raise VerdictTypeError(f"verifier {verifier.name!r} returned a list holding {type(item).__name__}")
        v: Verdict = item.with_context(verifier=verifier.name, epoch=view.epoch, span=scope)
        if v.span is not None and v.span.end > view.end:
            raise VerdictTypeError(f"verifier {verifier.name!r} returned span [{v.span.start}, {v.span.end}) "
                                   f"beyond the {view.end} characters it saw")
        if isinstance(v, Fail) and v.action is None:
            v = dataclasses.replace(v, action=verifier.action)
        out.append(v)
    return out
