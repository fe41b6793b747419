"""Run one check (extract + check) where the verifier asked, under its timeout, and never let it raise.

An exception, a timeout or a result that is not a verdict becomes an ``Unknown`` verdict plus an error
message for the error event: a verifier can never pass silently by failing.

The timeout is a guarantee, whatever the check does:

- a sync check runs in a worker thread by default (``runs_in="thread"``); at its timeout the verdict is ``Unknown``
  and the thread is abandoned: it no longer counts towards the pool's limit, so a check that never returns takes
  nothing from the checks after it (a daemon, it never keeps the interpreter alive; it rejoins the pool, or ends,
  when its check returns);
- ``runs_in="process"``: warm worker processes; a check that runs past its timeout has its worker killed, and a
  check cancelled by a rollback finishes in its worker (its result dropped), so the worker stays warm;
- ``runs_in="loop"`` is the opt-in for checks measured to be cheap and bounded (the built-in arithmetic): they run
  on the event loop, cannot be pre-empted, and one that overruns its timeout is ``Unknown``, never ``Pass``;
- an async check runs in a task of its own: at the timeout it is cancelled and the run moves on, even if it
  swallows the cancellation.

A run dispatches its sync checks without a task per check (:func:`run_inline` for a loop check at the step end,
:func:`start_check` for thread and process checks: a job whose outcome comes back as a callback on the loop, its
deadline kept with the others of its loop, one timer for all).
Process checks are queued and handed to the warm workers in batches, one pipe message and one pickle for several
checks (the verifier is pickled once per batch), and their results come back a few at a time: what a check costs
the event loop does not grow with how expensive it is to reach another core. :func:`run_check` awaits one check
(``Verifier.scan``, the barrier's checks, async checks).

``KeyboardInterrupt`` and ``SystemExit`` raised inside a check are the check's errors (``Unknown``), not the
process's: a Ctrl-C reaches an asyncio program as cancellation of its main task, never inside a check.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import inspect
import math
import multiprocessing
import os
import pickle
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_process
import anyio.to_thread
import sniffio
from interlock.monitor.trace import Step, TraceView
from interlock.monitor.verdicts import Fail, Pass, Span, Unknown, Verdict

if TYPE_CHECKING:
    from interlock.monitor.verifier import Verifier

__all__ = ["CheckOutcome", "PendingCheck", "Placement", "VerdictTypeError", "backlog_limit", "behind",
           "call_async_bounded", "call_in_thread", "catch_up", "normalize_verdicts", "placement", "run_check",
           "run_inline", "start_check", "worker_stats"]

MAX_THREADS = 32  # threads working at once; a check abandoned at its timeout no longer counts
MAX_ABANDONED_THREADS = 1024  # abandoned threads still running; past this a hung check keeps its place in the pool
MAX_PROCESSES = max(1, os.cpu_count() or 1)
MAX_BATCH = 16  # process checks in one message to a worker
BATCH_SECONDS = 0.02  # ... and at most this much work, by the average time of a job so far
OVERRUN_GRACE = 0.25  # at its deadline a process check that ran for all but this share of its timeout is killed
STARTUP_GRACE = 30.0  # a fresh worker is not killed for an overrun before this (its check is Unknown all the same)
MOVE_AFTER = 0.05  # jobs waiting behind one that has run this long (and MOVE_FACTOR times the average) move on
MOVE_FACTOR = 10.0
PREFETCH_BYTES = 32 * 1024  # a second message to a busy worker waits unread in its pipe: never more than this
BACKLOG_HIGH = 0.5  # seconds of process checks queued for a loop past which its runs wait before reading on (until
# it is down to half that): checks that cannot keep up slow the reading rather than time out
REPLY_EVERY = 0.002  # a worker sends the results it has at least this often while it works through a batch
MAX_REPLIES_READ = 64  # replies of one worker read in one wakeup of its loop (then the loop's other work has a turn)

Placement = Literal["inline", "thread", "process", "task"]


class VerdictTypeError(TypeError):
    """A verifier returned something that is not a verdict; the monitor reports it as ``Unknown``."""


class CheckExit(Exception):
    """``KeyboardInterrupt`` or ``SystemExit`` raised inside a check: an error of the check, not of the run."""


class RemoteCheckError(Exception):
    """A check failed in its worker process; the message names the exception it raised there."""


class OverranTimeout(Exception):
    """A check on the event loop returned after its timeout: its verdict cannot be trusted to be complete."""


@dataclass(frozen=True, slots=True)
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


def _as_check_error(exc: BaseException) -> BaseException:
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return CheckExit(f"{type(exc).__name__} raised inside the check")
    return exc


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, VerdictTypeError | OverranTimeout | CheckExit | RemoteCheckError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return f"{type(exc).__name__} raised inside the check"
    return f"{type(exc).__name__}: {exc}"


def _timed_out(verifier: Verifier) -> str:
    return f"timed out after {verifier.timeout:g} s"


def _outcome(verifier: Verifier, view: TraceView, ok: bool, value: Any, started: float) -> CheckOutcome:
    """The outcome of a check that returned ``value`` (``ok``) or raised it, or of one that could not finish
    (``ok`` False and ``value`` the reason, as text)."""
    error: str | None = None
    if ok:
        try:
            verdicts = normalize_verdicts(value, verifier=verifier, view=view)
        except VerdictTypeError as exc:
            error = str(exc)
    else:
        error = value if isinstance(value, str) else _error_text(value)
    if error is not None:
        verdicts = [Unknown(reason=error, verifier=verifier.name, epoch=view.epoch, span=view.step.span)]
    return CheckOutcome(verdicts=verdicts, error=error, seconds=time.perf_counter() - started)


def placement(verifier: Verifier) -> Placement:
    """How a run dispatches ``verifier``'s checks: ``inline`` (a sync loop check, called at the step end),
    ``thread`` or ``process`` (a sync check handed to a worker, no task), ``task`` (anything async)."""
    if verifier.checks_async or verifier.extracts_async:
        return "task"
    return "inline" if verifier.runs_in == "loop" else verifier.runs_in


# -- jobs: a check (or a call) handed to a worker, finished by a callback on its event loop ----------------------


class _Job:
    """A call handed to a worker thread or process. ``wanted`` is cleared once nobody waits for its result (it
    was delivered, timed out or cancelled): a job not yet started is then skipped. The rest is the pool's."""

    __slots__ = ("abandoned", "args", "deadline", "fn", "loop", "pool", "running", "timeout", "wanted", "worker")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop,
                 timeout: float) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.wanted = True
        self.running = False  # a thread is running it (thread pool; under the pool's lock)
        self.abandoned = False  # its thread no longer counts towards the pool's limit
        self.pool: _DaemonThreads | _WarmProcesses | None = None
        self.worker: _Worker | None = None  # the process worker whose batch holds it

    def result(self, ok: bool, value: Any) -> None:
        """On the job's loop: the call returned ``value`` (``ok``) or raised it."""
        raise NotImplementedError

    def expire(self) -> None:
        """On the job's loop, at the deadline."""

    def give_up(self, *, expired: bool = False) -> None:
        """Nobody waits for the result any more (``expired``: its deadline passed): skip the job if it has not
        started; else let its worker know."""
        self.wanted = False
        if self.pool is not None:
            self.pool.gave_up(self, expired=expired)


