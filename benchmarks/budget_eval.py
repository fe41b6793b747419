"""How should budgets be set? The offline budget evaluator on the shared SkyThought MATH500 traces.

Replays the 500 traces of a 27B reasoning model (Sky-T1) and the 500 of Qwen2.5-Math-7B under the default
policies of ``interlock budget`` (fixed caps, the batch pool, LoopGuard, AnswerConvergence, the crude "second
identical \\boxed{}" rule, combinations; not EntropyStop, which needs logprobs these traces do not have),
tokens counted with the embedded model's tokenizer, answers scored with math-verify against the reference.
Prints the tables, then one JSON object that also compares every policy with the crude rule (tokens saved and
right answers, side by side), and writes the accuracy-vs-tokens plot.

    python benchmarks/budget_eval.py                           # ~4 min on 2 cores
    python benchmarks/budget_eval.py --plot docs/budgets.png --json budgets.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from interlock.monitor.budgets import (
    DEFAULT_POLICIES,
    BudgetReport,
    TraceRecord,
    evaluate,
    format_table,
    parse_policies,
    read_records,
    write_plot,
)

FILES = ("qwen25_math_7b_math500.jsonl", "sky_t1_27b_math500.jsonl")
CRUDE = "boxed:2"


def against_crude(report: BudgetReport) -> list[dict[str, Any]]:
    """Each policy beside the crude rule on the same traces: extra tokens saved (percentage points of the
    uncapped total) and right answers (positive: more than the rule)."""
    rows = {r["policy"]: r for r in report.policies}
    crude = rows[CRUDE]
    return [{"policy": name, "saved_pct_minus_rule": round(r["saved_pct"] - crude["saved_pct"], 1),
             "right_minus_rule": r["right"] - crude["right"], "false_stops": r["false_stops"]}
            for name, r in rows.items() if r["traces"] and name != CRUDE]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"
                                              / "skythought"), help="folder of the two JSONL files")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-tokens", type=int, default=16)
    parser.add_argument("--plot", default="budgets.png", help="where to write the PNG")
    parser.add_argument("--json", dest="json_path", help="also write the JSON here")
    args = parser.parse_args()
    policies = parse_policies(DEFAULT_POLICIES)
    reports, out = [], []
    for name in FILES:
        path = Path(args.data) / name
        if not path.is_file():
            sys.exit(f"{path} is missing (see ../shared/data/PROVENANCE.md)")
        started = time.perf_counter()
        records = [r for r in read_records(path) if isinstance(r, TraceRecord)]
        report = evaluate(records, policies, tokenizer="smollm2", chunk_tokens=args.chunk_tokens,
                          workers=args.workers, source=name)
        seconds = time.perf_counter() - started
        recorded = sum(bool(r.recorded_correct) for r in records)
        print(format_table(report), f"\n({seconds:.0f} s; recorded grades: {recorded} right; math-verify on the "
              f"whole trace: {report.policies[0]['right']})\n", file=sys.stderr)
        reports.append(report)
        out.append({**report.to_dict(), "seconds": round(seconds, 1), "recorded_right": recorded,
                    "against_crude_rule": against_crude(report)})
    write_plot(reports, args.plot)
    result = {"tokenizer": reports[0].tokenizer, "chunk_tokens": args.chunk_tokens, "workers": args.workers,
              "plot": args.plot, "datasets": out}
    print(json.dumps(result, indent=1))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
