"""Tool calls through the proxy: the real OpenAI Agents SDK and the plain openai client against a scripted upstream.

A call whose arguments break an operator's check never reaches the client (so it never executes): the monitor rolls
the turn back with feedback, the upstream sees the feedback and calls again; a clean call goes through whole, in
OpenAI's shapes (streamed deltas with index, id, name and arguments; ``message.tool_calls``).
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

from tests.scripted_upstream import ScriptedUpstream, Turn

TOOLS: Any = [
    {"type": "function", "function": {"name": "get_balance", "description": "The balance of an account",
                                      "parameters": {"type": "object", "properties": {"account": {"type": "string"}},
                                                     "required": ["account"]}}},
    {"type": "function", "function": {"name": "transfer", "description": "Send money",
                                      "parameters": {"type": "object", "properties": {"amount": {"type": "integer"},
                                                                                      "to": {"type": "string"}},
                                                     "required": ["amount", "to"]}}},
]


def at_most_100(arguments: Mapping[str, Any]) -> Fail | None:
    if arguments.get("amount", 0) > 100:
        return Fail(f"amount {arguments['amount']} is over the limit of 100",
                    feedback="A transfer may move at most 100.")
    return None


def bank(body: dict[str, Any]) -> Turn:
    """get_balance first; then a transfer of 5000 (refused), or of 100 once told; then a final answer."""
    messages = body["messages"]
    tool_results = [m for m in messages if m["role"] == "tool"]
    told = any(m["role"] == "assistant" and "at most 100" in (m.get("content") or "") for m in messages)
    if not tool_results:
        return Turn("Let me look at the balance.", [("call_bal", "get_balance", {"account": "alice"})])
    if len(tool_results) == 1:  # told: go on after the feedback, as a model continuing its answer does
        amount = 100 if told else 5000
        return Turn("" if told else "The balance is 120.",
                    [(f"call_tr{amount}", "transfer", {"amount": amount, "to": "bob"})])
    return Turn("Sent 100 to bob.")


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[str, ScriptedUpstream]]:
    upstream = ScriptedUpstream(bank)
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), tool_verifiers={"transfer": [at_most_100]})
        async with serving(create_app(config)) as url:
            yield url, upstream


async def test_agents_sdk_agent_never_runs_a_refused_call(proxy: tuple[str, ScriptedUpstream]) -> None:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    url, upstream = proxy
    executed: list[tuple[str, Any]] = []

    @function_tool
    def get_balance(account: str) -> str:
        """The balance of an account."""
        executed.append(("get_balance", account))
        return "120"

    @function_tool
    def transfer(amount: int, to: str) -> str:
        """Send money."""
        executed.append(("transfer", (amount, to)))
        return "done"

    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
    agent = Agent(name="bank", instructions="Move money carefully.", tools=[get_balance, transfer],
                  model=OpenAIChatCompletionsModel(model="scripted-up", openai_client=client))
    result = await Runner.run(agent, "Send bob what you can.")
    await client.close()
    assert executed == [("get_balance", "alice"), ("transfer", (100, "bob"))]
    assert result.final_output == "Sent 100 to bob."
    # the upstream was asked again after the refusal, with the feedback as the answer so far
    retried = [b for b in upstream.bodies if any("at most 100" in (m.get("content") or "") for m in b["messages"])]
    assert len(retried) == 1
    assert {t["function"]["name"] for t in upstream.bodies[0]["tools"]} == {"get_balance", "transfer"}


async def test_openai_client_whole_answer_with_tool_calls(proxy: tuple[str, ScriptedUpstream]) -> None:
    url, upstream = proxy
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0) as client:
        first = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Pay bob."}],
                                                     tools=TOOLS, tool_choice="auto", parallel_tool_calls=False)
        call = first.choices[0].message.tool_calls[0]
        assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
            "call_bal", "get_balance", {"account": "alice"})
        assert first.choices[0].finish_reason == "tool_calls"
        assert first.choices[0].message.content == "Let me look at the balance."
        # tokens are the upstream's tokens, not events: 2 per word + 5 per call
        assert first.usage.prompt_tokens == 17
        assert first.usage.completion_tokens == Turn("Let me look at the balance.", [("a", "b", {})]).completion_tokens
        history: Any = [{"role": "user", "content": "Pay bob."}, first.choices[0].message.model_dump(),
                        {"role": "tool", "tool_call_id": "call_bal", "content": "120"}]
        second = await client.chat.completions.create(model="m", messages=history, tools=TOOLS)
    calls = second.choices[0].message.tool_calls
    assert [(c.id, json.loads(c.function.arguments)) for c in calls] == [("call_tr100", {"amount": 100, "to": "bob"})]
    report = second.model_extra["interlock"]
    assert [(i["source"], i["action"]) for i in report["interventions"]] == [("tool-call", "rollback")]
    assert "amount 5000 is over the limit of 100" in report["interventions"][0]["message"]
    assert [(c["id"], c["released"]) for c in report["tool_calls"]] == [("call_tr5000", False), ("call_tr100", True)]
    assert "5000" not in second.choices[0].message.content
    # the tool message and the assistant's calls reached the upstream as sent
    sent = upstream.bodies[1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_bal" and sent[2] == {"role": "tool", "content": "120",
                                                                        "tool_call_id": "call_bal"}
    assert upstream.bodies[0]["tool_choice"] == "auto" and upstream.bodies[0]["parallel_tool_calls"] is False


async def test_openai_client_streams_a_checked_call_whole(proxy: tuple[str, ScriptedUpstream]) -> None:
    url, _ = proxy
    history: Any = [{"role": "user", "content": "Pay bob."},
                    {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "call_bal", "type": "function",
                         "function": {"name": "get_balance", "arguments": "{\"account\": \"alice\"}"}}]},
                    {"role": "tool", "tool_call_id": "call_bal", "content": "120"}]
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0) as client:
        stream = await client.chat.completions.create(model="m", messages=history, tools=TOOLS, stream=True,
                                                      stream_options={"include_usage": True})
        chunks = [c async for c in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    call_deltas = [d.tool_calls for d in deltas if d.tool_calls]
    assert len(call_deltas) == 1  # released whole, in one chunk
    (call,) = call_deltas[0]
    assert (call.index, call.id, call.type, call.function.name) == (0, "call_tr100", "function", "transfer")
    assert json.loads(call.function.arguments) == {"amount": 100, "to": "bob"}
    # the line end before the refused call stays as text; the feedback is not shown
    assert "".join(d.content or "" for d in deltas) == "The balance is 120.\n"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["tool_calls"]
    assert not any("5000" in c.model_dump_json() for c in chunks[:-2])  # never before the report
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 17


async def test_the_intervention_limit_ends_the_answer_without_the_call() -> None:
    def greedy(body: dict[str, Any]) -> Turn:
        return Turn("I will move it all.", [("call_x", "transfer", {"amount": 9999, "to": "eve"})])

    upstream = ScriptedUpstream(greedy)
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), tool_verifiers={"*": [at_most_100]},
                             max_interventions=2)
        async with serving(create_app(config)) as url, httpx.AsyncClient(timeout=30) as http:
            response = await http.post(url + "/v1/chat/completions", json={
                "model": "m", "messages": [{"role": "user", "content": "Move everything."}], "tools": TOOLS})
    body = response.json()
    choice = body["choices"][0]
    assert response.status_code == 200
    assert "tool_calls" not in choice["message"] and "9999" not in json.dumps(choice)
    assert choice["finish_reason"] == "content_filter"
    report = body["interlock"]
    assert report["stop_reason"] == "intervention_limit" and report["passed"] is False
    assert all(c["released"] is False for c in report["tool_calls"])
    assert len(upstream.bodies) == 3  # the first answer and two retries, each refused


async def test_malformed_and_unknown_tool_calls_are_sent_back_to_the_model() -> None:
    answers = iter([Turn("", [("c1", "transfer", "{\"amount\": " + "[" * 5000)]),
                    Turn("", [("c1b", "transfer", "amount=5")]),
                    Turn("", [("c2", "rm_rf", {})]),
                    Turn("", [("c3", "transfer", {"amount": 1, "to": "bob"})])])
    upstream = ScriptedUpstream(lambda body: next(answers))
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"))
        async with serving(create_app(config)) as url, httpx.AsyncClient(timeout=30) as http:
            response = await http.post(url + "/v1/chat/completions", json={
                "model": "m", "messages": [{"role": "user", "content": "Pay."}], "tools": TOOLS})
    body = response.json()
    assert [c["id"] for c in body["choices"][0]["message"]["tool_calls"]] == ["c3"]
    messages = [i["message"] for i in body["interlock"]["interventions"]]
    assert messages[0] == "the arguments of transfer are nested too deeply"
    assert messages[1].startswith("the arguments of transfer are not valid JSON (Expecting value")
    assert messages[2] == "the model called 'rm_rf', which is not one of the tools offered (get_balance, transfer)"
    feedback = upstream.bodies[3]["messages"][-1]["content"]
    assert "Wait, there is no tool named rm_rf; the tools are: get_balance, transfer." in feedback
