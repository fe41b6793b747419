"""How checks reach their workers (issue 29) and why a hung check takes nothing from the others (issue 24, item 6).

A sync loop check runs inline at its step end; thread and process checks are jobs whose outcome comes back as a
callback on the loop, without a task per check; process checks go to the warm workers in batches. Every path keeps
the monitor's semantics: verdicts for the right check, timeouts enforced, rollbacks cancel, arbitration order.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Fail, Monitor, Pass, Span, Step, TraceView, Verifier, verifier
from interlock.generators import Scripted
from interlock.monitor import execute
from interlock.monitor.execute import call_in_thread, worker_stats

from tests.support import SumVerifier, check_sums


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of the test: checks that wait on it (hung, as far as the monitor knows) end then."""
    event = threading.Event()
    yield event
    event.set()


async def settled(what: Any, *, within: float = 10.0) -> None:
    """Wait until ``what()`` is true (the pool's threads end or rejoin a moment after their checks return)."""
    deadline = time.monotonic() + within
    while not what():
        assert time.monotonic() < deadline, "the condition never held"
        await anyio.sleep(0.01)


# -- issue 24, item 6: hung thread checks do not switch off the checks of other runs ----------------------------


async def test_hung_thread_checks_do_not_switch_off_the_checks_of_other_runs(release: threading.Event) -> None:
    @verifier(name="hangs", timeout=0.1)
    def hangs(step: Step) -> None:
        release.wait(120)  # what a hostile input does to a check: it never returns

    abandoned = worker_stats().get("threads_abandoned", 0)
    poisoned = []

    async def poisoned_run() -> None:
        poisoned.append(await Monitor(Scripted(["Poison.\n"]), [hangs]).run("q"))

    async with anyio.create_task_group() as tg:  # 40 poisoned runs: more hung checks than the pool has threads
        for _ in range(40):
            tg.start_soon(poisoned_run)
    assert [[(type(v).__name__, v.reason) for v in r.verdicts] for r in poisoned] == [  # type: ignore[union-attr]
        [("Unknown", "timed out after 0.1 s")]] * 40

    honest = verifier(check_sums, name="sums", timeout=3)  # another verifier, another run, after the poison
    started = time.perf_counter()
    result = await Monitor(Scripted(["So 2 + 2 = 5.\n"]), [honest]).run("q")
    assert time.perf_counter() - started < 3
    assert {(type(v).__name__, getattr(v, "message", "")) for v in result.verdicts} == {
        ("Fail", "2 + 2 is 4, not 5")}  # checked, each time the model wrote it
    assert not result.passed
    assert worker_stats()["threads_abandoned"] - abandoned >= execute.MAX_THREADS  # set aside, not waited for
    assert worker_stats()["threads"] <= execute.MAX_THREADS

    release.set()  # the hung checks return: their threads rejoin the pool or end, none is left counted out
    await settled(lambda: worker_stats()["threads_abandoned"] <= abandoned)
    assert worker_stats()["threads"] <= execute.MAX_THREADS


async def test_calls_abandoned_by_their_callers_free_their_threads(release: threading.Event) -> None:
    """``call_in_thread`` (tool calls, argument checks): a call whose caller timed out no longer holds a thread."""
    for _ in range(execute.MAX_THREADS + 8):
        with anyio.move_on_after(0.01):
            await call_in_thread(release.wait, 120)
    with anyio.fail_after(3):
        assert await call_in_thread(sum, [1, 2, 3]) == 6


async def test_a_pool_replaces_abandoned_threads_and_takes_them_back() -> None:
    pool = execute._DaemonThreads(limit=2, max_abandoned=3)
    loop = asyncio.get_running_loop()
    gate = threading.Event()

    def job(fn: Any, *args: Any) -> execute._FutureJob:
        made = execute._FutureJob(fn, args, loop, math.inf)
        pool.submit(made)
        return made

    try:
        hung = [job(gate.wait, 30) for _ in range(2)]
        await settled(lambda: all(j.running for j in hung))
        waiting = job(str, "ran")
        await anyio.sleep(0.05)
        assert not waiting.future.done() and (pool.threads, pool.idle) == (2, -1)  # both threads hang: it waits
        hung[0].give_up()  # its caller gave up (a timeout): a fresh thread takes the waiting job
        with anyio.fail_after(5):
            assert await waiting.wait() == "ran"
        assert (pool.threads, pool.abandoned) == (2, 1)
        gate.set()  # the hung calls return: the pool is full, so the abandoned thread ends
        with anyio.fail_after(5):
            assert await hung[1].wait() is True
        await settled(lambda: pool.abandoned == 0 and pool.idle == 2)
        assert pool.threads == 2
    finally:
        gate.set()


