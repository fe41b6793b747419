"""Faulty verifiers, the write barrier, cancellation, and where checks run."""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from interlock import (
    Fail,
    Monitor,
    Outcome,
    Span,
    Step,
    StopReason,
    Unknown,
    VerdictReceived,
    VerifierError,
    ViolationError,
    read_trace,
    verifier,
)
from interlock.generators import Scripted
from support import SumVerifier, check_sums

CLEAN = "Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 7.\nThe answer is 7."
WRONG = "Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 8.\nThe answer is 8."


@verifier(name="raises")
def raises(step: Step) -> None:
    raise ValueError(f"cannot read {step.text.strip()!r}")


@verifier(name="hangs", timeout=0.2)
async def hangs(step: Step) -> None:
    await anyio.sleep(30)


@verifier(name="garbage")
def garbage(step: Step) -> object:
    return 42


@pytest.mark.parametrize(("bad", "error"), [
    (raises, "ValueError: cannot read 'Tom has 3 apples.'"),
    (hangs, "timed out after 0.2 s"),
    (garbage, "verifier 'garbage' returned int, not a verdict"),
])
async def test_faulty_verifier_gives_an_error_event_and_unknown_and_the_run_goes_on(bad, error) -> None:  # type: ignore[no-untyped-def]
    errors = []
    async with Monitor(Scripted(CLEAN), [bad]).stream("q") as run:
        async for event in run:
            if isinstance(event, VerifierError):
                errors.append(event.error)
    result = run.result
    assert result.stop_reason is StopReason.COMPLETE
    assert result.text == CLEAN
    assert errors[0] == error and len(errors) == 3
    assert all(isinstance(v, Unknown) and v.reason == e for v, e in zip(result.verdicts, errors, strict=True))
    # unknown is not a violation unless the verifier is fail-closed, but the run is not shown as verified either
    assert not result.open_violations and result.outcome is Outcome.UNDECIDED and not result.passed
    assert result.undecided == result.verdicts


async def test_fail_closed_verifier_stops_the_run_on_unknown() -> None:
    strict = verifier(raises.fn, name="strict", fail_closed=True)
    result = await Monitor(Scripted(CLEAN + "\n" + "x " * 100), [strict]).run("q")
    assert result.stop_reason is StopReason.INTERRUPTED
    assert result.detail.startswith("strict: undecided and fail-closed: ValueError")
    assert not result.passed


async def test_hanging_thread_verifier_times_out_without_blocking_the_run() -> None:
    release = threading.Event()

    @verifier(name="blocking", runs_in="thread", timeout=0.2)
    def blocking(step: Step) -> None:
        release.wait(5)

    started = time.perf_counter()
    result = await Monitor(Scripted(CLEAN), [blocking]).run("q")
    release.set()
    assert time.perf_counter() - started < 3
    assert [v.kind for v in result.verdicts] == ["unknown"] * 3


async def test_process_pool_verifier_finds_the_error() -> None:
    result = await Monitor(Scripted({"": WRONG, "redo this step.\n": "So 3 + 4 = 7."}),
                           [SumVerifier(runs_in="process", timeout=60)]).run("q")
    assert result.interventions[0].message == "3 + 4 is 7, not 8"
    assert result.text.endswith("So 3 + 4 = 7.")


async def test_barrier_waits_for_pending_checks_and_raises_on_a_failure() -> None:
    @verifier(name="slow-sums", action="warn")
    async def slow_sums(step: Step) -> Fail | None:
        await anyio.sleep(0.2)
        return Fail("3 + 4 is 7, not 8", span=step.span) if "3 + 4 = 8" in step.text else None

    gen = Scripted(["Tom has 3 apples.\n", "So 3 + 4 = 8.\n", "Done thinking.\n"] + ["x "] * 50, rate=200)
    async with Monitor(gen, [slow_sums]).stream("q") as run:
        async for event in run:
            if event.kind == "chunk" and "Done thinking." in run.text:
                started = time.perf_counter()
                with pytest.raises(ViolationError) as caught:
                    await run.barrier(timeout=5)
                waited = time.perf_counter() - started
                break
    assert waited >= 0.1  # it waited for the slow check
    assert [v.message for v in caught.value.verdicts] == ["3 + 4 is 7, not 8"]


