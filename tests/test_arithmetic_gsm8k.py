"""The arithmetic verifier over the 1,319 GSM8K reference solutions: it flags exactly the two real slips in
them, and agrees with the labelled GPT-3 solutions far more often than chance (figures: the benchmark)."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.steps import step_ends
from verifiers.arithmetic import check_text


def steps(text: str) -> list[str]:
    out, start = [], 0
    for end in step_ends(text, 0):
        out.append(text[start:end])
        start = end
    return [*out, text[start:]] if start < len(text) else out


def test_reference_solutions_flag_only_their_two_real_errors(shared_data: Path) -> None:
    flagged = []
    with (shared_data / "gsm8k" / "test.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    assert len(rows) == 1319
    for i, row in enumerate(rows):
        for step in steps(row["answer"]):
            flagged += [(i, f.judgement.feedback) for f in check_text(step) if f.status == "wrong"]
    # 598: "2 plus .6 plus .7 plus .15 equals $3.45", then "3.65 divided by .05 equals 69" (3.45 was meant);
    # 1024: "$32 - $20 = $300" (a typo for $320 - $20 = $300).
    assert flagged == [(598, "3.65 divided by .05 is 73, not 69."), (1024, "$32 - $20 is $12, not $300.")]