class _Moved(_Job):
    """Where a job was in a worker's batch before it went to another worker: its reply there is dropped."""

    __slots__ = ()

    def __init__(self, job: _Job) -> None:
        super().__init__(job.fn, (), job.loop, job.timeout)
        self.wanted = False

    def result(self, ok: bool, value: Any) -> None:
        pass


_RELEASED = TraceView("", Step("", Span(0, 0)))


class PendingCheck(_Job):
    """A sync check running in a worker thread or process; ``done(check, outcome)`` is called on the loop when it
    finishes or times out, never after :meth:`cancel`. ``tag`` is the caller's."""

    __slots__ = ("done", "started", "tag", "verifier", "view")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop,
                 verifier: Verifier, view: TraceView, done: Callable[[PendingCheck, CheckOutcome], None],
                 tag: Any) -> None:
        super().__init__(fn, args, loop, verifier.timeout)
        self.verifier = verifier
        self.view = view
        self.done = done
        self.tag = tag
        self.started = time.perf_counter()

    def result(self, ok: bool, value: Any) -> None:
        if not self.wanted:
            return
        self.wanted = False
        self.done(self, _outcome(self.verifier, self.view, ok, value, self.started))
        self._release()

    def expire(self) -> None:
        if not self.wanted:
            return
        self.give_up(expired=True)
        self.done(self, _outcome(self.verifier, self.view, False, _timed_out(self.verifier), self.started))
        self._release()

    def cancel(self) -> None:
        """Drop the result (the text it was about was removed, or the run ended); ``done`` is not called."""
        if self.wanted:
            self.give_up()
            if not self.running and self.worker is None:
                self._release()

    def _release(self) -> None:
        """Let go of the view (a copy of the trace up to the check): a finished job may wait a while in the queue
        of deadlines behind a slower one."""
        self.args = ()
        self.view = _RELEASED


class _FutureJob(_Job):
    """A call whose result goes to a future (:func:`call_in_thread`, the process part of :func:`run_check`)."""

    __slots__ = ("future",)

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop,
                 timeout: float) -> None:
        super().__init__(fn, args, loop, timeout)
        self.future: asyncio.Future[Any] = loop.create_future()

    def expire(self) -> None:  # a worker found its deadline passed before it started (the caller's timeout)
        self.result(False, TimeoutError())

    def result(self, ok: bool, value: Any) -> None:
        self.wanted = False
        if self.future.done():
            return
        if ok:
            self.future.set_result(value)
        elif isinstance(value, str):
            self.future.set_exception(RemoteCheckError(value))
        else:
            self.future.set_exception(_as_check_error(value))

    async def wait(self) -> Any:
        try:
            return await self.future
        finally:
            if self.wanted:
                self.give_up()


