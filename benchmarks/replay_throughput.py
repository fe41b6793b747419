"""Replay throughput: the 5,276 GSM8K model solutions through a verifier, as fast as possible. Prints JSON.

Side by side, in one run and on the same traces, four ways to do it:

- ``scan_per_trace``: ``verifier.scan(text)`` per trace (an event loop created for every trace);
- ``monitor_per_trace``: a full ``Monitor`` over a ``Replay`` per trace, in one event loop;
- ``batch_in_process``: ``interlock.monitor.replay.engine.replay_traces`` with no process pool;
- ``batch_pool``: ``replay_traces`` with whole batches of traces sent to a process pool (one worker per CPU).

The two slow baselines run on the first ``--baseline-limit`` traces; all four run on that subset, so their
ratios compare like with like, and the batch engine also runs on the whole set (the headline figure). Every
measurement runs in a fresh interpreter (no warm caches carried over), in alternating rounds; the median of
``--repeats`` is reported with all the times. Seconds include reading nothing (the traces are loaded first)
but do include starting the pool's workers. Tokens are word-sized pieces (the GSM8K files hold text, not
token ids). The machine's load average is printed too: on a shared machine it explains a slow pool.

    python benchmarks/replay_throughput.py [--verifier arithmetic] [--baseline-limit 500] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from interlock import Monitor, Verifier
from interlock.generators import Replay
from interlock.monitor.replay.engine import ReplayTotals, TraceReport, load_verifier, replay_traces
from interlock.monitor.replay.importers import ImportedTrace, read_traces

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "gsm8k" / "example_model_solutions.jsonl"


def _summary(name: str, n: int, tokens: int, seconds: float, fails: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "traces": n, "tokens": tokens, "seconds": round(seconds, 3),
            "traces_per_s": round(n / seconds, 1), "tokens_per_s": round(tokens / seconds, 1),
            "traces_with_violations": fails, **extra}


def scan_per_trace(items: list[ImportedTrace], verifier: Verifier) -> dict[str, Any]:
    start = time.perf_counter()
    fails = sum(any(v.kind == "fail" for v in verifier.scan(i.text, prompt=i.prompt)) for i in items)
    return _summary("scan_per_trace", len(items), sum(i.tokens for i in items), time.perf_counter() - start, fails)


def monitor_per_trace(items: list[ImportedTrace], verifier: Verifier) -> dict[str, Any]:
    async def run_all() -> int:
        fails = 0
        for item in items:
            result = await Monitor(Replay(item, speed=None), verifiers=[verifier]).run(item.prompt)
            fails += any(v.kind == "fail" for v in result.verdicts)
        return fails

    start = time.perf_counter()
    fails = anyio.run(run_all)
    return _summary("monitor_per_trace", len(items), sum(i.tokens for i in items), time.perf_counter() - start,
                    fails)


def batch(items: list[ImportedTrace], verifier: Verifier, processes: int, concurrency: int) -> dict[str, Any]:
    start = time.perf_counter()
    results = anyio.run(lambda: replay_traces(items, [verifier], processes=processes, concurrency=concurrency))
    seconds = time.perf_counter() - start
    totals = ReplayTotals()
    for r in results:
        totals.add(r)
    assert totals.traces == len(items) and all(isinstance(r, TraceReport) for r in results)
    name = "batch_pool" if processes else "batch_in_process"
    return _summary(name, len(items), totals.tokens, seconds, totals.failed, processes=processes,
                    verdicts=dict(totals.to_dict()["verdicts"]), by_label=totals.to_dict()["by_label"])


CONFIGS = ("scan_per_trace", "monitor_per_trace", "batch_in_process", "batch_pool")


def run_one(name: str, items: list[ImportedTrace], verifier: Verifier, args: argparse.Namespace) -> dict[str, Any]:
    if name == "scan_per_trace":
        return scan_per_trace(items, verifier)
    if name == "monitor_per_trace":
        return monitor_per_trace(items, verifier)
    processes = args.processes if name == "batch_pool" else 0
    return batch(items, verifier, processes, args.concurrency)


def in_fresh_process(name: str, limit: int | None, args: argparse.Namespace) -> dict[str, Any]:
    """Each measurement in its own interpreter: no warm caches (sympy's, the verifier's) carried over."""
    command = [sys.executable, __file__, "--only", name, "--verifier", args.verifier, "--data", str(args.data),
               "--concurrency", str(args.concurrency), "--processes", str(args.processes)]
    if limit is not None:
        command += ["--limit", str(limit)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True)
    row: dict[str, Any] = json.loads(done.stdout)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--verifier", default="arithmetic", help="registered name or module:attribute")
    parser.add_argument("--baseline-limit", type=int, default=500, help="traces for the side-by-side comparison")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds; the median is reported")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--only", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.only:
        verifier = load_verifier(args.verifier)
        loaded = list(read_traces(args.data, format="gsm8k"))
        items = [i for i in loaded if isinstance(i, ImportedTrace)]
        assert len(items) == len(loaded), "the data set has unreadable records"
        before = resource.getrusage(resource.RUSAGE_SELF)
        row = run_one(args.only, items[: args.limit], verifier, args)
        after = resource.getrusage(resource.RUSAGE_SELF)
        # CPU of this process only (a pool's workers are not in it): on a shared machine it shows how much of
        # the wall time was spent waiting for a core.
        row["cpu_seconds_this_process"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                                                3)
        print(json.dumps(row))
        return

    verifier = load_verifier(args.verifier)
    plan: list[tuple[str, str, int | None]] = []
    if not args.skip_baselines:
        plan += [("side_by_side", name, args.baseline_limit) for name in CONFIGS]
    plan += [("full_set", name, None) for name in ("batch_in_process", "batch_pool")]
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for group, name, limit in plan:
            rows.setdefault((group, name), []).append(in_fresh_process(name, limit, args))
    out: dict[str, Any] = {
        "benchmark": "replay_throughput", "data": str(args.data), "verifier": verifier.name,
        "verifier_runs_in": verifier.runs_in, "cpus": os.cpu_count(), "python": platform.python_version(),
        "repeats": args.repeats, "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "command": f"python benchmarks/replay_throughput.py --verifier {args.verifier} "
                   f"--baseline-limit {args.baseline_limit} --repeats {args.repeats}",
    }
    for (group, _name), runs in rows.items():
        ordered = sorted(runs, key=lambda r: r["seconds"])
        median = ordered[len(ordered) // 2]
        median["all_seconds"] = [r["seconds"] for r in runs]
        out.setdefault(group, []).append(median)
    if "side_by_side" in out:
        base = next(r for r in out["side_by_side"] if r["name"] == "monitor_per_trace")["seconds"]
        for row in out["side_by_side"]:
            row["speedup_vs_monitor_per_trace"] = round(base / row["seconds"], 2)
    best = min(out["full_set"], key=lambda r: r["seconds"])
    out["headline"] = {k: best[k] for k in ("name", "traces", "seconds", "traces_per_s", "tokens_per_s")}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
