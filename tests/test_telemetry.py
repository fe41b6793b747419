"""OpenTelemetry tracing of monitored runs, guarded tools and the agent loop, read from the SDK's in-memory exporter.

Every span's name, kind, parent and attributes are asserted exactly (timings only for being timings). The proxy's
spans are in test_proxy_tracing.py, the command line's ``--otel`` in test_otel_command.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from interlock import (
    Action,
    Agent,
    Capabilities,
    Chunk,
    ConfigError,
    Fail,
    ForceAnswer,
    GenerationRequest,
    Monitor,
    Step,
    StopReason,
    TokenBudget,
    ToolRefusal,
    guard_tool,
    verifier,
)
from interlock.generators import Scripted
from interlock.monitor import telemetry
from interlock.monitor.governors import LoopGuard
from interlock.monitor.spans import finish_reason_of, usage_attributes
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from support import SumVerifier
from tracing_support import Recorder, attrs, events

ROOT = Path(__file__).resolve().parent.parent
WRONG = "Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 8.\nThe answer is 8."
FIXED = "He buys 4 more, so 3 + 4 = 7.\nThe answer is 7."
FEEDBACK = "Wait, 3 + 4 is 7, not 8. Let me redo this step.\n"


@pytest.fixture
def rec() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    telemetry.disable()
    recorder.provider.shutdown()


def wrong_then_fixed() -> Scripted:
    return Scripted({"": WRONG, "Let me redo this step.\n": FIXED})


def check_attrs(verdict: str, start: int, end: int, epoch: int, **extra: Any) -> dict[str, Any]:
    return {"interlock.check.verifier": "sums", "interlock.check.step.start": start, "interlock.check.step.end": end,
            "interlock.check.verdict": verdict, "interlock.check.verdicts": 1, "interlock.check.epoch": epoch,
            "interlock.check.stale": False,
            "interlock.check.provisional": False, **extra}


class HeldSums(SumVerifier):
    """Holds its failure back until the last step's check has begun, so that the rollback comes after generation
    ended (all 32 tokens written, whatever the threads' timing; a wait that runs out fails the counts below)."""

    def __init__(self) -> None:
        super().__init__()
        self.last_step_checked = threading.Event()

    def check(self, state: Step) -> Fail | None:
        if state.text.startswith("The answer is 8"):
            self.last_step_checked.set()
        elif "= 8" in state.text:
            self.last_step_checked.wait(10.0)
        return super().check(state)


async def test_a_run_is_one_chat_span_with_a_child_per_check_and_per_intervention(rec: Recorder) -> None:
    monitor = Monitor(wrong_then_fixed(), [HeldSums()], tracer_provider=rec.provider, meta={"model": "tiny-1"})
    result = await monitor.run("q")
    assert result.text == "Tom has 3 apples.\n" + FEEDBACK + FIXED
    (run,) = rec.roots()
    assert (run.name, run.kind, run.status.status_code) == ("chat tiny-1", SpanKind.INTERNAL, StatusCode.UNSET)
    kids = rec.children(run)
    # "The answer is 8." was cut by the rollback: its check either came back first (a child span about epoch 0)
    # or was cancelled (an event on the run span, naming its step), as the threads' timing fell
    cut = [s for s in kids if attrs(s).get("interlock.check.step.start") == 48]
    cancelled = [(a["interlock.check.step.start"], a["interlock.check.step.end"]) for name, a in events(run)
                 if name == "interlock.check.cancelled"]
    assert (len(cut), cancelled) in ((1, []), (0, [(48, 64)]))  # (its verdict, in time or stale, is counted)
    late = [c for c in cut if attrs(c)["interlock.check.stale"]]
    assert attrs(run) == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "interlock", "gen_ai.request.model": "tiny-1",
        "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.output_tokens": 32,
        "interlock.run_id": result.run_id, "interlock.outcome": "verified", "interlock.stop_reason": "complete",
        "interlock.passed": True, "interlock.interventions": 1, "interlock.rollbacks": 1,
        "interlock.open_violations": 0, "interlock.verdicts.pass": 3 + len(cut) - len(late),
        "interlock.verdicts.fail": 1, "interlock.verdicts.unknown": 0, "interlock.stale_verdicts": len(late),
        "interlock.epochs": 2,
        "interlock.restarts": 0, "interlock.abstained": False,
        "interlock.tokens.kept": 19, "interlock.tokens.discarded": 13, "interlock.tokens.fork": 0}
    assert run.attributes is not None
    assert run.attributes["interlock.check_seconds"] == pytest.approx(result.check_seconds)
    assert run.attributes["gen_ai.response.time_to_first_chunk"] == pytest.approx(result.first_chunk_seconds)
    assert result.tokens.total == 32 and result.tokens.kept == 19
    checks = sorted((attrs(s)["interlock.check.step.start"], s.name, attrs(s)) for s in kids
                    if s.name == "check sums" and s not in cut)
    assert checks == [
        (0, "check sums", check_attrs("pass", 0, 18, 0)),
        (18, "check sums", check_attrs("fail", 18, 48, 0, **{"interlock.check.message": "3 + 4 is 7, not 8",
                                                              "interlock.check.action": "rollback"})),
        (66, "check sums", check_attrs("pass", 66, 96, 1)),
        (96, "check sums", check_attrs("pass", 96, 112, 1)),
    ]
    (rollback,) = [s for s in kids if s.name == "rollback sums"]
    assert attrs(rollback) == {
        "interlock.intervention.action": "rollback", "interlock.intervention.source": "sums",
        "interlock.intervention.applied": True, "interlock.intervention.position": 18,
        "interlock.intervention.epoch": 0, "interlock.intervention.message": "3 + 4 is 7, not 8",
        "interlock.intervention.repeat": 0, "interlock.intervention.tokens_discarded": 13,
        "interlock.intervention.feedback": FEEDBACK}
    assert len(kids) == 5 + len(cut) and all(s.kind is SpanKind.INTERNAL for s in kids)
    failed = next(s for s in kids if attrs(s).get("interlock.check.verdict") == "fail")
    assert failed.end_time is not None and rollback.start_time is not None
    assert failed.end_time <= rollback.start_time  # the rollback came of the failed check
    for check in (s for s in kids if s.name == "check sums"):  # each check span lasts as long as the check ran
        assert check.end_time is not None and check.start_time is not None and check.attributes is not None
        assert (check.end_time - check.start_time) / 1e9 == pytest.approx(check.attributes["interlock.check.seconds"],
                                                                        abs=2e-6)
    assert run.start_time is not None and run.end_time is not None
    assert all(run.start_time <= s.start_time <= s.end_time <= run.end_time for s in kids)  # type: ignore[operator]


