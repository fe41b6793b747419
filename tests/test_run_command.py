"""``interlock run``: the display folded from run events, and the command on the tiny model (not a terminal)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from interlock import (
    EveryNTokens,
    Fail,
    Monitor,
    Span,
    Step,
    TraceView,
    Verifier,
    read_trace,
    register_verifier,
    verifier,
)
from interlock.generators import Scripted
from interlock.monitor.cli import main
from interlock.monitor.cli.run import _generator, add_arguments
from interlock.monitor.cli.run_display import STYLES, TraceDisplay, summary_line
from tiny_model import tiny_model_dir  # noqa: F401  (fixture)

WRONG = "We add. 2 + 2 = 5.\nDone."
FIXED = "2 + 2 = 4.\nDone."


@verifier(name="sums")
def sums(step: Step) -> Fail | None:
    if "2 + 2 = 5" in step.text:
        start = step.text.index("2 + 2 = 5")
        return Fail("2 + 2 is 4, not 5", span=step.to_trace(start, start + 9), feedback="2 + 2 is 4")
    return None


async def test_display_marks_steps_rollbacks_and_feedback() -> None:
    monitor = Monitor(Scripted({"": WRONG, "Let me redo this step.\n": FIXED}), verifiers=[sums])
    display = TraceDisplay()
    async with monitor.stream("q") as run:
        async for event in run:
            display.feed(event)
    result = run.result
    feedback = "Wait, 2 + 2 is 4. Let me redo this step.\n"
    assert result.text == "We add. " + feedback + FIXED
    kinds = [(text, kind) for text, kind in display.pieces() if kind != "ok"]
    assert ("2 + 2 = 5.\nDone.", "removed") in kinds
    assert ("\n  ⟲ sums: 2 + 2 is 4, not 5 (rolled back)\n", "note") in kinds
    assert (feedback, "feedback") in kinds
    rendered = display.render()
    assert rendered.plain == ("We add. 2 + 2 = 5.\nDone.\n  ⟲ sums: 2 + 2 is 4, not 5 (rolled back)\n"
                              + feedback + FIXED)
    assert display.pieces() == [("We add. ", "ok"), ("2 + 2 = 5.\nDone.", "removed"),
                                ("\n  ⟲ sums: 2 + 2 is 4, not 5 (rolled back)\n", "note"), (feedback, "feedback"),
                                (FIXED, "ok")]
    assert [(rendered.plain[s.start:s.end], s.style) for s in rendered.spans][:2] == [
        ("We add. ", STYLES["ok"]), ("2 + 2 = 5.\nDone.", STYLES["removed"])]
    line = summary_line(result)
    assert line.startswith("✓ verified: 4 checks passed · 9 tokens kept, 5 discarded · 1 intervention · ")
    assert line.endswith(" s · ended: complete")


def test_display_never_prints_control_characters() -> None:
    from interlock import Chunk, ChunkAppended

    display = TraceDisplay()
    display.feed(ChunkAppended(chunk=Chunk("a\x1b[2Jb\n"), position=0))
    assert display.render().plain == "a\ufffd[2Jb\n"


def test_run_on_a_local_model_prints_text_and_summary(tiny_model_dir: Path,  # noqa: F811
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "What is 2 + 3?", "--model", str(tiny_model_dir), "--max-tokens", "12",
                 "--verifier", "none"])
    out = capsys.readouterr().out.splitlines()
    assert code == 3  # the budget ran out before the model ended its answer: not a violation, not a pass
    assert out[-1].startswith("⏹ budget: stopped by a budget before the end · 12 tokens kept, 0 discarded · "
                              "0 interventions · ")
    assert out[-1].endswith("ended: budget (token_budget: token budget exhausted)")


def test_run_json_with_a_registered_verifier_and_a_trace_file(tiny_model_dir: Path, tmp_path: Path,  # noqa: F811
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    @register_verifier("first-epoch-is-wrong")
    class FirstEpochIsWrong(Verifier):
        name = "first-epoch-is-wrong"
        trigger = EveryNTokens(5)

        def extract(self, view: TraceView) -> int:
            return view.epoch

        def check(self, epoch: int) -> Fail | None:
            return Fail("wrong", feedback="try again", span=Span(0, 1)) if epoch == 0 else None

    record = tmp_path / "run.trace.jsonl"
    code = main(["run", "x = 3", "--model", str(tiny_model_dir), "--max-tokens", "40", "--verifier",
                 "first-epoch-is-wrong", "--json", "--record", str(record), "--temperature", "1", "--seed", "3"])
    payload = json.loads(capsys.readouterr().out)
    assert payload["prompt"] == "x = 3"
    interventions = payload["interventions"]
    assert [i["source"] for i in interventions] == ["first-epoch-is-wrong"]
    assert interventions[0]["feedback"] == "Wait, try again. Let me redo this step.\n"
    assert interventions[0]["tokens_discarded"] >= 5
    assert payload["text"].startswith("Wait, try again. Let me redo this step.\n")
    assert payload["tokens"]["total"] <= 40
    assert code == {"verified": 0, "unchecked": 0, "violation": 1, "budget": 3}[payload["outcome"]]
    recorded = read_trace(record)
    assert recorded.prompt == "x = 3"
    assert recorded.final_text() == payload["text"]


def test_run_picks_the_verifiers_that_apply_to_the_prompt(tiny_model_dir: Path,  # noqa: F811
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    ran = {}
    for prompt in ("Make 24 using 4, 9, 10, 13.", "What is 12*7?"):
        main(["run", prompt, "--model", str(tiny_model_dir), "--max-tokens", "8", "--json"])
        ran[prompt] = {v["verifier"] for v in json.loads(capsys.readouterr().out)["verdicts"]}
    # the tiny model writes no final answer: game24's end-of-run check says so, whatever the steps were
    assert "game24" in ran["Make 24 using 4, 9, 10, 13."]
    assert "game24" not in ran["What is 12*7?"]


def test_run_rejects_bad_options(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["run", "q", "--model", str(tiny_model_dir), "--verifier", "no-such-verifier"]) == 2
    assert "unknown verifier 'no-such-verifier'" in capsys.readouterr().err
    assert main(["run", "q", "--openai-base-url", "http://127.0.0.1:9/v1"]) == 2  # the old name still works
    assert "--base-url needs --model NAME" in capsys.readouterr().err
    assert main(["run", "q", "--model", str(tiny_model_dir / "missing")]) == 2
    assert "no model at" in capsys.readouterr().err
    assert main(["run", "q", "--max-tokens", "0"]) == 2


def test_openai_base_url_builds_the_http_backend() -> None:
    import argparse

    from interlock.generators import OpenAICompatible

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["q", "--openai-base-url", "http://127.0.0.1:8000/v1", "--model", "smol",
                              "--endpoint", "completions", "--temperature", "0.5", "--seed", "4"])
    gen = _generator(args, 64)
    assert isinstance(gen, OpenAICompatible)
    assert gen.api_root == "http://127.0.0.1:8000/v1"


def test_live_display_on_a_terminal(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import re
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    code = main(["run", "What is 2 + 3?", "--model", str(tiny_model_dir), "--max-tokens", "12",
                 "--verifier", "none"])
    captured = capsys.readouterr()
    assert code == 3
    assert "interlock: verifiers: none (nothing will be checked)" in captured.err
    assert "\x1b[" in captured.out  # styled for a terminal
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", captured.out)
    assert "⏹ budget: stopped by a budget before the end · 12 tokens kept, 0 discarded · 0 interventions · " in plain
