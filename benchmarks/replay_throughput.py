"""Replay throughput: the 5,276 GSM8K model solutions through a verifier, as fast as possible. Prints JSON.

Side by side, in one run and on the same traces, four ways to do it:

- ``scan_per_trace``: ``verifier.scan(text)`` per trace (an event loop created for every trace);
- ``monitor_per_trace``: a full ``Monitor`` over a ``Replay`` per trace, in one event loop;
- ``batch_in_process``: ``monitor.replay.replay_traces`` with no process pool;
- ``batch_pool``: ``replay_traces`` with whole batches of traces sent to a process pool (one worker per CPU).

The two slow baselines run on the first ``--baseline-limit`` traces; all four run on that subset, so their
ratios compare like with like, and the batch engine also runs on the whole set (the headline figure).
Tokens are word-sized pieces (the GSM8K files hold text, not token ids).

    python benchmarks/replay_throughput.py [--verifier arithmetic] [--baseline-limit 500] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import anyio

from generators import Replay
from monitor import Monitor, Verifier
from monitor.importers import ImportedTrace, read_traces
from monitor.replay import ReplayTotals, TraceReport, load_verifier, replay_traces

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--verifier", default="arithmetic", help="registered name or module:attribute")
    parser.add_argument("--baseline-limit", type=int, default=500, help="traces for the side-by-side comparison")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-baselines", action="store_true")
    args = parser.parse_args()

    verifier = load_verifier(args.verifier)
    loaded = list(read_traces(args.data, format="gsm8k"))
    items = [i for i in loaded if isinstance(i, ImportedTrace)]
    assert len(items) == len(loaded), "the data set has unreadable records"
    subset = items[: args.baseline_limit]
    out: dict[str, Any] = {
        "benchmark": "replay_throughput", "data": str(args.data), "verifier": verifier.name,
        "verifier_runs_in": verifier.runs_in, "cpus": os.cpu_count(), "python": platform.python_version(),
        "command": "python benchmarks/replay_throughput.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in (("verifier", args.verifier),
                                                         ("baseline_limit", args.baseline_limit))),
    }
    if not args.skip_baselines:
        side = [scan_per_trace(subset, verifier), monitor_per_trace(subset, verifier),
                batch(subset, verifier, 0, args.concurrency), batch(subset, verifier, args.processes, args.concurrency)]
        base = side[1]["seconds"]
        for row in side:
            row["speedup_vs_monitor_per_trace"] = round(base / row["seconds"], 2)
        out["side_by_side"] = side
    full = [batch(items, verifier, 0, args.concurrency), batch(items, verifier, args.processes, args.concurrency)]
    out["full_set"] = full
    best = min(full, key=lambda r: r["seconds"])
    out["headline"] = {k: best[k] for k in ("name", "traces", "seconds", "traces_per_s", "tokens_per_s")}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