async def test_tracing_is_off_unless_enabled_and_follows_enable_and_disable(rec: Recorder) -> None:
    monitor = Monitor(Scripted("So 1 + 1 = 2.\n"), [SumVerifier()])
    await monitor.run("q")
    assert rec.spans == ()
    telemetry.enable(rec.provider)
    assert telemetry.is_enabled()
    async with monitor.stream("q") as run:
        async for _ in run:
            pass
    assert [s.name for s in rec.spans] == ["check sums", "chat"]
    telemetry.disable()
    await monitor.run("q")
    assert len(rec.spans) == 2 and not telemetry.is_enabled()


async def test_enable_without_a_provider_uses_the_global_one(rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: rec.provider)
    telemetry.enable()
    await Monitor(Scripted("Hello.\n")).run("q")
    assert [(s.name, s.instrumentation_scope.name) for s in rec.spans] == [("chat", "interlock")]


async def test_the_run_span_is_current_inside_stream_so_a_guarded_tool_is_its_child(rec: Recorder) -> None:
    async def send(amount: int) -> str:
        return f"sent {amount}"

    monitor = Monitor(Scripted("I will pay 2 + 2 = 4.\n"), [SumVerifier()], tracer_provider=rec.provider)
    async with monitor.stream("q") as run:
        tool = guard_tool(send, run=run, description="Send money")
        with rec.provider.get_tracer("user").start_as_current_span("user work"):
            pass
        async for _ in run:
            pass
        assert await tool.call({"amount": 4}, call_id="call_7") == "sent 4"
    assert trace.get_current_span() is trace.INVALID_SPAN  # left the block: nothing stays current
    run_span = rec.named("chat")
    assert sorted(s.name for s in rec.children(run_span)) == ["check sums", "execute_tool send", "user work"]
    tool_span = rec.named("execute_tool send")
    assert tool_span.kind is SpanKind.INTERNAL and tool_span.status.status_code is StatusCode.UNSET
    assert attrs(tool_span) == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "send",
                                "gen_ai.tool.type": "function", "gen_ai.tool.call.id": "call_7",
                                "gen_ai.tool.description": "Send money", "interlock.tool.read_only": False,
                                "interlock.tool.allowed": True}


