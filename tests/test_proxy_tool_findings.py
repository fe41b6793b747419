"""The proxy's tool calls and accounting under an attacker's (or a sloppy server's) upstream, through the real
openai client: a call of a tool the request never declared is checked (and refused), a raising check's text never
reaches the client, calls are told apart by position (an upstream that names every call ``call_1``), and ``usage``
counts what the client got."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import pytest
from interlock import Fail, verifier
from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app, serving
from prometheus_client.parser import text_string_to_metric_families

from tests.scripted_upstream import ScriptedUpstream, Turn
from tests.support import check_sums

SECRET = "postgres://bank:hunter2-secret-99@db"
TOOLS: Any = [{"type": "function", "function": {"name": "get_balance", "parameters": {"type": "object"}}},
              {"type": "function", "function": {"name": "transfer", "parameters": {"type": "object"}}}]
PAY: Any = [{"role": "user", "content": "Send bob 500."}]


def at_most_100(arguments: Mapping[str, Any]) -> Fail | None:
    if arguments.get("amount", 0) > 100:
        return Fail(f"amount {arguments['amount']} is over 100", feedback="A transfer may move at most 100.")
    return None


def leaky(arguments: Mapping[str, Any]) -> None:
    raise RuntimeError(f"could not reach {SECRET}")


def told(body: dict[str, Any], words: str) -> bool:
    return any(words in (m.get("content") or "") for m in body["messages"])


@pytest.fixture
def interlock_log() -> Iterator[list[str]]:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("interlock")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@asynccontextmanager
async def proxy_for(upstream: ScriptedUpstream, **config: Any) -> AsyncIterator[tuple[str, openai.AsyncOpenAI]]:
    async with serving(upstream.app()) as up_url:
        app = create_app(ProxyConfig(UpstreamBackend(up_url + "/v1"), **config))
        async with serving(app) as url, openai.AsyncOpenAI(base_url=url + "/v1", api_key="none",
                                                           max_retries=0) as client:
            yield url, client


def insists_on_transfer(body: dict[str, Any]) -> Turn:
    """A model that calls transfer though the request offers no tools, until told there are none."""
    if told(body, "tools are available here"):
        return Turn("I cannot move money from here.")
    return Turn("", [("call_1", "transfer", {"amount": 500, "to": "bob"})])


@pytest.mark.parametrize("stream", [False, True])
async def test_a_call_of_a_tool_the_request_never_declared_is_refused(stream: bool) -> None:
    upstream = ScriptedUpstream(insists_on_transfer)
    async with proxy_for(upstream, tool_verifiers={"transfer": [at_most_100]}) as (_, client):
        if stream:
            chunks = [c async for c in await client.chat.completions.create(model="m", messages=PAY, stream=True)]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            report = chunks[-1].model_extra["interlock"]  # type: ignore[index]
        else:
            answer = await client.chat.completions.create(model="m", messages=PAY)
            assert answer.choices[0].message.tool_calls is None
            text, finish = answer.choices[0].message.content or "", [answer.choices[0].finish_reason]
            report = answer.model_extra["interlock"]  # type: ignore[index]
    assert text == "I cannot move money from here." and finish == ["stop"]
    assert [(i["source"], i["message"]) for i in report["interventions"]] == [
        ("tool-call", "the model called 'transfer', but the request offered no tools")]
    assert [(c["name"], c["released"]) for c in report["tool_calls"]] == [("transfer", False)]
    feedback = upstream.bodies[1]["messages"][-1]["content"]
    assert "tools are available here, so transfer cannot be called; answer in text." in feedback


async def test_tool_choice_none_offers_no_tools_and_a_named_choice_only_its_tool() -> None:
    upstream = ScriptedUpstream(insists_on_transfer)
    async with proxy_for(upstream) as (_, client):
        refused = await client.chat.completions.create(model="m", messages=PAY, tools=TOOLS, tool_choice="none")
    assert refused.choices[0].message.content == "I cannot move money from here."
    assert refused.model_extra["interlock"]["interventions"][0]["message"] == (  # type: ignore[index]
        "the model called 'transfer', but the request offered no tools")

    def asked_for_balance(body: dict[str, Any]) -> Turn:
        if told(body, "There is no tool named transfer"):
            return Turn("", [("call_2", "get_balance", {"account": "alice"})])
        return Turn("", [("call_1", "transfer", {"amount": 5, "to": "bob"})])

    upstream = ScriptedUpstream(asked_for_balance)
    async with proxy_for(upstream) as (_, client):
        named = await client.chat.completions.create(
            model="m", messages=PAY, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_balance"}})
    assert [c.function.name for c in named.choices[0].message.tool_calls or []] == ["get_balance"]
    assert named.model_extra["interlock"]["interventions"][0]["message"] == (  # type: ignore[index]
        "the model called 'transfer', which is not one of the tools offered (get_balance)")


async def test_the_operator_can_check_undeclared_calls_instead_of_refusing_them() -> None:
    def two_transfers(body: dict[str, Any]) -> Turn:
        if told(body, "at most 100"):
            return Turn("", [("call_2", "transfer", {"amount": 50, "to": "bob"})])
        return Turn("", [("call_1", "transfer", {"amount": 500, "to": "bob"})])

    upstream = ScriptedUpstream(two_transfers)
    checked = {"tool_verifiers": {"transfer": [at_most_100]}, "undeclared_tools": "check"}
    async with proxy_for(upstream, **checked) as (_, client):
        answer = await client.chat.completions.create(model="m", messages=PAY)
    calls = answer.choices[0].message.tool_calls or []
    assert [(c.id, json.loads(c.function.arguments)) for c in calls] == [("call_2", {"amount": 50, "to": "bob"})]
    (refused,) = answer.model_extra["interlock"]["interventions"]  # type: ignore[index]
    assert refused["message"].endswith("refused: at-most-100: amount 500 is over 100")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_raising_tool_check_never_shows_its_text_to_the_client_or_the_model(
        stream: bool, interlock_log: list[str]) -> None:
    def gives_up(body: dict[str, Any]) -> Turn:
        if told(body, "failed with an error"):
            return Turn("The transfer could not be checked.")
        return Turn("", [("call_1", "transfer", {"amount": 5, "to": "bob"})])

    upstream = ScriptedUpstream(gives_up)
    async with proxy_for(upstream, tool_verifiers={"transfer": [leaky]}) as (_, client):
        if stream:
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=PAY, tools=TOOLS,
                                                                         stream=True)
            said = (await raw.http_response.aread()).decode()
        else:
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=PAY, tools=TOOLS)
            said = raw.http_response.text
            message = raw.parse().model_extra["interlock"]["interventions"][0]["message"]  # type: ignore[index]
            assert message == ("tool call transfer({\"amount\": 5, \"to\": \"bob\"}) refused: leaky: argument check "
                               "'leaky' failed with an error (details in the log)")
    assert "The transfer could not be checked." in said
    assert "hunter2" not in said and "postgres" not in said
    assert not any("hunter2" in json.dumps(b) for b in upstream.bodies)  # the model never read it either
    assert any("argument check raised" in line and SECRET in line for line in interlock_log)  # the operator did


async def test_calls_are_told_apart_by_position_when_the_upstream_reuses_ids() -> None:
    def reuses_ids(body: dict[str, Any]) -> Turn:
        amount = 50 if told(body, "at most 100") else 500
        return Turn("", [("call_1", "transfer", {"amount": amount, "to": "bob"})])

    upstream = ScriptedUpstream(reuses_ids)
    async with proxy_for(upstream, tool_verifiers={"transfer": [at_most_100]}) as (url, client):
        answers = [await client.chat.completions.create(model="m", messages=PAY, tools=TOOLS) for _ in range(3)]
        async with httpx.AsyncClient(timeout=30) as http:
            page = await http.get(url + "/metrics")
    for answer in answers:
        report = answer.model_extra["interlock"]  # type: ignore[index]
        assert [(c["id"], json.loads(c["arguments"])["amount"], c["released"]) for c in report["tool_calls"]] == [
            ("call_1", 500, False), ("call_1", 50, True)]
        assert [json.loads(c.function.arguments)["amount"] for c in answer.choices[0].message.tool_calls or []] == [50]
    totals = {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(page.text)
              for s in f.samples if s.name == "interlock_proxy_tool_calls_total"}
    assert totals == {(("outcome", "released"), ("tool", "transfer")): 3,
                      (("outcome", "withheld"), ("tool", "transfer")): 3}


sums = verifier(check_sums, name="sums", runs_in="loop")


@pytest.mark.parametrize("stream", [False, True])
async def test_usage_counts_only_what_the_client_received(stream: bool) -> None:
    # the wrong claim ends the answer: its check is due once the upstream's stream, usage included, has ended (a
    # check due mid-stream stops the upstream before its usage arrives, and the prompt's tokens are then unknown)
    upstream = ScriptedUpstream(lambda body: Turn("So 2 + 2 = 5 apples."))
    async with proxy_for(upstream, verifiers=[sums], max_interventions=0) as (_, client):
        if stream:
            chunks = [c async for c in await client.chat.completions.create(
                model="m", messages=PAY, stream=True, stream_options={"include_usage": True})]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            usage = chunks[-1].usage
            report = chunks[-1].model_extra["interlock"]  # type: ignore[index]
        else:
            answer = await client.chat.completions.create(model="m", messages=PAY)
            text, usage = answer.choices[0].message.content, answer.usage
            report = answer.model_extra["interlock"]  # type: ignore[index]
    assert text == "" and report["stop_reason"] == "intervention_limit"
    assert report["tokens"]["kept"] == Turn("So 2 + 2 = 5 apples.").completion_tokens  # generated
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (17, 0)  # received
    assert usage.total_tokens == 17


async def test_usage_of_a_partly_withheld_answer_counts_the_released_part() -> None:
    turn = Turn("Tom has 12 apples.\nSo 12 + 7 = 18 apples.")
    upstream = ScriptedUpstream(lambda body: turn)
    async with proxy_for(upstream, verifiers=[sums], max_interventions=0) as (_, client):
        answer = await client.chat.completions.create(model="m", messages=PAY)
    assert answer.choices[0].message.content == "Tom has 12 apples.\n"
    assert answer.usage is not None and answer.usage.prompt_tokens == 17
    # the released line came as four events (one per word); the upstream's total covers the withheld rest too
    assert answer.usage.completion_tokens == 4 < turn.completion_tokens
