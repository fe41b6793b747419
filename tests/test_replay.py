"""Replay: the Replay generator under a Monitor, batch replay, recorded live runs replayed, the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import interlock.generators.replay as replay_module
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import (
    Action,
    AtEnd,
    Capabilities,
    Chunk,
    EveryNTokens,
    Fail,
    GenerationRequest,
    Monitor,
    OnPattern,
    Pass,
    Span,
    Step,
    StepBoundary,
    StopReason,
    TraceView,
    TraceWriter,
    Verifier,
    read_trace,
    verifier,
)
from interlock.generators import Replay, Scripted
from interlock.generators.replay import ReplayMismatchError
from interlock.monitor.cli import main as cli_main
from interlock.monitor.replay.engine import ReadFailure, ReplayTotals, TraceReport, replay_traces
from interlock.monitor.replay.importers import ImportedTrace, read_traces
from support import SumVerifier, check_sums

WRONG = "She has 3 + 4 = 8 eggs.\nShe sells 1 + 1 = 2 of them.\n"


def _record(path: Path, pieces: list[Chunk], times: list[float], prompt: str = "eggs?") -> Path:
    w = TraceWriter(path, prompt=prompt, meta={"model": "m"})
    for chunk, t in zip(pieces, times, strict=True):
        w.chunk(chunk, t=t)
    w.end({"stop_reason": "complete"})
    return path


def _words(text: str) -> list[Chunk]:
    from interlock.monitor.scan import pseudo_tokens

    return [Chunk(p) for p in pseudo_tokens(text)]


def _key(v: Any) -> tuple[str, str, Span | None, str]:
    return (v.kind, v.verifier, v.span, getattr(v, "message", ""))


# -- the Replay generator -----------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(round(delay, 9))
        self.now += delay
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize(("speed", "expected"), [(1.0, [1.0, 0.5, 0.25, 1.25]), (2.0, [0.5, 0.25, 0.125, 0.625]),
                                                 (None, []), (float("inf"), [])])
async def test_replay_keeps_the_recorded_pace_or_a_multiple_of_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  speed: float | None, expected: list[float]) -> None:
    path = _record(tmp_path / "t.jsonl", [Chunk("a"), Chunk("b"), Chunk("c"), Chunk("d")], [1.0, 1.5, 1.75, 3.0])
    clock = FakeClock()
    monkeypatch.setattr(replay_module.time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(replay_module.anyio, "sleep", clock.sleep)
    chunks = [c async for c in Replay(path, speed=speed).stream(GenerationRequest("eggs?"))]
    assert "".join(c.text for c in chunks) == "abcd"
    assert clock.sleeps == expected


def test_replay_rejects_a_bad_speed(tmp_path: Path) -> None:
    path = _record(tmp_path / "t.jsonl", [Chunk("a")], [0.0])
    with pytest.raises(ValueError, match="speed must be a positive number"):
        Replay(path, speed=0)


async def test_replay_carries_token_data_and_says_it_cannot_resume(tmp_path: Path) -> None:
    pieces = [Chunk("1 + 1", token_ids=(16, 10, 16), logprobs=(-0.5, -0.25, -1.0), entropy=(0.1, 0.2, 0.3)),
              Chunk(" = 2.\n", token_ids=(11, 17, 13), logprobs=(-0.1, -0.2, -0.3), entropy=(0.0, 0.5, 1.0))]
    path = _record(tmp_path / "t.jsonl", pieces, [0.0, 0.1])
    seen: list[tuple[Chunk, ...]] = []

    @verifier(extractor=lambda view: view)
    def spy(view: TraceView) -> None:
        seen.append(view.chunks)

    gen = Replay(path, speed=None)
    assert gen.capabilities == Capabilities(token_ids=True, logprobs=True, entropy=True, resumable=False)
    result = await Monitor(gen, verifiers=[spy]).run(gen.prompt)
    assert result.text == "1 + 1 = 2.\n" and result.tokens.kept == 6
    assert seen == [tuple(pieces)]


async def test_replay_continues_a_prefix_it_holds_and_rejects_one_it_does_not(tmp_path: Path) -> None:
    path = _record(tmp_path / "t.jsonl", _words("one two three"), [0.0, 0.1, 0.2])
    gen = Replay(path, speed=None)
    rest = [c.text async for c in gen.stream(GenerationRequest("eggs?", prefix="one tw"))]
    assert rest == ["o", " three"]
    limited = [c.text async for c in gen.stream(GenerationRequest("eggs?", max_new_tokens=2))]
    assert limited == ["one", " two"]
    with pytest.raises(ReplayMismatchError, match="does not start with the requested prefix"):
        async for _ in gen.stream(GenerationRequest("eggs?", prefix="two")):
            pass


async def test_monitor_over_a_replay_reports_the_rollback_it_would_make_and_goes_on(tmp_path: Path) -> None:
    path = _record(tmp_path / "t.jsonl", _words(WRONG), [0.01 * i for i in range(len(_words(WRONG)))])
    result = await Monitor(Replay(path, speed=None), verifiers=[SumVerifier()]).run("eggs?")
    assert result.text == WRONG and result.stop_reason is StopReason.COMPLETE
    assert [_key(v) for v in result.verdicts] == [
        ("fail", "sums", Span(8, 17), "3 + 4 is 7, not 8"),
        ("pass", "sums", Span(24, 53), "")]
    assert WRONG[8:17] == "3 + 4 = 8"
    (intervention,) = result.interventions
    assert (intervention.action, intervention.applied, intervention.position, intervention.span) == (
        Action.ROLLBACK, False, 0, Span(8, 17))
    assert intervention.reason == "the generator cannot resume from a prefix"
    assert not result.passed


async def test_an_imported_trace_replays_through_the_monitor_with_its_prompt() -> None:
    item = ImportedTrace(id="x", text=WRONG, prompt="eggs?")
    gen = Replay(item, speed=None)
    assert gen.prompt == "eggs?" and gen.capabilities == Capabilities(resumable=False)
    result = await Monitor(gen, verifiers=[SumVerifier()]).run(gen.prompt)
    assert result.text == WRONG and result.tokens.kept == len(item.pieces()) == item.tokens
    assert [_key(v) for v in result.verdicts] == [("fail", "sums", Span(8, 17), "3 + 4 is 7, not 8"),
                                                  ("pass", "sums", Span(24, 53), "")]


async def test_monitor_over_a_replay_can_stop_at_the_first_violation(tmp_path: Path) -> None:
    path = _record(tmp_path / "t.jsonl", _words(WRONG), [0.0] * len(_words(WRONG)))
    result = await Monitor(Replay(path, speed=None), verifiers=[SumVerifier()],
                           on_unresumable="stop").run("eggs?")
    assert result.stop_reason is StopReason.UNRESUMABLE
    assert [i.applied for i in result.interventions] == [False]
    assert WRONG.startswith(result.text) and len(result.text) >= 24


# -- a recorded live run, replayed ------------------------------------------------------------------------
warn_sums = verifier(check_sums, name="warn-sums", action="warn")


async def test_a_recorded_live_run_replays_to_the_same_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "live.trace.jsonl"
    text = "Start.\n" + WRONG + "So 2 + 2 = 4."
    live = await Monitor(Scripted(text), verifiers=[warn_sums]).run("eggs?", record=path)
    assert [v.kind for v in live.verdicts] == ["pass", "fail", "pass", "pass"]
    replayed = await Monitor(Replay(path, speed=None), verifiers=[warn_sums]).run("eggs?")
    assert replayed.text == live.text
    assert [_key(v) for v in replayed.verdicts] == [_key(v) for v in live.verdicts]
    (report,) = await replay_traces(read_traces(path), [warn_sums])
    assert isinstance(report, TraceReport)
    assert [_key(v) for v in report.verdicts] == [_key(v) for v in live.verdicts]
    assert report.first_violation is not None and report.first_violation.span == Span(15, 24)


async def test_a_recorded_run_with_a_rollback_replays_its_final_text_without_checking_the_feedback(
        tmp_path: Path) -> None:
    path = tmp_path / "rollback.trace.jsonl"
    gen = Scripted({"": "Start.\nShe has 3 + 4 = 8 eggs.\nMore text.",
                    "Let me redo this step.\n": "She has 3 + 4 = 7 eggs.\nDone."})
    live = await Monitor(gen, verifiers=[SumVerifier()]).run("eggs?", record=path)
    assert [i.applied for i in live.interventions] == [True]
    final_epoch = [v for v in live.verdicts if v.epoch == live.epochs - 1]
    assert read_trace(path).final_text() == live.text
    (report,) = await replay_traces(read_traces(path), [SumVerifier()])
    assert isinstance(report, TraceReport)
    assert report.text == live.text and report.passed
    assert [_key(v) for v in report.verdicts] == [("pass", "sums", Span(0, 7), "")] + [
        _key(v) for v in final_epoch]
    feedback = live.interventions[0].feedback
    start = live.text.index(feedback)
    assert report.injected == (Span(start, start + len(feedback)),)
    assert all(v.span is not None and not Span(start, start + len(feedback)).contains(v.span)
               for v in report.verdicts)


async def test_a_monitor_over_a_replayed_rollback_leaves_the_feedback_unchecked(tmp_path: Path) -> None:
    path = tmp_path / "rollback.trace.jsonl"
    gen = Scripted({"": "Start.\nShe has 3 + 4 = 8 eggs.\nMore text.",
                    "Let me redo this step.\n": "She has 3 + 4 = 7 eggs.\nDone."})
    live = await Monitor(gen, verifiers=[SumVerifier()]).run("eggs?", record=path)
    seen: list[str] = []

    @verifier(name="spy")
    def spy(step: Step) -> None:
        seen.append(step.text)

    replayed = await Monitor(Replay(path, speed=None), verifiers=[SumVerifier(), spy]).run("eggs?")
    assert replayed.text == live.text
    assert seen == ["Start.\n", "She has 3 + 4 = 7 eggs.\n", "Done."]
    assert replayed.interventions == () and replayed.passed
    assert replayed.tokens.kept == live.tokens.kept


# -- batch replay ----------------------------------------------------------------------------------------
class PidVerifier(Verifier):
    """Passes every step with the id of the process that checked it."""

    name = "pid"
    runs_in = "process"

    def check(self, state: Any) -> Pass:
        return Pass(note=str(os.getpid()))


def _items(n: int) -> list[ImportedTrace]:
    return [ImportedTrace(id=f"t{i}", text=f"Step {i}: {i} + 1 = {i + 1 + (i % 3 == 0)}.\nDone.", labels={"i": i})
            for i in range(n)]


async def test_batch_replay_keeps_input_order_and_the_concurrency_bound() -> None:
    active = 0
    peak = 0

    @verifier(name="slow-sums")
    async def slow(step: Any) -> Fail | None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await anyio.sleep(0.002)
        active -= 1
        return check_sums(step)

    done: list[str] = []
    ordered: list[str] = []
    results = await replay_traces(_items(30), [slow], concurrency=4,
                                  on_done=lambda r: done.append(getattr(r, "id", "")),
                                  on_result=lambda r: ordered.append(getattr(r, "id", "")))
    ids = [f"t{i}" for i in range(30)]
    assert [r.id for r in results if isinstance(r, TraceReport)] == ids == ordered
    assert sorted(done) == sorted(ids)
    assert 1 < peak <= 4
    flagged = [r.id for r in results if isinstance(r, TraceReport) and not r.passed]
    assert flagged == [f"t{i}" for i in range(30) if i % 3 == 0]
    first = results[3]
    assert isinstance(first, TraceReport) and first.first_violation is not None
    assert first.text[first.first_violation.span.start:first.first_violation.span.end] == "3 + 1 = 5"  # type: ignore[union-attr]


async def test_batch_replay_reports_unreadable_items_in_place_and_goes_on(tmp_path: Path) -> None:
    from interlock import TraceFileError

    items: list[ImportedTrace | TraceFileError] = [*_items(2), TraceFileError("broken", path="x.jsonl", line=3),
                                                   *_items(1)]
    results = await replay_traces(items, [SumVerifier()])
    assert [type(r).__name__ for r in results] == ["TraceReport", "TraceReport", "ReadFailure", "TraceReport"]
    failure = results[2]
    assert isinstance(failure, ReadFailure) and failure.to_dict() == {
        "type": "error", "reason": "read", "id": None, "path": "x.jsonl", "line": 3, "message": "x.jsonl:3: broken"}
    totals = ReplayTotals()
    for r in results:
        totals.add(r)
    summary = totals.to_dict()
    assert (summary["traces"], summary["read_errors"], summary["failed"]) == (3, 1, 2)


async def test_process_heavy_verifiers_run_in_a_pool_with_the_same_verdicts() -> None:
    items = _items(40)
    pooled = await replay_traces(items, [PidVerifier(), SumVerifier(runs_in="process")], processes=2,
                                 concurrency=8)
    here = await replay_traces(items, [SumVerifier()], processes=0)
    pids = {v.note for r in pooled if isinstance(r, TraceReport) for v in r.verdicts if v.verifier == "pid"}
    assert pids and str(os.getpid()) not in pids  # type: ignore[operator]
    assert [[_key(v) for v in r.verdicts if v.verifier == "sums"] for r in pooled] == [
        [_key(v) for v in r.verdicts] for r in here]


# -- the command line -------------------------------------------------------------------------------------
def _files(tmp_path: Path) -> tuple[Path, Path]:
    steps = tmp_path / "steps.jsonl"
    steps.write_text(json.dumps({"id": "a", "steps": ["2 + 2 = 5.", "Then <b>1 + 1 = 2</b>."], "is_correct": False})
                     + "\n{broken\n"
                     + json.dumps({"id": "b", "steps": ["1 + 2 = 3."], "is_correct": True}) + "\n")
    text = tmp_path / "answer.txt"
    text.write_text("We know 10 + 5 = 15.\nAnd 7 + 1 = 9.")
    return steps, text


def test_cli_json_has_a_record_per_trace_then_totals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps, text = _files(tmp_path)
    code = cli_main(["replay", str(steps), str(text), "--verifier", "support:SumVerifier", "--json"])
    assert code == 1  # one record could not be read
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["type"] for r in records] == ["trace", "error", "trace", "trace", "totals"]
    a, error, b, t, totals = records
    assert a["id"] == "a" and a["labels"] == {"is_correct": False} and a["passed"] is False
    assert a["verdicts"] == [
        {"verifier": "sums", "kind": "fail", "action": "rollback", "message": "2 + 2 is 4, not 5", "span": [0, 9],
         "text": "2 + 2 = 5", "feedback": "2 + 2 is 4, not 5", "claim": "2 + 2 = 5"},
        {"verifier": "sums", "kind": "pass", "action": None, "message": "", "span": [11, 33],
         "text": "Then <b>1 + 1 = 2</b>."}]
    assert a["first_violation"] == a["verdicts"][0]
    assert error == {"type": "error", "reason": "read", "id": None, "path": str(steps), "line": 2,
                     "message": f"{steps}:2: not valid JSON (Expecting property name enclosed in double quotes, "
                                "column 2)"}
    assert b["passed"] is True and b["first_violation"] is None
    assert t["id"] == "answer.txt" and t["first_violation"]["span"] == [25, 34]
    assert totals["traces"] == 3 and totals["failed"] == 2 and totals["read_errors"] == 1
    assert totals["by_label"] == {"is_correct": {"false": {"traces": 1, "flagged": 1},
                                                 "true": {"traces": 1, "flagged": 0}}}


def test_cli_human_output_and_html_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _steps, text = _files(tmp_path)
    report = tmp_path / "report.html"
    code = cli_main(["replay", str(text), "-v", "support:SumVerifier", "--html", str(report)])
    out = capsys.readouterr()
    assert code == 1  # a trace with a violation
    assert out.out.splitlines()[0] == "answer.txt: sums [25, 34) 7 + 1 is 8, not 9"
    assert "1 traces: 0 passed, 1 with violations, 0 undecided, 0 could not be read, 0 timed out or crashed" in out.out
    assert out.err == ""  # no progress bar when not on a terminal
    page = report.read_text()
    assert '"o":"fail"' in page and '["fail",0,25,34,' in page  # the trace's record; the page marks it


def test_cli_rejects_a_run_without_verifiers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _steps, text = _files(tmp_path)
    assert cli_main(["replay", str(text)]) == 2
    assert "give at least one --verifier" in capsys.readouterr().err


async def test_a_verifier_that_cannot_reach_the_pool_is_a_clear_error() -> None:
    from interlock import ConfigError

    local = verifier(lambda step: None, name="local", runs_in="process")
    with pytest.raises(ConfigError, match=r"process pool failed .*Can't pickle local object.* must pickle"):
        await replay_traces(_items(20), [local], processes=2, concurrency=4)


def test_cli_custom_field_names_and_separator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "custom.jsonl"
    path.write_text(json.dumps({"uid": "q7", "reasoning": [{"content": "1 + 1 = 3"}, {"content": "ok."}],
                                "question": "1+1?"}) + "\n")
    code = cli_main(["replay", str(path), "-v", "support:SumVerifier", "--json", "--format", "jsonl",
                     "--id-field", "uid", "--steps-field", "reasoning", "--text-field", "content",
                     "--prompt-field", "question", "--step-separator", "\\n\\n"])
    assert code == 1  # its trace has a violation
    record, totals = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert record["id"] == "q7" and record["labels"] == {} and record["chars"] == len("1 + 1 = 3\n\nok.")
    assert [(v["kind"], v["span"], v["text"]) for v in record["verdicts"]] == [
        ("fail", [0, 9], "1 + 1 = 3"), ("pass", [11, 14], "ok.")]
    assert totals["traces"] == 1 and totals["failed"] == 1


def _sevens(step: Any) -> list[Fail] | None:
    found = [Fail("a seven", span=step.to_trace(i, i + 1)) for i, ch in enumerate(step.text) if ch == "7"]
    return found or None


TRIGGERS = {"steps": StepBoundary(), "end": AtEnd(), "wait": OnPattern(r"Wait|7 7"), "every3": EveryNTokens(3),
            "steps-or-end": StepBoundary() | AtEnd()}


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.sampled_from("7a .!?\n\tWait"), max_size=60), trigger=st.sampled_from(sorted(TRIGGERS)))
async def test_batch_scan_gives_exactly_the_verdicts_of_a_streamed_scan(text: str, trigger: str) -> None:
    """However the batch engine chunks the text, each verifier sees what ``Verifier.ascan`` shows it."""
    one = verifier(_sevens, name="sevens", trigger=TRIGGERS[trigger])
    other = verifier(_sevens, name="sevens-at-steps")
    streamed = await one.ascan(text)
    (report,) = await replay_traces([ImportedTrace(id="t", text=text)], [one, other])
    assert isinstance(report, TraceReport)
    assert [_key(v) for v in report.verdicts if v.verifier == "sevens"] == [_key(v) for v in streamed]
    assert [_key(v) for v in report.verdicts if v.verifier == "sevens-at-steps"] == [
        _key(v) for v in await other.ascan(text)]


def test_cli_output_file_gets_one_result_per_record_and_stdout_the_totals(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps, text = _files(tmp_path)
    out = tmp_path / "results.jsonl"
    code = cli_main(["replay", str(steps), str(text), "-v", "support:SumVerifier", "-o", str(out)])
    assert code == 1
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["type"], r["id"]) for r in records] == [("trace", "a"), ("error", None), ("trace", "b"),
                                                       ("trace", "answer.txt")]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("3 traces: 1 passed, 2 with violations, 0 undecided, 1 could not be read, 0 timed out")
    assert printed[1] == f"results: {out} (4 records)"


@pytest.mark.parametrize(("args", "message"), [
    (["--address", "auto"], "--address joins a Ray cluster: use it with --engine ray"),
    (["--timeout", "0"], "--timeout must be a positive number of seconds, got 0.0"),
    (["--engine", "ray", "--html", "r.html"], "--html holds every trace in one page: use it with --engine local"),
])
def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                 message: str) -> None:
    _steps, text = _files(tmp_path)
    assert cli_main(["replay", str(text), "-v", "support:SumVerifier", *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_exit_0_only_when_every_trace_passed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.txt"
    path.write_text("So 1 + 1 = 2.")
    assert cli_main(["replay", str(path), "-v", "support:SumVerifier"]) == 0
    assert "1 traces: 1 passed, 0 with violations" in capsys.readouterr().out
