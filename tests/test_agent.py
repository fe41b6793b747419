"""The agent adapter: monitored turns, tool calls through guard_tool, and a SQLite write that a violation never
reaches (examples/agent_sqlite.py driven by scripted models, so every assertion is exact)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Agent, Capabilities, Chunk, GenerationRequest, StopAt, guard_tool
from interlock.monitor.agents.agent import MalformedToolCall, parse_tool_calls, tools_prompt
from interlock.monitor.agents.tools import ToolCall

ROOT = Path(__file__).resolve().parent.parent


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("agent_sqlite_example", ROOT / "examples" / "agent_sqlite.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ex = _load_example()
call = ex.call


class Unresumable:
    """Wraps a model so that the monitor cannot roll it back (like a plain SDK stream): violations stand."""

    capabilities = Capabilities(resumable=False)

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        async for chunk in self.inner.stream(request):
            yield chunk


def agent_for(model: Any, bank: Any, **options: Any) -> Agent:
    return Agent(model, ex.make_tools(bank), verifiers=[ex.sums], **options)


async def test_demo_rolls_back_refuses_and_writes_only_the_right_transfer() -> None:
    bank = ex.Bank()
    kinds: list[str] = []
    result = await agent_for(ex.ScriptedTurns(ex.DEMO_TURNS), bank).run(ex.TASK,
                                                                        on_event=lambda e: kinds.append(e.kind))
    assert bank.transfers() == [("alice", "bob", 45)]
    assert {a: bank.get_balance(a) for a in bank.list_accounts()} == {"alice": 5, "bob": 55, "carol": 0}
    assert result.stop == "answer" and len(result.turns) == 4
    assert result.final_text == "Done: Alice paid Bob 45 dollars and has 5 dollars left."
    assert [m["role"] for m in result.messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant",
                                                    "tool", "assistant"]
    second = result.turns[1]
    assert [(i.action.value, i.message) for i in second.result.interventions] == [
        ("rollback", "30 + 15 is 45, not 55")]
    assert "amount\": 55" not in second.text  # the wrong call was rolled back before it was written
    assert [r.tool for r in result.refusals] == ["transfer"]
    refusal = result.refusals[0]
    assert [(r.stage, r.source, r.message) for r in refusal.reasons] == [
        ("arguments", "check-transfer", "alice has 50, less than 60")]
    assert json.loads(result.messages[4]["content"])["feedback"] == "alice has only 50 dollars; you cannot send 60."
    assert kinds.count("intervention") == 1 and kinds.count("end") == 4


async def test_a_standing_violation_keeps_the_write_out_of_the_database() -> None:
    bank = ex.Bank()
    model = Unresumable(ex.ScriptedTurns({
        "": "She owes Bob 3 + 4 = 8 dollars.\n" + call("transfer", source="alice", target="bob", amount=8),
        '"refused": true': "Right, 3 + 4 = 7.\n" + call("transfer", source="alice", target="bob", amount=7),
        '"ok": true': "Paid.",
    }))
    result = await agent_for(model, bank).run("Pay Bob.")
    first = result.turns[0]
    assert first.result.interventions[0].applied is False  # the monitor could not roll this model back
    assert [o.refusal is not None for o in first.outcomes] == [True]
    refusal = first.outcomes[0].refusal
    assert refusal is not None
    assert [(r.stage, r.source, r.message) for r in refusal.reasons] == [("reasoning", "sums", "3 + 4 is 7, not 8")]
    assert json.loads(first.messages[1]["content"]) == {
        "refused": True, "tool": "transfer", "arguments": {"source": "alice", "target": "bob", "amount": 8},
        "reasons": ["3 + 4 is 7, not 8"], "feedback": "3 + 4 is 7, not 8."}
    assert bank.transfers() == [("alice", "bob", 7)]
    assert result.stop == "answer" and result.final_text == "Paid."


async def test_read_only_tools_run_despite_a_standing_violation() -> None:
    bank = ex.Bank()
    model = Unresumable(ex.ScriptedTurns({
        "": "So 2 + 2 = 5.\n" + call("get_balance", account="bob"),
        "Tool (get_balance)": "Bob has 10.",
    }))
    result = await agent_for(model, bank).run("How much has Bob?")
    assert [(o.content, o.ran) for o in result.turns[0].outcomes] == [("10", True)]
    assert result.final_text == "Bob has 10."


async def test_bad_calls_come_back_as_errors_the_model_can_read() -> None:
    bank = ex.Bank()

    def broken() -> None:
        raise RuntimeError("disk full")

    model = ex.ScriptedTurns({
        "": "<tool_call>{not json}</tool_call>",
        "could not read": call("launch_rockets", count=3),
        "there is no tool": call("broken"),
        "broken failed": "I give up.",
    })
    agent = Agent(model, [*ex.make_tools(bank), guard_tool(broken, read_only=True)], verifiers=[ex.sums])
    result = await agent.run("Do something.")
    errors = [o.error for t in result.turns for o in t.outcomes]
    assert errors == [
        "not valid JSON: Expecting property name enclosed in double quotes at character 1",
        "there is no tool named 'launch_rockets'; the tools are: broken, get_balance, list_accounts, transfer",
        "broken failed: RuntimeError: disk full",
    ]
    assert result.final_text == "I give up." and bank.transfers() == []


async def test_max_turns_ends_a_looping_agent() -> None:
    bank = ex.Bank()
    model = ex.ScriptedTurns({"": call("list_accounts")})
    result = await agent_for(model, bank, max_turns=3).run("Loop.")
    assert result.stop == "max_turns" and len(result.turns) == 3 and result.final_text == ""
    assert [o.value for t in result.turns for o in t.outcomes] == [["alice", "bob", "carol"]] * 3


def test_tools_prompt_lists_signatures_and_read_only_tools() -> None:
    text = tools_prompt(ex.make_tools(ex.Bank()))
    assert "- list_accounts() (read-only): The names of all accounts." in text
    assert "- get_balance(account: str) (read-only): The balance of one account, in dollars." in text
    assert "- transfer(source: str, target: str, amount: int): Move money from one account to another." in text
    assert '<tool_call>{"name": "TOOL_NAME", "arguments": {"ARG": VALUE}}</tool_call>' in text


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=3), max_leaves=6)


@given(name=st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
       arguments=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4),
       before=st.text(alphabet=st.characters(blacklist_characters="<"), max_size=30),
       closed=st.booleans())
@settings(max_examples=200, deadline=None)
def test_parse_tool_calls_round_trips(name: str, arguments: dict[str, Any], before: str, closed: bool) -> None:
    body = json.dumps({"name": name, "arguments": arguments})
    text = f"{before}<tool_call>{body}" + ("</tool_call>" if closed else "")
    assert parse_tool_calls(text) == [ToolCall(name, arguments, id="call_0")]


def test_parse_tool_calls_variants() -> None:
    text = ('<tool_call>[{"name": "a", "parameters": {"x": 1}}, {"name": "c", "arguments": {}}]</tool_call> then '
            '<tool_call>{"name": "b", "arguments": "{\\"y\\": 2}"}</tool_call>'
            '<tool_call>{"arguments": {}}</tool_call><tool_call>[]</tool_call>')
    calls = parse_tool_calls(text)
    assert calls[:3] == [ToolCall("a", {"x": 1}, id="call_0"), ToolCall("c", {}, id="call_1"),
                         ToolCall("b", {"y": 2}, id="call_2")]
    assert isinstance(calls[3], MalformedToolCall) and calls[3].error.startswith("expected an object")
    assert len(calls) == 4
    assert parse_tool_calls("no calls here") == []


class Pieces:
    capabilities = Capabilities()

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.requests: list[GenerationRequest] = []

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        for p in self.pieces:
            yield Chunk(p, token_ids=(1,) * max(1, len(p)))


async def _play(gen: StopAt) -> str:
    return "".join([c.text async for c in gen.stream(GenerationRequest("p"))])


@given(text=st.text(alphabet="ab<>/t", max_size=40), cuts=st.lists(st.integers(0, 40), max_size=6),
       include=st.booleans())
@settings(max_examples=300, deadline=None)
def test_stop_at_is_independent_of_chunking(text: str, cuts: list[int], include: bool) -> None:
    import anyio

    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    stops = ["</t>", "ab>"]
    hits = [(text.find(s), s) for s in stops if s in text]
    if hits:
        at, s = min(hits)
        expected = text[: at + len(s)] if include else text[:at]
    else:
        expected = text
    wrapper = StopAt(Pieces(pieces), stops, include=include)
    assert anyio.run(_play, wrapper) == expected
    assert wrapper.stopped is bool(hits)


async def test_stop_at_passes_untouched_chunks_and_the_stop_strings_on() -> None:
    inner = Pieces(["Hello", " world", " </tool", "_call> never"])
    wrapper = StopAt(inner, ["</tool_call>"], include=True)
    chunks = [c async for c in wrapper.stream(GenerationRequest("p", stop=("END",)))]
    assert [c.text for c in chunks] == ["Hello", " world", " ", "</tool_call>"]  # only "</tool" was held back
    assert chunks[0].token_ids == (1,) * 5  # untouched chunks keep their token data
    assert inner.requests[0].stop == ("END", "</tool_call>")


def test_agent_configuration_errors_are_named() -> None:
    from interlock import ConfigError

    with pytest.raises(ConfigError, match="max_turns"):
        Agent(ex.ScriptedTurns({"": "x"}), max_turns=0)
    with pytest.raises(ConfigError, match="two tools are named 'f'"):
        Agent(ex.ScriptedTurns({"": "x"}), [guard_tool(lambda: 1, name="f"), guard_tool(lambda: 2, name="f")])
