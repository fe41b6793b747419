"""The proxy's OpenTelemetry spans: a real proxy on loopback, a scripted upstream, the real ``openai`` SDK as client.

One request is one SERVER span ``chat {model}`` continuing the client's ``traceparent``, with the GenAI request and
response attributes and a child per check and per intervention; read from the SDK's in-memory exporter.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import openai
import pytest
from interlock import Fail
from interlock.generators import Scripted
from interlock.monitor import telemetry
from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, UpstreamBackend, create_app, serving
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from tests.scripted_upstream import ScriptedUpstream, Turn
from tests.support import SumVerifier
from tests.tracing_support import Recorder, attrs

WRONG = "Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 8.\nThe answer is 8."
FIXED = "He buys 4 more, so 3 + 4 = 7.\nThe answer is 7."
REDO = "Let me redo this step.\n"
TOOLS: Any = [{"type": "function", "function": {"name": "transfer", "description": "Send money", "parameters": {
    "type": "object", "properties": {"amount": {"type": "integer"}, "to": {"type": "string"}}}}}]


def slips_once(body: dict[str, Any]) -> Turn:
    """A wrong sum, unless the answer it continues ends with the monitor's feedback."""
    continued = any(m["role"] == "assistant" and (m.get("content") or "").endswith(REDO) for m in body["messages"])
    return Turn(FIXED if continued else WRONG)


def pays_too_much_once(body: dict[str, Any]) -> Turn:
    told = any(m["role"] == "assistant" and "at most 100" in (m.get("content") or "") for m in body["messages"])
    if told:
        return Turn("", [("call_100", "transfer", {"amount": 100, "to": "bob"})])
    return Turn("I pay 2 + 2 = 4 first.", [("call_5000", "transfer", {"amount": 5000, "to": "bob"})])


def at_most_100(arguments: Mapping[str, Any]) -> Fail | None:
    return Fail(f"amount {arguments['amount']} is over 100", feedback="Send at most 100.") \
        if arguments.get("amount", 0) > 100 else None


@pytest.fixture
def rec() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    telemetry.disable()
    recorder.provider.shutdown()


@pytest.fixture
async def proxied(rec: Recorder) -> AsyncIterator[tuple[openai.AsyncOpenAI, ScriptedUpstream]]:
    """The proxy (sums on the text, at_most_100 on transfers) in front of a scripted upstream, traced to ``rec``."""
    upstream = ScriptedUpstream(lambda body: pays_too_much_once(body) if body.get("tools") else slips_once(body))
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), verifiers=[SumVerifier()],
                             tool_verifiers={"transfer": [at_most_100]}, tracer_provider=rec.provider)
        async with serving(create_app(config)) as url, \
                openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30) as client:
            yield client, upstream


def check(verifier: str, verdict: str, start: int, end: int, epoch: int, **extra: Any) -> dict[str, Any]:
    return {"interlock.check.verifier": verifier, "interlock.check.step.start": start,
            "interlock.check.step.end": end, "interlock.check.verdict": verdict, "interlock.check.verdicts": 1,
            "interlock.check.epoch": epoch, "interlock.check.stale": False, "interlock.check.provisional": False,
            **extra}


