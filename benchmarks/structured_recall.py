"""First-error recall and false alarms of the ``zebra``, ``maze`` and ``spatialmap`` verifiers; prints JSON.

    python benchmarks/structured_recall.py [--puzzles 30] [--seed 0]
    python benchmarks/structured_recall.py --corpus tests/data/structured/corpus.jsonl

The corpus (``benchmarks/structured_corpus.py``) holds, per puzzle, a correct step-by-step solution in one of
several styles (terse, verbose, thinking with suppositions and retractions, partial tables, interwhen's
structured maze steps, prose, coordinates, chains) and the same solution with ONE planted wrong step. Each text
is scanned by its verifier exactly as a live run streams it (``Verifier.scan``). Reported, per verifier, per
prompt format and per style:

- ``first_error_recall``: the share of corrupted solutions whose first failed claim is the planted one (its span
  overlaps the planted statement);
- ``false_alarms``: correct solutions with any failed claim, and corrupted ones flagged before the planted step;
- ``seconds``: wall time of the scans (noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from interlock.monitor.verifier import Verifier  # noqa: E402


def verifiers() -> dict[str, Verifier]:
    from interlock.verifiers.maze import Maze
    from interlock.verifiers.spatialmap import SpatialMap
    from interlock.verifiers.zebra import Zebra

    return {"zebra": Zebra(), "maze": Maze(), "spatialmap": SpatialMap()}


def fails(verifier: Verifier, row: dict[str, Any]) -> list[tuple[int, int, str]]:
    found = [(v.span.start, v.span.end, v.message) for v in verifier.scan(row["text"], prompt=row["prompt"])
             if v.kind == "fail" and v.span is not None]
    return sorted(found)


def measure(rows: list[dict[str, Any]], *, examples: int = 5) -> dict[str, Any]:
    checkers = verifiers()
    stats: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    misses: dict[str, list[dict[str, Any]]] = defaultdict(list)
    alarms: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seconds: dict[str, float] = defaultdict(float)
    for row in rows:
        name = row["verifier"]
        started = time.perf_counter()
        found = fails(checkers[name], row)
        seconds[name] += time.perf_counter() - started
        for key in ("all", f"format:{row['format']}", f"style:{row['style']}"):
            cell = stats[name][key]
            if row["planted"] is None:
                cell["correct"] += 1
                cell["flags_on_correct"] += bool(found)
            else:
                start, end = row["planted"]
                cell["corrupted"] += 1
                first = found[0] if found else None
                if first is not None and first[0] < end and start < first[1]:
                    cell["first_error_found"] += 1
                elif first is not None and first[1] <= start:
                    cell["early_flags"] += 1
        if row["planted"] is None and found and len(alarms[name]) < examples:
            alarms[name].append({"format": row["format"], "style": row["style"], "flags": found[:3],
                                 "text": row["text"][:1500]})
        if row["planted"] is not None:
            start, end = row["planted"]
            first = found[0] if found else None
            if not (first is not None and first[0] < end and start < first[1]) and len(misses[name]) < examples:
                misses[name].append({"format": row["format"], "style": row["style"],
                                     "planted": row["text"][start:end], "flags": found[:3]})
    report: dict[str, Any] = {}
    for name, by in stats.items():
        def summary(cell: dict[str, int]) -> dict[str, Any]:
            corrupted, correct = cell["corrupted"], cell["correct"]
            return {
                "corrupted": corrupted, "correct": correct,
                "first_error_recall": round(cell["first_error_found"] / corrupted, 4) if corrupted else None,
                "correct_traces_flagged": cell["flags_on_correct"],
                "false_alarm_rate": round(cell["flags_on_correct"] / correct, 4) if correct else None,
                "flags_before_the_planted_error": cell["early_flags"],
            }

        report[name] = {**summary(by["all"]),
                        "per_format": {k[7:]: summary(v) for k, v in sorted(by.items()) if k.startswith("format:")},
                        "per_style": {k[6:]: summary(v) for k, v in sorted(by.items()) if k.startswith("style:")},
                        "seconds": round(seconds[name], 2),
                        "misses": misses[name], "false_alarm_examples": alarms[name]}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--puzzles", type=int, default=30, help="puzzles per format (a generated corpus)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", type=Path, help="a JSON Lines corpus instead of a generated one")
    parser.add_argument("--examples", type=int, default=5, help="misses and false alarms listed per verifier")
    args = parser.parse_args()
    if args.corpus is not None:
        rows = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        from structured_corpus import build

        rows = build(args.puzzles, args.seed)
    report = {"records": len(rows), "seed": args.seed, **measure(rows, examples=args.examples)}
    json.dump(report, sys.stdout, indent=1, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
