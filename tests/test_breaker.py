"""The circuit breaker never fails open (issue 13): one fault-injection test per way it used to.

Every test goes through the public API and asserts exact refusals, verdict kinds, that the run ended within a
generous bound (10x the timeout at least; timings themselves go to benchmarks/), and that no task or non-daemon
thread is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock import (
    Capabilities,
    Chunk,
    Fail,
    GenerationRequest,
    Monitor,
    Pass,
    Span,
    Step,
    Unknown,
    Verifier,
    verifier,
)
from interlock.generators import Scripted
from interlock.monitor.agents.agent import Agent
from interlock.monitor.agents.tools import ToolRefusal, guard_tool

from tests.support import SumVerifier, check_sums

ROOT = Path(__file__).resolve().parent.parent


class Ledger:
    def __init__(self) -> None:
        self.writes: list[int] = []

    def transfer(self, amount: int) -> str:
        """Move money."""
        self.writes.append(amount)
        return f"sent {amount}"


def non_daemon_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive() and not t.daemon and t is not threading.main_thread()}


@pytest.fixture
def leaves_nothing_running() -> Iterator[None]:
    """No non-daemon thread started by the test is still alive at its end (asyncio tasks: see ``no_tasks_left``)."""
    before = non_daemon_threads()
    yield
    assert non_daemon_threads() - before == set()


async def no_tasks_left() -> None:
    """Only the test's own task and the test runner's are left."""
    for _ in range(5):
        await anyio.sleep(0)
    left = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()
            and t.get_coro().__qualname__ != "TestRunner._call_in_runner_task"}  # type: ignore[union-attr]
    assert left == set()


# -- item 1: a tool must not run after its reasoning was rolled back --------------------------------------------


class Gated:
    """A model that writes ``before``, waits for ``gate``, then writes ``after``; after a rollback, ``redo``. The
    tests act at an exact point of the stream, whatever the machine's load."""

    capabilities = Capabilities(resumable=True)

    def __init__(self, before: list[str], after: list[str], redo: list[str]) -> None:
        self.before, self.after, self.redo = before, after, redo
        self.gate = anyio.Event()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if request.prefix:
            pieces = self.redo
        else:
            for piece in self.before:
                yield Chunk(piece)
            await self.gate.wait()
            pieces = self.after
        for piece in pieces:
            await anyio.sleep(0.001)
            yield Chunk(piece)


async def until(run: Any, text: str) -> None:
    async for event in run:
        if event.kind == "chunk" and run.text.endswith(text):
            return
    raise AssertionError(f"the run never wrote {text!r}")


async def test_a_call_whose_reasoning_was_rolled_back_is_refused(leaves_nothing_running: None) -> None:
    issued = anyio.Event()

    @verifier(name="late-sums", action="rollback")
    async def late_sums(step: Step) -> Fail | None:
        await issued.wait()  # the verdict comes after the call was made
        return check_sums(step)

    ledger = Ledger()
    gen = Gated(["I have 2 + 2 = 5 dollars.\n", "So", " transfer", " 5"], [" now.\n"],
                ["I have 2 + 2 = 4 dollars.\n", "So transfer 4.\n"])
    started = time.perf_counter()
    async with Monitor(gen, [late_sums]).stream("q") as run:
        await until(run, "transfer 5")
        issued_at = len(run.text)
        transfer = guard_tool(ledger.transfer, run=run)
        issued.set()
        outcome = await transfer(5)
        result = await run.wait(timeout=10)
    assert ledger.writes == []
    assert isinstance(outcome, ToolRefusal)
    assert [(r.stage, r.source, r.message) for r in outcome.reasons] == [
        ("rollback", "late-sums", f"the reasoning this call was made from was rolled back (late-sums: 2 + 2 is 4, "
                                  f"not 5): the trace was cut at character 0, before the {issued_at} it had when "
                                  f"the call was made")]
    assert result.text.endswith("I have 2 + 2 = 4 dollars.\nSo transfer 4.\n")
    assert [(i.action.value, i.position) for i in result.interventions] == [("rollback", 0)]
    assert time.perf_counter() - started < 10
    await no_tasks_left()