# -- a loop check runs inline, at its step end -------------------------------------------------------------------


async def test_a_loop_check_is_answered_before_the_next_chunk_is_read() -> None:
    loop_sums = verifier(check_sums, name="sums", runs_in="loop")
    kinds = []
    async with Monitor(Scripted(["So ", "1 + 1 = 2.\n", "Then ", "2 + 2 = 4.\n", "Done."]),
                       [loop_sums]).stream("q") as run:
        async for event in run:
            kinds.append(event.kind if event.kind != "chunk" else repr(event.chunk.text))  # type: ignore[attr-defined]
    assert kinds == ["run_started", "'So '", "'1 + 1 = 2.\\n'", "verdict", "'Then '", "'2 + 2 = 4.\\n'", "verdict",
                     "'Done.'", "verdict", "end"]


async def test_a_loop_check_makes_no_task() -> None:
    loop = asyncio.get_running_loop()
    made = 0

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[Any]:
        nonlocal made
        made += 1
        return asyncio.Task(coro, loop=loop, **options)

    async def tasks_of(verifiers: list[Verifier]) -> int:
        nonlocal made
        made = 0
        loop.set_task_factory(counting)  # type: ignore[arg-type]
        try:
            result = await Monitor(Scripted([f"Step {i}: {i} + 1 = {i + 1}.\n" for i in range(50)]),
                                   verifiers).run("q")
        finally:
            loop.set_task_factory(None)
        assert len(result.verdicts) == len(verifiers) * 50 and result.passed
        return made

    # fifty checks on the loop start no more tasks than a run with no verifier at all
    assert await tasks_of([verifier(check_sums, name="sums", runs_in="loop")]) == await tasks_of([])
    # and neither do fifty checks in a thread
    assert await tasks_of([verifier(check_sums, name="sums")]) == await tasks_of([])


# -- thread and process checks: the right verdict for each check, cancelled by a rollback, timeouts kept ----------


def _numbered(i: int, wrong_at: int, steps: int) -> list[str]:
    return [f"Step {k}: so {i} + {k} = {i + k + (1 if k == wrong_at else 0)}.\n" for k in range(steps)]


@pytest.mark.parametrize("runs_in", ["thread", "process"])
async def test_concurrent_runs_get_the_verdicts_of_their_own_text(runs_in: str) -> None:
    """Twenty runs at once share the workers (process checks in batches): each gets the verdicts of its own steps."""
    check = SumVerifier(runs_in=runs_in, timeout=30, action="warn")  # type: ignore[arg-type]
    results: dict[int, Any] = {}

    async def one(i: int) -> None:
        results[i] = await Monitor(Scripted(_numbered(i, i % 6, 6)), [check]).run("q")

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)
    for i, result in results.items():
        wrong = i % 6
        by_step = sorted(result.verdicts, key=lambda v: v.span.start)  # they arrive in any order
        assert [type(v).__name__ for v in by_step] == ["Fail" if k == wrong else "Pass" for k in range(6)]
        fail = next(v for v in by_step if isinstance(v, Fail))
        assert fail.message == f"{i} + {wrong} is {i + wrong}, not {i + wrong + 1}"
        assert result.text[fail.span.start:fail.span.end] == f"{i} + {wrong} = {i + wrong + 1}"  # type: ignore[union-attr]


class Slow(Verifier):
    """A process check that hangs on steps that say HANG and is quick on the rest."""

    name = "slow"
    runs_in = "process"
    timeout = 1.5

    def check(self, state: Step) -> Fail | None:
        if "HANG" in state.text:
            time.sleep(30)
        return check_sums(state)


