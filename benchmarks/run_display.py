"""Cost of one redraw of ``interlock run``'s live display as the trace grows: 1k, 10k and 100k characters.

Feeds a synthetic run (lines of ~25 characters in 6-character chunks, a pass verdict per line) into
``TraceDisplay`` and times one redraw at each size: the live tail (what the display redraws: the uncommitted
text cropped to the screen, wrapped for an 80x24 terminal) beside a redraw of the whole trace (what the display
did before it printed finished lines once). Prints JSON; the live figure should stay flat while the whole-trace
one grows with the trace.

    python benchmarks/run_display.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import io
import json
import time

from interlock import Chunk, ChunkAppended, Pass, Span, VerdictReceived
from interlock.monitor.cli.run_display import TraceDisplay, styled
from rich.console import Console


def _grow(display: TraceDisplay, text: str, upto: int) -> str:
    """Feed chunks and one pass per line until the trace holds ``upto`` characters."""
    line_start = len(text)
    while len(text) < upto:
        line = f"Then {len(text)} + 1 = {len(text) + 1}.\n"
        for i in range(0, len(line), 6):
            piece = line[i:i + 6]
            display.feed(ChunkAppended(chunk=Chunk(piece), position=len(text)))
            text += piece
        display.feed(VerdictReceived(verdict=Pass(span=Span(line_start, len(text) - 1), verifier="arithmetic"),
                                     seconds=0.0))
        line_start = len(text)
    # the line being written: not complete, not yet checked
    display.feed(ChunkAppended(chunk=Chunk("Then 7 + "), position=len(text)))
    return text + "Then 7 + "


def _time(fn: object, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    console = Console(file=io.StringIO(), width=80, height=24, force_terminal=True)
    display = TraceDisplay()
    text = ""
    rows = []
    for size in (1_000, 10_000, 100_000):
        text = _grow(display, text, size)
        display.take_committed()

        def live() -> None:
            console.print(styled(display.live(max_chars=21 * 80)).wrap(console, 80)[-21:])

        def whole() -> None:
            console.print(styled(display.pieces()))

        live_s = _time(live, args.repeats)
        whole_s = _time(whole, max(3, args.repeats // 5))
        console.file = io.StringIO()
        rows.append({"chars": len(text), "live_redraw_ms": round(live_s * 1e3, 3),
                     "whole_trace_redraw_ms": round(whole_s * 1e3, 3), "ratio": round(whole_s / live_s, 1)})
    print(json.dumps({"benchmark": "run_display", "terminal": "80x24", "redraws": rows}))


if __name__ == "__main__":
    main()