# -- item 2: the step still being written is checked before a call made from it ---------------------------------


async def test_a_call_made_mid_step_waits_for_the_checks_of_that_step(leaves_nothing_running: None) -> None:
    ledger = Ledger()
    sums = verifier(check_sums, name="sums", action="rollback")
    gen = Gated(["I", " have", " 2 + 2 = 5", " dollars,", " so", " transfer", " 5"], [" now.\n"],
                ["I have 2 + 2 = 4 dollars.\n"])
    async with Monitor(gen, [sums]).stream("q") as run:
        await until(run, "transfer 5")
        transfer = guard_tool(ledger.transfer, run=run)
        outcome = await transfer(5)
        gen.gate.set()
        result = await run.wait(timeout=10)
    assert ledger.writes == []
    assert isinstance(outcome, ToolRefusal)
    assert [(r.stage, r.source, r.message) for r in outcome.reasons] == [("reasoning", "sums", "2 + 2 is 4, not 5")]
    # the barrier's check of the unfinished step refused the call but did not act on the run: the finished step did
    assert [(i.action.value, i.source, i.message) for i in result.interventions] == [
        ("rollback", "sums", "2 + 2 is 4, not 5")]
    assert result.text.endswith("I have 2 + 2 = 4 dollars.\n")
    await no_tasks_left()


async def test_a_clean_call_made_mid_step_goes_through() -> None:
    ledger = Ledger()
    gen = Gated(["I have 2 + 2 = 4 dollars,", " so", " transfer", " 4"], [" now", ".\n"], [])
    async with Monitor(gen, [verifier(check_sums, name="sums")]).stream("q") as run:
        await until(run, "transfer 4")
        assert await guard_tool(ledger.transfer, run=run)(4) == "sent 4"
        gen.gate.set()
        result = await run.wait(timeout=10)
    assert ledger.writes == [4] and result.passed


async def test_a_mid_step_failure_does_not_outlive_the_step() -> None:
    """"10 + 5 = 1" refuses the call made right then; once the step ends "= 15", a new call goes through."""
    ledger = Ledger()
    gen = Gated(["So", " 10 + 5 = 1"], ["5", " dollars", " in", " all.\n"], [])
    async with Monitor(gen, [verifier(check_sums, name="sums")]).stream("q") as run:
        await until(run, "= 1")
        transfer = guard_tool(ledger.transfer, run=run)
        early = await transfer(15)
        gen.gate.set()
        result = await run.wait(timeout=10)
        late = await transfer(15)
    assert isinstance(early, ToolRefusal)
    assert [(r.stage, r.message) for r in early.reasons] == [("reasoning", "10 + 5 is 15, not 1")]
    assert result.passed and late == "sent 15" and ledger.writes == [15]


# -- item 3: a verifier's timeout is a guarantee ----------------------------------------------------------------


@verifier(name="sleeps", timeout=0.1)
def sleeps_past_its_timeout(step: Step) -> None:
    time.sleep(0.6)


@verifier(name="spins", timeout=0.2)
def spins(step: Step) -> None:
    until = time.monotonic() + 3  # long enough to hang a run on the event loop, short enough to end by itself
    while time.monotonic() < until:
        pass


@verifier(name="resists", timeout=0.1)
async def resists_cancellation(step: Step) -> Pass:
    with contextlib.suppress(BaseException):  # swallows the cancellation and claims a pass
        await anyio.sleep(5)
    return Pass()


@verifier(name="resists-twice", timeout=0.1)
async def resists_twice(step: Step) -> Pass:
    for _ in range(2):
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.3)
    return Pass()


@verifier(name="loop-overrun", runs_in="loop", timeout=0.05)
def overruns_on_the_loop(step: Step) -> None:
    time.sleep(0.3)


