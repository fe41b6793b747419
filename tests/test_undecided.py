"""An undecided check is never shown as verified (issue 24, item 7).

A check that could not decide (``Unknown``: past a reading bound, timed out, raised) about text still in the
final trace makes the run's outcome ``undecided`` (exit code 4), not ``verified``; ``passed`` is False. A replay
says the same of a trace: ``"passed": false, "outcome": "undecided"``, and counts it in the totals.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from interlock import Fail, Monitor, Outcome, Step, Unknown, verifier
from interlock.generators import Scripted
from interlock.monitor.cli.main import main
from interlock.verifiers import Arithmetic

from tests.scripted_cli import past_the_bound
from tests.support import check_sums


@verifier(name="sleepy", timeout=0.05)
def sleepy(step: Step) -> None:
    time.sleep(0.5)


async def test_a_wrong_claim_past_the_reading_bound_leaves_the_run_undecided() -> None:
    result = await Monitor(past_the_bound(), [Arithmetic()]).run("q")
    assert result.outcome is Outcome.UNDECIDED
    assert result.outcome.exit_code == 4
    assert not result.passed
    (unknown,) = result.undecided
    assert isinstance(unknown, Unknown) and unknown.reason.startswith("4,834 characters of a step of 36,834")


async def test_every_check_timing_out_is_undecided_not_verified() -> None:
    result = await Monitor(Scripted("So 2 + 2 = 4.\nThen 3 + 3 = 6.\n"), [sleepy]).run("q")
    assert [v.kind for v in result.verdicts] == ["unknown", "unknown"]
    assert result.outcome is Outcome.UNDECIDED and not result.passed
    assert result.to_dict()["outcome"] == "undecided" and result.to_dict()["passed"] is False
    assert [v.reason for v in result.undecided] == ["timed out after 0.05 s"] * 2


async def test_an_unknown_about_text_a_rollback_removed_does_not_count() -> None:
    @verifier(name="sums-and-doubts")
    def sums_and_doubts(step: Step) -> list[Fail | Unknown] | None:
        out: list[Fail | Unknown] = []
        fail = check_sums(step)
        if fail is not None:
            out.append(fail)
        if "maybe" in step.text:
            out.append(Unknown("cannot tell", span=step.span))
        return out or None

    gen = Scripted({"": "So 2 + 2 = 5 maybe.\n", "Let me redo this step.\n": "So 2 + 2 = 4.\n"})
    result = await Monitor(gen, [sums_and_doubts]).run("q")
    assert result.text.endswith("So 2 + 2 = 4.\n")
    assert result.undecided == () and result.outcome is Outcome.VERIFIED and result.passed


async def test_a_fail_closed_unknown_is_still_a_violation() -> None:
    result = await Monitor(Scripted("So 2 + 2 = 4.\n"), [verifier(sleepy.fn, name="closed", timeout=0.05,
                                                                  fail_closed=True)]).run("q")
    assert result.outcome is Outcome.VIOLATION


def test_interlock_run_says_undecided_and_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "q", "--generator", "scripted_cli:past_the_bound", "-v", "arithmetic"]) == 4
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("? undecided: 1 check could not decide · ")
    assert "verified" not in last
    assert main(["run", "q", "--generator", "scripted_cli:past_the_bound", "-v", "arithmetic", "--json"]) == 4
    payload = json.loads(capsys.readouterr().out)
    assert (payload["outcome"], payload["passed"]) == ("undecided", False)
    assert [v["kind"] for v in payload["undecided"]] == ["unknown"]


def test_replay_never_says_passed_when_every_check_timed_out(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "So 2 + 2 = 4.\nThen 3 + 3 = 6.\n"}) + "\n"
                    + json.dumps({"id": "b", "text": "Roses are red.\n"}) + "\n")
    code = main(["replay", str(path), "-v", "tests.test_undecided:sleepy", "--json", "--processes", "0"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    a, b, totals = records
    assert (a["id"], a["passed"], a["outcome"]) == ("a", False, "undecided")
    assert [v["kind"] for v in a["verdicts"]] == ["unknown", "unknown"]
    assert (b["id"], b["outcome"]) == ("b", "undecided")  # its one step timed out too
    assert (totals["traces"], totals["passed"], totals["failed"], totals["undecided"]) == (2, 0, 0, 2)


def test_replay_counts_each_kind_of_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in [
        ("ok", "So 2 + 2 = 4.\n"), ("bad", "So 2 + 2 = 5.\n"), ("far", past_the_bound().continuation(
            __import__("interlock").GenerationRequest("q"))[0]), ("none", "Roses are red.\n")]))
    code = main(["replay", str(path), "-v", "arithmetic", "--json", "--processes", "0"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert [(r["id"], r["outcome"], r["passed"]) for r in records[:-1]] == [
        ("ok", "verified", True), ("bad", "violation", False), ("far", "undecided", False),
        ("none", "unchecked", True)]
    totals = records[-1]
    assert (totals["traces"], totals["passed"], totals["failed"], totals["undecided"]) == (4, 2, 1, 1)
    main(["replay", str(path), "-v", "arithmetic", "--processes", "0"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["bad: arithmetic [3, 12) arithmetic: 2 + 2 is 4, not 5.",
                         "far: undecided: arithmetic [32000, 36834) 4,834 characters of a step of 36,834 not "
                         "checked (the limits are 32,000 characters and 250 ms per step)"]
    assert lines[2].startswith("4 traces: 2 passed, 1 with violations, 1 undecided, 0 could not be read, 0 timed out")