async def test_a_streamed_request_is_one_span_in_the_clients_trace_with_its_checks_and_rollback(
        rec: Recorder, proxied: tuple[openai.AsyncOpenAI, ScriptedUpstream]) -> None:
    client, _ = proxied
    with rec.provider.get_tracer("the client").start_as_current_span("ask the proxy") as mine:
        headers: dict[str, str] = {}
        propagate.inject(headers)  # traceparent: 00-<trace id>-<the client's span id>-01
        stream = await client.chat.completions.create(
            model="scripted-up", messages=[{"role": "user", "content": "How many apples?"}], stream=True,
            extra_headers=headers)
        chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Tom has 3 apples.\n" + FIXED
    report = chunks[-1].model_extra["interlock"]
    (run,) = [s for s in rec.spans if s.name == "chat scripted-up"]
    assert run.kind is SpanKind.SERVER and run.status.status_code is StatusCode.UNSET
    assert run.parent is not None and run.parent.span_id == mine.get_span_context().span_id
    assert run.context.trace_id == mine.get_span_context().trace_id and run.parent.is_remote
    tokens, verdicts = report["tokens"], report["verdicts"]
    kids = rec.children(run)
    stale = [s for s in kids if attrs(s).get("interlock.check.stale")]
    assert attrs(run) == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "scripted-up",
        "gen_ai.request.stream": True, "gen_ai.request.max_tokens": 4096,
        "gen_ai.response.id": "chatcmpl-" + report["run_id"], "gen_ai.response.model": "scripted-up",
        "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": 17,
        "gen_ai.usage.output_tokens": tokens["total"], "interlock.tokens.kept": tokens["kept"],
        "interlock.tokens.discarded": tokens["discarded"], "interlock.tokens.fork": 0,
        "interlock.run_id": report["run_id"], "interlock.outcome": "verified", "interlock.stop_reason": "complete",
        "interlock.passed": True, "interlock.interventions": 1, "interlock.rollbacks": 1,
        "interlock.open_violations": 0, "interlock.verdicts.pass": verdicts["pass"],
        "interlock.verdicts.fail": 1, "interlock.verdicts.unknown": 0, "interlock.stale_verdicts": len(stale),
        "interlock.epochs": 2, "interlock.restarts": 0, "interlock.abstained": False}
    assert (tokens["kept"], tokens["discarded"], tokens["total"]) == (32, 32, 64)  # the upstream's own counts
    # "The answer is 8." was cut by the rollback: its check came back before the cut, came back after it (stale),
    # or was cancelled (an event on the run span), as the timing fell; the other checks and the rollback are
    # children whatever the timing
    cut = [s for s in kids if attrs(s).get("interlock.check.step.start") == 48]
    names = sorted((s.name, attrs(s).get("interlock.check.step.start", -1)) for s in kids if s not in cut)
    assert names == [("check sums", 0), ("check sums", 18), ("check sums", 66), ("check sums", 96),
                     ("rollback sums", -1)]
    cancelled = [e for e in run.events if e.name == "interlock.check.cancelled"]
    assert len(cut) + len(cancelled) <= 1 and stale in ([], cut)
    failed = next(s for s in kids if attrs(s).get("interlock.check.verdict") == "fail")
    assert attrs(failed) == check("sums", "fail", 18, 48, 0, **{"interlock.check.message": "3 + 4 is 7, not 8",
                                                                "interlock.check.action": "rollback"})
    rollback = next(s for s in kids if s.name == "rollback sums")
    assert attrs(rollback)["interlock.intervention.feedback"] == "Wait, 3 + 4 is 7, not 8. " + REDO
    assert [s.name for s in rec.roots()] == ["ask the proxy"]  # one trace: the client's


async def test_tool_calls_are_checked_in_spans_and_the_answer_ends_with_tool_calls(
        rec: Recorder, proxied: tuple[openai.AsyncOpenAI, ScriptedUpstream]) -> None:
    client, _ = proxied
    answer = await client.chat.completions.create(model="scripted-up", messages=[{"role": "user", "content": "Pay"}],
                                                  tools=TOOLS)
    (released,) = answer.choices[0].message.tool_calls or []
    assert (released.id, json.loads(released.function.arguments)) == ("call_100", {"amount": 100, "to": "bob"})
    run = rec.named("chat scripted-up")
    a = attrs(run)
    assert (a["gen_ai.response.finish_reasons"], a["gen_ai.request.stream"], a["interlock.interventions"]) == (
        ["tool_calls"], False, 1)
    calls = sorted((attrs(s)["gen_ai.tool.call.id"], attrs(s)) for s in rec.children(run)
                   if s.name == "check tool-call" and "gen_ai.tool.call.id" in attrs(s))
    assert [c[0] for c in calls] == ["call_100", "call_5000"]
    allowed, refused = calls[0][1], calls[1][1]
    assert refused == check("tool-call", "fail", 23, 148, 0, **{
        "interlock.check.message": 'tool call transfer({"amount": 5000, "to": "bob"}) refused: '
                                   "at-most-100: amount 5000 is over 100",
        "interlock.check.action": "rollback", "gen_ai.tool.name": "transfer", "gen_ai.tool.call.id": "call_5000"})
    assert allowed == check("tool-call", "pass", 70, 193, 1, **{"gen_ai.tool.name": "transfer",
                                                                 "gen_ai.tool.call.id": "call_100"})
    rollback = attrs(rec.named("rollback tool-call"))
    assert (rollback["interlock.intervention.source"], rollback["interlock.intervention.feedback"]) == (
        "tool-call", "Wait, Send at most 100. " + REDO)
    # the proxy executes no tool (the client does): no execute_tool span here
    assert not [s for s in rec.spans if s.name.startswith("execute_tool")]


