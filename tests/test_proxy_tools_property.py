"""A refused tool call is never visible in any streamed chunk, whatever the check latencies and chunk splits.

The model reasons (split into random chunks), then calls tools in parallel: some calls break the operator's check
(amount over 100). Reasoning checks and the tool check take random times. Through the proxy's HTTP stream, no
event ever holds a refused call's id or arguments, every call released is a clean one, in OpenAI's delta shape,
and the clean calls the model made last all arrive.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Capabilities, Chunk, Fail, GenerationRequest, Step, verifier
from interlock.monitor.chunks import ToolCallRequest, tool_calls_chunk
from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, create_app

from tests.support import check_sums

TOOLS = [{"type": "function", "function": {"name": "transfer", "parameters": {"type": "object"}}}]


class ToolingModel:
    """Writes its reasoning in the given pieces, then its calls; told that a call was refused, it calls again with
    clean amounts only (``retry``)."""

    capabilities = Capabilities(tool_calls=True)

    def __init__(self, pieces: list[str], calls: list[int], retry: list[int]) -> None:
        self.pieces = pieces
        self.calls = calls
        self.retry = retry

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        told = request.prefix.count("at most 100")
        pieces = [] if told else self.pieces
        for piece in pieces:
            await anyio.sleep(0)
            yield Chunk(piece)
        amounts = self.retry if told else self.calls
        calls = [ToolCallRequest(f"call_{told}_{i}_{a}", "transfer", json.dumps({"amount": a}), index=i)
                 for i, a in enumerate(amounts)]
        yield tool_calls_chunk(calls, after=request.prefix + "".join(pieces))


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


@given(cuts=st.lists(st.integers(0, 200), max_size=8),
       calls=st.lists(st.sampled_from([5, 50, 500, 5000]), min_size=1, max_size=3),
       retry=st.lists(st.sampled_from([1, 7, 99]), min_size=1, max_size=2),
       check_delay=st.sampled_from([0.0, 0.001, 0.005]), reasoning_delay=st.sampled_from([0.0, 0.002]),
       hold=st.sampled_from(["step", "end"]))
@settings(max_examples=30, deadline=None)
def test_a_refused_call_never_reaches_a_streaming_client(cuts: list[int], calls: list[int], retry: list[int],
                                                          check_delay: float, reasoning_delay: float,
                                                          hold: Any) -> None:
    reasoning = "I have 120 dollars.\nSo 100 + 20 = 120 in all. I will pay now."

    @verifier(name="sums")
    async def sums(s: Step) -> Any:
        await anyio.sleep(reasoning_delay)
        return check_sums(s)

    async def at_most_100(arguments: Mapping[str, Any]) -> Fail | None:
        await anyio.sleep(check_delay)
        if arguments["amount"] > 100:
            return Fail(f"amount {arguments['amount']} is over 100", feedback="Pay at most 100.")
        return None

    model = ToolingModel(split(reasoning, cuts), calls, retry)
    app = create_app(ProxyConfig(GeneratorBackend(model), verifiers=[sums], hold=hold, keepalive=0.5,
                                 tool_verifiers={"transfer": [at_most_100]}))

    async def play() -> list[str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
            response = await http.post("/v1/chat/completions", json={
                "model": "m", "stream": True, "tools": TOOLS, "messages": [{"role": "user", "content": "Pay."}]})
        return [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]

    events = anyio.run(play)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    *streamed, final = chunks
    refused = [a for a in calls if a > 100]
    streamed_text = json.dumps(streamed)
    for amount in refused:
        assert f"_{amount}" not in streamed_text and f'\\"amount\\": {amount}' not in streamed_text
    released = [call for c in streamed for call in c["choices"][0]["delta"].get("tool_calls", [])]
    assert all(json.loads(c["function"]["arguments"])["amount"] <= 100 for c in released)
    assert [c["index"] for c in released] == list(range(len(released)))
    assert all(set(c) == {"index", "id", "type", "function"} for c in released)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in streamed)
    assert "<tool_call>" not in content and content.startswith("I have 120 dollars.")
    expected_clean = [a for a in calls if a <= 100] if not refused else [
        a for a in calls[:calls.index(refused[0])]] + retry
    assert [json.loads(c["function"]["arguments"])["amount"] for c in released] == expected_clean
    assert final["choices"][0]["finish_reason"] == "tool_calls"
    assert final["interlock"]["passed"] is True