async def test_barrier_passes_when_the_reasoning_is_clean() -> None:
    async with Monitor(Scripted(CLEAN, rate=500), [SumVerifier()]).stream("q") as run:
        await run.barrier(timeout=5)
        result = await run.wait(timeout=10)
    assert result.passed


async def test_barrier_ignores_violations_a_rollback_removed() -> None:
    gen = Scripted({"": WRONG, "redo this step.\n": "So 3 + 4 = 7."})
    async with Monitor(gen, [SumVerifier()]).stream("q") as run:
        result = await run.wait(timeout=10)
        await run.barrier(timeout=5)
    assert result.passed and len(result.interventions) == 1


async def test_cancelling_the_caller_leaves_no_task_and_a_readable_trace(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    path = tmp_path / "cancelled.jsonl"

    @verifier(name="slow")
    async def slow(step: Step) -> None:
        await anyio.sleep(10)

    before = {t for t in asyncio.all_tasks()}
    gen = Scripted(["word "] * 1000, rate=200)
    with anyio.move_on_after(0.3):
        await Monitor(gen, [slow]).run("q", record=path)
    await anyio.sleep(0)
    leftover = {t for t in asyncio.all_tasks() if not t.done()} - before
    assert leftover == set()
    recorded = read_trace(path)
    assert recorded.end is not None and recorded.end["stop_reason"] == "cancelled"
    assert 10 < len(recorded.chunks) < 1000
    assert recorded.text == "word " * len(recorded.chunks)


async def test_leaving_the_stream_block_early_cancels_the_run() -> None:
    gen = Scripted(["word "] * 1000, rate=500)
    async with Monitor(gen, [SumVerifier()]).stream("q") as run:
        async for event in run:
            if event.kind == "chunk":
                break
    assert run.result.stop_reason is StopReason.CANCELLED


async def test_stale_verdicts_are_dropped_and_checks_on_removed_text_cancelled() -> None:
    cancelled = []

    @verifier(name="slow-late")
    async def slow_late(step: Step) -> None:
        try:
            await anyio.sleep(1.0 if "later" in step.text else 0)
        except BaseException:
            cancelled.append(step.text)
            raise

    @verifier(name="sums")
    async def slow_sums(step: Step) -> Fail | None:
        await anyio.sleep(0.2)
        return check_sums(step)

    gen = Scripted({"": ["So 3 + 4 = 8.\n", "later step.\n", "end."], "redo this step.\n": "So 3 + 4 = 7."},
                   rate=100)
    async with Monitor(gen, [slow_sums, slow_late]).stream("q") as run:
        events = [e async for e in run]
    result = run.result
    assert cancelled == ["later step.\n"]
    spans = [(e.verdict.verifier, e.verdict.span) for e in events if isinstance(e, VerdictReceived)]
    assert ("slow-late", Span(14, 26)) not in spans  # the check on removed text never reported
    assert ("sums", Span(3, 12)) in spans
    assert result.text == "Wait, 3 + 4 is 7, not 8. Let me redo this step.\nSo 3 + 4 = 7."


async def test_async_extractor_of_a_thread_verifier_is_awaited_in_the_loop() -> None:
    async def last_line(view):  # type: ignore[no-untyped-def]
        await anyio.sleep(0)
        return view.step.text.strip()

    seen: list[object] = []

    @verifier(name="threaded", runs_in="thread", extractor=last_line)
    def threaded(state: object) -> None:
        seen.append(state)

    await Monitor(Scripted("one.\ntwo."), [threaded]).run("q")
    assert sorted(seen) == ["one.", "two."]  # two thread checks: either may finish first