class _LoopSide:
    """What the workers share with one event loop: the inbox of thread results (worker threads append, the loop
    drains them all in one callback, so a busy loop is woken once for many checks rather than once each) and the
    deadlines of its checks (for each timeout a queue in deadline order, one timer for the earliest: no timer
    per check, nothing to cancel when a check comes back in time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: collections.deque[tuple[_Job, bool, Any]] = collections.deque()
        self.scheduled = False
        self.deadlines: dict[float, collections.deque[_Job]] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf

    def put(self, job: _Job, ok: bool, value: Any) -> None:  # in a worker thread
        self.items.append((job, ok, value))
        if not self.scheduled:  # two threads may both schedule a drain: the second finds nothing to do
            self.scheduled = True
            job.loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        self.scheduled = False
        items = self.items
        while items:
            job, ok, value = items.popleft()
            job.result(ok, value)

    def watch(self, job: _Job) -> None:
        """Call ``job.expire()`` at its deadline unless nobody wants its result by then."""
        waiting = self.deadlines.get(job.timeout)
        if waiting is None:
            waiting = self.deadlines[job.timeout] = collections.deque()
        while waiting and not waiting[0].wanted:  # those that came back in time leave from the front
            waiting.popleft()
        waiting.append(job)
        if job.deadline < self.timer_at:
            self._arm(job.deadline)

    def _arm(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = when
        self.timer = self.loop.call_later(max(0.0, when - time.monotonic()), self._expire_due)

    def _expire_due(self) -> None:
        self.timer, self.timer_at = None, math.inf
        now = time.monotonic() + 0.001  # the loop may run a timer up to its clock resolution early
        earliest = math.inf
        for waiting in list(self.deadlines.values()):
            while waiting and (not waiting[0].wanted or waiting[0].deadline <= now):
                job = waiting.popleft()
                if job.wanted:
                    job.expire()
            if waiting:
                earliest = min(earliest, waiting[0].deadline)
        if earliest < self.timer_at:
            self._arm(earliest)


_LOOPS: dict[asyncio.AbstractEventLoop, _LoopSide] = {}
_LOOPS_LOCK = threading.Lock()


def _side(loop: asyncio.AbstractEventLoop) -> _LoopSide:
    side = _LOOPS.get(loop)
    if side is None:
        with _LOOPS_LOCK:  # a loop not seen before: those closed since are forgotten now
            for closed in [other for other in _LOOPS if other.is_closed()]:
                del _LOOPS[closed]
            side = _LOOPS[loop] = _LoopSide(loop)
    return side


# -- threads ------------------------------------------------------------------------------------------------


class _DaemonThreads:
    """A pool of daemon worker threads: cheap to hand work to, and an abandoned one never blocks interpreter exit
    (``concurrent.futures`` and anyio join their threads at exit, so one hung check would hang the process).

    A job whose caller gave up while it runs (its timeout, a rollback) is *abandoned*: its thread stops counting
    towards ``limit`` and a fresh thread takes the queued work, so checks that never return cannot starve the
    checks of other runs (up to ``max_abandoned`` of them at once; the thread rejoins the pool, or ends, when its
    check returns)."""

    def __init__(self, limit: int, max_abandoned: int = MAX_ABANDONED_THREADS) -> None:
        self.limit = limit
        self.max_abandoned = max_abandoned
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.threads = 0  # threads that count towards the limit
        self.idle = 0  # threads waiting for a job, less the jobs queued for them (negative: a backlog)
        self.abandoned = 0
        self.started = 0

    def _start_thread(self) -> None:
        self.threads += 1
        self.started += 1
        threading.Thread(target=self._work, name=f"interlock-check-{self.started}", daemon=True).start()

    def submit(self, job: _Job) -> None:
        job.pool = self
        _side(job.loop)  # made here, on the loop: the worker thread only looks it up
        with self._lock:
            if self.idle <= 0 and self.threads < self.limit:
                self._start_thread()
            else:
                self.idle -= 1
        self._jobs.put(job)

    def gave_up(self, job: _Job, *, expired: bool = False) -> None:
        with self._lock:
            if not job.running or job.abandoned or self.abandoned >= self.max_abandoned:
                return  # not started (its thread will skip it), or already abandoned, or too many hang already
            job.abandoned = True
            self.abandoned += 1
            self.threads -= 1
            if self.idle < 0:  # work is queued: a fresh thread takes the abandoned one's place
                self._start_thread()
                self.idle += 1

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            with self._lock:
                job.running = job.wanted
            if job.running:
                try:
                    ok, value = True, job.fn(*job.args)
                except BaseException as exc:
                    ok, value = False, exc
                side = _LOOPS.get(job.loop)
                if side is not None:
                    with contextlib.suppress(RuntimeError):  # the loop that asked has closed: nobody waits any more
                        side.put(job, ok, value)
                del value, side
            with self._lock:
                job.running = False
                if job.abandoned:
                    self.abandoned -= 1
                    if self.threads >= self.limit:
                        return  # the pool is full again without it: this thread ends
                    self.threads += 1
                self.idle += 1
            del job

    def forget(self) -> None:
        """In a forked child: the parent's threads do not exist here; start afresh."""
        self.__init__(self.limit, self.max_abandoned)  # type: ignore[misc]


