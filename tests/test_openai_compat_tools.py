"""``OpenAICompatible`` reads tool calls (streamed deltas, or a whole JSON answer) and counts tokens as the server
does: events count one each until the server's ``usage`` corrects the total at the end of the stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from interlock import Chunk, GenerationRequest
from interlock.generators import OpenAICompatible
from interlock.generators.errors import MalformedStream
from interlock.generators.openai_compat.deltas import ToolCallAssembler
from interlock.monitor.chunks import ToolCallRequest
from interlock.monitor.proxy import serving

from tests.scripted_upstream import ScriptedUpstream, Turn


async def collect(gen: OpenAICompatible, request: GenerationRequest) -> list[Chunk]:
    return [c async for c in gen.stream(request)]


@pytest.mark.parametrize("usage", [True, False])
async def test_streamed_tool_calls_come_whole_at_the_end_with_the_servers_token_count(usage: bool) -> None:
    turn = Turn("I will check both.", [("c1", "get_balance", {"account": "a"}), ("c2", "get_balance", {"x": [1, 2]})])
    upstream = ScriptedUpstream(lambda body: turn)
    async with serving(upstream.app()) as url:
        gen = OpenAICompatible(url, "m", include_usage=usage, extra_body={"tools": [{"type": "function"}]})
        chunks = await collect(gen, GenerationRequest("Check."))
    assert [c.text for c in chunks[:-1]] == ["I ", "will ", "check ", "both."]
    last = chunks[-1]
    assert last.tool_calls == (ToolCallRequest("c1", "get_balance", '{"account": "a"}', 0),
                               ToolCallRequest("c2", "get_balance", '{"x": [1, 2]}', 1))
    assert last.text == "\n" + "".join(c.marker() for c in last.tool_calls)
    total = sum(c.n_tokens for c in chunks)
    assert total == (turn.completion_tokens if usage else 4 + 2)  # usage: the server's count; else one per event
    assert gen.prompt_tokens == (17 if usage else None)
    assert ("stream_options" in upstream.bodies[0]) is usage
    assert upstream.bodies[0]["tools"] == [{"type": "function"}]


async def test_usage_alone_corrects_the_count_of_a_text_answer() -> None:
    turn = Turn("one two three four")
    upstream = ScriptedUpstream(lambda body: turn)
    async with serving(upstream.app()) as url:
        chunks = await collect(OpenAICompatible(url, "m"), GenerationRequest("Count."))
    assert "".join(c.text for c in chunks) == "one two three four"
    assert chunks[-1] == Chunk("", tokens=turn.completion_tokens - 4)
    assert sum(c.n_tokens for c in chunks) == turn.completion_tokens


async def test_a_local_token_counter_counts_events_until_usage_comes() -> None:
    upstream = ScriptedUpstream(lambda body: Turn("alpha beta"))
    async with serving(upstream.app()) as url:
        gen = OpenAICompatible(url, "m", include_usage=False, count_tokens=lambda text: len(text))
        chunks = await collect(gen, GenerationRequest("Say."))
    assert [(c.text, c.n_tokens) for c in chunks] == [("alpha ", 6), ("beta", 4)]


def test_the_assembler_joins_pieces_by_index_and_names_what_is_wrong() -> None:
    calls = ToolCallAssembler()
    calls.feed([{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{\"y\""}}])
    calls.feed([{"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}}])
    calls.feed([{"index": 1, "function": {"arguments": ": 2}"}}, {"index": 0, "function": {"arguments": {"x": 1}}}])
    assert calls.calls() == [ToolCallRequest("a", "f", '{"x": 1}', 0), ToolCallRequest("b", "g", '{"y": 2}', 1)]
    for bad, message in [([{"index": "0"}], "index is '0'"), (["x"], "not an object"),
                         ([{"index": 0, "function": []}], r"function is \[\]")]:
        with pytest.raises(MalformedStream, match=message):
            ToolCallAssembler().feed(bad)
    nameless = ToolCallAssembler()
    nameless.feed([{"index": 0, "id": "z", "function": {"arguments": "{}"}}])
    with pytest.raises(MalformedStream, match="tool call 0 has no function name"):
        nameless.calls()


def test_a_marker_is_one_line_and_one_step_whatever_the_arguments() -> None:
    from interlock.monitor.proxy.tools import parse_marker
    from interlock.monitor.steps import step_ends

    args: Any = json.dumps({"note": "Done. Next! <tool_call>x</tool_call>\nok?\t", "n": 1})
    call = ToolCallRequest("id 1", "f", args)
    marker = call.marker()
    assert marker.count("\n") == 1 and marker.endswith("</tool_call>\n")
    assert step_ends(marker, 0) == [len(marker)]
    assert parse_marker(marker) == ToolCallRequest("id 1", "f", args)
