"""Game of 24: the exact solver over the Tree-of-Thoughts puzzle set, and the verifier's time per step.

    python3 benchmarks/game24_solver.py [--csv ../shared/data/game24/24.csv] [--limit N]

Prints JSON: how many puzzles the solver solves (each solution re-parsed and checked to be exactly 24 with
each number used once), the solver's time per puzzle cold (cache cleared), for the whole set with one shared
cache (as in a long run, where dead-end checks share it), and the verifier's time
per checked step (extract + check) on a correct trace of each puzzle, with and without dead-end detection.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

from interlock import Span, Step, TraceView
from interlock.monitor.steps import step_ends
from interlock.verifiers.game24 import Game24, parse_expression, solvable, solve
from interlock.verifiers.game24.solver import _solvable

DEFAULT_CSV = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "game24" / "24.csv"


def fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def trace_for(numbers: list[int]) -> str:
    """A correct trace in the usual format: three steps that keep 24 reachable, then the answer."""
    pool = [Fraction(n) for n in numbers]
    lines = []
    while len(pool) > 1:
        done = False
        for i in range(len(pool)):
            for j in range(len(pool)):
                if i == j or done:
                    continue
                a, b = pool[i], pool[j]
                rest = [x for k, x in enumerate(pool) if k not in (i, j)]
                for op, value in (("+", a + b), ("-", a - b), ("*", a * b), ("/", a / b if b else None)):
                    if value is None or not solvable([*rest, value]):
                        continue
                    pool = [*rest, value]
                    left = " ".join(fmt(x) for x in sorted(pool))
                    lines.append(f"{fmt(a)} {op} {fmt(b)} = {fmt(value)} (left: {left})")
                    done = True
                    break
        assert done
    lines.append(f"Answer: {solve(numbers)} = 24")
    return "\n".join(lines) + "\n"


def percentiles(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"mean_us": round(statistics.fmean(xs) * 1e6, 2), "p50_us": round(xs[len(xs) // 2] * 1e6, 2),
            "p95_us": round(xs[int(len(xs) * 0.95)] * 1e6, 2), "max_us": round(xs[-1] * 1e6, 2)}


def step_times(verifier: Game24, text: str, prompt: str) -> tuple[list[float], int]:
    times, fails = [], 0
    start = 0
    for end in step_ends(text, 0):
        view = TraceView(text=text[:end], step=Step(text[start:end], Span(start, end)), prompt=prompt,
                         final=end == len(text))
        t0 = time.perf_counter()
        verdicts = verifier.check(verifier.extract(view))
        times.append(time.perf_counter() - t0)
        fails += sum(v.kind == "fail" for v in verdicts)
        start = end
    return times, fails


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--limit", type=int, default=None, help="only the first N puzzles")
    args = parser.parse_args()
    if not args.csv.is_file():
        print(f"error: {args.csv} not found (pass --csv)", file=sys.stderr)
        return 2
    with open(args.csv, newline="") as f:
        puzzles = [[int(x) for x in row["Puzzles"].split()] for row in csv.DictReader(f)][: args.limit]

    cold, solved, exact = [], 0, 0
    for nums in puzzles:
        _solvable.cache_clear()
        t0 = time.perf_counter()
        expr = solve(nums)
        cold.append(time.perf_counter() - t0)
        if expr is not None:
            solved += 1
            parsed = parse_expression(expr)
            exact += parsed.value == 24 and sorted(x.value for x in parsed.leaves) == sorted(map(Fraction, nums))
    _solvable.cache_clear()
    t0 = time.perf_counter()
    for nums in puzzles:
        solve(nums)
    shared_total = time.perf_counter() - t0

    traces = [(nums, trace_for(nums)) for nums in puzzles if solvable(nums)]
    per_step: dict[str, object] = {}
    for label, dead_ends in (("plain", False), ("dead_ends", True)):
        times: list[float] = []
        false_flags = 0
        for nums, text in traces:
            prompt = "Input: " + " ".join(map(str, nums))
            t, fails = step_times(Game24(dead_ends=dead_ends), text, prompt)
            times += t
            false_flags += fails
        per_step[label] = {"steps": len(times), "fails_on_correct_traces": false_flags, **percentiles(times)}

    print(json.dumps({
        "benchmark": "game24_solver",
        "command": "python3 benchmarks/game24_solver.py" + (f" --limit {args.limit}" if args.limit else ""),
        "puzzles": len(puzzles),
        "solved": solved,
        "solutions_exactly_24": exact,
        "solver_cold_per_puzzle": percentiles(cold),
        "solver_all_puzzles_one_cache_s": round(shared_total, 4),
        "verifier_per_step": per_step,
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