_THREADS = _DaemonThreads(MAX_THREADS)


async def call_in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)`` in a daemon worker thread; cancelling the caller abandons the call (never waits for it)."""
    loop = _asyncio_loop()
    if loop is None:  # another event loop library: anyio's threads (they are joined at exit)
        return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)
    job = _FutureJob(fn, args, loop, math.inf)
    _THREADS.submit(job)
    return await job.wait()


# -- processes ----------------------------------------------------------------------------------------------

_SKIPPED = b""  # a worker's reply for a job whose deadline had passed before it started


def _reply(ok: bool, value: Any) -> bytes:
    try:
        return pickle.dumps((ok, value), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return pickle.dumps((False, f"the result could not be sent back: {type(exc).__name__}: {exc}"))


def _error_reply(exc: BaseException) -> bytes:
    text = (f"{type(exc).__name__}: {exc}" if not isinstance(exc, KeyboardInterrupt | SystemExit)
            else f"{type(exc).__name__} raised inside the check")
    return _reply(False, text)


def _process_main(conn: Connection) -> None:
    """A worker process: run batches of (deadline, function, args) jobs in order; send back each job's pickled
    (ok, value or error text), a few at a time with the seconds they took, and nothing for a job whose deadline
    had passed."""
    while True:
        try:
            count, blob = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            jobs = pickle.loads(blob)
        except BaseException as exc:  # a check or its state that does not unpickle here
            conn.send_bytes(pickle.dumps((0.0, [_error_reply(exc)] * count)))
            continue
        replies: list[bytes] = []
        sent = time.monotonic()
        for i, (deadline, fn, args) in enumerate(jobs):
            if time.monotonic() >= deadline:
                replies.append(_SKIPPED)
            else:
                try:
                    replies.append(_reply(True, fn(*args)))
                except BaseException as exc:
                    replies.append(_error_reply(exc))
            now = time.monotonic()
            if i + 1 < len(jobs) and now - sent >= REPLY_EVERY:
                conn.send_bytes(pickle.dumps((now - sent, replies)))
                replies, sent = [], now
        conn.send_bytes(pickle.dumps((time.monotonic() - sent, replies)))
        del jobs, replies


class _Worker:
    """One warm worker process, the event loop that reads its replies, and the batch of jobs it is running."""

    def __init__(self, context: Any) -> None:
        parent, child = context.Pipe()
        self.conn: Connection = parent
        self.process = context.Process(target=_process_main, args=(child,), daemon=True,
                                       name="interlock-check-process")
        self.process.start()
        child.close()
        self.reading: asyncio.AbstractEventLoop | None = None  # the loop its replies are read on (kept registered)
        self.batch: collections.deque[_Job] = collections.deque()  # sent, not answered; the first one runs
        self.messages: collections.deque[int] = collections.deque()  # jobs of each message sent, not all answered
        self.head_since = 0.0  # when the first job of the batch started (monotonic)
        self.answered = False  # it has sent a reply: it has started up (imported what the checks need)
        self.stalled = False  # its current job runs much longer than usual: nothing more is queued behind it
        self.watchdog: asyncio.TimerHandle | None = None  # kills it when a job nobody waits for overruns
        self.mover: asyncio.TimerHandle | None = None  # hands the jobs waiting behind a slow one to others

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

    def stop_timers(self) -> None:
        for timer in (self.watchdog, self.mover):
            if timer is not None:
                timer.cancel()
        self.watchdog = self.mover = None

    def kill(self) -> None:
        self.stop_reading()
        self.stop_timers()
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.process.join(timeout=1)


class _WarmProcesses:
    """Worker processes kept warm across checks and runs, fed from a queue per event loop in batches. A check
    cancelled by a rollback finishes in its worker and its result is dropped; only a check that runs past its
    timeout costs a worker (it is killed, and the checks queued behind it go to another)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.workers: list[_Worker] = []
        self.starting = 0
        self.started = 0
        self.killed = 0
        self.queues: dict[asyncio.AbstractEventLoop, collections.deque[_Job]] = {}
        self.job_seconds = 0.0  # a moving average of how long a job takes in a worker (0: none measured yet)
        self.moved = 0  # jobs handed to another worker because the one before them in a batch was slow
        self.waiters: dict[asyncio.AbstractEventLoop, list[tuple[float, asyncio.Future[None]]]] = {}  # runs waiting
        self.wake_below: dict[asyncio.AbstractEventLoop, float] = {}  # the highest backlog one of them waits for
        self._lock = threading.Lock()  # workers and queues may be shared by loops in several threads

    # -- the loop side
    def submit(self, job: _Job) -> None:
        job.pool = self
        jobs = self.queues.get(job.loop)
        if jobs is None:  # a loop not seen before: those gone since are forgotten now
            with self._lock:
                self._reap()
                jobs = self.queues.setdefault(job.loop, collections.deque())
        jobs.append(job)
        self._pump(job.loop)

    def gave_up(self, job: _Job, *, expired: bool = False) -> None:
        worker = job.worker
        if worker is not None and worker.batch and worker.batch[0] is job:
            # running: let it finish warm, unless it runs past its timeout; at its deadline, a check that has run
            # for most of its timeout (it did not wait long in the queue) is killed now
            self._watch(worker, kill_within=job.timeout * OVERRUN_GRACE if expired else 0.0)

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand the queued jobs of ``loop`` to the workers, starting workers up to the limit: idle workers first,
        then a second message to a worker of this loop still running its first, so that no worker waits for the
        event loop between batches."""
        jobs = self.queues.get(loop)
        while jobs and not jobs[0].wanted:
            jobs.popleft()
        if not jobs:
            return
        sends: list[tuple[_Worker, list[_Job], bool]] = []
        with self._lock:
            # spread the queue over every worker, a batch at most, and no more than BATCH_SECONDS of work by the
            # average so far (slow checks are not batched)
            per_worker = min(MAX_BATCH, max(1, -(-len(jobs) // max(1, len(self.workers)))))
            if self.job_seconds > 0:
                per_worker = max(1, min(per_worker, int(BATCH_SECONDS / self.job_seconds)))
            ready = sorted((w for w in self.workers if not w.batch or (
                w.reading is loop and len(w.messages) == 1 and not w.stalled)), key=lambda w: len(w.batch))
            for worker in ready:
                if not worker.answered and worker.batch:
                    continue  # a fresh worker gets one job until it answers (it may be importing for a while)
                new: list[_Job] = []
                take = per_worker if worker.answered else 1
                while jobs and len(new) < take:
                    job = jobs.popleft()
                    if job.wanted:
                        job.worker = worker
                        new.append(job)
                if not new:
                    break
                sends.append((worker, new, not worker.batch))
                worker.batch.extend(new)
                worker.messages.append(len(new))
                worker.read_on(loop, self._on_reply)
            if jobs and len(self.workers) + self.starting < self.limit:
                self.starting += 1
                threading.Thread(target=self._start_worker, args=(loop,), daemon=True,
                                 name="interlock-start-check-process").start()
        for worker, new, idle in sends:
            self._send(worker, loop, new, idle)

    def _send(self, worker: _Worker, loop: asyncio.AbstractEventLoop, new: list[_Job], idle: bool) -> None:
        """Send ``new`` (the last jobs of its batch) to ``worker``. A second message goes only if it fits in the
        pipe unread (the worker reads it after its first batch): a send never waits for a busy worker."""
        failed: list[tuple[_Job, str]] = []
        try:
            blob = pickle.dumps([(j.deadline, j.fn, j.args) for j in new], pickle.HIGHEST_PROTOCOL)
        except Exception:
            kept = []
            for job in new:
                try:
                    pickle.dumps((job.fn, job.args), pickle.HIGHEST_PROTOCOL)
                    kept.append(job)
                except Exception as exc:
                    failed.append((job, f"the check could not be sent to a worker process: {type(exc).__name__}: "
                                        f"{exc}"))
            blob = pickle.dumps([(j.deadline, j.fn, j.args) for j in kept], pickle.HIGHEST_PROTOCOL)
            self._take_back(worker, new, requeue=False)
            new = kept
            if new:
                worker.batch.extend(new)
                worker.messages.append(len(new))
        message = pickle.dumps((len(new), blob), pickle.HIGHEST_PROTOCOL) if new else b""
        if new and not idle and len(message) > PREFETCH_BYTES:
            self._take_back(worker, new, requeue=True)  # too big to wait in the pipe: when the worker is free
        elif new:
            try:
                worker.conn.send_bytes(message)
            except OSError as exc:  # it died
                if idle:  # none of its jobs started: all go to another
                    self._discard(worker, requeue_from=0)
                    self._pump(loop)
                else:
                    self._died(worker, exc)
            else:
                if idle:
                    worker.head_since = time.monotonic()
                self._arm_mover(worker)
        for job, error in failed:
            job.worker = None
            job.result(False, error)

    def _take_back(self, worker: _Worker, new: list[_Job], *, requeue: bool) -> None:
        """Undo the assignment of ``new`` (the last jobs of ``worker``'s batch, one message not sent)."""
        for _ in new:
            worker.batch.pop()
        worker.messages.pop()
        for job in new:
            job.worker = None
        if requeue and worker.reading is not None:
            self.queues.setdefault(worker.reading, collections.deque()).extendleft(reversed(new))

    def _arm_mover(self, worker: _Worker) -> None:
        """If jobs wait behind the one running, hand them to other workers should it take much longer than usual
        (a hung check holds up only itself; a job run twice is answered once)."""
        if worker.mover is not None or len(worker.batch) < 2 or worker.reading is None:
            return
        delay = max(MOVE_AFTER, MOVE_FACTOR * self.job_seconds) - (time.monotonic() - worker.head_since)
        worker.mover = worker.reading.call_later(max(0.0, delay), self._move_waiting, worker, worker.batch[0])

    def _move_waiting(self, worker: _Worker, head: _Job) -> None:
        worker.mover = None
        loop = worker.reading
        if loop is None or not worker.batch or worker.batch[0] is not head:
            return
        with self._lock:
            elsewhere = (self.starting > 0 or len(self.workers) < self.limit
                         or any(not w.batch for w in self.workers if w is not worker))
        if not elsewhere:  # every other worker is busy: look again in a while
            worker.mover = loop.call_later(MOVE_AFTER, self._move_waiting, worker, head)
            return
        worker.stalled = True
        moved = []
        for i in range(1, len(worker.batch)):
            job = worker.batch[i]
            if job.wanted:
                worker.batch[i] = _Moved(job)  # keeps the worker's replies in step with its batch
                job.worker = None
                moved.append(job)
        if moved:
            self.moved += len(moved)
            self.queues.setdefault(loop, collections.deque()).extendleft(reversed(moved))
            self._pump(loop)

    def _on_reply(self, worker: _Worker) -> None:
        """Read what the worker sent: every reply waiting in its pipe, not one per wakeup. A busy worker replies
        every ``REPLY_EVERY`` while a loop with many streams may take longer than that between wakeups; one reply
        a wakeup would leave the worker's answered jobs counted as outstanding and starve it of new ones."""
        delivered = False  # some reply held results (an empty one only says the worker is alive)
        for _ in range(MAX_REPLIES_READ):
            try:
                took, replies = pickle.loads(worker.conn.recv_bytes())
            except (EOFError, OSError) as exc:  # the worker died (killed, out of memory, a crash)
                self._died(worker, exc)
                return
            worker.answered = True
            if replies:
                delivered = True
                self._answer(worker, took, replies)
            try:
                more = worker.reading is not None and worker.conn.poll(0)
            except (EOFError, OSError):
                more = False  # closed while its replies were handled (a check's result killed it): done here
            if not more:
                break
        if not delivered:
            return
        worker.head_since = time.monotonic()
        worker.stalled = False
        worker.stop_timers()
        if worker.batch:
            if not worker.batch[0].wanted:
                self._watch(worker)
            self._arm_mover(worker)
        loop = worker.reading
        if loop is not None:
            self._pump(loop)
            self._wake(loop)
            if not worker.batch:
                self._wake_other_loops(loop)

    def _answer(self, worker: _Worker, took: float, replies: list[bytes]) -> None:
        """Hand one reply's results to their jobs, in the order the worker ran them."""
        if took > 0:  # the seconds the worker spent on them, whatever the event loop's own delays
            per_job = took / len(replies)
            self.job_seconds = per_job if not self.job_seconds else 0.8 * self.job_seconds + 0.2 * per_job
        for raw in replies:
            if not worker.batch:
                break
            job = worker.batch.popleft()
            worker.messages[0] -= 1
            if not worker.messages[0]:
                worker.messages.popleft()
            job.worker = None
            if not job.wanted:
                continue
            if raw == _SKIPPED:
                job.expire()
                continue
            try:
                ok, value = pickle.loads(raw)
            except Exception as exc:
                ok, value = False, f"the result could not be read back: {type(exc).__name__}: {exc}"
            job.result(ok, value)

    def _died(self, worker: _Worker, exc: BaseException) -> None:
        """The worker's pipe broke: the job it was running gets the error, the jobs behind go to another."""
        head = worker.batch[0] if worker.batch else None
        loop = worker.reading
        self._discard(worker, requeue_from=1)
        if head is not None and head.wanted:
            head.worker = None
            head.result(False, f"the check's worker process died ({type(exc).__name__})")
        if loop is not None:
            self._pump(loop)

    def _watch(self, worker: _Worker, *, kill_within: float = 0.0) -> None:
        """Kill ``worker`` if the job it runs now, whose result nobody wants, runs past its timeout (at once if
        that is less than ``kill_within`` seconds away)."""
        if not worker.batch or worker.reading is None:
            return
        job = worker.batch[0]
        delay = worker.head_since + job.timeout - time.monotonic()
        if not worker.answered:  # a fresh worker may still be importing what its first checks need
            delay, kill_within = max(delay, worker.head_since + STARTUP_GRACE - time.monotonic()), 0.0
        if delay <= kill_within:
            self._overran(worker, job)
        elif worker.watchdog is None:
            worker.watchdog = worker.reading.call_later(delay, self._overran, worker, job)

    def _overran(self, worker: _Worker, job: _Job) -> None:
        if worker.watchdog is not None:
            worker.watchdog.cancel()
            worker.watchdog = None
        if worker.batch and worker.batch[0] is job and worker in self.workers:
            loop = worker.reading
            self._discard(worker, requeue_from=1)
            if loop is not None:
                self._pump(loop)

    def _discard(self, worker: _Worker, *, requeue_from: int) -> None:
        """Kill ``worker``; its jobs from ``requeue_from`` on (not started) go back to the front of their queue."""
        rest = [j for j in list(worker.batch)[requeue_from:] if j.wanted]
        worker.batch.clear()
        worker.messages.clear()
        loop = worker.reading
        worker.kill()
        with self._lock:
            self.killed += 1
            if worker in self.workers:
                self.workers.remove(worker)
        for job in rest:
            job.worker = None
        if rest and loop is not None:
            jobs = self.queues.setdefault(loop, collections.deque())
            jobs.extendleft(reversed(rest))

    def _wake_other_loops(self, loop: asyncio.AbstractEventLoop) -> None:
        if len(self.queues) < 2:
            return
        with self._lock:
            others = [other for other, jobs in self.queues.items() if other is not loop and jobs]
        for other in others:
            with contextlib.suppress(RuntimeError):
                other.call_soon_threadsafe(self._pump, other)

    def _reap(self) -> None:
        """(Under the lock.) Forget the workers and queues of event loops that have closed."""
        for worker in list(self.workers):
            if worker.batch and worker.reading is not None and worker.reading.is_closed():
                worker.batch.clear()
                worker.messages.clear()
                worker.kill()
                self.killed += 1
                self.workers.remove(worker)
        for loop in [loop for loop in self.queues if loop.is_closed()]:
            del self.queues[loop]
        for loop in [loop for loop in self.waiters if loop.is_closed()]:
            del self.waiters[loop]
            self.wake_below.pop(loop, None)

    # -- starting a worker (in a thread of its own: spawning takes a while)
    def _start_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            worker = _Worker(multiprocessing.get_context("spawn"))
        except BaseException as exc:
            with self._lock:
                self.starting -= 1
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._start_failed, loop, f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            self.starting -= 1
            self.started += 1
            self.workers.append(worker)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._pump, loop)

    def _start_failed(self, loop: asyncio.AbstractEventLoop, error: str) -> None:
        if self.workers or self.starting:
            self._pump(loop)
            return
        jobs = self.queues.get(loop)
        while jobs:
            job = jobs.popleft()
            if job.wanted:
                job.result(False, f"no worker process could be started: {error}")

    # -- backpressure: the queue of a loop holds at most about BACKLOG_HIGH seconds of work
    def backlog(self, loop: asyncio.AbstractEventLoop) -> float:
        """Seconds of work waiting for ``loop``'s checks (queued, or sent to a worker and not answered), by the
        average time of a job, spread over the workers."""
        jobs = self.queues.get(loop)
        waiting = (len(jobs) if jobs else 0) + sum(len(w.batch) for w in self.workers if w.reading is loop)
        return waiting * (self.job_seconds or 0.001) / max(1, len(self.workers))

    def room(self, loop: asyncio.AbstractEventLoop, low: float) -> asyncio.Future[None]:
        """A future set once the backlog of ``loop`` is down to ``low`` seconds."""
        waiter: asyncio.Future[None] = loop.create_future()
        if self.backlog(loop) <= low:
            waiter.set_result(None)
        else:
            self.waiters.setdefault(loop, []).append((low, waiter))
            self.wake_below[loop] = max(self.wake_below.get(loop, 0.0), low)
        return waiter

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        waiting = self.waiters.get(loop)
        if not waiting:
            return
        backlog = self.backlog(loop)
        if backlog > self.wake_below.get(loop, 0.0):
            return  # none of them can go on yet
        still = [(low, waiter) for low, waiter in waiting if not waiter.done() and backlog > low]
        for low, waiter in waiting:
            if not waiter.done() and backlog <= low:
                waiter.set_result(None)
        self.waiters[loop] = still
        self.wake_below[loop] = max((low for low, _ in still), default=0.0)

    def stats(self) -> dict[str, int]:
        return {"processes_alive": len(self.workers), "processes_started": self.started,
                "processes_killed": self.killed, "process_jobs_moved": self.moved}

    def forget(self) -> None:
        """In a forked child: the parent's workers and pipes are the parent's."""
        self.__init__(self.limit)  # type: ignore[misc]


