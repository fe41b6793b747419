"""``/v1/responses`` forwarded to an upstream that serves the Responses API (a scripted one speaking OpenAI's
events): the upstream's text, reasoning (raw or summarized) and function calls are checked like any trace, a
rollback continues as the Responses API allows, ``previous_response_id`` names the proxy's own ids, an upstream
that answers 404 to chat completions is detected, and a malformed upstream fails cleanly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from interlock import Fail
from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app, serving

from tests.responses_server import Reply, ResponsesServer
from tests.responses_support import kinds, stream_events
from tests.support import SumVerifier

WRONG = "Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 8.\nThe answer is 8."
FIXED = "He buys 4 more, so 3 + 4 = 7.\nThe answer is 7."
CONTINUE = "Continue your answer exactly where it stops, without repeating any of it and without comment."
TOOLS: Any = [{"type": "function", "name": "transfer", "parameters": {"type": "object", "properties": {
    "amount": {"type": "integer"}, "to": {"type": "string"}}}}]


def items_text(body: dict[str, Any]) -> str:
    return json.dumps(body["input"])


def script(body: dict[str, Any]) -> Reply:
    if body.get("tools"):
        if "at most 100" in items_text(body):
            return Reply("", calls=[("call_100", "transfer", {"amount": 100, "to": "bob"})])
        return Reply("Paying.", calls=[("call_5000", "transfer", {"amount": 5000, "to": "bob"})])
    if "Let me redo this step." in items_text(body):
        return Reply(FIXED, reasoning="Count again.")
    return Reply(WRONG, reasoning="First 3.\n\nThen 4.")


def at_most_100(arguments: dict[str, Any]) -> Fail | None:
    return Fail("over 100", feedback="A transfer may move at most 100.") if arguments["amount"] > 100 else None


@pytest.fixture
async def forwarded(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, ResponsesServer]]:
    route, summary = getattr(request, "param", ("responses", False))
    server = ResponsesServer(script, summary=summary)
    async with serving(server.app()) as up:
        config = ProxyConfig(UpstreamBackend(up + "/v1", responses=route), verifiers=[SumVerifier()],
                             tool_verifiers={"transfer": [at_most_100]})
        async with serving(create_app(config)) as url:
            yield url, server


@pytest.mark.parametrize("forwarded", [("responses", False), ("responses", True)], indirect=True,
                         ids=["reasoning-text", "reasoning-summary"])
async def test_a_forwarded_response_is_checked_and_rolled_back_before_release(
        forwarded: tuple[str, ResponsesServer]) -> None:
    url, server = forwarded
    events = await stream_events(url, {"model": "m", "input": "How many apples?", "instructions": "Count.",
                                       "metadata": {"k": "v"}, "include": ["reasoning.encrypted_content"]})
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "Tom has 3 apples.\n" + FIXED and "= 8" not in deltas
    thinking = [e["delta"] for e in events if e["type"] == "response.reasoning_text.delta"]
    assert "".join(thinking) == "First 3.\n\nThen 4." + "Count again."  # the re-asked turn thinks again
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "reasoning", "message"]
    assert final["output"][2]["content"][0]["text"] == "Count again."
    assert final["interlock"]["interventions"][0]["action"] == "rollback"
    assert final["metadata"]["k"] == "v"
    first, second = server.bodies
    assert first["input"] == [{"type": "message", "role": "user", "content": "How many apples?"}]
    assert (first["instructions"], first["metadata"], first["include"], first["stream"]) == (
        "Count.", {"k": "v"}, ["reasoning.encrypted_content"], True)
    # the continuation: the input, the corrected answer so far as the assistant's, and a request to go on
    assert second["input"][1:] == [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": (
            "Tom has 3 apples.\nWait, 3 + 4 is 7, not 8. Let me redo this step.\n")}]},
        {"type": "message", "role": "user", "content": CONTINUE}]
    # usage: the upstream's own counts of what the client got
    assert final["usage"]["input_tokens"] == 11


async def test_forwarded_function_calls_are_checked(forwarded: tuple[str, ResponsesServer]) -> None:
    url, server = forwarded
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30) as client:
        stream = await client.responses.create(model="m", input="Pay bob.", tools=TOOLS, stream=True)
        events = [e async for e in stream]
    done = events[-1].response
    assert [(i.type, getattr(i, "call_id", None)) for i in done.output] == [("message", None),
                                                                        ("function_call", "call_100")]
    assert json.loads(done.output[1].arguments) == {"amount": 100, "to": "bob"}
    assert not any("5000" in json.dumps(e.model_dump()) for e in events[:-1])
    assert server.bodies[0]["tools"] == TOOLS  # forwarded in the Responses shape, as sent


async def test_previous_response_id_names_the_proxys_response(forwarded: tuple[str, ResponsesServer]) -> None:
    url, server = forwarded
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30) as client:
        first = await client.responses.create(model="m", input="Pay bob.", tools=TOOLS)
        second = await client.responses.create(model="m", input="And again.", tools=TOOLS,
                                               previous_response_id=first.id)
        with pytest.raises(openai.BadRequestError) as unknown:
            await client.responses.create(model="m", input="x", previous_response_id="resp_made_up")
        unstored = await client.responses.create(model="m", input="Pay bob.", tools=TOOLS, store=False)
        with pytest.raises(openai.BadRequestError) as forgotten:
            await client.responses.create(model="m", input="x", previous_response_id=unstored.id)
    assert first.id.startswith("resp_") and first.id not in server.issued
    sent = [b.get("previous_response_id") for b in server.bodies]
    # the first request took two upstream responses (the refused call, then the good one): the second continues
    # the last of them
    assert sent[:4] == [None, None, server.issued[1], server.issued[1]]
    assert second.previous_response_id == first.id
    assert "not a response this proxy answered" in unknown.value.message
    assert forgotten.value.body["param"] == "previous_response_id"  # type: ignore[index]


async def test_the_chat_route_refuses_previous_response_id_clearly() -> None:
    server = ResponsesServer(script, chat=True)
    async with serving(server.app()) as up:
        app = create_app(ProxyConfig(UpstreamBackend(up + "/v1", responses="chat")))
        async with serving(app) as url, httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(url + "/v1/responses", json={"model": "m", "input": "x",
                                                                  "previous_response_id": "resp_1"})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "previous_response_id"
    assert "chat completions, which keep none" in answer.json()["error"]["message"]


async def test_auto_uses_the_responses_api_of_an_upstream_without_chat_completions() -> None:
    server = ResponsesServer(script)  # its chat completions answer 404
    async with serving(server.app()) as up:
        app = create_app(ProxyConfig(UpstreamBackend(up + "/v1"), verifiers=[SumVerifier()]))
        async with serving(app) as url, \
                openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30) as client:
            first = await client.responses.create(model="m", input="How many apples?")
            second = await client.responses.create(model="m", input="How many apples?", stream=True)
            events = [e async for e in second]
    assert first.output_text == "Tom has 3 apples.\n" + FIXED
    assert events[-1].response.output_text == "Tom has 3 apples.\n" + FIXED
    # tried once over chat completions, then over /v1/responses only (remembered for the model)
    assert server.paths == ["/v1/chat/completions", "/v1/responses", "/v1/responses", "/v1/responses",
                            "/v1/responses"]


async def test_auto_prefers_chat_completions_where_the_upstream_serves_them() -> None:
    server = ResponsesServer(lambda body: Reply("It is 4."), chat=True)
    async with serving(server.app()) as up:
        app = create_app(ProxyConfig(UpstreamBackend(up + "/v1")))
        async with serving(app) as url, httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(url + "/v1/responses", json={"model": "m", "input": "2 + 2?"})
    assert answer.json()["output"][0]["content"][0]["text"] == "It is 4."
    assert server.paths == ["/v1/chat/completions"]


MALFORMED = {
    "not JSON": ["event: response.created\ndata: {not json\n\n"],
    "no type": ['data: {"sequence_number": 0}\n\n'],
    "a hosted tool": ['data: {"type": "response.output_item.added", "output_index": 0, "item": {"type": '
                      '"web_search_call", "id": "ws_1", "status": "in_progress"}}\n\n'],
    "a delta without text": ['data: {"type": "response.output_text.delta", "delta": 5}\n\n'],
    "arguments of no call": ['data: {"type": "response.function_call_arguments.delta", "output_index": 7, '
                             '"delta": "{"}\n\n'],
    "an upstream failure": ['data: {"type": "response.failed", "response": {"error": {"code": "server_error", '
                            '"message": "the model fell over"}}}\n\n'],
    "an error event": ['data: {"type": "error", "message": "overloaded", "code": "server_error"}\n\n'],
    "no end": ['data: {"type": "response.created", "response": {"id": "r"}}\n\n'],
}
MESSAGES = {"not JSON": "is not JSON", "no type": "not a Responses event", "a hosted tool": "'web_search_call' item",
            "a delta without text": "has no text delta", "arguments of no call": "names no function call item",
            "an upstream failure": "the model fell over", "an error event": "overloaded",
            "no end": "closed the stream before its last event"}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_upstream_is_a_clean_error(case: str) -> None:
    server = ResponsesServer(lambda body: Reply(raw_events=MALFORMED[case]))
    async with serving(server.app()) as up:
        backend = UpstreamBackend(up + "/v1", responses="responses", options={"retries": 0})
        # start_within: the stream's headers wait for the run's first text (here: its failure), however loaded
        async with serving(create_app(ProxyConfig(backend, start_within=10.0))) as url, \
                httpx.AsyncClient(timeout=30) as http:
            whole = await http.post(url + "/v1/responses", json={"model": "m", "input": "x"})
            streamed = await http.post(url + "/v1/responses", json={"model": "m", "input": "x", "stream": True})
    for answer in (whole, streamed):  # nothing had been released: an error status, not a stream
        assert answer.status_code == 502, answer.text
        assert MESSAGES[case] in answer.json()["error"]["message"]


async def test_an_upstream_failure_after_text_was_released_is_response_failed() -> None:
    events = [f'data: {json.dumps(e)}\n\n' for e in [
        {"type": "response.created", "response": {"id": "resp_x"}},
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "m"}},
        *[{"type": "response.output_text.delta", "delta": f"Step {i}.\n"} for i in range(3)],
        {"type": "response.failed", "response": {"error": {"code": "server_error", "message": "lost the GPU"}}}]]
    server = ResponsesServer(lambda body: Reply(raw_events=events))
    async with serving(server.app()) as up:
        config = ProxyConfig(UpstreamBackend(up + "/v1", responses="responses", options={"retries": 0}),
                             start_within=5.0)
        async with serving(create_app(config)) as url:
            got = await stream_events(url, {"model": "m", "input": "x"})
    assert kinds(got)[-1] == "response.failed"
    failed = got[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert "lost the GPU" in failed["error"]["message"] and failed["interlock"]["outcome"] == "error"


async def test_a_rollback_inside_a_forwarded_thinking_fails_naming_the_chat_route() -> None:
    """The Responses API cannot continue a thinking; the run says so rather than restart it."""
    server = ResponsesServer(lambda body: Reply("It is 58.", reasoning="I need 7 * 8 + 2.\n7 * 8 = 54.\n"))
    async with serving(server.app()) as up:
        config = ProxyConfig(UpstreamBackend(up + "/v1", responses="responses"), verifiers=["arithmetic"],
                             start_within=10.0)
        async with serving(create_app(config)) as url, httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(url + "/v1/responses", json={"model": "m", "input": "What is 7 * 8 + 2?"})
    assert answer.status_code == 502
    assert "--responses-upstream chat" in answer.json()["error"]["message"]
    assert len(server.bodies) == 1  # nothing was asked again


async def test_the_api_key_guards_v1_responses() -> None:
    server = ResponsesServer(lambda body: Reply("It is 4."), chat=True)
    async with serving(server.app()) as up:
        app = create_app(ProxyConfig(UpstreamBackend(up + "/v1"), api_key="sesame"))
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            refused = await http.post("/v1/responses", json={"model": "m", "input": "x"})
            allowed = await http.post("/v1/responses", json={"model": "m", "input": "x"},
                                      headers={"authorization": "Bearer sesame"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert allowed.status_code == 200 and server.paths == ["/v1/chat/completions"]
