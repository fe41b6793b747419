"""The proxy's request parser under arbitrary input: bytes or JSON of any shape give a request or a clean 4xx
``ProxyError`` (OpenAI-shaped, naming what is wrong), never anything else; over HTTP, never a 500."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock.generators import Scripted
from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, ProxyError, create_app
from interlock.monitor.proxy.models import parse_chat, parse_completion

scalars = st.none() | st.booleans() | st.integers(-3, 5000) | st.floats(allow_nan=False) | st.text(max_size=8) | \
    st.sampled_from(["user", "assistant", "tool", "system", "function", "text", "auto", "none", "\ud800"])
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["role", "content", "type", "text", "name", "function", "arguments", "id", "tool_calls",
                     "tool_call_id", "parameters", "index"]) | st.text(max_size=5), inner, max_size=4),
    max_leaves=20)
FIELDS = ["model", "messages", "prompt", "stream", "n", "max_tokens", "max_completion_tokens", "temperature",
          "top_p", "seed", "stop", "stream_options", "tools", "tool_choice", "parallel_tool_calls", "functions",
          "echo", "continue_final_message"]
bodies = st.fixed_dictionaries({"model": st.just("m")}, optional={
    k: json_values for k in FIELDS if k != "model"}) | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)


def outcome(parse: Any, raw: bytes) -> None:
    try:
        parse(raw, max_tokens_cap=100)
    except ProxyError as exc:
        assert 400 <= exc.status < 500
        body = exc.body()
        assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"]
        json.dumps(body)  # serialisable


@given(raw=st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes(raw: bytes) -> None:
    outcome(parse_chat, raw)
    outcome(parse_completion, raw)


@given(body=bodies)
@settings(max_examples=150, deadline=None)
def test_arbitrary_json(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    outcome(parse_chat, raw)
    outcome(parse_completion, raw)


@given(body=bodies | json_values, path=st.sampled_from(["/v1/chat/completions", "/v1/completions"]))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_over_http_never_a_500(body: Any, path: str) -> None:
    app = create_app(ProxyConfig(GeneratorBackend(Scripted(["Fine.\n"]), model="m"), request_timeout=10))

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as http:
            return await http.post(path, content=json.dumps(body).encode())

    response = anyio.run(post)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