_PROCESSES = _WarmProcesses(MAX_PROCESSES)


def _after_fork_in_child() -> None:
    _THREADS.forget()
    _PROCESSES.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def worker_stats() -> dict[str, int]:
    """How many check workers exist (threads, idle threads, abandoned threads still running, warm processes) and
    how many processes were started and killed so far: what the tests and benchmarks read to see that workers stay
    warm and that hung checks are set aside."""
    return {"threads": _THREADS.threads, "threads_idle": max(0, _THREADS.idle),
            "threads_abandoned": _THREADS.abandoned, **_PROCESSES.stats()}


# -- dispatching one check without a task --------------------------------------------------------------------


def run_inline(verifier: Verifier, view: TraceView) -> CheckOutcome:
    """Run a sync ``runs_in="loop"`` check here and now (it cannot be pre-empted: past its timeout it is
    ``Unknown``, never ``Pass``). Never raises."""
    started = time.perf_counter()
    ok = True
    try:
        value: Any = verifier.check(verifier.extract(view))
    except Exception as exc:
        ok, value = False, exc
    except (KeyboardInterrupt, SystemExit) as exc:
        ok, value = False, _as_check_error(exc)
    took = time.perf_counter() - started
    if ok and took > verifier.timeout:
        ok, value = False, OverranTimeout(f"ran {took:.3g} s on the event loop, past its timeout of "
                                          f"{verifier.timeout:g} s")
    return _outcome(verifier, view, ok, value, started)


