"""Per-step cost of the arithmetic verifier, and where it should run; prints JSON.

    python benchmarks/arithmetic_speed.py [--data ../shared/data/gsm8k] [--steps 3000] [--dispatch 200]

Steps are the real steps of GSM8K model solutions (cut as the monitor cuts them), split into those with
nothing to check and those with at least one claim. Reported per step, in microseconds: the first check of a
text (caches cleared) and a repeated check (parse cache warm), median and 99th percentile. ``dispatch``
compares, side by side in one run, the latency of one check through the monitor's executor with
``runs_in`` = "loop", "thread" and "process" (what a step costs the run end to end, hand-off included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interlock import Span, Step  # noqa: E402
from interlock.monitor.execute import run_check  # noqa: E402
from interlock.monitor.steps import step_ends  # noqa: E402
from interlock.monitor.trace import TraceView  # noqa: E402
from interlock.verifiers.arithmetic import Arithmetic, check_text, extract  # noqa: E402

MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def solution_steps(text: str) -> list[str]:
    out, start = [], 0
    for end in step_ends(text, 0):
        out.append(text[start:end])
        start = end
    if start < len(text):
        out.append(text[start:])
    return out


def clear_caches() -> None:
    extract._extract_cached.cache_clear()
    extract._cached_parse.cache_clear()


def summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"n": len(s), "median_us": round(statistics.median(s) * 1e6, 1),
            "p99_us": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1e6, 1),
            "mean_us": round(statistics.fmean(s) * 1e6, 1)}


def timed(steps: list[str], repeat: int = 1) -> list[float]:
    """Seconds per step; with ``repeat`` > 1 the fastest of the repeats (the machine is shared: noise is slow)."""
    out = []
    for text in steps:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            check_text(text)
            best = min(best, time.perf_counter() - t0)
        out.append(best)
    return out


ADVERSARIAL = {
    "power_tower": "9**9**9**9 = 5",
    "200_claims": " ".join(f"{i} * {i + 1} = {i * (i + 1) + 1}." for i in range(200)),
    "300_token_sum": " + ".join(["123456789"] * 150) + " = 5",
    "200_nested_brackets": "(" * 200 + "1" + ")" * 200 + " = 1",
    "60_big_powers": " and ".join(f"99^{1000 - i} = 7" for i in range(60)),
    "60_nested_roots": " and ".join(r"\sqrt{\sqrt{\sqrt{2}}} = 1.09" for _ in range(60)),
    "8000_chars_of_prose": "The answer is that " * 420 + "3 + 4 = 7",
}


async def dispatch(steps: list[str], runs_in: str) -> list[float]:
    verifier = Arithmetic(runs_in=runs_in)
    out = []
    for text in steps:
        step = Step(text, Span(0, len(text)))
        view = TraceView(text=text, step=step)
        t0 = time.perf_counter()
        await run_check(verifier, view)
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "gsm8k")
    parser.add_argument("--steps", type=int, default=3000, help="steps of each kind to time")
    parser.add_argument("--dispatch", type=int, default=200, help="steps with claims for the runs_in comparison")
    args = parser.parse_args()

    texts: list[str] = []
    for line in (args.data / "example_model_solutions.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        for m in MODELS:
            texts += solution_steps(row[m]["solution"])
    texts = list(dict.fromkeys(texts))  # unique, so the first check is really uncached
    check_text("2 + 2 = 4")  # import sympy outside the clock
    with_claims = [t for t in texts if check_text(t)][: args.steps]
    without = [t for t in texts if not check_text(t)][: args.steps]

    report: dict[str, Any] = {"unique_steps": len(texts)}
    for name, group in (("nothing_to_check", without), ("with_claims", with_claims)):
        clear_caches()
        first = timed(group)
        again = timed(group, repeat=3)
        claims = sum(len(check_text(t)) for t in group)
        report[name] = {"first_check": summary(first), "cached_best_of_3": summary(again),
                        "claims_per_step": round(claims / max(1, len(group)), 2)}

    async def compare() -> dict[str, Any]:
        sample = with_claims[: args.dispatch]
        out = {}
        for runs_in in ("loop", "thread", "process"):
            clear_caches()
            await dispatch(sample[:5], runs_in)  # start the worker thread / process pool
            clear_caches()
            out[runs_in] = summary(await dispatch(sample, runs_in))
        return out

    report["dispatch_with_claims"] = anyio.run(compare)
    report["adversarial_ms"] = {}
    for name, text in ADVERSARIAL.items():
        t0 = time.perf_counter()
        found = check_text(text)
        report["adversarial_ms"][name] = {
            "ms": round((time.perf_counter() - t0) * 1000, 2), "chars": len(text),
            "statuses": {s: sum(f.status == s for f in found) for s in ("ok", "wrong", "unknown")}}
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