@pytest.mark.parametrize(("check", "reason"), [
    (sleeps_past_its_timeout, "timed out after 0.1 s"),
    (spins, "timed out after 0.2 s"),
    (resists_cancellation, "timed out after 0.1 s"),
    (resists_twice, "timed out after 0.1 s"),
    (overruns_on_the_loop, "ran 0.3 s on the event loop, past its timeout of 0.05 s"),
], ids=["sleeps", "spins", "swallows-cancellation", "swallows-twice", "loop-opt-in-overruns"])
async def test_a_check_that_overruns_its_timeout_is_unknown_and_the_run_moves_on(check: Any, reason: str) -> None:
    ticks = 0

    async def heartbeat() -> None:  # the event loop keeps running while the check is stuck
        nonlocal ticks
        while True:
            await anyio.sleep(0.02)
            ticks += 1

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(heartbeat)
        result = await Monitor(Scripted(["One step.\n"]), [check]).run("q")
        tg.cancel_scope.cancel()
    elapsed = time.perf_counter() - started
    assert elapsed < 10 * check.timeout + 1
    assert [type(v).__name__ for v in result.verdicts] == ["Unknown"]
    got = result.verdicts[0]
    assert isinstance(got, Unknown)
    if check is overruns_on_the_loop:  # the opt-in blocks the loop (documented) but never passes
        assert got.reason.startswith("ran 0.3") and got.reason.endswith("past its timeout of 0.05 s")
    else:
        assert got.reason == reason
        assert ticks >= 2
    if check is resists_twice:
        await anyio.sleep(0.7)  # it ignored its cancellation once; it ends by itself, then nothing is left
    if check is not spins:
        await no_tasks_left()


async def test_fail_closed_overrun_interrupts_instead_of_passing() -> None:
    strict = verifier(lambda step: time.sleep(0.6), name="strict", timeout=0.1, fail_closed=True)
    result = await Monitor(Scripted(["One step.\n", "Two.\n"]), [strict]).run("q")
    assert result.stop_reason.value == "interrupted"
    assert not result.passed


async def test_argument_checks_and_check_timeout_are_guarantees(leaves_nothing_running: None) -> None:
    ledger = Ledger()

    def slow_limit(args: Mapping[str, Any]) -> None:
        time.sleep(3)

    async def swallowing_limit(args: Mapping[str, Any]) -> None:
        with contextlib.suppress(BaseException):
            await anyio.sleep(5)

    run = await finished_run("Fine.\n")
    for check in (slow_limit, swallowing_limit):
        transfer = guard_tool(ledger.transfer, run=run, verifiers=[check], check_timeout=0.1)
        started = time.perf_counter()
        outcome = await transfer(5)
        assert time.perf_counter() - started < 2.0  # not the 3 s or 5 s the checks would take
        assert isinstance(outcome, ToolRefusal)
        name = check.__name__.replace("_", "-")
        assert [(r.stage, r.source, r.message) for r in outcome.reasons] == [
            ("timeout", name, f"argument check {name!r} did not finish within 0.1 s")]
    assert ledger.writes == []
    await no_tasks_left()


async def finished_run(text: str) -> Any:
    async with Monitor(Scripted(text), []).stream("p") as run:
        async for _ in run:
            pass
    return run


# -- item 4: an abandoned thread check never keeps the process alive ----------------------------------------------