def start_check(verifier: Verifier, view: TraceView, done: Callable[[PendingCheck, CheckOutcome], None],
                tag: Any = None) -> PendingCheck:
    """Hand a sync thread or process check (:func:`placement`) to its workers from the running asyncio loop;
    ``done(check, outcome)`` is called on the loop when it finishes or times out, never after
    :meth:`PendingCheck.cancel`."""
    loop = asyncio.get_running_loop()
    if verifier.runs_in == "process":
        if verifier.extracts_step:
            job = PendingCheck(_check_only, (verifier, view.step), loop, verifier, view, done, tag)
        else:  # a process cannot receive the view's fork handle; it only needs the text
            plain = dataclasses.replace(view, fork=None) if view.fork is not None else view
            job = PendingCheck(_extract_and_check, (verifier, plain), loop, verifier, view, done, tag)
        _side(loop).watch(job)
        _PROCESSES.submit(job)
    else:
        job = PendingCheck(_extract_and_check, (verifier, view), loop, verifier, view, done, tag)
        _side(loop).watch(job)
        _THREADS.submit(job)
    return job


def backlog_limit(timeouts: Sequence[float]) -> float:
    """Seconds of queued process checks a run lets build up before it waits for them: ``BACKLOG_HIGH``, or a quarter
    of the shortest timeout of its process checks if that is less (a check is never queued into its timeout)."""
    return min(BACKLOG_HIGH, min(timeouts, default=math.inf) / 4)


