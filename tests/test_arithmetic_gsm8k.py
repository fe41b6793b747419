"""The arithmetic verifier over the 1,319 GSM8K reference solutions: it flags exactly the two real slips in
them, also when the solutions are rewritten in other notations (figures on model solutions: the benchmark)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from interlock.monitor.steps import step_ends
from interlock.verifiers.arithmetic import check_text


def steps(text: str) -> list[str]:
    out, start = [], 0
    for end in step_ends(text, 0):
        out.append(text[start:end])
        start = end
    return [*out, text[start:]] if start < len(text) else out


def test_reference_solutions_flag_only_their_three_real_errors(shared_data: Path) -> None:
    flagged = []
    with (shared_data / "gsm8k" / "test.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    assert len(rows) == 1319
    for i, row in enumerate(rows):
        for step in steps(row["answer"]):
            flagged += [(i, f.judgement.feedback) for f in check_text(step) if f.status == "wrong"]
    # 598: "2 plus .6 plus .7 plus .15 equals $3.45", then "3.65 divided by .05 equals 69" (3.45 was meant);
    # 1024: "$32 - $20 = $300" (a typo for $320 - $20 = $300);
    # 501: "... * 364 yards = 364 / 4 = 273 yards" (3 * 364 / 4 was meant: one unit all along is no conversion).
    assert flagged == [(501, "364 / 4 is 91, not 273."), (598, "3.65 divided by .05 is 73, not 69."),
                       (1024, "$32 - $20 is $12, not $300.")]


ANNOTATION = re.compile(r"<<[^<>]*>>")
NOTATIONS: dict[str, Callable[[str], str]] = {
    "written only": lambda t: ANNOTATION.sub("", t),
    "unicode": lambda t: ANNOTATION.sub("", t).replace("*", " × ").replace("/", " ÷ ").replace("-", " − "),
    "latex": lambda t: ANNOTATION.sub("", t).replace("*", r" \times ").replace("$", r"\$"),
    "markdown": lambda t: "\n".join(f"- **Step {i + 1}:** {line}"
                                    for i, line in enumerate(ANNOTATION.sub("", t).split("\n"))),
}


@pytest.mark.parametrize("notation", sorted(NOTATIONS))
def test_reference_solutions_rewritten_in_other_notations_flag_the_same_errors(shared_data: Path,
                                                                               notation: str) -> None:
    rewrite = NOTATIONS[notation]
    with (shared_data / "gsm8k" / "test.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    flagged = set()
    checked = 0
    for i, row in enumerate(rows):
        for step in steps(rewrite(row["answer"])):
            found = check_text(step)
            checked += sum(f.status == "ok" for f in found)
            flagged |= {i for f in found if f.status == "wrong"}
    assert flagged == {501, 598, 1024}
    assert checked > 2500  # the written claims are read in every notation, not skipped
