"""A tool-argument check that raises is refused alike whether it is a function or a ``Verifier`` (a registry name
scanned over the arguments): the refusal names the check and says it failed with an error; what it raised goes to
the operator's log, never to the model or a proxy's client (an exception's text may hold a secret)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from interlock import Step, Unknown, verifier
from interlock.monitor.agents.tools import CheckRaised, ToolRefusal, guard_tool

from tests.scripted_upstream import ScriptedUpstream, Turn
from tests.test_proxy_tool_findings import PAY, SECRET, TOOLS, interlock_log, proxy_for, told

__all__ = ["interlock_log"]  # the fixture, used by name


def _leak(step: Step) -> None:
    raise RuntimeError(f"could not reach {SECRET}")


def _cannot_tell(step: Step) -> Unknown:
    return Unknown(reason="the amount is written in words")


leaky_in_loop = verifier(_leak, name="leaky-verifier", runs_in="loop")
leaky_in_thread = verifier(_leak, name="leaky-verifier", runs_in="thread")
undecided = verifier(_cannot_tell, name="undecided", runs_in="loop")


@pytest.mark.parametrize("check", [leaky_in_loop, leaky_in_thread], ids=["loop", "thread"])
async def test_a_raising_verifier_check_is_refused_by_name_and_its_text_goes_to_the_log(
        check: Any, interlock_log: list[str]) -> None:
    tool = guard_tool(lambda amount: amount, read_only=True, name="transfer", verifiers=[check])
    refused = await tool(amount=5)
    assert isinstance(refused, ToolRefusal)
    assert [(r.stage, r.source, r.message) for r in refused.reasons] == [
        ("error", "leaky-verifier", "argument check 'leaky-verifier' failed with an error (details in the log)")]
    error = refused.reasons[0].error
    assert isinstance(error, CheckRaised) and SECRET in str(error)  # for the program that guards the tool
    assert SECRET not in refused.to_message() and SECRET not in json.dumps(refused.to_dict())
    assert SECRET not in refused.feedback and SECRET not in str(refused)
    assert all(SECRET not in getattr(v, "reason", "") for v in refused.verdicts)
    assert any("argument check raised" in line and SECRET in line and "leaky-verifier" in line
               for line in interlock_log)


async def test_a_verifier_that_cannot_decide_still_says_why() -> None:
    """Only errors are generic: an Unknown the verifier returned is its own words, as before."""
    tool = guard_tool(lambda amount: amount, read_only=True, name="transfer", verifiers=[undecided])
    refused = await tool(amount=5)
    assert isinstance(refused, ToolRefusal)
    assert [(r.stage, r.source, r.message) for r in refused.reasons] == [
        ("arguments", "undecided", "could not decide: the amount is written in words")]


async def test_a_raising_verifier_check_fails_open_only_when_asked() -> None:
    tool = guard_tool(lambda amount: amount, read_only=True, name="transfer", verifiers=[leaky_in_loop],
                      fail_closed=False)
    assert await tool(amount=5) == 5


@pytest.mark.parametrize("stream", [False, True])
async def test_through_the_proxy_a_raising_verifier_check_never_shows_its_text(
        stream: bool, interlock_log: list[str]) -> None:
    def gives_up(body: dict[str, Any]) -> Turn:
        if told(body, "failed with an error"):
            return Turn("The transfer could not be checked.")
        return Turn("", [("call_1", "transfer", {"amount": 5, "to": "bob"})])

    upstream = ScriptedUpstream(gives_up)
    async with proxy_for(upstream, tool_verifiers={"transfer": [leaky_in_thread]}) as (_, client):
        if stream:
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=PAY, tools=TOOLS,
                                                                         stream=True)
            said = (await raw.http_response.aread()).decode()
        else:
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=PAY, tools=TOOLS)
            said = raw.http_response.text
            message = raw.parse().model_extra["interlock"]["interventions"][0]["message"]  # type: ignore[index]
            assert message == ("tool call transfer({\"amount\": 5, \"to\": \"bob\"}) refused: leaky-verifier: "
                               "argument check 'leaky-verifier' failed with an error (details in the log)")
    assert "The transfer could not be checked." in said
    assert "hunter2" not in said and "postgres" not in said
    assert not any("hunter2" in json.dumps(b) for b in upstream.bodies)  # the model never read it either
    assert any("argument check raised" in line and SECRET in line for line in interlock_log)  # the operator did


def _mapping_check(arguments: Mapping[str, Any]) -> None:
    raise RuntimeError(f"could not reach {SECRET}")


async def test_a_function_check_and_a_verifier_check_are_refused_in_the_same_words() -> None:
    function_check = guard_tool(lambda amount: amount, read_only=True, name="transfer", verifiers=[_mapping_check])
    verifier_check = guard_tool(lambda amount: amount, read_only=True, name="transfer", verifiers=[leaky_in_loop])
    one, other = await function_check(amount=5), await verifier_check(amount=5)
    assert isinstance(one, ToolRefusal) and isinstance(other, ToolRefusal)
    assert [(r.stage, r.message.replace(r.source, "X")) for r in one.reasons] == [
        (r.stage, r.message.replace(r.source, "X")) for r in other.reasons] == [
        ("error", "argument check 'X' failed with an error (details in the log)")]
