"""The cost of dispatching one check, on each path (loop, thread, process): before and after, side by side.

"before" is the dispatch that ``interlock.monitor.execute`` used up to issue 13, inlined here so both run in one
process on one machine: the sync check called on the loop (no timeout enforced), ``anyio.to_thread.run_sync``
(non-daemon threads) and ``anyio.to_process.run_sync(cancellable=True)`` (a cancelled check kills its worker).
"after" is :func:`interlock.monitor.execute.run_check` as it is now (one check awaited: ``Verifier.scan``, the
barrier's checks), "run" is how a run dispatches a sync check since issue 29 (inline on the loop; a job with a
callback for a thread or a process, no task). ``*_burst``: that many checks started at once, as when a hundred
streams end steps together (process checks then go to the workers in batches). Each figure is the median round trip of a
check that does nothing (its verdict back at the caller), and the CPU time the event loop's thread spent on it
(what a dispatch takes from generation), rounds alternating between the variants.

``after_cancel`` is the detection latency of a 100 ms process check started right after another one was cancelled
(a rollback): before, the cancelled check's worker was killed and the next check waited for a new one.

    python benchmarks/dispatch.py [--rounds 7] [--checks 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import anyio
import anyio.to_process
import anyio.to_thread
from interlock import Pass, Step, Verifier
from interlock.monitor.execute import normalize_verdicts, placement, run_check, run_inline, start_check, worker_stats
from interlock.monitor.trace import TraceView
from interlock.monitor.verdicts import Span


class Nothing(Verifier):
    """A check that does nothing: what is left is the dispatch."""

    name = "nothing"

    def check(self, state: Any) -> Pass:
        return Pass()


class Sleeps(Verifier):
    """A check that takes 100 ms (blocking)."""

    name = "sleeps"

    def check(self, state: Any) -> Pass:
        time.sleep(0.1)
        return Pass()


def _extract_and_check(verifier: Verifier, view: TraceView) -> Any:
    return verifier.check(verifier.extract(view))


async def before(verifier: Verifier, view: TraceView) -> Any:
    """The dispatch of interlock.monitor.execute before issue 13 (sync checks only)."""
    with anyio.fail_after(verifier.timeout):
        if verifier.runs_in == "loop":
            result = verifier.check(verifier.extract(view))
        elif verifier.runs_in == "thread":
            result = await anyio.to_thread.run_sync(_extract_and_check, verifier, view, abandon_on_cancel=True)
        else:
            result = await anyio.to_process.run_sync(_extract_and_check, verifier, view, cancellable=True)
    return normalize_verdicts(result, verifier=verifier, view=view)


async def after(verifier: Verifier, view: TraceView) -> Any:
    return (await run_check(verifier, view)).verdicts


async def in_a_run(verifier: Verifier, view: TraceView) -> Any:
    """How a run dispatches a sync check since issue 29: inline on the loop, or a job with a callback (no task)."""
    if placement(verifier) == "inline":
        return run_inline(verifier, view).verdicts
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    start_check(verifier, view, lambda job, outcome: done.set_result(outcome.verdicts))
    return await done


async def burst(fn: Any, verifier: Verifier, view: TraceView, checks: int) -> tuple[float, float]:
    """``checks`` checks started at once (a hundred streams ending steps together): wall seconds until the last
    verdict, and the event loop thread's CPU, per check."""
    started, cpu = time.perf_counter(), time.thread_time()
    if fn is in_a_run:
        loop = asyncio.get_running_loop()
        futures = []
        for _ in range(checks):
            done: asyncio.Future[Any] = loop.create_future()
            start_check(verifier, view, lambda job, outcome, done=done: done.set_result(outcome.verdicts))
            futures.append(done)
        for done in futures:
            assert type((await done)[0]).__name__ == "Pass"
    else:
        async with anyio.create_task_group() as tg:
            for _ in range(checks):
                tg.start_soon(fn, verifier, view)
    return (time.perf_counter() - started) / checks, (time.thread_time() - cpu) / checks


def make_view() -> TraceView:
    text = "So 2 + 2 = 4.\n"
    return TraceView(text=text, step=Step(text, Span(0, len(text))))


async def per_check(fn: Any, verifier: Verifier, view: TraceView, checks: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the event loop's thread) per check: the round trip, and what the dispatch
    takes from the loop that also runs generation."""
    started, cpu = time.perf_counter(), time.thread_time()
    for _ in range(checks):
        verdicts = await fn(verifier, view)
        assert type(verdicts[0]).__name__ == "Pass", verdicts
    return (time.perf_counter() - started) / checks, (time.thread_time() - cpu) / checks


async def after_cancel(fn: Any, view: TraceView) -> float:
    """Cancel a 100 ms process check after 10 ms, then time the next one to its verdict."""
    slow = Sleeps(runs_in="process", timeout=30)
    with anyio.move_on_after(0.01):
        await fn(slow, view)
    started = time.perf_counter()
    await fn(slow, view)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--checks", type=int, default=300, help="checks per round on the loop and thread paths")
    args = parser.parse_args()
    view = make_view()
    variants = {"before": before, "after": after, "run": in_a_run}
    paths = {"loop": args.checks, "thread": args.checks, "process": max(20, args.checks // 10)}
    for fn in variants.values():  # warm up: threads and worker processes exist before timing
        for path in paths:
            await per_check(fn, Nothing(runs_in=path, timeout=30), view, 3)  # type: ignore[arg-type]
        async with anyio.create_task_group() as tg:  # two warm workers each, so a cancelled check has a spare
            for _ in range(2):
                tg.start_soon(per_check, fn, Sleeps(runs_in="process", timeout=30), view, 1)  # type: ignore[arg-type]
    bursts = {"thread_burst": ("thread", args.checks), "process_burst": ("process", args.checks)}
    samples: dict[str, dict[str, list[float]]] = {p: {v: [] for v in variants}
                                                  for p in [*paths, *bursts, "after_cancel"]}
    loop_cpu: dict[str, dict[str, list[float]]] = {p: {v: [] for v in variants} for p in [*paths, *bursts]}
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            fn = variants[name]
            for path, checks in paths.items():
                wall, cpu = await per_check(fn, Nothing(runs_in=path, timeout=30), view, checks)  # type: ignore[arg-type]
                samples[path][name].append(wall)
                loop_cpu[path][name].append(cpu)
            for label, (path, checks) in bursts.items():
                wall, cpu = await burst(fn, Nothing(runs_in=path, timeout=30), view, checks)  # type: ignore[arg-type]
                samples[label][name].append(wall)
                loop_cpu[label][name].append(cpu)
            samples["after_cancel"][name].append(await after_cancel(fn if fn is not in_a_run else after, view))
            await anyio.sleep(0.15)  # let a cancelled check's worker finish before the next round
    report: dict[str, Any] = {"benchmark": "dispatch", "rounds": args.rounds, "checks_per_round": paths}
    for path, by_variant in samples.items():
        unit = "ms" if path == "after_cancel" else "us"
        scale = 1e3 if unit == "ms" else 1e6
        medians = {name: statistics.median(values) for name, values in by_variant.items()}
        report[path] = {f"{name}_{unit}": round(m * scale, 1) for name, m in medians.items()}
        report[path]["run_over_before"] = round(medians["run"] / medians["before"], 3)
        if path in loop_cpu:
            report[path].update({f"loop_cpu_{name}_us": round(statistics.median(values) * 1e6, 1)
                                 for name, values in loop_cpu[path].items()})
    report["workers"] = worker_stats()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    anyio.run(main)
