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

``--synthetic`` compares the engines instead, on a synthetic corpus of ``--records`` JSON Lines records (one
million by default; generated on the fly, never stored: each engine parses the same lines): ``local`` (one
process, streamed), ``local_pool`` (worker processes, one per CPU) and ``ray`` (a local Ray cluster of
``--ray-cpus`` CPUs, the records generated in the cluster by ``ray.data.range``). Each runs in a fresh
interpreter; reported are traces/s and the peak memory of the whole process tree (the driver, the workers, and
for Ray the raylet and its workers), sampled every 0.25 s, beside the driver's own peak RSS.

    python benchmarks/replay_throughput.py --synthetic [--records 1000000] [--verifier arithmetic] [--repeats 1]
"""

from __future__ import annotations

import argparse
import contextlib
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
from interlock.monitor.replay.engine import ReplayTotals, TraceReport, load_verifier, replay_stream, replay_traces
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
ENGINES = ("local", "local_pool", "ray")


# -- the synthetic corpus and the engines side by side --------------------------------------------------------
def synthetic_line(i: int) -> bytes:
    """Record ``i`` of the synthetic corpus: a short word problem's solution in three steps, one in seven with a
    wrong sum, as a JSON line (deterministic in ``i``, so every engine sees the same corpus)."""
    a, b, c = 3 + i % 97, 5 + (i * 7) % 89, 2 + (i * 13) % 11
    total = a + b + (1 if i % 7 == 0 else 0)
    steps = [f"She buys {a} apples and {b} pears, so {a} + {b} = {total} fruits.",
             f"Each costs ${c}, so {total} * {c} = {total * c} dollars.",
             f"The answer is {total * c}."]
    return json.dumps({"id": f"s{i}", "steps": steps, "is_correct": i % 7 != 0}).encode()


class PeakMemory:
    """Peak RSS of this process and all its descendants (a local Ray cluster's raylet and workers included)."""

    def __init__(self) -> None:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        try:
            import psutil
        except ImportError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a worker that ended between listing and reading
                total += child.memory_info().rss
        return int(total)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, self._sample())

    def __enter__(self) -> PeakMemory:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def run_engine(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from interlock.monitor.replay.importers import traces_from_line

    n = args.records
    totals = ReplayTotals()
    with PeakMemory() as memory:
        start = time.perf_counter()
        if name == "ray":
            import ray
            from interlock.monitor.replay.ray_engine import replay_dataset

            ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
            started_cluster = time.perf_counter()

            def lines(batch: dict[str, Any]) -> dict[str, list[Any]]:
                ids = [int(x) for x in batch["id"]]
                return {"path": ["synthetic"] * len(ids), "line": [i + 1 for i in ids],
                        "raw": [synthetic_line(i) for i in ids], "format": ["jsonl"] * len(ids),
                        "last": [False] * len(ids)}

            source = ray.data.range(n, override_num_blocks=max(4, n // 20_000)).map_batches(lines, batch_size=4096)
            results = replay_dataset(source, [args.verifier], batch_size=256)
            for batch in results.iter_batches(batch_format="pyarrow", batch_size=None):
                for line in batch.column("record").to_pylist():
                    totals.add_record(json.loads(line))
            seconds = time.perf_counter() - start
            cluster_start = started_cluster - start
            ray.shutdown()
        else:
            def items() -> Any:
                for i in range(n):
                    yield from traces_from_line(synthetic_line(i), path="synthetic", line=i + 1)

            verifier = load_verifier(args.verifier)
            processes = 0 if name == "local" else (os.cpu_count() or 1)
            anyio.run(lambda: replay_stream(items(), [verifier], on_result=totals.add, concurrency=args.concurrency,
                                            processes=processes))
            seconds = time.perf_counter() - start
            cluster_start = 0.0
    assert totals.traces + totals.read_errors + totals.replay_errors == n, totals.to_dict()
    return {"engine": name, "records": n, "seconds": round(seconds, 2),
            "traces_per_s": round(n / seconds, 1), "startup_seconds": round(cluster_start, 2),
            "peak_rss_tree_mib": round(memory.peak / 2**20, 1),
            "peak_rss_driver_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "traces_with_violations": totals.failed, "replay_errors": totals.replay_errors}


def synthetic_main(args: argparse.Namespace) -> None:
    rows: dict[str, list[dict[str, Any]]] = {}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name in args.engines:
            command = [sys.executable, __file__, "--synthetic", "--only-engine", name, "--records", str(args.records),
                       "--verifier", args.verifier, "--concurrency", str(args.concurrency),
                       "--ray-cpus", str(args.ray_cpus)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=24 * 3600, check=True)
            rows.setdefault(name, []).append(json.loads(done.stdout.splitlines()[-1]))
    out: dict[str, Any] = {
        "benchmark": "replay_throughput --synthetic", "records": args.records, "verifier": args.verifier,
        "cpus": os.cpu_count(), "python": platform.python_version(), "repeats": args.repeats,
        "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2),
        "command": f"python benchmarks/replay_throughput.py --synthetic --records {args.records} "
                   f"--verifier {args.verifier} --repeats {args.repeats}",
        "engines": []}
    for runs in rows.values():
        ordered = sorted(runs, key=lambda r: r["seconds"])
        median = ordered[len(ordered) // 2]
        median["all_seconds"] = [r["seconds"] for r in runs]
        out["engines"].append(median)
    base = next((r for r in out["engines"] if r["engine"] == "local"), None)
    if base is not None:
        for row in out["engines"]:
            row["throughput_vs_local"] = round(row["traces_per_s"] / base["traces_per_s"], 2)
    print(json.dumps(out, indent=2))


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
    parser.add_argument("--synthetic", action="store_true", help="compare the engines on a synthetic corpus")
    parser.add_argument("--records", type=int, default=1_000_000, help="--synthetic: records in the corpus")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only-engine", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.only_engine:
        print(json.dumps(run_engine(args.only_engine, args)))
        return
    if args.synthetic:
        synthetic_main(args)
        return

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