def behind(limit: float) -> bool:
    """Whether the process checks queued by the running loop hold more than ``limit`` seconds of work: a run whose
    checks go to the processes then waits (:func:`catch_up`) before it reads on."""
    loop = asyncio.get_running_loop()
    # nothing queued: the workers are keeping up (what they hold is at most two batches of BATCH_SECONDS each)
    return bool(_PROCESSES.queues.get(loop)) and _PROCESSES.backlog(loop) > limit


async def catch_up(limit: float, longest: float) -> None:
    """Wait until the workers have worked the backlog of this loop down to half of ``limit``, at most ``longest``
    seconds (then the checks still queued time out as they would have)."""
    with anyio.move_on_after(longest):
        await _PROCESSES.room(asyncio.get_running_loop(), limit / 2)


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


# -- one check, awaited -------------------------------------------------------------------------------------


async def _in_worker(verifier: Verifier, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    loop = _asyncio_loop()
    if loop is None:  # another event loop library: anyio's threads and processes
        if verifier.runs_in == "thread":
            return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)
        return await anyio.to_process.run_sync(fn, *args, cancellable=True)
    job = _FutureJob(fn, args, loop, verifier.timeout)
    (_THREADS if verifier.runs_in == "thread" else _PROCESSES).submit(job)
    return await job.wait()


