"""The shipped structured-reasoning corpus (``tests/data/structured/corpus.jsonl``, written by
``benchmarks/structured_corpus.py``): correct solutions in every style raise no alarm, planted errors are the first
thing flagged, each claim is judged once however the text ends, and ``interlock replay`` agrees."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from interlock import Fail
from interlock.verifiers.maze import Maze
from interlock.verifiers.spatialmap import SpatialMap
from interlock.verifiers.zebra import Zebra

CORPUS = Path(__file__).resolve().parent / "data" / "structured" / "corpus.jsonl"
ROWS: list[dict[str, Any]] = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
VERIFIERS = {"zebra": Zebra, "maze": Maze, "spatialmap": SpatialMap}


def flags(row: dict[str, Any], text: str | None = None) -> list[tuple[int, int]]:
    verifier = VERIFIERS[row["verifier"]]()
    return sorted((v.span.start, v.span.end) for v in verifier.scan(text if text is not None else row["text"],
                                                                       prompt=row["prompt"])
                  if isinstance(v, Fail) and v.span is not None)


def test_the_corpus_covers_every_verifier_format_and_style() -> None:
    seen = {(r["verifier"], r["format"]) for r in ROWS}
    assert {("zebra", "zebralogic"), ("zebra", "interwhen"), ("zebra", "reasoning-gym"), ("maze", "spatialeval"),
            ("maze", "reasoning-gym"), ("spatialmap", "spatialeval")} <= seen
    assert len({r["style"] for r in ROWS}) >= 8
    assert sum(r["planted"] is not None for r in ROWS) >= 15


def test_correct_solutions_raise_no_alarm_and_planted_errors_are_flagged_first() -> None:
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for row in ROWS:
        got = flags(row)
        tally = found[row["verifier"]]
        if row["planted"] is None:
            assert got == [], (row["style"], row["text"][:300], got)
            continue
        start, end = row["planted"]
        tally["planted"] += 1
        if got and got[0][0] < end and start < got[0][1]:
            tally["first"] += 1
        else:
            assert not got or got[0][0] >= start, "a flag before the planted error is a false alarm"
    for name, tally in found.items():
        assert tally["first"] >= 0.9 * tally["planted"], (name, tally)


@pytest.mark.parametrize("index", range(0, len(ROWS), 3))
def test_each_claim_is_judged_once_whatever_the_text_ends_with(index: int) -> None:
    row = ROWS[index]
    text = row["text"].rstrip("\n")
    with_newline, without = flags(row, text + "\n"), flags(row, text)
    assert with_newline == without
    assert len(set(without)) == len(without)


def test_replay_runs_the_three_verifiers_over_the_corpus() -> None:
    out = subprocess.run([sys.executable, "-m", "interlock", "replay", str(CORPUS), "--prompt-field", "prompt",
                          "--text-field", "text", "-v", "zebra", "-v", "maze", "-v", "spatialmap", "--json",
                          "--processes", "0"], capture_output=True, text=True, timeout=600)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    traces = [r for r in records if r.get("type") == "trace"]
    assert len(traces) == len(ROWS)
    for row, trace in zip(ROWS, traces, strict=True):
        assert trace["passed"] is (row["planted"] is None), (row["verifier"], row["style"])
        other = {v["verifier"] for v in trace["verdicts"] if v["kind"] == "fail"}
        assert other <= {row["verifier"]}
    assert out.returncode == 1