def test_a_hung_thread_check_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    (tmp_path / "hangmod.py").write_text(textwrap.dedent("""
        import time
        from interlock import verifier

        @verifier(name="hang", runs_in="thread", timeout=0.2)
        def hang(step):
            time.sleep(3600)
    """))
    trace = tmp_path / "t.txt"
    trace.write_text("One step.\nTwo steps.\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "interlock", "replay", "-v", "hangmod:hang", "--json", str(trace)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert time.perf_counter() - started < 30
    assert '"hang"' in done.stdout and "timed out after 0.2 s" in done.stdout, done.stdout + done.stderr
    assert done.returncode in (0, 1), done.stderr


# -- item 7: SystemExit and KeyboardInterrupt inside a verifier ----------------------------------------------------


def _exits(step: Step) -> None:
    raise SystemExit(3)


def _interrupts(step: Step) -> None:
    raise KeyboardInterrupt


async def _exits_async(step: Step) -> None:
    raise SystemExit(3)


@pytest.mark.parametrize("runs_in", ["thread", "loop", "async"])
@pytest.mark.parametrize("fn", [_exits, _interrupts], ids=["SystemExit", "KeyboardInterrupt"])
async def test_exit_or_interrupt_inside_a_verifier_is_its_error(runs_in: str, fn: Any) -> None:
    if runs_in == "async":
        async def body(step: Step) -> None:
            fn(step)
        check = verifier(body, name="quits")
    else:
        check = verifier(fn, name="quits", runs_in=runs_in)  # type: ignore[arg-type]
    result = await Monitor(Scripted(["One step.\n", "Two.\n"]), [check]).run("q")
    kind = "SystemExit" if fn is _exits else "KeyboardInterrupt"
    assert [(type(v).__name__, v.reason) for v in result.verdicts] == [  # type: ignore[union-attr]
        ("Unknown", f"{kind} raised inside the check")] * 2
    assert result.stop_reason.value == "complete"
    assert list(result.errors) == [f"quits: {kind} raised inside the check"] * 2
    await no_tasks_left()


# -- issue 16: cancelled process checks keep their worker warm ------------------------------------------------------


async def test_a_rollback_does_not_kill_a_process_worker() -> None:
    from interlock.monitor.execute import worker_stats

    slow = SumVerifier(runs_in="process", timeout=30)
    slow.name = "sums"
    script = {"": ["So 1 + 1 = 3.\n", "Then 2 + 2 = 4.\n", "And 3 + 3 = 6.\n"],
              "redo this step.\n": ["So 1 + 1 = 2.\n"]}
    first = await Monitor(Scripted(script), [slow]).run("q")  # starts the workers
    before = worker_stats()
    second = await Monitor(Scripted(script), [slow]).run("q")  # rollbacks cancel the checks of later steps
    after = worker_stats()
    assert first.text == second.text and second.passed
    assert [i.action.value for i in second.interventions] == ["rollback"]
    assert after["processes_killed"] == before["processes_killed"]


# -- issue 14: a deeply nested tool call is a malformed call the model is told about --------------------------------


async def test_a_deeply_nested_tool_call_is_malformed_and_the_conversation_goes_on() -> None:
    limit = 64  # interlock.monitor.agents.agent.MAX_NESTING
    deep = "[" * 100_000 + "]" * 100_000
    nested = '{"name": "transfer", "arguments": {"amount": ' + "[" * (limit + 5) + "]" * (limit + 5) + "}}"
    turns = iter([f"<tool_call>{deep}</tool_call>", f"<tool_call>{nested}</tool_call>", "Done, nothing sent.\n"])
    seen: list[str] = []

    def model(prefix: str) -> str:
        seen.append(prefix)
        return next(turns)

    ledger = Ledger()
    run_for = Agent(Scripted(model), tools=[guard_tool(ledger.transfer)], max_turns=4)
    result = await run_for.run("Pay.")
    assert result.stop == "answer" and result.final_text == "Done, nothing sent.\n"
    tool_messages = [m["content"] for m in result.messages if m["role"] == "tool"]
    assert tool_messages == [
        f'{{"error": "could not read the tool call: nested more than {limit} levels deep"}}'] * 2
    assert ledger.writes == []


# -- the barrier, as a property -------------------------------------------------------------------------------------

_CLAIM = re.compile(r"(\d+) \+ (\d+) = (\d+)")


def _wrong_claims(text: str) -> list[str]:
    return [m.group() for m in _CLAIM.finditer(text) if int(m.group(1)) + int(m.group(2)) != int(m.group(3))]


@st.composite
def scripts(draw: st.DrawFn) -> tuple[list[str], int, list[float], str]:
    """Steps of sums (some wrong), split into word pieces; the chunk after which the agent calls the tool (any
    position, mid-step included); the check latency of each step; the action a failure asks for."""
    pieces: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        a, b = draw(st.integers(0, 9)), draw(st.integers(0, 9))
        c = a + b if draw(st.booleans()) else a + b + draw(st.integers(1, 3))
        words = ["So", f" {a} + {b} = {c}", " and", " then", ".\n"]
        pieces.extend(words[: draw(st.integers(2, 5))] if not pieces or draw(st.booleans()) else words)
        if not pieces[-1].endswith("\n"):
            pieces[-1] += ".\n"
    call_after = draw(st.integers(1, len(pieces) + 1))
    latencies = draw(st.lists(st.sampled_from([0.0, 0.005, 0.02, 0.05]), min_size=12, max_size=12))
    return pieces, call_after, latencies, draw(st.sampled_from(["rollback", "interrupt"]))


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(scripts())
def test_a_guarded_tool_never_acts_on_failed_or_removed_reasoning(script: tuple[list[str], int, list[float],
                                                                                str]) -> None:
    pieces, call_after, latencies, action = script
    anyio.run(_barrier_property, pieces, call_after, latencies, action)


async def _barrier_property(pieces: list[str], call_after: int, latencies: list[float], action: str) -> None:
    delays = iter(latencies * 50)

    @verifier(name="sums", action=action)
    async def sums(step: Step) -> Fail | None:
        await anyio.sleep(next(delays))
        return check_sums(step)

    def model(prefix: str) -> list[str]:
        return pieces if prefix == "" else ["Redone.\n"]

    calls: list[tuple[str, bool]] = []
    async with Monitor(Scripted(model, rate=400), [sums]).stream("q") as run:
        chunks = 0
        async for event in run:
            chunks += event.kind == "chunk"
            if chunks >= call_after:
                break
        issued, epoch = run.text, run.epoch

        def act(note: str) -> str:  # what runs is checked at the moment it runs
            calls.append((note, run.trace.still_valid(epoch, Span(0, len(issued)))))
            return "done"

        outcome = await guard_tool(act, run=run)(issued)
        result = await run.wait(timeout=20)
    if calls:
        assert calls == [(issued, True)]  # never on removed text
        assert _wrong_claims(issued) == []  # never on text a verifier failed
    else:
        assert isinstance(outcome, ToolRefusal)
    first_attempt = "".join(pieces)
    if epoch == 0 and first_attempt.startswith(issued):
        step_end = first_attempt.find("\n", len(issued) - 1 if issued.endswith("\n") else len(issued))
        if not _wrong_claims(first_attempt[: step_end + 1]):  # clean reasoning up to the end of its step
            assert calls == [(issued, True)], (outcome, result.interventions)


class SleepsInAProcess(Verifier):
    """Never answers in time (module level, so that a worker process can unpickle it)."""

    name = "sleeps-in-a-process"
    runs_in = "process"
    timeout = 0.5

    def check(self, state: Any) -> None:
        time.sleep(30)


async def test_a_process_check_that_overruns_is_killed() -> None:
    from interlock.monitor.execute import worker_stats

    await Monitor(Scripted(["Warm up.\n"]), [SumVerifier(runs_in="process", timeout=60)]).run("q")
    killed = worker_stats()["processes_killed"]
    started = time.perf_counter()
    result = await Monitor(Scripted(["One step.\n"]), [SleepsInAProcess()]).run("q")
    assert time.perf_counter() - started < 10 * SleepsInAProcess.timeout
    assert [(type(v).__name__, v.reason) for v in result.verdicts] == [  # type: ignore[union-attr]
        ("Unknown", "timed out after 0.5 s")]
    assert worker_stats()["processes_killed"] == killed + 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_thread_checks_work_in_a_forked_child() -> None:
    """The daemon pool is per process: a child forked after thread checks ran starts its own threads."""
    sums = verifier(check_sums, name="sums")
    assert [type(v).__name__ for v in sums.scan("So 1 + 1 = 3.\n")] == ["Fail"]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe and exits at once
        try:
            kinds = [type(v).__name__ for v in sums.scan("So 2 + 2 = 5.\n")]
            os.write(write, ",".join(kinds).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        got = pipe.read()
    os.waitpid(pid, 0)
    assert got == "Fail"
