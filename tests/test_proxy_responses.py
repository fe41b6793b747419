"""``/v1/responses`` through the proxy, over chat completions: the real ``openai`` SDK's ``responses.create``
(streamed and not) and the OpenAI Agents SDK in its default mode get the Responses API's typed events and objects
(each held to the SDK's classes with pydantic's validation), with a wrong step rolled back before any of it is
released, function calls checked before they leave, and a reasoning model's thinking as reasoning items.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import openai
import pytest
from interlock import Fail
from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app, serving
from openai.types.responses import Response

from tests.reasoning_servers import ReasoningServer, ThinkingModel
from tests.responses_support import kinds, stream_events
from tests.scripted_upstream import ScriptedUpstream, Turn
from tests.support import SumVerifier

WRONG = "Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 8.\nThe answer is 8."
FIXED = "He buys 4 more, so 3 + 4 = 7.\nThe answer is 7."
CORRECTED = "Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 7.\nThe answer is 7."
REDO = "Let me redo this step.\n"
TOOLS: Any = [{"type": "function", "name": "transfer", "description": "Send money", "parameters": {
    "type": "object", "properties": {"amount": {"type": "integer"}, "to": {"type": "string"}},
    "required": ["amount", "to"]}}]
TEXT_ITEM = ["response.output_item.added", "response.content_part.added", "response.output_text.delta*",
             "response.output_text.done", "response.content_part.done", "response.output_item.done"]
CALL_ITEM = ["response.output_item.added", "response.function_call_arguments.delta*",
             "response.function_call_arguments.done", "response.output_item.done"]


def continued(body: dict[str, Any]) -> bool:
    return any(m["role"] == "assistant" and (m.get("content") or "").endswith(REDO) for m in body["messages"])


def told(body: dict[str, Any]) -> bool:
    return any(m["role"] == "assistant" and "at most 100" in (m.get("content") or "") for m in body["messages"])


def script(body: dict[str, Any]) -> Turn:
    """Sums, or a transfer of 5000 (refused) then of 100 once told; after a tool result, the final answer."""
    if body.get("tools"):
        if any(m["role"] == "tool" for m in body["messages"]):
            return Turn("Sent 100 to bob.")
        if told(body):
            return Turn("", [("call_100", "transfer", {"amount": 100, "to": "bob"})])
        return Turn("I pay 2 + 2 = 4 first.", [("call_5000", "transfer", {"amount": 5000, "to": "bob"})])
    return Turn(FIXED if continued(body) else WRONG)


def at_most_100(arguments: Mapping[str, Any]) -> Fail | None:
    if arguments.get("amount", 0) > 100:
        return Fail(f"amount {arguments['amount']} is over 100", feedback="A transfer may move at most 100.")
    return None


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[str, ScriptedUpstream]]:
    upstream = ScriptedUpstream(script)
    async with serving(upstream.app()) as up:
        config = ProxyConfig(UpstreamBackend(up + "/v1", responses="chat"), verifiers=[SumVerifier()],
                             tool_verifiers={"transfer": [at_most_100]})
        async with serving(create_app(config)) as url:
            yield url, upstream


async def test_the_sdk_streams_the_responses_events_with_the_wrong_step_never_released(
        proxy: tuple[str, ScriptedUpstream]) -> None:
    url, upstream = proxy
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30) as client:
        stream = await client.responses.create(model="m", input="How many apples?", stream=True)
        events = [event async for event in stream]
    assert kinds(events) == ["response.created", "response.in_progress", *TEXT_ITEM, "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == CORRECTED
    assert not any("= 8" in d for d in deltas)  # the wrong step never left the proxy
    created, done = events[0].response, events[-1].response
    assert created.id == done.id and created.id.startswith("resp_") and created.status == "in_progress"
    assert done.status == "completed" and done.output_text == CORRECTED
    message = done.output[0]
    assert message.type == "message" and message.id == events[2].item.id and message.status == "completed"
    report = done.model_extra["interlock"]
    assert [(i["action"], i["source"]) for i in report["interventions"]] == [("rollback", "sums")]
    assert report["interventions"][0]["removed_text"].startswith("He buys 4 more, so 3 + 4 = 8.")
    assert done.metadata == {"interlock_run_id": report["run_id"], "interlock_outcome": "verified",
                             "interlock_passed": "true", "interlock_stop_reason": "complete",
                             "interlock_interventions": "1", "interlock_withheld_calls": "0"}
    assert done.usage is not None and done.usage.input_tokens == 17
    assert done.usage.output_tokens == report["tokens"]["kept"]
    assert done.usage.output_tokens_details.reasoning_tokens == 0
    # the upstream was asked over chat completions: the input as a user message, then the continuation
    assert upstream.bodies[0]["messages"] == [{"role": "user", "content": "How many apples?"}]
    assert upstream.bodies[1]["messages"][-1]["content"].endswith(REDO)


async def test_every_event_matches_the_sdks_types_exactly(proxy: tuple[str, ScriptedUpstream]) -> None:
    url, _ = proxy
    events = await stream_events(url, {"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "How many apples?"}]}], "instructions": "Count.",
        "metadata": {"ticket": "T-1"}, "max_output_tokens": 300, "temperature": 0.5})
    final = events[-1]["response"]
    assert final["instructions"] == "Count." and final["max_output_tokens"] == 300 and final["temperature"] == 0.5
    assert final["metadata"]["ticket"] == "T-1" and final["metadata"]["interlock_outcome"] == "verified"
    item = events[2]["item"]
    assert item == {"id": item["id"], "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    assert events[-2] == {"type": "response.output_item.done", "sequence_number": len(events) - 2, "output_index": 0,
                          "item": final["output"][0]}


async def test_a_whole_response_is_a_response_object(proxy: tuple[str, ScriptedUpstream]) -> None:
    url, _ = proxy
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30) as client:
        raw = await client.responses.with_raw_response.create(model="m", input="How many apples?")
    response = raw.parse()
    Response.model_validate(json.loads(raw.content))
    assert response.output_text == CORRECTED and response.status == "completed"
    assert raw.headers["x-interlock-outcome"] == "verified" and raw.headers["x-interlock-interventions"] == "1"
    assert response.metadata is not None and response.metadata["interlock_interventions"] == "1"
    assert response.model_extra["interlock"]["outcome"] == "verified"


async def test_function_calls_are_checked_and_a_refused_one_never_leaves(proxy: tuple[str, ScriptedUpstream]) -> None:
    url, upstream = proxy
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30) as client:
        stream = await client.responses.create(model="m", input="Pay bob.", tools=TOOLS, stream=True)
        events = [event async for event in stream]
    assert kinds(events) == ["response.created", "response.in_progress", *TEXT_ITEM, *CALL_ITEM,
                             "response.completed"]
    done = events[-1].response
    message, call = done.output
    assert message.content[0].text == "I pay 2 + 2 = 4 first.\n"
    assert (call.type, call.call_id, call.name, json.loads(call.arguments)) == (
        "function_call", "call_100", "transfer", {"amount": 100, "to": "bob"})
    added = events[-5]
    assert added.item.type == "function_call" and added.item.arguments == "" and added.output_index == 1
    assert [e.delta for e in events if e.type == "response.function_call_arguments.delta"] == [call.arguments]
    assert not any("5000" in json.dumps(e.model_dump()) for e in events[:-1])  # the refused call never left
    report = done.model_extra["interlock"]
    assert [(c["id"], c["released"]) for c in report["tool_calls"]] == [("call_5000", False), ("call_100", True)]
    assert "amount 5000 is over 100" in report["interventions"][0]["message"]
    assert done.metadata["interlock_withheld_calls"] == "1"
    # the tools reached the upstream in the chat shape
    assert upstream.bodies[0]["tools"] == [{"type": "function", "function": {
        "name": "transfer", "description": "Send money", "parameters": TOOLS[0]["parameters"]}}]
    # the next turn: the call and its output as items become the assistant's tool_calls and a tool message
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30) as client:
        second = await client.responses.create(model="m", tools=TOOLS, input=[
            {"role": "user", "content": "Pay bob."}, *[item.model_dump(exclude_none=True) for item in done.output],
            {"type": "function_call_output", "call_id": "call_100", "output": "sent"}])
    assert second.output_text == "Sent 100 to bob."
    sent = upstream.bodies[-1]["messages"]
    assert sent[1] == {"role": "assistant", "content": "I pay 2 + 2 = 4 first.\n", "tool_calls": [
        {"id": "call_100", "type": "function", "function": {"name": "transfer", "arguments": call.arguments}}]}
    assert sent[2] == {"role": "tool", "content": "sent", "tool_call_id": "call_100"}


THINK = "I need 7 * 8 + 2.\n7 * 8 = 54.\n54 + 2 = 56.\n"
FIXED_THINKING = "7 * 8 = 56.\n56 + 2 = 58.\n"


@pytest.mark.parametrize("dialect", ["vllm", "vllm-0.10"])
async def test_a_reasoning_models_thinking_is_a_reasoning_item_checked_like_the_answer(dialect: str) -> None:
    model = ThinkingModel({"<think>\n": THINK + "</think>\n\nThe answer is 56.",
                           "Let me redo this step.\n": FIXED_THINKING + "</think>\n\nThe answer is 58."})
    server = ReasoningServer(dialect, model)
    async with serving(server.app()) as up:
        config = ProxyConfig(UpstreamBackend(up + "/v1"), verifiers=["arithmetic"])
        async with serving(create_app(config)) as url:
            events = await stream_events(url, {"model": "reasoner", "input": "What is 7 * 8 + 2?",
                                               "reasoning": {"effort": "high", "summary": "auto"}})
            async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0) as client:
                whole = await client.responses.create(model="reasoner", input="What is 7 * 8 + 2?")
    reasoning_item = ["response.output_item.added", "response.content_part.added", "response.reasoning_text.delta*",
                      "response.reasoning_text.done", "response.content_part.done", "response.output_item.done"]
    assert kinds(events) == ["response.created", "response.in_progress", *reasoning_item, *TEXT_ITEM,
                             "response.completed"]
    thinking = [e["delta"] for e in events if e["type"] == "response.reasoning_text.delta"]
    assert "".join(thinking) == "I need 7 * 8 + 2.\n" + FIXED_THINKING
    assert not any("54" in t for t in thinking)
    final = events[-1]["response"]
    assert final["output"][0]["type"] == "reasoning" and final["output"][0]["content"] == [
        {"type": "reasoning_text", "text": "I need 7 * 8 + 2.\n" + FIXED_THINKING}]
    assert final["output"][1]["content"][0]["text"] == "\n\nThe answer is 58."
    assert final["reasoning"] == {"effort": "high", "summary": "auto"}
    report = final["interlock"]
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == report["tokens"]["thinking"] > 0
    assert server.bodies[0]["reasoning_effort"] == "high"  # the effort reached the chat upstream
    assert [item.type for item in whole.output] == ["reasoning", "message"]
    assert whole.output[0].content[0].text == "I need 7 * 8 + 2.\n" + FIXED_THINKING
    assert whole.output_text == "\n\nThe answer is 58."


async def test_the_agents_sdk_in_its_default_mode_runs_only_checked_calls(
        proxy: tuple[str, ScriptedUpstream]) -> None:
    from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled
    from agents.models.openai_provider import OpenAIProvider

    set_tracing_disabled(True)
    url, upstream = proxy
    executed: list[tuple[int, str]] = []

    @function_tool
    def transfer(amount: int, to: str) -> str:
        """Send money."""
        executed.append((amount, to))
        return "sent"

    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30)
    config = RunConfig(model_provider=OpenAIProvider(openai_client=client))  # its default API: Responses
    agent = Agent(name="bank", instructions="Move money carefully.", tools=[transfer], model="m")
    result = await Runner.run(agent, "Pay bob.", run_config=config)
    assert executed == [(100, "bob")] and result.final_output == "Sent 100 to bob."
    async with httpx.AsyncClient(base_url=url) as http:
        page = (await http.get("/metrics")).text
    assert 'interlock_proxy_requests_total{endpoint="responses",outcome="verified",stream="false"} 2.0' in page
    streamed = Runner.run_streamed(agent, "Pay bob.", run_config=config)
    async for _ in streamed.stream_events():
        pass
    await client.close()
    assert executed == [(100, "bob"), (100, "bob")] and streamed.final_output == "Sent 100 to bob."
    assert upstream.bodies[0]["messages"][0] == {"role": "system", "content": "Move money carefully."}


async def test_the_metrics_count_responses_apart(proxy: tuple[str, ScriptedUpstream]) -> None:
    url, _ = proxy
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await http.post("/v1/responses", json={"model": "m", "input": "How many apples?"})
        await http.post("/v1/responses", json={"model": "m", "input": []})
        page = (await http.get("/metrics")).text
    assert 'interlock_proxy_requests_total{endpoint="responses",outcome="verified",stream="false"} 1.0' in page
    assert 'interlock_proxy_requests_total{endpoint="responses",outcome="400",stream="unknown"} 1.0' in page



async def test_a_policy_reads_the_conversation_the_items_hold() -> None:
    """Checks that read the request's conversation (``--policy``) see the Responses input as chat messages."""
    seen: list[list[dict[str, Any]]] = []

    def checks(req: Any) -> dict[str, Any]:
        seen.append([m.to_dict() for m in req.messages])

        def only_after_a_balance(arguments: Mapping[str, Any]) -> Fail | None:
            looked = any(m.role == "tool" and m.content == "balance 120" for m in req.messages)
            return None if looked else Fail("no balance was read", feedback="Read the balance first.")

        return {"transfer": [only_after_a_balance]}

    upstream = ScriptedUpstream(lambda body: Turn("", [("call_1", "transfer", {"amount": 5, "to": "bob"})])
                                if not any(m["role"] == "tool" for m in body["messages"]) or
                                body["messages"][-1]["content"] == "balance 120" else Turn("Done."))
    async with serving(upstream.app()) as up:
        config = ProxyConfig(UpstreamBackend(up + "/v1", responses="chat"), request_tool_checks=checks,
                             max_interventions=1)
        async with serving(create_app(config)) as url, \
                openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30) as client:
            history: Any = [{"role": "user", "content": "Pay bob 5."},
                            {"type": "function_call", "call_id": "c0", "name": "get_balance", "arguments": "{}"},
                            {"type": "function_call_output", "call_id": "c0", "output": "balance 120"}]
            allowed = await client.responses.create(model="m", input=history, tools=TOOLS)
            refused = await client.responses.create(model="m", input="Pay bob 5.", tools=TOOLS)
    assert [i.type for i in allowed.output] == ["function_call"]
    assert [i.type for i in refused.output] == [] and refused.status == "incomplete"
    assert refused.incomplete_details is not None and refused.incomplete_details.reason == "content_filter"
    assert refused.model_extra["interlock"]["interventions"][0]["message"].endswith("no balance was read")
    assert seen[0][1]["tool_calls"][0]["function"]["name"] == "get_balance"