async def test_checks_batched_behind_a_hung_one_move_to_another_worker() -> None:
    await Monitor(Scripted(["Warm up.\n"]), [Slow()]).run("q")  # the workers are warm
    killed = worker_stats()["processes_killed"]
    steps = ["HANG here.\n"] + [f"So {k} + 1 = {k + 1}.\n" for k in range(30)]
    started = time.perf_counter()
    result = await Monitor(Scripted(steps), [Slow()]).run("q")
    assert time.perf_counter() - started < 10 * Slow.timeout
    by_step = sorted(result.verdicts, key=lambda v: v.span.start if v.span is not None else -1)
    kinds = [(type(v).__name__, getattr(v, "reason", "")) for v in by_step]
    assert kinds[0] == ("Unknown", "timed out after 1.5 s")
    assert kinds[1:] == [("Pass", "")] * 30  # none of them waited out the hung check's timeout
    await settled(lambda: worker_stats()["processes_killed"] == killed + 1)


async def test_jobs_waiting_behind_a_hung_one_in_a_batch_are_moved() -> None:
    pool = execute._WarmProcesses(limit=1)
    loop = asyncio.get_running_loop()

    def job(fn: Any, *args: Any, timeout: float = 20.0) -> execute._FutureJob:
        made = execute._FutureJob(fn, args, loop, timeout)
        made.pool = pool
        return made

    try:
        with anyio.fail_after(60):
            warm = job(sum, [1, 2])
            pool.submit(warm)
            assert await warm.wait() == 3  # one warm worker
            hung = job(time.sleep, 60, timeout=15)
            quick = [job(sum, [k, 1]) for k in range(6)]
            pool.queues[loop].extend([hung, *quick])
            pool._pump(loop)  # queued together: they go to the worker as one batch, the hung job first
            assert list(pool.workers[0].batch) == [hung, *quick]
            pool.limit = 2  # room for another worker: what waits behind the hung job moves there
            assert [await q.wait() for q in quick] == [k + 1 for k in range(6)]
        assert pool.moved == 6 and pool.killed == 0
        hung.give_up()
    finally:
        for worker in list(pool.workers):
            worker.kill()


class Busy(Verifier):
    """A process check that keeps a CPU busy for 20 ms a step."""

    name = "busy"
    runs_in = "process"
    timeout = 2.0

    def check(self, state: Step) -> None:
        until = time.thread_time() + 0.02
        while time.thread_time() < until:
            pass


@pytest.mark.slow
async def test_process_checks_that_fall_behind_slow_the_reading_and_none_times_out() -> None:
    for _ in range(20):  # every worker is up and has imported this module
        await Monitor(Scripted([f"Warm up {k}.\n" for k in range(20)]), [Busy(timeout=60)]).run("q")
        if len(execute._PROCESSES.workers) == execute.MAX_PROCESSES and all(
                w.answered for w in execute._PROCESSES.workers):
            break
    steps = [f"Step {k}.\n" for k in range(75 * execute.MAX_PROCESSES)]  # 3 s of work for every worker: more than
    # the timeout, four times what the monitor lets queue up
    results = []

    async def one() -> None:
        results.append(await Monitor(Scripted(steps), [Busy()]).run("q"))

    async with anyio.create_task_group() as tg:  # two runs at full speed: the workers cannot keep up with them
        for _ in range(2):
            tg.start_soon(one)
    for result in results:
        assert [type(v).__name__ for v in result.verdicts] == ["Pass"] * len(steps)  # every one decided in time
        assert result.errors == ()
    assert execute.backlog_limit([2.0]) == 0.5 and execute.backlog_limit([1.0]) == 0.25


@pytest.mark.parametrize("runs_in", ["thread", "process"])
async def test_a_rollback_drops_the_checks_of_removed_text(runs_in: str) -> None:
    check = SumVerifier(runs_in=runs_in, timeout=30)  # type: ignore[arg-type]
    script = {"": ["So 1 + 1 = 3.\n", "Then 2 + 2 = 4.\n", "And 3 + 3 = 6.\n"],
              "redo this step.\n": ["So 1 + 1 = 2.\n"]}
    result = await Monitor(Scripted(script), [check]).run("q")
    assert result.text == "Wait, 1 + 1 is 2, not 3. Let me redo this step.\nSo 1 + 1 = 2.\n"
    assert [i.action.value for i in result.interventions] == ["rollback"]
    assert result.passed


