"""What phases cost on the token path: ``Trace.add`` alone, and with the scheduler and a view per due check, per
piece, for the ``overhead.py`` trace streamed as answer pieces and as thinking pieces. Prints JSON (nanoseconds,
the minimum over many runs, which a loaded machine disturbs least).

To compare two checkouts, run it under each (the namespace laid out as links, as ``.ci/typecheck`` does, put
first on ``PYTHONPATH``), alternating.

    python benchmarks/phases_token_path.py [--tokens 1414] [--runs 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interlock import Chunk, Trace
from interlock.monitor.scan import pseudo_tokens
from interlock.monitor.scheduler import Scheduler
from overhead import make_trace, sums


def per_piece(pieces: list[Chunk], runs: int, scheduled: bool) -> float:
    best = float("inf")
    for _ in range(runs):
        trace = Trace("q")
        scheduler = Scheduler(trace, [sums])
        start = time.perf_counter()
        for chunk in pieces:
            trace.add(chunk)
            if scheduled:
                for _, due in scheduler.advance():
                    trace.view(due.end, due.step, chunks=False)
        best = min(best, time.perf_counter() - start)
    return best / len(pieces) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=1414)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    text = make_trace(args.tokens)
    answer = [Chunk(p) for p in pseudo_tokens(text)]
    out: dict[str, object] = {"pieces": len(answer),
                              "answer_add_ns": round(per_piece(answer, args.runs, False)),
                              "answer_add_advance_view_ns": round(per_piece(answer, args.runs // 2, True))}
    try:
        thinking = [Chunk(p, phase="thinking") for p in pseudo_tokens(text)]
        out["thinking_add_ns"] = round(per_piece(thinking, args.runs, False))
        out["thinking_add_advance_view_ns"] = round(per_piece(thinking, args.runs // 2, True))
    except TypeError:  # a checkout before phases
        pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
