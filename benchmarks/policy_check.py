"""How fast the tau2 retail policy checks conversations, in process. Prints JSON.

Side by side, in one run, on the conversations built from tau2's 114 retail tasks (and the violations built from
them): the policy as ``interlock policy check`` runs it (each call's synchronous rules in one worker thread, within
the check timeout), and the same rules called directly in the event loop, without the thread or the timeout (the
cost of bounding a check that could hang). Each is timed ``--repeats`` times, in alternating rounds; the median
is reported with all the times.

    python benchmarks/policy_check.py [--data ../shared/data/tau2/retail] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from interlock.monitor.policies import State, load_policy, parse_conversation
from interlock.monitor.policies import session as session_module

ROOT = Path(__file__).resolve().parent.parent


def _converter() -> Any:
    spec = importlib.util.spec_from_file_location("tau2_conversations",
                                                  ROOT / "examples" / "policies" / "tau2_conversations.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def _inline(fn: Any, *args: Any) -> Any:
    return fn(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "tau2" / "retail"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tc = _converter()
    tasks, db = tc.load(args.data)
    policy = load_policy(ROOT / "examples" / "policies" / "tau2_retail.py")
    state = State(db)
    sets = {"compliant": [parse_conversation(tc.compliant(t, db)) for t in tasks],
            "violations": [parse_conversation(v.lines) for t in tasks for v in tc.violations(t, db)]}

    async def run(conversations: list[Any]) -> tuple[float, int, int]:
        started = time.perf_counter()
        calls = refused = 0
        for conversation in conversations:
            decisions = await policy.check_conversation(conversation, state)
            calls += len(decisions)
            refused += sum(not d.allowed for d in decisions)
        return time.perf_counter() - started, calls, refused

    threaded = session_module.call_in_thread
    out: dict[str, Any] = {"python": sys.version.split()[0]}
    for name, conversations in sets.items():
        times: dict[str, list[float]] = {"worker_thread": [], "inline": []}
        counts: dict[str, tuple[int, int]] = {}
        for _ in range(args.repeats):  # alternating rounds: the machine's load falls on both alike
            for mode in times:
                session_module.call_in_thread = threaded if mode == "worker_thread" else _inline  # type: ignore[assignment]
                seconds, calls, refused = anyio.run(run, conversations)
                times[mode].append(seconds)
                counts[mode] = (calls, refused)
        session_module.call_in_thread = threaded
        for mode, found in times.items():
            median = statistics.median(found)
            calls, refused = counts[mode]
            out[f"{name}_{mode}"] = {"conversations": len(conversations), "calls": calls, "refused": refused,
                                     "seconds_median": round(median, 4), "seconds": [round(t, 4) for t in found],
                                     "calls_per_second": round(calls / median, 1)}
        ratio = out[f"{name}_worker_thread"]["seconds_median"] / out[f"{name}_inline"]["seconds_median"]
        out[f"{name}_thread_over_inline"] = round(ratio, 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