async def test_a_refused_tool_call_says_which_stage_refused_it_and_why(rec: Recorder) -> None:
    telemetry.enable(rec.provider)
    ran: list[int] = []

    def at_most_100(arguments: Mapping[str, Any]) -> Fail | None:
        return Fail(f"{arguments['amount']} is over 100", feedback="Send at most 100.") \
            if arguments["amount"] > 100 else None

    def transfer(amount: int) -> None:
        ran.append(amount)

    monitor = Monitor(Scripted("So 2 + 2 = 5.\n"), [SumVerifier()], on_unresumable="continue")
    tool = guard_tool(transfer, verifiers=[at_most_100])
    async with monitor.stream("q") as run:
        async for _ in run:
            pass
        refusal = await tool.with_run(run).call({"amount": 500})
    assert isinstance(refusal, ToolRefusal) and ran == []
    span = rec.named("execute_tool transfer")
    assert span.status.status_code is StatusCode.UNSET  # a refusal is the guard working, not an error
    assert attrs(span) == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "transfer", "gen_ai.tool.type": "function",
        "interlock.tool.read_only": False, "interlock.tool.allowed": False,
        "interlock.tool.refusal.stages": ["reasoning", "arguments"],
        "interlock.tool.refusal.sources": ["sums", "at-most-100"],
        "interlock.tool.refusal.reasons": ["2 + 2 is 4, not 5", "500 is over 100"],
        "interlock.tool.refusal.feedback": "2 + 2 is 4, not 5 Send at most 100."}
    # the rollback ran before the call, in the run; the refused call is a child of the run span as well
    assert span.parent is not None and span.parent.span_id == rec.named("chat").context.span_id


async def test_a_tool_that_raises_is_an_error_span_and_a_raised_refusal_is_recorded(rec: Recorder) -> None:
    telemetry.enable(rec.provider)

    def broken(x: int) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        await guard_tool(broken, read_only=True)(x=1)
    span = rec.named("execute_tool broken")
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "RuntimeError: disk full"
    assert attrs(span)["error.type"] == "RuntimeError" and "interlock.tool.allowed" not in attrs(span)
    assert [e.name for e in span.events] == ["exception"]

    strict = guard_tool(lambda x: x, name="strict", read_only=True, on_refusal="raise",
                        verifiers=[lambda a: Fail("no")])
    with pytest.raises(Exception, match="strict refused"):
        await strict(x=1)
    assert attrs(rec.named("execute_tool strict"))["interlock.tool.refusal.reasons"] == ["no"]


async def test_tool_calls_are_not_traced_while_tracing_is_off(rec: Recorder) -> None:
    assert await guard_tool(lambda x: x + 1, read_only=True)(x=1) == 2
    assert rec.spans == ()


async def test_an_interrupt_is_a_violation_not_an_error(rec: Recorder) -> None:
    @verifier(name="strict", action="interrupt")
    def strict(step: Step) -> Fail | None:
        return Fail("never say 5", span=step.span) if "5" in step.text else None

    result = await Monitor(Scripted("So 2 + 3 = 5.\nThen more.\n"), [strict], tracer_provider=rec.provider).run("q")
    assert result.stop_reason is StopReason.INTERRUPTED
    run = rec.named("chat")
    assert run.status.status_code is StatusCode.UNSET
    a = attrs(run)
    assert (a["interlock.outcome"], a["interlock.stop_reason"], a["gen_ai.response.finish_reasons"]) == (
        "violation", "interrupted", ["content_filter"])
    assert attrs(rec.named("interrupt strict")) == {
        "interlock.intervention.action": "interrupt", "interlock.intervention.source": "strict",
        "interlock.intervention.applied": True, "interlock.intervention.position": 0,
        "interlock.intervention.epoch": 0, "interlock.intervention.message": "never say 5",
        "interlock.intervention.feedback": "never say 5", "interlock.intervention.repeat": 0,
        "interlock.intervention.tokens_discarded": 0}


class Broken:
    capabilities = Capabilities(resumable=True)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        yield Chunk("So 1 + 1 = 2.\n")
        raise ConnectionError("upstream went away")