class LastLine(Verifier):
    """Reads the whole view (not only the step): the last line of the text it saw, checked for sums."""

    name = "last-line"
    runs_in = "process"

    def extract(self, view: TraceView) -> Step:
        line = view.text.rstrip("\n").rsplit("\n", 1)[-1]
        start = view.text.rfind(line)
        return Step(line, Span(start, start + len(line)))

    def check(self, state: Step) -> Fail | None:
        return check_sums(state)


async def test_a_process_check_gets_the_step_or_the_view_as_its_extract_needs() -> None:
    text = ["So 1 + 1 = 2.\n", "Then 2 + 2 = 5.\n"]
    assert SumVerifier().extracts_step and not LastLine().extracts_step
    assert verifier(check_sums, name="s").extracts_step
    assert not verifier(check_sums, name="s", extractor=lambda view: view.step).extracts_step
    for check in (SumVerifier(runs_in="process", action="warn"), LastLine(action="warn")):  # type: ignore[arg-type]
        result = await Monitor(Scripted(text), [check]).run("q")
        by_step = sorted(result.verdicts, key=lambda v: v.span.start if v.span is not None else -1)
        assert [type(v).__name__ for v in by_step] == ["Pass", "Fail"]
        assert getattr(by_step[1], "message", "") == "2 + 2 is 4, not 5"


# -- the order of decisions does not depend on where checks run or when they come back ---------------------------


class Delayed(Verifier):
    """Sums, after a delay that depends on the step (so checks come back out of order)."""

    def __init__(self, delays: list[float], **options: Any) -> None:
        self.delays = delays
        super().__init__(**options)

    def check(self, state: Step) -> Fail | None:
        time.sleep(self.delays[state.index % len(self.delays)])
        return check_sums(state)


@settings(max_examples=30, deadline=None)
@given(wrong=st.lists(st.booleans(), min_size=3, max_size=6),
       placements=st.tuples(st.sampled_from(["loop", "thread", "process"]),
                            st.sampled_from(["loop", "thread", "process"])),
       actions=st.tuples(st.sampled_from(["rollback", "interrupt"]), st.sampled_from(["rollback", "interrupt"])),
       delays=st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.03]), min_size=1, max_size=4))
def test_the_first_decision_does_not_depend_on_where_checks_run(
        wrong: list[bool], placements: tuple[str, str], actions: tuple[str, str], delays: list[float]) -> None:
    steps = [f"Step {k}: {k} + 1 = {k + 1 + int(bad)}.\n" for k, bad in enumerate(wrong)]
    first = Delayed(delays, name="first", runs_in=placements[0], action=actions[0],  # type: ignore[arg-type]
                    timeout=30)
    second = Delayed(list(reversed(delays)), name="second", runs_in=placements[1],  # type: ignore[arg-type]
                     action=actions[1], timeout=30)

    async def main() -> Any:
        return await Monitor(Scripted(steps), [first, second]).run("q")

    result = anyio.run(main)
    if not any(wrong):
        assert result.passed and result.interventions == ()
        return
    k = wrong.index(True)
    # at the earliest wrong step the strongest action wins, then the name; whichever check came back first
    winner = min(zip(("first", "second"), actions, strict=True), key=lambda sa: (sa[1] != "interrupt", sa[0]))
    decided = result.interventions[0]
    assert (decided.source, decided.action.value, decided.position) == (*winner, sum(len(s) for s in steps[:k]))


# -- Verifier.scan still goes through every path ---------------------------------------------------------------


@pytest.mark.parametrize("runs_in", ["loop", "thread", "process"])
def test_scan_gives_the_same_verdicts_on_every_path(runs_in: str) -> None:
    check = SumVerifier(runs_in=runs_in)  # type: ignore[arg-type]
    verdicts = check.scan("So 1 + 1 = 2.\nThen 2 + 2 = 5.\n")
    assert [type(v) for v in verdicts] == [Pass, Fail]
    assert isinstance(verdicts[1], Fail) and verdicts[1].span is not None
    assert (verdicts[1].span.start, verdicts[1].span.end) == (19, 28)
