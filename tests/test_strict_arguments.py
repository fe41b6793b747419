"""Tool arguments are strict JSON everywhere: ``NaN``, ``Infinity``, ``-Infinity`` (which Python's json reads) and
``1e999`` (which it reads as infinity) never reach a check or a tool, in ``guard_tool``, in the agent loop and in the
proxy's tool checks; each refusal names the argument.

``at_most_100`` below is the check of the README: ``NaN > 100`` is ``False``, so without strict arguments it passes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock import Agent, Fail, guard_tool
from interlock.monitor.agents.arguments import NotStrictJSON, argument_path, loads_strict, non_finite_path
from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app, serving

from tests.scripted_upstream import ScriptedUpstream, Turn
from tests.test_agent import ex

NON_FINITE = [math.nan, math.inf, -math.inf]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                    st.floats(allow_nan=True, allow_infinity=True))
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=4), inner, max_size=4)),
                         max_leaves=20)


def _at(value: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


@given(documents)
@settings(max_examples=300, deadline=None)
def test_strict_reading_refuses_exactly_the_non_finite_numbers_and_says_where(document: Any) -> None:
    text = json.dumps(document)  # Python writes NaN, Infinity and -Infinity
    if not _has_non_finite(document):
        assert loads_strict(text) == json.loads(text)
        assert non_finite_path(document) is None
        return
    with pytest.raises(NotStrictJSON) as caught:
        loads_strict(text)
    value = _at(document, caught.value.path)
    assert isinstance(value, float) and not math.isfinite(value)
    assert caught.value.value == {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(value)]
    assert non_finite_path(document) == caught.value.path


def test_a_number_out_of_a_floats_range_is_refused_and_named() -> None:
    with pytest.raises(NotStrictJSON) as caught:
        loads_strict('{"to": {"accounts": [1, 2, 1e999]}}')
    assert caught.value.path == ("to", "accounts", 2)
    assert caught.value.argument_message() == (
        "argument 'to.accounts[2]' is 1e999, which is not a JSON number (tool arguments are strict JSON: no NaN, "
        "Infinity or numbers out of range)")
    assert loads_strict('{"big": 1' + "0" * 400 + "}")["big"] == 10 ** 400  # big integers are exact, not floats


nested_arguments = st.dictionaries(st.sampled_from(["amount", "to", "memo"]),
                                   st.one_of(st.integers(-10, 1000), st.text(max_size=3),
                                             st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3),
                                             st.floats(allow_nan=True, allow_infinity=True)),
                                   min_size=1)


@given(nested_arguments)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_guard_tool_never_passes_a_non_finite_argument_to_a_check_or_the_tool(
        arguments: dict[str, Any]) -> None:
    seen: list[dict[str, Any]] = []
    ran: list[dict[str, Any]] = []

    def check(args: Mapping[str, Any]) -> None:
        seen.append(dict(args))

    def tool(amount: Any = 0, to: Any = "", memo: Any = "") -> str:
        ran.append({"amount": amount, "to": to, "memo": memo})
        return "done"

    guarded = guard_tool(tool, read_only=True, verifiers=[check])
    outcome = await guarded.call(arguments)
    bad = non_finite_path({k: arguments[k] for k in ("amount", "to", "memo") if k in arguments})  # bound order
    if bad is None:
        assert outcome == "done" and len(seen) == len(ran) == 1
        return
    assert seen == [] and ran == []
    (reason,) = outcome.reasons
    assert (reason.stage, reason.source, reason.argument) == ("arguments", "strict-json", bad[0])
    assert reason.message.startswith(f"argument {argument_path(bad)!r} is ")


async def test_the_agent_loop_never_runs_a_tool_with_nan_or_infinity() -> None:
    bank = ex.Bank()
    model = ex.ScriptedTurns({
        "": '<tool_call>{"name": "transfer", "arguments": {"source": "alice", "target": "bob", "amount": NaN}}'
            '</tool_call>',
        "is NaN": '<tool_call>{"name": "transfer", "arguments": "{\\"source\\": \\"alice\\", \\"target\\": '
                  '\\"bob\\", \\"amount\\": -Infinity}"}</tool_call>',
        "is -Infinity": "I will not transfer.",
    })
    result = await Agent(model, ex.make_tools(bank), verifiers=[ex.sums]).run("Pay bob.")
    errors = [o.error for t in result.turns for o in t.outcomes]
    rule = "which is not a JSON number (tool arguments are strict JSON: no NaN, Infinity or numbers out of range)"
    assert errors == [f"argument 'amount' is NaN, {rule}", f"argument 'amount' is -Infinity, {rule}"]
    assert bank.transfers() == [] and result.final_text == "I will not transfer."


def at_most_100(arguments: Mapping[str, Any]) -> Fail | None:
    CHECKED.append(arguments["amount"])
    if arguments["amount"] > 100:
        return Fail(f"amount {arguments['amount']} is over 100", feedback="A transfer may move at most 100.")
    return None


CHECKED: list[Any] = []
TOOLS: Any = [{"type": "function", "function": {"name": "transfer", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize("written", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_the_proxy_never_releases_a_call_with_a_non_finite_argument(written: str) -> None:
    CHECKED.clear()
    answers = iter([Turn("", [("call_1", "transfer", '{"amount": ' + written + ', "to": "bob"}')]),
                    Turn("", [("call_2", "transfer", {"amount": 50, "to": "bob"})])])
    upstream = ScriptedUpstream(lambda body: next(answers))
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), tool_verifiers={"transfer": [at_most_100]})
        async with serving(create_app(config)) as url, \
                openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0) as client:
            answer = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Pay bob."}], tools=TOOLS)
    calls = answer.choices[0].message.tool_calls or []
    assert [(c.id, json.loads(c.function.arguments)) for c in calls] == [("call_2", {"amount": 50, "to": "bob"})]
    assert CHECKED == [50]  # the check never saw the non-finite number
    report = answer.model_extra["interlock"]  # type: ignore[index]
    (refused,) = report["interventions"]
    assert refused["message"] == (f"the arguments of transfer are not strict JSON: argument 'amount' is {written}, "
                                  "which is not a JSON number (tool arguments are strict JSON: no NaN, Infinity or "
                                  "numbers out of range)")
    assert "Send amount of transfer as a finite number." in upstream.bodies[1]["messages"][-1]["content"]


async def test_the_http_client_sees_the_same_refusal_without_the_sdk() -> None:
    answers = iter([Turn("", [("call_1", "transfer", '{"amount": NaN}')]), Turn("Done.")])
    upstream = ScriptedUpstream(lambda body: next(answers))
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), tool_verifiers={"transfer": [at_most_100]})
        async with serving(create_app(config)) as url, httpx.AsyncClient(timeout=30) as http:
            body = (await http.post(url + "/v1/chat/completions", json={
                "model": "m", "messages": [{"role": "user", "content": "Pay."}], "tools": TOOLS})).json()
    assert "tool_calls" not in body["choices"][0]["message"]
    assert [(c["arguments"], c["released"]) for c in body["interlock"]["tool_calls"]] == [('{"amount": NaN}', False)]
