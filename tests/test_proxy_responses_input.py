"""``/v1/responses`` against hostile input: any body gets a Response or a clean 4xx naming what is wrong (never a
500), the chat endpoint's protections apply (body limit, nesting, timeouts, a client that leaves, lone
surrogates), and the request is one traced run."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock import Chunk, GenerationRequest
from interlock.generators import Scripted
from interlock.monitor import telemetry
from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, ProxyError, create_app, serving
from interlock.monitor.proxy.responses_request import parse_responses

from tests.responses_support import kinds, sse, stream_events, typed
from tests.tracing_support import Recorder, attrs


def app_for(generator: Any, **options: Any) -> Any:
    return create_app(ProxyConfig(GeneratorBackend(generator, model="s"), **options))


BAD = [
    ({"input": "x"}, "model", "model is required"),
    ({"model": "m"}, "input", "input is required"),
    ({"model": "m", "input": []}, "input", "input is required"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x"}]}]},
     "input[0].content[0]", "is input_image: the proxy monitors text only"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]", "the proxy keeps no items"),
    ({"model": "m", "input": [{"type": "web_search_call", "id": "ws"}]}, "input[0].type", "'web_search_call' item"),
    ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role", "must be one of"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input[0]", "'call_id': str"),
    ({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id",
     "the call this output answers"),
    ({"model": "m", "input": [{"type": "reasoning", "summary": "x"}]}, "input[0].summary", "summary_text"),
    ({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type", "function tools only"),
    ({"model": "m", "input": "x", "tools": [{"type": "function", "name": "a b"}]}, "tools[0].name", "letters"),
    ({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "function", "name": "f"}]},
     "tools[1].name", "two tools are named 'f'"),
    ({"model": "m", "input": "x", "tool_choice": {"type": "function", "name": "g"}}, "tool_choice",
     "one of the tools"),
    ({"model": "m", "input": "x", "background": True}, "background", "state the proxy does not keep"),
    ({"model": "m", "input": "x", "conversation": "conv_1"}, "conversation", "send the conversation's items"),
    ({"model": "m", "input": "x", "prompt": {"id": "pmpt_1"}}, "prompt", "stored prompt templates"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens", "max_output_tokens must be"),
    ({"model": "m", "input": "x", "max_tokens": 5}, "max_tokens", "uses max_output_tokens"),
    ({"model": "m", "messages": []}, "messages", "the Responses API uses input"),
    ({"model": "m", "input": "x", "temperature": 3}, "temperature", "between 0 and 2"),
    ({"model": "m", "input": "x", "reasoning": {"effort": "very much"}}, "reasoning.effort", "a word such as"),
    ({"model": "m", "input": "x", "reasoning": {"summary": "long"}}, "reasoning.summary", "'auto', 'concise'"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format", "json_schema"),
    ({"model": "m", "input": "x", "metadata": {"k": "v" * 513}}, "metadata", "at most 16 string pairs"),
    ({"model": "m", "input": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata", "at most 16"),
    ({"model": "m", "input": "x", "store": "yes"}, "store", "true or false"),
    ({"model": "m", "input": "x", "previous_response_id": 5}, "previous_response_id", "a response id"),
    ({"model": "m", "input": "x", "include": "all"}, "include", "a list of strings"),
    ({"model": "m", "input": "x", "stream": "yes"}, "stream", "true or false"),
]


@pytest.mark.parametrize(("body", "param", "words"), BAD, ids=[f"{p}-{i}" for i, (_, p, _) in enumerate(BAD)])
def test_a_bad_field_gets_a_400_naming_it(body: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(ProxyError) as caught:
        parse_responses(json.dumps(body).encode())
    assert caught.value.status == 400 and caught.value.param == param
    assert words in caught.value.message


def test_items_become_one_conversation() -> None:
    req = parse_responses(json.dumps({"model": "m", "instructions": "Be brief.", "input": [
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Pay "},
                                                        {"type": "input_text", "text": "bob."}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Plan."}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Paying.", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "transfer", "arguments": "{\"amount\": 5}"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "ok"}]},
        {"type": "reasoning", "id": "rs_2", "summary": [], "content": [{"type": "reasoning_text", "text": "Done."}]},
        {"role": "assistant", "content": "Sent."}]}).encode())
    assert [m.to_dict() for m in req.chat.messages] == [
        {"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Use tools."},
        {"role": "user", "content": "Pay bob."},
        {"role": "assistant", "content": "Paying.", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "transfer", "arguments": "{\"amount\": 5}"}}], "reasoning": "Plan.", "reasoning_content": "Plan."},
        {"role": "tool", "content": "ok", "tool_call_id": "c1"},
        {"role": "assistant", "content": "Sent.", "reasoning": "Done.", "reasoning_content": "Done."}]


def test_options_become_the_chat_requests() -> None:
    req = parse_responses(json.dumps({
        "model": "m", "input": "x", "max_output_tokens": 9000, "temperature": 0.2, "top_p": 0.5, "stream": True,
        "reasoning": {"effort": "low"}, "tool_choice": {"type": "function", "name": "f"},
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
        "parallel_tool_calls": False, "chat_template_kwargs": {"enable_thinking": False},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
    }).encode(), max_tokens_cap=4096)
    chat = req.chat
    assert (chat.max_tokens, chat.temperature, chat.top_p, chat.stream) == (4096, 0.2, 0.5, True)
    assert chat.tool_fields() == {
        "reasoning_effort": "low", "chat_template_kwargs": {"enable_thinking": False},
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"},
                                                                   "strict": True}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}}, "parallel_tool_calls": False}
    assert req.max_output_tokens == 9000 and req.tool_choice == {"type": "function", "name": "f"}


scalars = st.none() | st.booleans() | st.integers(-3, 5000) | st.floats(allow_nan=False) | st.text(max_size=8) | \
    st.sampled_from(["user", "assistant", "message", "function_call", "function_call_output", "reasoning",
                     "input_text", "output_text", "reasoning_text", "summary_text", "function", "auto", "\ud800"])
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["role", "content", "type", "text", "name", "call_id", "arguments", "output", "summary",
                     "id", "parameters", "effort", "format", "schema"]) | st.text(max_size=5), inner, max_size=4),
    max_leaves=20)
FIELDS = ["model", "input", "instructions", "stream", "max_output_tokens", "temperature", "top_p", "tools",
          "tool_choice", "parallel_tool_calls", "reasoning", "text", "store", "previous_response_id", "metadata",
          "include", "background", "chat_template_kwargs"]
bodies = st.fixed_dictionaries({"model": st.just("m")}, optional={
    k: json_values for k in FIELDS if k != "model"}) | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)


def outcome(raw: bytes) -> None:
    try:
        parse_responses(raw, max_tokens_cap=100)
    except ProxyError as exc:
        assert 400 <= exc.status < 500
        assert set(exc.body()["error"]) == {"message", "type", "param", "code"} and exc.message
        json.dumps(exc.body())


@given(raw=st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_are_a_request_or_a_clean_error(raw: bytes) -> None:
    outcome(raw)


@given(body=bodies)
@settings(max_examples=200, deadline=None)
def test_arbitrary_json_is_a_request_or_a_clean_error(body: dict[str, Any]) -> None:
    outcome(json.dumps(body).encode())


@given(body=bodies | json_values, stream=st.booleans())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_over_http_never_a_500(body: Any, stream: bool) -> None:
    app = app_for(Scripted(["Fine.\n"]), request_timeout=10)
    if stream and isinstance(body, dict):
        body = {**body, "stream": True}

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as http:
            return await http.post("/v1/responses", content=json.dumps(body).encode())

    response = anyio.run(post)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    elif response.headers["content-type"].startswith("text/event-stream"):
        for event in sse(response.content):
            typed(event)


async def test_the_chat_endpoints_limits_apply() -> None:
    async with serving(app_for(Scripted(["Fine.\n"]), max_body_bytes=500_000)) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as http:
        deep = await http.post("/v1/responses", content=b'{"model": "m", "input": ' + b"[" * 200_000
                               + b"]" * 200_000 + b"}")
        big = await http.post("/v1/responses", json={"model": "m", "input": "x" * 600_000})
        not_json = await http.post("/v1/responses", content=b"\xff\xfe{")
        local = await http.post("/v1/responses", json={"model": "m", "input": "x", "previous_response_id": "r"})
        wrong_method = await http.get("/v1/responses")
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"]["message"]
    assert big.status_code == 413
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    assert local.status_code == 400 and "serves a local model" in local.json()["error"]["message"]
    assert wrong_method.status_code == 405


async def test_lone_surrogates_are_written_as_replacement_characters() -> None:
    async with serving(app_for(Scripted(["Odd \ud800 text.\n"]))) as url:
        events = await stream_events(url, {"model": "m", "input": "x"})
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Odd \ufffd text.\n"
    # each time it was written: its delta, the text's, the part's and the item's done events, the final output
    assert events[-1]["response"]["interlock"]["replaced"] == {"surrogates": 5}


class Endless:
    def __init__(self) -> None:
        self.closed = anyio.Event()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        try:
            i = 0
            while True:
                await anyio.sleep(0.01)
                yield Chunk(f"Step {i}.\n")
                i += 1
        finally:
            self.closed.set()


async def test_a_client_that_leaves_mid_stream_cancels_its_run() -> None:
    gen = Endless()
    async with serving(app_for(gen)) as url:
        async with httpx.AsyncClient(timeout=10) as http, http.stream(
                "POST", url + "/v1/responses", json={"model": "s", "input": "go", "stream": True}) as response:
            seen = []
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:])["type"])
                if "response.output_text.delta" in seen:
                    break
        with anyio.fail_after(5):
            await gen.closed.wait()
        async with httpx.AsyncClient(timeout=10) as http:
            page = (await http.get(url + "/metrics")).text
    assert seen[:2] == ["response.created", "response.in_progress"]
    assert 'interlock_proxy_requests_total{endpoint="responses",outcome="disconnected",stream="true"} 1.0' in page


async def test_a_stream_over_the_request_timeout_ends_with_an_error_event() -> None:
    async with serving(app_for(Endless(), request_timeout=0.5)) as url:
        events = await stream_events(url, {"model": "s", "input": "go"})
    assert kinds(events)[-1] == "error"
    assert events[-1]["code"] == "timeout" and "longer than 0.5 s" in events[-1]["message"]


async def test_one_request_is_one_traced_run_with_the_responses_id() -> None:
    recorder = Recorder()
    try:
        app = app_for(Scripted(["It is 4.\n"]), tracer_provider=recorder.provider)
        async with serving(app) as url, httpx.AsyncClient(timeout=30) as http:
            body = (await http.post(url + "/v1/responses", json={"model": "m", "input": "2 + 2?",
                                                                 "max_output_tokens": 50})).json()
        span = recorder.named("chat m")
        got = attrs(span)
        assert got["gen_ai.response.id"] == body["id"] and got["gen_ai.request.max_tokens"] == 50
        assert got["interlock.run_id"] == body["metadata"]["interlock_run_id"]
        assert got["gen_ai.response.finish_reasons"] == ["stop"]
    finally:
        telemetry.disable()
        recorder.provider.shutdown()
