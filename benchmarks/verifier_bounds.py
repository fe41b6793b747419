"""Per-step cost bounds of the built-in verifiers on hostile input; prints JSON.

    python benchmarks/verifier_bounds.py [--game24-timeout 30]

Cases: a 5 MB line (digits, letters, dense claims) and long prose steps with one wrong claim through the
arithmetic verifier's ``check_text`` (caches cleared before each run, best of 3, sympy loaded before the
clock); a Game of 24 step with ``dead_ends=True`` whose "left" list holds 6 to 9 numbers (each run in a child
process, killed after ``--game24-timeout`` seconds); and ``Verifier.scan`` of one 5 MB step, fed in word-sized
pieces (as it was before issue 24, and still is for a verifier that reads token data) and a line at a time (now,
as a replay), beside the replay engine's ``scan_trace``. Run it on two checkouts side by side to compare (the
README of issue 14's note gives the commands); the machine is shared, so read ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_GAME24_CHILD = """
import sys, time
from interlock.verifiers.game24 import Game24
numbers = [int(x) for x in sys.argv[1].split()]
left = numbers[2:] + [numbers[0] + numbers[1]]
text = f"{numbers[0]} + {numbers[1]} = {numbers[0] + numbers[1]} (left: {' '.join(map(str, left))})\\n"
started = time.perf_counter()
verdicts = Game24(numbers, dead_ends=True, require_answer=False).scan(text)
print(time.perf_counter() - started, ",".join(v.kind for v in verdicts))
"""


def prose(n: int, rng: random.Random, density: float = 0.05) -> str:
    out: list[str] = []
    size = 0
    while size < n:
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        s = f"Then {a} + {b} = {a + b} and some words follow here. " if rng.random() < density else "Words go on. "
        out.append(s)
        size += len(s)
    return "".join(out)


def dense(n: int, rng: random.Random) -> str:
    out: list[str] = []
    size = 0
    while size < n:
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        s = f"{a} + {b} = {a + b}. "
        out.append(s)
        size += len(s)
    return "".join(out)


def time_check_text(text: str) -> dict[str, Any]:
    import interlock.verifiers.arithmetic.extract as ex
    import sympy  # noqa: F401  (not timed)
    from interlock.verifiers.arithmetic import TooComplex, check_text, wrong_claims

    best = float("inf")
    outcome: dict[str, Any] = {}
    for _ in range(3):
        for name in ("_extract_cached", "_cached_parse", "_refutations"):
            if hasattr(ex, name):
                getattr(ex, name).cache_clear()
        started = time.perf_counter()
        try:
            found = check_text(text)
            outcome = {"wrong_flagged": [text[f.start:f.end] for f in wrong_claims(found)],
                       "ok": sum(f.status == "ok" for f in found),
                       "unknown": sum(f.status == "unknown" for f in found)}
        except TooComplex as exc:
            outcome = {"raised": f"TooComplex: {exc}"}
        best = min(best, time.perf_counter() - started)
    return {"ms": round(best * 1000, 2), **outcome}


def time_game24(numbers: list[int], timeout: float) -> dict[str, Any]:
    try:
        done = subprocess.run([sys.executable, "-c", _GAME24_CHILD, " ".join(map(str, numbers))], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"numbers": len(numbers), "seconds": None, "ended": False, "note": f"killed after {timeout:g} s"}
    if done.returncode != 0:
        return {"numbers": len(numbers), "error": done.stderr.strip().splitlines()[-1:]}
    seconds, kinds = done.stdout.split()
    return {"numbers": len(numbers), "seconds": round(float(seconds), 3), "ended": True, "verdicts": kinds}


def time_scan(text: str) -> dict[str, Any]:
    """``Arithmetic().scan`` of ``text`` by word-sized pieces and by lines, and a replay's ``scan_trace``."""
    import asyncio

    from interlock import Arithmetic
    from interlock.monitor.replay.importers import ImportedTrace
    from interlock.monitor.replay.scanning import scan_trace

    class ReadsChunks(Arithmetic):  # declares that it reads token data: fed word-sized pieces
        reads_chunks = True

    out: dict[str, Any] = {"chars": len(text)}
    for name, verifier in (("word_pieces_s", ReadsChunks()), ("by_line_s", Arithmetic())):
        started = time.perf_counter()
        verifier.scan(text)
        out[name] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    asyncio.run(scan_trace(ImportedTrace(id="t", text=text), [Arithmetic()]))
    out["replay_s"] = round(time.perf_counter() - started, 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--game24-timeout", type=float, default=30.0)
    args = parser.parse_args()
    rng = random.Random(0)
    wrong = "So 17 * 23 = 381. "
    cases = {
        "5 MB line of digits": "1" * 5_000_000,
        "5 MB line of letters": "x" * 5_000_000,
        "5 MB line of distinct claims": dense(5_000_000, rng),
        "9,000-char step, wrong claim at 8,500": prose(8_500, rng) + wrong + prose(500, rng),
        "20,000-char step, wrong claim at 15,000": prose(15_000, rng) + wrong + prose(5_000, rng),
        "7,900-char dense step": dense(7_900, rng),
    }
    report: dict[str, Any] = {"check_text": {name: time_check_text(text) for name, text in cases.items()}}
    report["scan_5mb_step"] = time_scan("she counts the sheep again and " * 170_000 + "so 17 * 23 = 381.\n")
    # Large distinct numbers: the exact search has to try (nearly) everything, which grows faster than
    # exponentially with the count (the numbers left after the first step are one fewer).
    primes = [1009, 2003, 3001, 4001, 5003, 6007, 7001, 8009, 9001]
    puzzles = [primes[:k] for k in (6, 7, 8, 9)]
    report["game24_dead_ends"] = [time_game24(p, args.game24_timeout) for p in puzzles]
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
