"""The proxy in front of a reasoning model's server: the thinking reaches an ``openai`` SDK client in the field the
upstream sent it in (``reasoning`` or ``reasoning_content``, streamed deltas and whole messages), checked and
released like the answer, so a wrong product in the thinking is rolled back before any of it is released; usage
counts the thinking's tokens; a client's thinking switches reach the upstream.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from interlock import Monitor
from interlock.generators import Scripted
from interlock.monitor import telemetry
from interlock.monitor.proxy import ProxyConfig, ReleasedRun, UpstreamBackend, create_app, serving
from interlock.monitor.proxy.release import Thought

from tests.reasoning_servers import ReasoningServer, ThinkingModel
from tests.support import check_sums
from tests.tracing_support import Recorder, attrs

THINK = "I need 7 * 8 + 2.\n7 * 8 = 54.\n54 + 2 = 56.\n"
FIXED = "7 * 8 = 56.\n56 + 2 = 58.\n"
REASONING = "I need 7 * 8 + 2.\n" + FIXED  # the thinking the client gets: corrected, the feedback left out
ANSWER = "\n\nThe answer is 58."
FIELDS = {"vllm": "reasoning", "vllm-0.10": "reasoning_content", "sglang": "reasoning_content",
          "deepseek": "reasoning_content", "llama.cpp": "reasoning_content"}


def model() -> ThinkingModel:
    return ThinkingModel({"<think>\n": THINK + "</think>\n\nThe answer is 56.",
                          "Let me redo this step.\n": FIXED + "</think>\n\nThe answer is 58."})


@pytest.fixture
async def proxied(request: pytest.FixtureRequest) -> AsyncIterator[tuple[openai.AsyncOpenAI, ReasoningServer, str]]:
    dialect, whole = request.param
    server = ReasoningServer(dialect, model(), whole=whole)
    async with serving(server.app()) as up:
        config = ProxyConfig(UpstreamBackend(up + "/v1"), verifiers=["arithmetic"])
        async with serving(create_app(config)) as url, \
                openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30) as client:
            yield client, server, url


QUESTION: Any = [{"role": "user", "content": "What is 7 * 8 + 2?"}]
BOTH_FIELDS = [("vllm", False), ("vllm-0.10", False)]


@pytest.mark.parametrize("proxied", [*BOTH_FIELDS, ("sglang", False), ("deepseek", False), ("llama.cpp", False)],
                         indirect=True, ids=lambda p: p[0])
async def test_a_streamed_thinking_reaches_the_client_in_the_upstreams_field_without_the_wrong_step(
        proxied: tuple[openai.AsyncOpenAI, ReasoningServer, str]) -> None:
    client, server, _ = proxied
    field = FIELDS[server.dialect]
    other = "reasoning_content" if field == "reasoning" else "reasoning"
    stream = await client.chat.completions.create(model="reasoner", messages=QUESTION, stream=True,
                                                  stream_options={"include_usage": True})
    thinking, content, order, usage, report = [], [], [], None, None
    async for chunk in stream:
        extra = chunk.model_extra or {}
        report = extra.get("interlock", report)
        usage = chunk.usage or usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        fields = delta.model_extra or {}
        assert other not in fields  # one field: the upstream's
        if fields.get(field):
            thinking.append(fields[field])
            order.append("thinking")
        if delta.content:
            content.append(delta.content)
            order.append("answer")
    assert "".join(thinking) == REASONING
    assert "".join(content) == ANSWER
    assert not any("54" in piece for piece in thinking)  # the wrong product was never released
    assert order == sorted(order, key=lambda kind: kind == "answer")  # the thinking, then the answer
    assert report is not None and report["outcome"] == "verified"
    (rollback,) = report["interventions"]
    assert (rollback["action"], rollback["source"]) == ("rollback", "arithmetic")
    assert rollback["removed_text"].startswith("7 * 8 = 54.")
    # the rollback continued inside the thinking: a prefill of the open thinking and the feedback
    assert server.bodies[1]["messages"][-1]["content"].startswith("<think>\nI need 7 * 8 + 2.\nWait, 7 * 8 is 56")
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == report["tokens"]["thinking"] > 0
    assert usage.completion_tokens == report["tokens"]["kept"]


@pytest.mark.parametrize("proxied", [*BOTH_FIELDS, ("vllm", True), ("vllm-0.10", True)], indirect=True,
                         ids=lambda p: p[0] + ("-whole-upstream" if p[1] else ""))
async def test_a_whole_answer_has_the_thinking_in_the_upstreams_field(
        proxied: tuple[openai.AsyncOpenAI, ReasoningServer, str]) -> None:
    client, server, _ = proxied
    field = FIELDS[server.dialect]
    completion = await client.chat.completions.create(model="reasoner", messages=QUESTION)
    message = completion.choices[0].message
    assert (message.model_extra or {}) == {field: REASONING}
    assert message.content == ANSWER
    report = (completion.model_extra or {})["interlock"]
    assert [i["action"] for i in report["interventions"]] == ["rollback"]
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == report["tokens"]["thinking"] > 0


@pytest.mark.parametrize("proxied", [("vllm", False)], indirect=True, ids=["vllm"])
async def test_thinking_switches_and_reasoning_effort_are_forwarded(
        proxied: tuple[openai.AsyncOpenAI, ReasoningServer, str]) -> None:
    client, server, url = proxied
    await client.chat.completions.create(model="reasoner", messages=QUESTION, reasoning_effort="low",
                                         extra_body={"chat_template_kwargs": {"enable_thinking": True}})
    assert server.bodies[0]["reasoning_effort"] == "low"
    assert server.bodies[0]["chat_template_kwargs"] == {"enable_thinking": True}
    assert all(b["chat_template_kwargs"] == {"enable_thinking": True} for b in server.bodies)  # the rollback too
    async with httpx.AsyncClient(base_url=url) as raw:
        bad = await raw.post("/v1/chat/completions", json={"model": "m", "messages": QUESTION,
                                                            "chat_template_kwargs": ["enable_thinking"]})
        worse = await raw.post("/v1/chat/completions", json={"model": "m", "messages": QUESTION,
                                                              "reasoning_effort": {"level": "high"}})
        page = (await raw.get("/metrics")).text
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "chat_template_kwargs"
    assert worse.status_code == 400 and worse.json()["error"]["param"] == "reasoning_effort"
    tokens = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^interlock_proxy_phase_tokens_total\{phase="(\w+)"\} (\S+)$', page, re.M)}
    kept = float(re.search(r'^interlock_proxy_tokens_total\{kind="kept"\} (\S+)$', page, re.M).group(1))  # type: ignore[union-attr]
    assert tokens["thinking"] > 0 and tokens["answer"] > 0 and tokens["thinking"] + tokens["answer"] == kept


async def test_a_thinking_without_a_reasoning_field_stays_in_the_text_as_the_upstream_wrote_it() -> None:
    """A server without a reasoning parser writes the tags in the content: the client gets them there."""
    script = {"": "<think>\nAdd 2 + 2 = 5.\n</think>\nIt is 5.",
              "Let me redo this step.\n": "Add 2 + 2 = 4.\n</think>\nIt is 4."}
    run = ReleasedRun(Monitor(Scripted(script, thinking_tags="<think>"), [_sums()]), "p")
    pieces = await run.collect()
    thoughts = "".join(p for p in pieces if isinstance(p, Thought))
    assert thoughts == "<think>\nAdd 2 + 2 = 4.\n</think>"
    assert "".join(p for p in pieces if isinstance(p, str)) == "<think>\nAdd 2 + 2 = 4.\n</think>\nIt is 4."
    assert run.text_of("answer") == "\nIt is 4." and run.released_thinking_tokens > 0


def _sums() -> Any:
    from interlock import verifier

    @verifier(name="sums")
    def sums(step: Any) -> Any:
        return check_sums(step)

    return sums


async def test_the_run_span_counts_the_thinking_tokens() -> None:
    recorder = Recorder()
    try:
        script = {"": "<think>\nAdd 2 + 2 = 4.\n</think>\nIt is 4."}
        result = await Monitor(Scripted(script, thinking_tags="<think>"), [_sums()],
                               tracer_provider=recorder.provider).run("p")
        span = recorder.named("chat")
        assert result.tokens.thinking > 0
        assert attrs(span)["gen_ai.usage.reasoning.output_tokens"] == result.tokens.thinking
        plain = await Monitor(Scripted({"": "It is 4."}), [], tracer_provider=recorder.provider).run("p")
        assert plain.tokens.thinking == 0
        assert "gen_ai.usage.reasoning.output_tokens" not in attrs(recorder.spans[-1])
    finally:
        telemetry.disable()
        recorder.provider.shutdown()


async def test_the_proxys_run_span_counts_the_thinking_tokens() -> None:
    recorder = Recorder()
    try:
        server = ReasoningServer("vllm", model())
        async with serving(server.app()) as up:
            config = ProxyConfig(UpstreamBackend(up + "/v1"), verifiers=["arithmetic"],
                                 tracer_provider=recorder.provider)
            async with serving(create_app(config)) as url, \
                    openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0) as client:
                completion = await client.chat.completions.create(model="reasoner", messages=QUESTION)
        report = (completion.model_extra or {})["interlock"]
        got = attrs(recorder.named("chat reasoner"))
        assert got["gen_ai.usage.reasoning.output_tokens"] == report["tokens"]["thinking"] > 0
        assert got["gen_ai.usage.output_tokens"] == report["tokens"]["total"]
    finally:
        telemetry.disable()
        recorder.provider.shutdown()