async def test_a_failed_generator_is_an_error_span(rec: Recorder) -> None:
    result = await Monitor(Broken(), [SumVerifier()], tracer_provider=rec.provider).run("q")
    assert result.stop_reason is StopReason.ERROR
    run = rec.named("chat")
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "generator failed: ConnectionError: upstream went away"
    assert attrs(run)["error.type"] == "generator_error"
    assert attrs(run)["interlock.outcome"] == "error"


async def test_a_verifier_that_raises_or_overruns_is_an_error_on_its_check_span(rec: Recorder) -> None:
    @verifier(name="raises")
    def raises(step: Step) -> None:
        raise ValueError("cannot read")

    @verifier(name="slow", timeout=0.05)
    async def slow(step: Step) -> None:
        await anyio.sleep(5)

    await Monitor(Scripted("Hello.\n"), [raises, slow], tracer_provider=rec.provider).run("q")
    bad, late = rec.named("check raises"), rec.named("check slow")
    assert (bad.status.status_code, bad.status.description) == (StatusCode.ERROR, "ValueError: cannot read")
    assert (attrs(bad)["error.type"], attrs(bad)["interlock.check.verdict"]) == ("verifier_error", "unknown")
    assert attrs(bad)["interlock.check.message"] == "ValueError: cannot read"
    assert (attrs(late)["error.type"], late.status.description) == ("timeout", "timed out after 0.05 s")


async def test_restarts_are_children_of_one_span_for_the_whole_run(rec: Recorder) -> None:
    loop = "Tom has 3 apples.\nHe buys 4, so 3 + 4 = 7.\nI add them again.\nI add them again.\nI add them again.\n"
    calls: list[str] = []

    def play(prefix: str) -> str:
        if prefix == "":
            calls.append(prefix)
        return (loop if len(calls) == 1 else "So 7 + 2 = 9.\n") if prefix == "" else ""

    guard = LoopGuard(nudge=None, then="restart", force_answer=False)
    result = await Monitor(Scripted(play), [SumVerifier()], [guard], tracer_provider=rec.provider).run("Q?")
    assert len(result.restarts) == 1
    (run,) = rec.roots()
    names = [s.name for s in rec.children(run)]
    assert names.count("restart loop_guard") == 1 and names.count("check sums") >= 3
    a = attrs(run)
    assert (a["interlock.restarts"], a["interlock.run_id"], a["interlock.outcome"]) == (1, result.run_id,
                                                                                      "verified")
    assert a["gen_ai.usage.output_tokens"] == result.tokens.total and a["interlock.tokens.discarded"] == 26
    reason = "loop: ngram 'I add them again.' written 3 times: restarting from the verified state"
    assert attrs(rec.named("restart loop_guard")) == {
        "interlock.intervention.action": "restart", "interlock.intervention.source": "loop_guard",
        "interlock.intervention.applied": True, "interlock.intervention.position": 97,
        "interlock.intervention.epoch": 0, "interlock.intervention.message": reason,
        "interlock.intervention.reason": reason, "interlock.intervention.repeat": 0,
        "interlock.intervention.tokens_discarded": 0}
    assert [e for e in events(run) if e[0] == "interlock.governor"] == [("interlock.governor", {
        "interlock.governor.name": "loop_guard", "interlock.governor.action": "restart",
        "interlock.governor.reason": reason})]
    # the second attempt's checks come after the restart, under the same run span
    restart = rec.named("restart loop_guard")
    last = rec.children(run)[-1]
    assert (last.name, attrs(last)["interlock.check.step.start"], attrs(last)["interlock.check.step.end"]) == (
        "check sums", 0, 14)  # "So 7 + 2 = 9.\n", the last attempt's only step
    assert last.start_time is not None and restart.end_time is not None and last.start_time > restart.end_time


async def test_a_forced_answer_is_a_child_span_and_the_governor_an_event(rec: Recorder) -> None:
    words = " ".join(f"w{i}" for i in range(200))

    def answering(prefix: str) -> str:
        return " 7\nThen more text." if prefix.endswith("Final answer:") else words

    budget = TokenBudget(max_kept=40, force_answer=ForceAnswer(tokens=5))
    result = await Monitor(Scripted(answering), governors=[budget], tracer_provider=rec.provider).run("q")
    assert result.text.endswith("Final answer: 7") and result.stop_reason is StopReason.BUDGET
    run = rec.named("chat")
    forced = rec.named("forced_answer token_budget")
    assert attrs(forced) == {
        "interlock.intervention.action": "forced_answer", "interlock.intervention.source": "token_budget",
        "interlock.intervention.applied": True, "interlock.intervention.position": len(result.text) - 16,
        "interlock.intervention.epoch": 0,
        "interlock.intervention.message":
            "token_budget: token budget (max_kept=40) spent: answering now; the answer was forced",
        "interlock.intervention.tokens_allowed": 5}
    ((name, governor),) = events(run)
    assert name == "interlock.governor"
    assert governor == {"interlock.governor.name": "token_budget", "interlock.governor.action": "stop",
                        "interlock.governor.reason": "token budget (max_kept=40) spent: answering now",
                        "interlock.governor.tokens_saved": 0}
    assert (attrs(run)["interlock.outcome"], attrs(run)["gen_ai.response.finish_reasons"]) == ("budget", ["length"])