async def _invoke(verifier: Verifier, view: TraceView) -> Any:
    async_extract = verifier.extracts_async
    async_check = verifier.checks_async
    if async_check or (async_extract and verifier.runs_in == "loop"):
        return await call_async_bounded(_async_extract_and_check(verifier, view))
    if verifier.runs_in == "loop":
        outcome = run_inline(verifier, view)
        return outcome
    if async_extract:
        state = await call_async_bounded(verifier.extract(view))
        return await _in_worker(verifier, _check_only, (verifier, state))
    if verifier.runs_in == "thread":
        return await _in_worker(verifier, _extract_and_check, (verifier, view))
    if verifier.extracts_step:
        return await _in_worker(verifier, _check_only, (verifier, view.step))
    # A process cannot receive the view's fork handle; it only needs the text.
    return await _in_worker(verifier, _extract_and_check, (verifier, dataclasses.replace(view, fork=None)))


async def _async_extract_and_check(verifier: Verifier, view: TraceView) -> Any:
    state = verifier.extract(view)
    if inspect.isawaitable(state):
        state = await state
    result = verifier.check(state)
    return await result if inspect.isawaitable(result) else result


async def run_check(verifier: Verifier, view: TraceView) -> CheckOutcome:
    """Run ``verifier`` on ``view``; cancellation (a rollback removed the text) propagates."""
    started = time.perf_counter()
    try:
        with anyio.fail_after(verifier.timeout):
            result = await _invoke(verifier, view)
        if isinstance(result, CheckOutcome):  # a loop check, already judged
            return result
        return _outcome(verifier, view, True, result, started)
    except TimeoutError:
        return _outcome(verifier, view, False, _timed_out(verifier), started)
    except Exception as exc:
        return _outcome(verifier, view, False, exc, started)


def normalize_verdicts(result: Any, *, verifier: Verifier, view: TraceView) -> list[Verdict]:
    """Turn what ``check`` returned into verdicts with the verifier's name, the epoch and a valid span.

    Raises :class:`VerdictTypeError` for anything that is not a verdict, a bool, ``None`` or a list of verdicts,
    and for a span outside the text the verifier saw.
    """
    scope = view.step.span
    if result is None or result is True:  # the common case: a pass, built once
        return [Pass(verifier=verifier.name, epoch=view.epoch, span=scope)]
    items: Sequence[Any]
    if result is False:
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
