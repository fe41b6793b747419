"""Monitoring overhead on a clean run: the same scripted trace, unmonitored vs. monitored, alternating runs.

Prints JSON. The trace is ~2,000 word-sized tokens of clean step-by-step arithmetic; the monitored runs check
every step with a cheap regex verifier. At a fixed token rate (what a model would produce) the ratio shows
whether monitoring ever makes the generator wait; "as fast as possible" shows the per-chunk cost. The check is
a plain ``@verifier`` (a worker thread, the default); ``check_on_loop`` is the same check with ``runs_in="loop"``,
where it ran before issue 13, measured in the same rounds.
"bookkeeping" is the monitor's own CPU per piece with no verifier at all (trace, governors, scheduling): the
CPU seconds of monitored minus unmonitored runs at full speed, alternating, divided by the pieces.

    python benchmarks/overhead.py [--tokens 2000] [--rate 200] [--repeats 3] [--bookkeeping-runs 21]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time

import anyio
from interlock import Fail, GenerationRequest, Monitor, Step, Verifier, verifier
from interlock.generators import Scripted
from interlock.monitor.scan import pseudo_tokens
from interlock.monitor.verifier import FunctionVerifier

SUM = re.compile(r"(\d+) \+ (\d+) = (\d+)")


@verifier(name="sums")
def sums(step: Step) -> Fail | None:
    for m in SUM.finditer(step.text):
        a, b, c = (int(g) for g in m.groups())
        if a + b != c:
            return Fail(f"{a} + {b} is {a + b}, not {c}", span=step.to_trace(*m.span()))
    return None


def make_trace(tokens: int) -> str:
    text = ""
    i = 0
    while len(list(pseudo_tokens(text))) < tokens:
        a, b = 3 + i % 17, 5 + i % 23
        text += f"Step {i + 1}: we add {a} and {b}, so {a} + {b} = {a + b}.\n"
        i += 1
    return text


async def unmonitored(text: str, rate: float | None) -> float:
    gen = Scripted(text, rate=rate)
    start = time.perf_counter()
    out = []
    async for chunk in gen.stream(GenerationRequest("q")):
        out.append(chunk.text)
    elapsed = time.perf_counter() - start
    assert "".join(out) == text
    return elapsed


# The same check on the event loop: where a plain @verifier ran before issue 13 (now an explicit opt-in).
sums_on_loop = FunctionVerifier(sums.fn, name="sums", runs_in="loop")


async def monitored(text: str, rate: float | None, verifiers: list[Verifier] | None = None) -> float:
    gen = Scripted(text, rate=rate)
    start = time.perf_counter()
    result = await Monitor(gen, [sums] if verifiers is None else verifiers).run("q")
    elapsed = time.perf_counter() - start
    assert result.text == text and not result.interventions
    return elapsed


async def measure(text: str, rate: float | None, repeats: int) -> dict[str, object]:
    plain: list[float] = []
    watched: list[float] = []
    on_loop: list[float] = []
    for i in range(repeats):
        # rotate the order so drift on a noisy machine hits every variant alike
        runs = [lambda: unmonitored(text, rate), lambda: monitored(text, rate),
                lambda: monitored(text, rate, [sums_on_loop])]
        into = [plain, watched, on_loop]
        for k in range(3):
            j = (k + i) % 3
            into[j].append(await runs[j]())
    p, w, lp = statistics.median(plain), statistics.median(watched), statistics.median(on_loop)
    return {"rate_tokens_per_s": rate, "unmonitored_s": round(p, 4), "monitored_s": round(w, 4),
            "ratio": round(w / p, 4), "check_on_loop_s": round(lp, 4), "check_on_loop_ratio": round(lp / p, 4),
            "unmonitored_runs": [round(x, 4) for x in plain], "monitored_runs": [round(x, 4) for x in watched],
            "check_on_loop_runs": [round(x, 4) for x in on_loop]}


async def bookkeeping(text: str, pieces: int, runs: int) -> dict[str, object]:
    """CPU per piece: unmonitored and monitored with no verifier, alternating; the first two rounds warm up."""
    cpu: dict[str, list[float]] = {"unmonitored": [], "no_verifiers": []}
    for i in range(runs + 2):
        for name in (("unmonitored", "no_verifiers") if i % 2 == 0 else ("no_verifiers", "unmonitored")):
            start = time.process_time()
            await (unmonitored(text, None) if name == "unmonitored" else monitored(text, None, []))
            if i >= 2:
                cpu[name].append(time.process_time() - start)
    per_piece = {k: statistics.median(v) / pieces * 1e6 for k, v in cpu.items()}
    return {"runs": runs, "cpu_us_per_piece": {k: round(v, 2) for k, v in per_piece.items()},
            "bookkeeping_us_per_piece": round(per_piece["no_verifiers"] - per_piece["unmonitored"], 2)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="tokens per second for the fixed-rate runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bookkeeping-runs", type=int, default=21)
    args = parser.parse_args()
    text = make_trace(args.tokens)
    n_tokens = len(list(pseudo_tokens(text)))
    steps = text.count("\n")
    report = {
        "benchmark": "overhead",
        "tokens": n_tokens,
        "steps_checked_per_run": steps,
        "check_runs_in": sums.runs_in,  # a plain @verifier: a worker thread by default since issue 13
        "bookkeeping_no_verifier": await bookkeeping(text, n_tokens, args.bookkeeping_runs),
        "fixed_rate": await measure(text, args.rate, args.repeats),
        "as_fast_as_possible": await measure(text, None, max(args.repeats, 5)),
    }
    fast = report["as_fast_as_possible"]
    assert isinstance(fast, dict)
    report["monitor_cost_per_token_us"] = round(
        (float(fast["monitored_s"]) - float(fast["unmonitored_s"])) / n_tokens * 1e6, 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    anyio.run(main)