async def test_model_text_on_spans_is_cut_and_scrubbed_so_every_span_exports(rec: Recorder) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    @verifier(name="quoting")
    def quoting(step: Step) -> Fail | None:
        return Fail(f"wrong: {step.text.strip()}" + "x" * 5000, span=step.span, action=Action.WARN)

    await Monitor(Scripted(["Bad \ud800 text.\n"]), [quoting], tracer_provider=rec.provider).run("q")
    message = attrs(rec.named("check quoting"))["interlock.check.message"]
    assert message.startswith("wrong: Bad \ufffd text.xxx") and len(message) == 1001 and message.endswith("…")
    assert attrs(rec.named("warn quoting"))["interlock.intervention.message"] == message
    encoded = encode_spans(rec.spans).SerializeToString()  # the OTLP wire format: no lone surrogate can break it
    assert b"wrong: Bad \xef\xbf\xbd text." in encoded


async def test_content_is_recorded_only_when_asked(rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    def at_most_1(arguments: Mapping[str, Any]) -> None:
        return None

    telemetry.enable(rec.provider)
    await Monitor(wrong_then_fixed(), [SumVerifier()]).run("How many apples?")
    await guard_tool(lambda n: {"n": n}, name="count", read_only=True)(n=3)
    assert not [k for s in rec.spans for k in attrs(s) if "messages" in k or "removed_text" in k or "call.arg" in k]
    rec.exporter.clear()
    monkeypatch.setenv(telemetry.CAPTURE_CONTENT_ENV, "true")
    result = await Monitor(wrong_then_fixed(), [SumVerifier()]).run("How many apples?")
    await guard_tool(lambda n: {"n": n}, name="count", read_only=True)(n=3)
    run = attrs(rec.named("chat"))
    assert json.loads(run["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "How many apples?"}]}]
    assert json.loads(run["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": result.text}], "finish_reason": "stop"}]
    removed = attrs(rec.named("rollback sums"))["interlock.intervention.removed_text"]
    # what the generator had streamed past the wrong step when the rollback stopped it: from that step on
    assert removed.startswith("He buys 4 more, so 3 + 4 = 8.") and WRONG[18:].startswith(removed)
    tool = attrs(rec.named("execute_tool count"))
    assert (json.loads(tool["gen_ai.tool.call.arguments"]), json.loads(tool["gen_ai.tool.call.result"])) == (
        {"n": 3}, {"n": 3})
    telemetry.enable(rec.provider, capture_content=False)  # the API's choice wins over the environment
    assert not telemetry.capture_content()


async def test_a_failure_inside_tracing_never_breaks_the_run(rec: Recorder, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    import interlock.monitor.spans as spans

    def broken(verdicts: Any) -> str:
        raise RuntimeError("a bug in tracing")

    monkeypatch.setattr(spans, "_worst", broken)
    caplog.set_level("WARNING", logger="interlock")
    result = await Monitor(wrong_then_fixed(), [SumVerifier()], tracer_provider=rec.provider).run("q")
    assert result.text == "Tom has 3 apples.\n" + FEEDBACK + FIXED and len(result.interventions) == 1
    (run,) = rec.spans  # the run span ended at the first failure, with what it had; nothing after it
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "tracing failed in check: RuntimeError: a bug in tracing"
    assert attrs(run)["error.type"] == "_OTHER"
    assert "tracing failed; this run is no longer traced" in caplog.text


async def test_a_cancelled_run_ends_its_span_as_cancelled(rec: Recorder) -> None:
    with anyio.move_on_after(0.2):
        await Monitor(Scripted("word " * 1000, rate=50), tracer_provider=rec.provider).run("q")
    run = rec.named("chat")
    assert (run.status.status_code, attrs(run)["error.type"]) == (StatusCode.ERROR, "cancelled")


async def test_an_unsampled_run_records_nothing_and_runs_the_same() -> None:
    rec = Recorder(sampler=ALWAYS_OFF)
    result = await Monitor(wrong_then_fixed(), [SumVerifier()], tracer_provider=rec.provider).run("q")
    assert result.text == "Tom has 3 apples.\n" + FEEDBACK + FIXED and rec.spans == ()


def test_usage_attributes_take_the_reasoning_tokens_as_part_of_the_output() -> None:
    from interlock import TokenCounts

    assert usage_attributes(TokenCounts(kept=30, discarded=8, fork=2), input_tokens=17, reasoning_tokens=25) == {
        "gen_ai.usage.output_tokens": 40, "gen_ai.usage.input_tokens": 17,
        "gen_ai.usage.reasoning.output_tokens": 25, "interlock.tokens.kept": 30, "interlock.tokens.discarded": 8,
        "interlock.tokens.fork": 2}
    assert "gen_ai.usage.reasoning.output_tokens" not in usage_attributes(TokenCounts(kept=3))


def test_the_span_finish_reason_is_the_proxys_for_every_stop_reason() -> None:
    from interlock.monitor.proxy.release import finish_reason
    from interlock.monitor.result import RunResult, TokenCounts

    for reason in StopReason:
        result = RunResult("r", "p", "t", reason, (), (), TokenCounts(), 0.0, None, 0.0, 1)
        assert finish_reason_of(result) == finish_reason(result), reason


def test_the_provider_and_model_come_from_the_generator() -> None:
    from interlock.generators import OpenAICompatible
    from interlock.monitor.spans import describe_generator

    remote = describe_generator(OpenAICompatible("http://gpu-box:8001/v1", "qwen3-8b", endpoint="completions"))
    assert (remote.span_name, remote.provider, remote.kind, dict(remote.attributes)) == (
        "text_completion qwen3-8b", "openai", "client", {"server.address": "gpu-box", "server.port": 8001})
    assert describe_generator(Scripted("x"), {"model": "m", "provider": "vllm"}).span_name == "chat m"
    assert describe_generator(Scripted("x")).provider == "interlock"


# -- the agent loop ---------------------------------------------------------------------------------------------
class Turns:
    """Plays the k-th script on the k-th turn (a main request with an empty prefix)."""

    capabilities = Capabilities(resumable=True)

    def __init__(self, *scripts: str) -> None:
        self.scripts = [Scripted(s) for s in scripts]
        self.turn = -1

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if request.prefix == "" and request.purpose == "main":
            self.turn += 1
        async for chunk in self.scripts[self.turn].stream(request):
            yield chunk


def call(name: str, **arguments: Any) -> str:
    return f'<tool_call>{json.dumps({"name": name, "arguments": arguments})}</tool_call>'


async def test_the_agent_loop_is_one_invoke_agent_span_with_turns_and_tool_calls(rec: Recorder) -> None:
    paid: list[int] = []

    def balance(account: str) -> int:
        """The balance of an account."""
        return 50

    def pay(amount: int) -> str:
        """Pay Bob."""
        paid.append(amount)
        return "paid"

    model = Turns("I look it up.\n" + call("balance", account="alice"),
                  "She has 50, so 30 + 15 = 45.\n" + call("pay", amount=500),
                  "At most 100 then.\n" + call("pay", amount=45), "Paid 45.")
    tools = [guard_tool(balance, read_only=True),
             guard_tool(pay, verifiers=[lambda a: Fail("over 100") if a["amount"] > 100 else None])]
    agent = Agent(model, tools, verifiers=[SumVerifier()], monitor_options={"tracer_provider": rec.provider})
    result = await agent.run("Pay Bob what Alice owes.")
    assert result.stop == "answer" and paid == [45]
    (root,) = rec.roots()
    assert (root.name, root.kind) == ("invoke_agent", SpanKind.INTERNAL)
    tree = [(s.name, [c.name for c in rec.children(s)]) for s in rec.children(root)]
    assert tree == [("chat", ["check sums", "check sums"]), ("execute_tool balance", []),
                    ("chat", ["check sums", "check sums"]), ("execute_tool pay", []),
                    ("chat", ["check sums", "check sums"]), ("execute_tool pay", []), ("chat", ["check sums"])]
    calls = [attrs(s) for s in rec.children(root) if s.name.startswith("execute_tool")]
    assert [(a["gen_ai.tool.call.id"], a["interlock.tool.allowed"]) for a in calls] == [
        ("call_0", True), ("call_0", False), ("call_0", True)]
    assert calls[0]["gen_ai.tool.description"] == "The balance of an account."
    assert calls[1]["interlock.tool.refusal.reasons"] == ["over 100"]
    turns = sum(t.result.tokens.total for t in result.turns)
    assert attrs(root) == {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "interlock",
                           "interlock.agent.turns": 4, "interlock.agent.stop": "answer",
                           "interlock.agent.refusals": 1, "gen_ai.usage.output_tokens": turns,
                           "interlock.tokens.kept": turns, "interlock.tokens.discarded": 0, "interlock.tokens.fork": 0}


# -- without the extra ------------------------------------------------------------------------------------------
def _python(code: str, *, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=ROOT / "tests", env={**os.environ, **(env or {})})


def test_without_tracing_opentelemetry_is_never_imported() -> None:
    code = (
        "import sys, anyio, interlock\n"
        "from interlock import Monitor, guard_tool, Agent\n"
        "from interlock.generators import Scripted\n"
        "from support import SumVerifier\n"
        "import interlock.monitor.proxy\n"
        "r = anyio.run(Monitor(Scripted('So 1 + 1 = 3.\\n'), [SumVerifier()], on_unresumable='stop').run, 'q')\n"
        "assert r.interventions, r\n"
        "anyio.run(guard_tool(lambda x: x, read_only=True), 1)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_without_the_extra_runs_work_and_enable_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if the otel extra were not installed\n"
        "import anyio, interlock, interlock.telemetry as t\n"
        "from interlock import Monitor\n"
        "from interlock.generators import Scripted\n"
        "print(anyio.run(Monitor(Scripted('Hi.\\n')).run, 'q').text.strip())\n"
        "try:\n"
        "    t.enable()\n"
        "except interlock.ConfigError as exc:\n"
        "    print(exc)\n")
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["Hi.",
                                       "OpenTelemetry tracing needs the otel extra: pip install 'interlock[otel]'"]


# -- the SDK from the environment (--otel) -----------------------------------------------------------------------
def test_setup_sdk_reads_the_standard_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    for key in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(key)

    def exporters(provider: Any) -> list[Any]:
        return [p.span_exporter for p in provider._active_span_processor._span_processors]

    provider = telemetry.setup_sdk(set_global=False)
    assert provider is not None and provider.resource.attributes["service.name"] == "interlock"
    (otlp,) = exporters(provider)
    assert isinstance(otlp, OTLPSpanExporter) and otlp._endpoint == "http://localhost:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "reasoner")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,otlp")
    provider = telemetry.setup_sdk(set_global=False)
    assert provider is not None and provider.resource.attributes["service.name"] == "reasoner"
    console, otlp = exporters(provider)
    assert isinstance(console, ConsoleSpanExporter) and console.out is sys.stderr
    assert otlp._endpoint == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    provider = telemetry.setup_sdk(set_global=False)
    assert provider is not None and exporters(provider) == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin_json")
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER names 'zipkin_json', which is not installed; "
                                          "known: console, none, otlp"):
        telemetry.setup_sdk(set_global=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ConfigError, match="'http/json' is not supported"):
        telemetry.setup_sdk(set_global=False)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert telemetry.setup_sdk(set_global=False) is None


def test_the_example_prints_the_span_tree() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "tracing.py")], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=True)
    lines = done.stdout.split("\n\n", 1)[1].splitlines()
    assert lines[0] == "chat scripted-demo [INTERNAL] outcome=verified interventions=1 kept=20 discarded=10"
    assert sorted(lines[1:]) == sorted([
        "  check sums [INTERNAL] verdict=pass", "  check sums [INTERNAL] verdict=fail message=3 + 4 is 7, not 8",
        "  rollback sums [INTERNAL] position=18", "  check sums [INTERNAL] verdict=pass",
        "  check sums [INTERNAL] verdict=pass",
        "  execute_tool pay [INTERNAL] allowed=False reasons=['700 is over the limit of 100']",
        "  execute_tool pay [INTERNAL] allowed=True"])
    assert lines[-2:] == ["  execute_tool pay [INTERNAL] allowed=False reasons=['700 is over the limit of 100']",
                          "  execute_tool pay [INTERNAL] allowed=True"]