async def test_completions_are_text_completion_spans_from_a_local_generator(rec: Recorder) -> None:
    backend = GeneratorBackend(Scripted("So 2 + 2 = 4.\n"), model="local-model")
    app = create_app(ProxyConfig(backend, verifiers=[SumVerifier()], tracer_provider=rec.provider))
    async with serving(app) as url, openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
        done = await client.completions.create(model="local-model", prompt="Q: 2 + 2?\nA:", max_tokens=20,
                                               temperature=0.0, seed=7, stop=["###"])
    assert done.choices[0].text == "So 2 + 2 = 4.\n"
    (run,) = rec.roots()
    assert (run.name, run.kind) == ("text_completion local-model", SpanKind.SERVER)
    a = attrs(run)
    assert {k: v for k, v in a.items() if k.startswith("gen_ai.request") or k in (
        "gen_ai.provider.name", "gen_ai.response.id", "gen_ai.usage.output_tokens")} == {
        "gen_ai.provider.name": "interlock", "gen_ai.request.model": "local-model", "gen_ai.request.stream": False,
        "gen_ai.request.max_tokens": 20, "gen_ai.request.temperature": 0.0, "gen_ai.request.seed": 7,
        "gen_ai.request.stop_sequences": ["###"], "gen_ai.response.id": "cmpl-" + a["interlock.run_id"],
        "gen_ai.usage.output_tokens": done.usage.completion_tokens if done.usage else -1}
    assert [s.name for s in rec.children(run)] == ["check sums"]


async def test_a_request_that_times_out_ends_its_span_as_cancelled(rec: Recorder) -> None:
    upstream = ScriptedUpstream(lambda body: Turn("One. Two. Three. Four. Five. Six.", delay=0.5))
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), tracer_provider=rec.provider, request_timeout=0.4)
        async with serving(create_app(config)) as url, \
                openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Count"}])
    assert caught.value.status_code == 504
    run = rec.named("chat m")
    assert (run.status.status_code, attrs(run)["error.type"]) == (StatusCode.ERROR, "cancelled")
    assert (attrs(run)["interlock.stop_reason"], attrs(run)["gen_ai.response.finish_reasons"]) == (
        "cancelled", ["error"])


async def test_an_upstream_that_refuses_is_an_error_span_with_its_status(rec: Recorder) -> None:
    # the upstream is another proxy that wants a key this one does not send: 401
    guarded = create_app(ProxyConfig(GeneratorBackend(Scripted("Hi.\n"), model="m"), api_key="secret"))
    async with serving(guarded) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), tracer_provider=rec.provider)
        async with serving(create_app(config)) as url, \
                openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError):
                await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "?"}])
    run = rec.named("chat m")
    assert (run.status.status_code, attrs(run)["error.type"]) == (StatusCode.ERROR, "401")
    assert run.status.description is not None and "401" in run.status.description
    assert attrs(run)["interlock.outcome"] == "error"


async def test_no_span_while_tracing_is_off_even_with_a_traceparent(rec: Recorder,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: rec.provider)  # a global SDK, but interlock not enabled
    upstream = ScriptedUpstream(slips_once)
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), verifiers=[SumVerifier()])
        async with serving(create_app(config)) as url, \
                openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
            answer = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "?"}],
                extra_headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
            assert answer.choices[0].message.content == "Tom has 3 apples.\n" + FIXED
            assert rec.spans == ()
            telemetry.enable()  # the global provider from now on
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "?"}],
                extra_headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
            await client.chat.completions.create(  # a malformed traceparent starts a trace of its own
                model="n", messages=[{"role": "user", "content": "?"}],
                extra_headers={"traceparent": "00-zz-not-a-trace-01"})
    run = rec.named("chat m")
    assert run.context.trace_id == 0x0af7651916cd43dd8448eb211c80319c
    assert run.parent is not None and run.parent.span_id == 0xb7ad6b7169203331
    lone = rec.named("chat n")
    assert lone.parent is None and lone.context.trace_id != run.context.trace_id
