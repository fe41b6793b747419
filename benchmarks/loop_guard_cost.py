"""What LoopGuard costs per chunk, by trace length: the guard as ``interlock run`` and ``interlock budget`` use it,
beside a rescan of the text at every chunk with the module's whole-text functions (``find_tandem_repeat``,
``find_char_repeat`` and the line counts: what ``on_chunk`` did before it became incremental).

Texts that never loop (so the guard reads them to the end): a real reasoning trace (the longest Sky-T1 MATH500
trace, else a generated one) repeated with a counter on every line, cut to each size; and one line of the same
words with no newline at all. Chunks are ``--tokens`` whitespace tokens (1: a live model's pieces; 16: the
budget evaluator's default). Both paths must find the same thing at the same chunk (nothing), which is checked.
Prints one JSON object per case and a summary; timings are side by side in one process.

    python benchmarks/loop_guard_cost.py                        # 10 KB, 100 KB, 1 MB; 1 and 16 tokens a chunk
    python benchmarks/loop_guard_cost.py --sizes 0.01,0.1,1,4 --tokens 16
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

from interlock.monitor.budgets.offline import OfflineRun
from interlock.monitor.chunks import Chunk
from interlock.monitor.governor import Capabilities
from interlock.monitor.governors import LoopGuard
from interlock.monitor.governors.loop_guard import Repetition, _LineCounts, find_char_repeat, find_tandem_repeat

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "skythought" / "sky_t1_27b_math500.jsonl"


def base_text() -> str:
    if DATA.exists():
        rows = [json.loads(line) for line in DATA.open(encoding="utf-8")]
        texts = [r["code"][0] if isinstance(r["code"], list) else r["code"] for r in rows]
        return max(texts, key=len)
    return "".join(f"We compute {i} * 7 = {i * 7}, so the next value is {i * 7 + 5}.\n" for i in range(400))


def never_loops(base: str, size: int, *, lines: bool) -> str:
    """``base`` repeated to ``size`` characters with a counter in every line, so no line, run of words or state
    comes back (with ``lines=False``: one line, newlines turned into spaces)."""
    out: list[str] = []
    total, n = 0, 0
    while total < size:
        for line in base.splitlines():
            n += 1
            piece = f"[{n}] {line}\n"
            out.append(piece)
            total += len(piece)
            if total >= size:
                break
    text = "".join(out)[:size]
    return text if lines else text.replace("\n", " ")


def chunks_of(text: str, tokens: int) -> list[str]:
    starts = [*[m.start() for m in re.finditer(r"\s*\S+", text)][::tokens], len(text)]
    return [text[a:b] for a, b in itertools.pairwise(starts) if b > a]


def rescan(text: str, lines: _LineCounts, guard: LoopGuard) -> Repetition | None:
    return (find_tandem_repeat(text, min_repeats=guard.min_repeats, max_period=guard.max_period,
                               min_chars=guard.min_chars)
            or lines.find(text, max_repeats=guard.max_line_repeats, min_chars=guard.min_line_chars)
            or find_char_repeat(text, min_chars=guard.min_char_run))


def timed(pieces: list[str], use_guard: bool, rounds: int) -> tuple[float, int | None]:
    """Best seconds per chunk over ``rounds`` and the index of the chunk where something was found."""
    best, found_at = float("inf"), None
    for _ in range(rounds):
        guard = LoopGuard(nudge=None, force_answer=False)
        run = OfflineRun("", Capabilities(token_ids=False, resumable=False))
        guard.start(run)
        lines = _LineCounts()
        found_at = None
        spent = 0.0
        for i, piece in enumerate(pieces):
            chunk = Chunk(piece)
            run.append(chunk)
            started = time.perf_counter()
            hit = guard.on_chunk(run, chunk) if use_guard else rescan(run.text, lines, guard)
            spent += time.perf_counter() - started
            if hit is not None:
                found_at = i
                break
        best = min(best, spent / len(pieces))
    return best, found_at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="0.01,0.1,1", help="trace sizes in MB, comma-separated")
    parser.add_argument("--tokens", default="1,16", help="whitespace tokens per chunk, comma-separated")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many passes per case")
    parser.add_argument("--rescan-up-to", type=float, default=1.0,
                        help="skip the per-chunk rescan above this size in MB (it takes ~1 ms a chunk)")
    args = parser.parse_args()
    base = base_text()
    rows: list[dict[str, Any]] = []
    for mb in (float(s) for s in args.sizes.split(",")):
        for shape in ("lines", "one line"):
            text = never_loops(base, int(mb * 1024 * 1024), lines=shape == "lines")
            for tokens in (int(t) for t in args.tokens.split(",")):
                pieces = chunks_of(text, tokens)
                guard_s, guard_hit = timed(pieces, True, args.rounds)
                row: dict[str, Any] = {"mb": mb, "text": shape, "tokens_per_chunk": tokens, "chunks": len(pieces),
                                       "guard_us_per_chunk": round(guard_s * 1e6, 2), "guard_found_at": guard_hit}
                if mb <= args.rescan_up_to:
                    rescan_s, rescan_hit = timed(pieces, False, 1)
                    row.update(rescan_us_per_chunk=round(rescan_s * 1e6, 2), rescan_found_at=rescan_hit,
                               rescan_over_guard=round(rescan_s / guard_s, 1), same=guard_hit == rescan_hit)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(json.dumps({"base_chars": len(base), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
