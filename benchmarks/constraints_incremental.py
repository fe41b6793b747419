"""The constraints verifier on a long trace: incremental z3 session vs. rebuilding the problem at every step.

    python3 benchmarks/constraints_incremental.py [--steps 120] [--vars 30]

Prints JSON: per-step time of ``Constraints`` as it runs (one solver for the run, claims switched on by
assumption literals, the verdicts of the common prefix reused) against a fresh solver per step that asserts
every constraint and claim again, on the same trace; both are checked to give the same verdicts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from interlock import Span, Step, TraceView
from interlock.monitor.steps import step_ends
from interlock.verifiers.constraints import Constraints, ConstraintSpec, Session


def problem(n: int) -> ConstraintSpec:
    spec = ConstraintSpec()
    for i in range(n):
        spec.integer(f"x{i}", 0, 100)
    for i in range(n - 1):
        spec.sum([f"x{i}", f"x{i + 1}"], "<=", 150, name=f"pair {i}")
    spec.all_different([f"x{i}" for i in range(n)], name="all different")
    return spec


def trace(steps: int, n: int) -> str:
    """Consistent claims (lower bounds that creep up), with one contradiction every 50 steps."""
    lines = []
    for k in range(steps):
        i = k % n
        if k % 50 == 49:
            lines.append(f"So x{i} + x{(i + 1) % n} = 190.\n")
        else:
            lines.append(f"Then x{i} >= {min(70, k // n * 10 + i % 7)}.\n")
    return "".join(lines)


def views(text: str) -> list[TraceView]:
    out, start = [], 0
    for end in step_ends(text, 0):
        out.append(TraceView(text=text[:end], step=Step(text[start:end], Span(start, end))))
        start = end
    return out


async def run_incremental(spec: ConstraintSpec, all_views: list[TraceView]) -> tuple[list[float], list[str]]:
    verifier = Constraints(spec)
    times, kinds = [], []
    for view in all_views:
        t0 = time.perf_counter()
        verdicts = verifier.check(await verifier.extract(view))
        times.append(time.perf_counter() - t0)
        kinds.append(",".join(v.kind for v in (verdicts if isinstance(verdicts, list) else [verdicts])))
    return times, kinds


async def run_rebuild(spec: ConstraintSpec, all_views: list[TraceView]) -> tuple[list[float], list[str]]:
    reader = Constraints(spec)  # only for reading claims, the same way
    times, kinds = [], []
    for view in all_views:
        t0 = time.perf_counter()
        state = await reader.extract(view)
        session = Session(spec)  # everything asserted again
        outcomes = session.consistency([c.node for c in state.claims])  # type: ignore[union-attr]
        here = [o for c, o in zip(state.claims, outcomes, strict=True)  # type: ignore[union-attr]
                if view.step.span.contains(c.span)]
        times.append(time.perf_counter() - t0)
        kinds.append(",".join("fail" for o in here if o is not None) or "pass")
    return times, kinds


def summary(times: list[float]) -> dict[str, float]:
    return {"total_s": round(sum(times), 4), "mean_ms": round(statistics.fmean(times) * 1e3, 3),
            "last_10_mean_ms": round(statistics.fmean(times[-10:]) * 1e3, 3)}


async def main(steps: int, n: int) -> None:
    spec = problem(n)
    all_views = views(trace(steps, n))
    inc, inc_kinds = await run_incremental(spec, all_views)
    reb, reb_kinds = await run_rebuild(spec, all_views)
    assert inc_kinds == reb_kinds, "the two ways disagree"
    print(json.dumps({
        "benchmark": "constraints_incremental",
        "command": f"python3 benchmarks/constraints_incremental.py --steps {steps} --vars {n}",
        "steps": len(all_views), "variables": n, "constraints": len(spec.constraints),
        "fails": sum("fail" in k for k in inc_kinds),
        "incremental": summary(inc), "rebuild_each_step": summary(reb),
        "speedup_total": round(sum(reb) / sum(inc), 2),
    }, indent=2))


if __name__ == "__main__":
    import anyio

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--vars", type=int, default=30)
    args = parser.parse_args()
    anyio.run(main, args.steps, args.vars)
