"""Replay worker processes that can be killed: the only way to stop a check hung in native code.

A verifier stuck inside sympy or z3 holds its thread (and often the GIL) and no timeout inside the process can
stop it. So records go to worker processes in small batches, each answered one record at a time, and the parent
holds every record to a deadline: a worker that has not answered within ``timeout`` seconds of starting a
record is killed (SIGKILL), that record is reported as timed out, and the rest of its batch goes to a fresh
worker. A worker that dies (a segfault, the OOM killer) costs only the record it was on. A worker whose check
timed out inside it (a thread left running) is replaced after that record, so abandoned threads never pile up.

Workers start with the ``forkserver`` method (``spawn`` where there is none): clean processes that do not
inherit the parent's threads. Each builds its verifiers once and keeps one event loop for its whole life.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.to_thread
from interlock.monitor.errors import ConfigError
from interlock.monitor.replay.importers import ImportedTrace
from interlock.monitor.replay.results import ReadFailure, TraceReport
from interlock.monitor.replay.scanning import in_worker, scan_trace
from interlock.monitor.stdio import stdout_to_stderr
from interlock.monitor.verifier import Verifier

__all__ = ["run_in_workers"]

Item = tuple[int, ImportedTrace]
Result = TraceReport | ReadFailure
_TIMED_OUT = "timed out after"  # what run_check writes for a check that ran past its verifier's timeout
STARTUP_TIMEOUT = 300.0  # seconds a worker may take to start and build its verifiers (imports on a loaded machine)


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _worker_main(conn: multiprocessing.connection.Connection, verifiers: list[Verifier]) -> None:
    """A worker's life: build the verifiers once, then answer each batch one record at a time. It never writes
    to stdout: what its verifiers print goes to stderr, and no process they fork holds the parent's stdout."""
    stdout_to_stderr()
    local = [in_worker(v) for v in verifiers]
    conn.send("ready")  # deadlines start after this: a slow start-up is not a slow record
    with asyncio.Runner() as runner:
        while True:
            try:
                batch: list[Item] | None = conn.recv()
            except EOFError:
                return
            if batch is None:
                return
            for index, item in batch:
                try:
                    report: Result = runner.run(scan_trace(item, local))
                except Exception as exc:  # a bug, never a verdict: report it in the record's place
                    report = ReadFailure(item.path, item.line, f"{item.id}: replay failed: {type(exc).__name__}: "
                                         f"{exc}", reason="crash", id=item.id)
                tainted = isinstance(report, TraceReport) and any(_TIMED_OUT in e for e in report.errors)
                conn.send((index, report, tainted))


class _Worker:
    def __init__(self, verifiers: list[Verifier]) -> None:
        parent, child = _context().Pipe(duplex=True)
        self.conn = parent
        self.fresh = True  # its "ready" message is still to come
        self.process = _context().Process(target=_worker_main, args=(child, verifiers), daemon=True,
                                          name="interlock-replay-worker")
        try:
            self.process.start()
        except Exception as exc:  # the verifiers do not pickle, or processes cannot start here
            parent.close()
            raise ConfigError(f"the replay process pool failed ({type(exc).__name__}: {exc}); verifiers that run "
                              "in a process must pickle: define them at the top level of an importable module"
                              ) from exc
        finally:
            child.close()

    def send(self, batch: list[Item]) -> bool:
        try:
            self.conn.send(batch)
        except (OSError, EOFError):
            return False
        return True

    def receive(self, timeout: float | None) -> tuple[str, Any]:
        """("ok", message), ("timeout", None) or ("dead", exit code): runs in a thread."""
        try:
            if not self.conn.poll(timeout):
                return "timeout", None
            return "ok", self.conn.recv()
        except (EOFError, OSError):
            self.process.join(1.0)
            return "dead", self.process.exitcode

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5.0)
        self.conn.close()

    def stop(self) -> None:
        self.send(None)  # type: ignore[arg-type]
        self.process.join(5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5.0)
        self.conn.close()


def _failure(item: ImportedTrace, reason: str, message: str) -> ReadFailure:
    return ReadFailure(item.path, item.line, f"{item.id}: {message}", reason=reason, id=item.id)


async def run_in_workers(take: Callable[[int], Awaitable[list[Item]]], verifiers: Sequence[Verifier], *, workers: int,
                         batch_size: int, timeout: float | None, put: Callable[[int, Result], None]) -> None:
    """Replay what ``take(n)`` hands out (an awaitable of up to ``n`` ``(index, trace)`` pairs, empty when done)
    in ``workers`` processes, calling ``put(index, result)`` for each; every record answers within ``timeout``
    seconds of its worker starting it, or is reported as timed out and its worker killed."""
    verifiers = list(verifiers)
    first = _Worker(verifiers)  # started here, so a verifier that does not pickle fails before any work

    async def ready(worker: _Worker) -> _Worker:
        status, message = await anyio.to_thread.run_sync(worker.receive, STARTUP_TIMEOUT, abandon_on_cancel=True)
        if status != "ok" or message != "ready":
            worker.kill()
            why = "did not start in time" if status == "timeout" else f"exited with code {message} while starting"
            raise ConfigError(f"a replay worker process {why}; does every verifier build in a fresh process?")
        return worker

    async def drive(worker: _Worker | None) -> None:
        try:
            while batch := list(await take(batch_size)):
                while batch:
                    if worker is None:
                        worker = _Worker(verifiers)
                    if worker.fresh:
                        worker.fresh = False
                        await ready(worker)
                    if not worker.send(batch):
                        worker.kill()
                        worker = None
                        continue
                    while batch:
                        index, item = batch[0]
                        status, message = await anyio.to_thread.run_sync(worker.receive, timeout,
                                                                         abandon_on_cancel=True)
                        if status == "ok":
                            got, report, tainted = message
                            assert got == index, f"worker answered record {got}, expected {index}"
                            batch.pop(0)
                            put(index, report)
                            if tainted:  # a check's thread may still be running: replace the worker
                                worker.kill()
                                worker = None
                                break
                            continue
                        worker.kill()
                        worker = None
                        batch.pop(0)
                        if status == "timeout":
                            put(index, _failure(item, "timeout", f"replay timed out after {timeout:g} s; its "
                                                                 "worker process was killed"))
                        else:
                            put(index, _failure(item, "crash", f"the worker process died replaying it (exit code "
                                                               f"{message})"))
                        break
        except BaseException:
            if worker is not None:
                worker.kill()
            raise
        if worker is not None:
            worker.stop()

    async with anyio.create_task_group() as tg:
        tg.start_soon(drive, first)
        for _ in range(workers - 1):
            tg.start_soon(drive, None)
