"""Is ``interlock budget`` linear in the length of a trace? One record of growing size under the default policies.

A real reasoning trace (the longest of the shared Sky-T1 MATH500 traces, else a generated one) is repeated to
each size, then evaluated alone under the default policies with the whitespace tokenizer (to time the replay,
not a tokenizer). Prints, per size, the seconds and the seconds per MB; linear means a flat ``s_per_mb``. Run it
before and after a change to compare (issue 24: ``self._text += chunk.text``, a full line scan of LoopGuard and a
full box scan of ``boxed:N`` at every chunk made it quadratic: 16 MB took 258 s).

    python benchmarks/budget_scaling.py                      # 0.25, 0.5, 1, 2 MB
    python benchmarks/budget_scaling.py --sizes 1,4,16 --record-seconds 600
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from interlock.monitor.budgets import DEFAULT_POLICIES, TraceRecord, evaluate, parse_policies

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "skythought" / "sky_t1_27b_math500.jsonl"


def sample_text() -> tuple[str, str]:
    """The longest recorded trace and its reference, or a generated trace without the data."""
    if DATA.exists():
        best = max((json.loads(line) for line in DATA.open(encoding="utf-8")),
                   key=lambda r: len(r["code"][0] if isinstance(r["code"], list) else r["code"]))
        text = best["code"][0] if isinstance(best["code"], list) else best["code"]
        return text, str(best["gt"])
    step = "We compute 12 * 7 = 84, so the next value is 84 + 5 = 89. Then \\boxed{89} follows.\n"
    return step * 400, "89"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="0.25,0.5,1,2", help="record sizes in MB, comma-separated")
    parser.add_argument("--record-seconds", type=float, default=None,
                        help="the per-record deadline where the evaluator has one (default: none)")
    args = parser.parse_args()
    base, reference = sample_text()
    policies = parse_policies(list(DEFAULT_POLICIES))
    rows: list[dict[str, Any]] = []
    for mb in (float(s) for s in args.sizes.split(",")):
        size = int(mb * 1024 * 1024)
        text = (base * (size // len(base) + 1))[:size]
        rec = TraceRecord("r", "q", text, reference)
        options: dict[str, Any] = {}
        if args.record_seconds is not None:
            options["record_seconds"] = args.record_seconds
        started = time.perf_counter()
        report = evaluate([rec], policies, tokenizer="whitespace", chunk_tokens=16, **options)
        seconds = time.perf_counter() - started
        rows.append({"mb": mb, "seconds": round(seconds, 3), "s_per_mb": round(seconds / mb, 3),
                     "error": report.records[0].get("error")})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"policies": len(policies), "sample_chars": len(base), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
