"""The ``zebra`` verifier over real model outputs for ZebraLogic puzzles; prints JSON.

    python benchmarks/zebra_outputs.py RESULTS.json [...]

RESULTS is ZeroEval's format (``result_dirs/zebra-grid/<model>.json``: a list of records with ``chat_history`` or
``puzzle`` and ``output``) or JSON Lines of ``{"prompt", "text"}``. Reported: puzzles read (every clue, one
solution), final grids that satisfy every clue, that break one, outputs without a grid, the prose claims flagged
(with a sample to check by hand), and seconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def records(path: Path) -> list[tuple[str, str, str]]:
    text = path.read_text(encoding="utf-8")
    rows: list[Any] = json.loads(text) if text.lstrip().startswith("[") else [
        json.loads(line) for line in text.splitlines() if line.strip()]
    out = []
    for i, r in enumerate(rows):
        prompt = r.get("prompt") or (r.get("chat_history") or [r.get("puzzle", "")])[0]
        output = r.get("text") or (r.get("output") or [""])[0]
        out.append((str(r.get("id", i)), prompt, output))
    return out


def main() -> int:
    from interlock import Fail, Pass, Unknown
    from interlock.verifiers.zebra import Zebra, read_puzzle

    paths = [Path(p) for p in sys.argv[1:]]
    if not paths:
        print(__doc__)
        return 2
    verifier = Zebra()
    report: dict[str, Any] = {"outputs": 0, "puzzles_fully_read": 0, "grids_satisfy_every_clue": 0,
                              "grids_break_a_clue": 0, "no_grid": 0, "prose_claims_flagged": 0, "sample": []}
    started = time.perf_counter()
    for path in paths:
        for rid, prompt, output in records(path):
            report["outputs"] += 1
            puzzle = read_puzzle(prompt)
            report["puzzles_fully_read"] += puzzle is not None and not puzzle.unread
            verdicts = verifier.scan(output, prompt=prompt)
            grid = [v for v in verdicts if "final grid" in (getattr(v, "message", "") or getattr(v, "note", ""))
                    or (isinstance(v, Unknown) and "final grid" in v.reason)]
            if not grid:
                report["no_grid"] += 1
            elif isinstance(grid[-1], Pass):
                report["grids_satisfy_every_clue"] += 1
            elif isinstance(grid[-1], Fail):
                report["grids_break_a_clue"] += 1
            for v in verdicts:
                if isinstance(v, Fail) and v.span is not None and "final grid" not in v.message \
                        and not v.message.startswith("'House "):
                    report["prose_claims_flagged"] += 1
                    if len(report["sample"]) < 20:
                        report["sample"].append({"id": rid, "claim": output[v.span.start:v.span.end],
                                                 "message": v.message})
    report["seconds"] = round(time.perf_counter() - started, 2)
    json.dump(report, sys.stdout, indent=1, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
