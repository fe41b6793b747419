"""A policy where the tools are called: guarded tools in the Agent loop (a scripted model), the proxy's tool checks
(``interlock proxy --policy``: a refused call is rolled back and the model reads why), and the proxy's
released-calls ledger."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
from interlock import Agent, Chunk, GenerationRequest
from interlock.generators import Scripted
from interlock.monitor.policies import State, load_policy
from interlock.monitor.policies.proxy import ProxyPolicy
from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app, serving
from interlock.monitor.proxy.ledger import CallLedger

from tests.retail_fixture import small_retail_db
from tests.scripted_upstream import ScriptedUpstream, Turn

ROOT = Path(__file__).resolve().parent.parent
policy = load_policy(ROOT / "examples" / "policies" / "tau2_retail.py")


def call(name: str, **arguments: Any) -> str:
    return f'<tool_call>{json.dumps({"name": name, "arguments": arguments})}</tool_call>'


class Turns:
    """A model that plays the next script at each turn (no rollbacks happen in these conversations)."""

    def __init__(self, *scripts: str) -> None:
        self.scripts = list(scripts)
        self.prompts: list[str] = []

    @property
    def capabilities(self) -> Any:
        return Scripted("").capabilities

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.prompts.append(request.prompt)
        async for chunk in Scripted(self.scripts.pop(0)).stream(request):
            yield chunk


def store_tools(db: dict[str, Any], ran: list[str]) -> list[Any]:
    def find_user_id_by_email(email: str) -> str:
        ran.append("find_user_id_by_email")
        return next(u for u, v in db["users"].items() if v["email"] == email)

    def cancel_pending_order(order_id: str, reason: str) -> str:
        ran.append("cancel_pending_order")
        db["orders"][order_id]["status"] = "cancelled"
        return "cancelled"

    return [find_user_id_by_email, cancel_pending_order]


async def test_the_agent_loop_runs_a_tool_only_when_the_policy_allows_it() -> None:
    db = small_retail_db()
    ran: list[str] = []
    session = policy.session(State(small_retail_db()))
    model = Turns(call("cancel_pending_order", order_id="#W0000001", reason="no longer needed"),
                  call("find_user_id_by_email", email="ann.lee@example.com"),
                  call("cancel_pending_order", order_id="#W0000001", reason="no longer needed"),
                  "Shall I cancel order #W0000001 because you no longer need it? (yes/no)",
                  call("cancel_pending_order", order_id="#W0000001", reason="no longer needed"),
                  "Done: order #W0000001 is cancelled.")
    agent = Agent(model, store_tools(db, ran), policy=session, max_turns=6)
    first = await agent.run("I'm ann.lee@example.com; cancel #W0000001, I no longer need it.")
    assert first.stop == "answer" and first.final_text.startswith("Shall I cancel order #W0000001")
    assert first.refusals[1].feedback == ("List the details of this cancel_pending_order to the user and ask them to "
                                          "answer yes or no; call it only after a plain yes.")
    assert [r.reasons[0].message.split(":")[0] for r in first.refusals] == [
        "the user is not authenticated yet", "cancel_pending_order changes the system and needs the user's explicit "
                                             "yes to the proposed action; the user's last message (\"I'm "
                                             "ann.lee@example.com; cancel #W0000001, I no longer need ...\") is not "
                                             "an explicit yes"]
    assert [r.reasons[0].source for r in first.refusals] == ["policy:authenticate_first",
                                                             "policy:explicit_confirmation"]
    tool_messages = [m for m in first.messages if m["role"] == "tool"]
    assert json.loads(tool_messages[0]["content"])["refused"] is True and tool_messages[1]["content"] == "ann_lee_1"
    assert ran == ["find_user_id_by_email"] and db["orders"]["#W0000001"]["status"] == "pending"
    second = await agent.run([*first.messages, {"role": "user", "content": "yes"}])
    assert second.refusals == () and second.final_text == "Done: order #W0000001 is cancelled."
    assert ran == ["find_user_id_by_email", "cancel_pending_order"] and db["orders"]["#W0000001"]["status"] == \
        "cancelled"
    # the session saw the conversation in order, and modelled the cancellation
    assert [(c.name, c.allowed) for c in session.calls] == [
        ("cancel_pending_order", False), ("find_user_id_by_email", True), ("cancel_pending_order", False),
        ("cancel_pending_order", True)]
    assert session.state.view["orders"]["#W0000001"]["status"] == "cancelled"


TOOLS: Any = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
              for n in ("find_user_id_by_email", "cancel_pending_order")]
AUTHENTICATED: Any = [
    {"role": "user", "content": "I'm ann.lee@example.com. Cancel #W0000001, I no longer need it."},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
        "name": "find_user_id_by_email", "arguments": "{\"email\": \"ann.lee@example.com\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "ann_lee_1"}]
CANCEL = ("c2", "cancel_pending_order", {"order_id": "#W0000001", "reason": "no longer needed"})


def store_model(body: dict[str, Any]) -> Turn:
    """Cancels at once, unless told by the policy to ask first (then asks); cancels after a yes."""
    messages = body["messages"]
    told = any("explicit yes" in (m.get("content") or "") for m in messages if m["role"] == "assistant")
    if messages[-1]["role"] == "user" and messages[-1]["content"] == "yes":
        return Turn("", [CANCEL])
    if told:
        return Turn("Shall I cancel order #W0000001 (no longer needed)?")
    return Turn("Cancelling now.", [CANCEL])


async def test_the_proxy_rolls_back_a_call_the_policy_refuses_and_releases_it_once_confirmed(tmp_path: Path) -> None:
    upstream = ScriptedUpstream(store_model)
    ledger = CallLedger()
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), verifiers=[], released_calls=ledger,
                             request_tool_checks=ProxyPolicy(policy, State(small_retail_db())).checks)
        async with serving(create_app(config)) as url, \
                openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0) as client:
            first = await client.chat.completions.create(model="m", messages=AUTHENTICATED, tools=TOOLS)
            assert first.choices[0].message.tool_calls is None
            assert first.choices[0].message.content.endswith("Shall I cancel order #W0000001 (no longer needed)?")
            report = first.model_extra["interlock"]
            assert [(i["source"], i["action"]) for i in report["interventions"]] == [("tool-call", "rollback")]
            assert "policy:explicit_confirmation" in report["interventions"][0]["message"]
            history = [*AUTHENTICATED, {"role": "assistant", "content": first.choices[0].message.content},
                       {"role": "user", "content": "yes"}]
            second = await client.chat.completions.create(model="m", messages=history, tools=TOOLS)
            (released,) = second.choices[0].message.tool_calls
            assert (released.id, released.function.name) == ("c2", "cancel_pending_order")
            assert second.model_extra["interlock"]["interventions"] == []
            async with httpx.AsyncClient() as http:
                claim = url + "/v1/interlock/released-calls/claim"
                got = await http.post(claim, json={"name": "cancel_pending_order", "arguments": CANCEL[2]})
                again = await http.post(claim, json={"name": "cancel_pending_order", "arguments": CANCEL[2]})
                bad = await http.post(claim, content=b"[1]")
    assert got.status_code == 200
    body = got.json()
    assert (body["call_id"], body["outcome"], body["arguments"]) == ("c2", "verified", CANCEL[2])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "assistant", "user"]
    assert again.status_code == 404 and again.json()["claimed"] is False
    assert bad.status_code == 400
    assert len(ledger) == 1


async def test_the_ledger_answers_only_with_the_proxy_s_key_and_forgets_after_its_ttl() -> None:
    now = [0.0]
    ledger = CallLedger(ttl=60, clock=lambda: now[0])
    upstream = ScriptedUpstream(lambda body: Turn("", [("c1", "find_user_id_by_email", {"email": "a@b.c"})]))
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), verifiers=[], released_calls=ledger, api_key="k")
        async with serving(create_app(config)) as url, httpx.AsyncClient() as http:
            answer = await http.post(url + "/v1/chat/completions", headers={"Authorization": "Bearer k"},
                                     json={"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                           "tools": TOOLS})
            assert answer.json()["choices"][0]["message"]["tool_calls"][0]["id"] == "c1"
            claim = {"name": "find_user_id_by_email", "arguments": {"email": "a@b.c"}}
            anonymous = await http.post(url + "/v1/interlock/released-calls/claim", json=claim)
            assert anonymous.status_code == 401
            now[0] = 61.0
            late = await http.post(url + "/v1/interlock/released-calls/claim", json=claim,
                                   headers={"Authorization": "Bearer k"})
            assert late.status_code == 404 and "in the last 60 s" in late.json()["reason"]
        plain = ProxyConfig(UpstreamBackend(up_url + "/v1"), verifiers=[])
        async with serving(create_app(plain)) as url, httpx.AsyncClient() as http:
            off = await http.post(url + "/v1/interlock/released-calls/claim", json=claim)
            assert off.status_code == 404 and "start it with --released-calls" in off.json()["error"]["message"]


def test_the_ledger_keeps_within_its_bounds_and_matches_arguments_as_json() -> None:
    from types import SimpleNamespace

    from interlock.monitor.chunks import ToolCallRequest
    from interlock.monitor.result import Outcome

    def release(ledger: CallLedger, n: int, text: str = "hi") -> None:
        message = SimpleNamespace(to_dict=lambda: {"role": "user", "content": text})
        run: Any = SimpleNamespace(calls=[ToolCallRequest(f"c{n}", "pay", json.dumps({"to": "bob", "n": n}))],
                                   result=SimpleNamespace(run_id=f"r{n}", outcome=Outcome.VERIFIED))
        ledger.watch(run, SimpleNamespace(messages=[message]))  # type: ignore[arg-type]
        ledger.finished(run)

    few = CallLedger(max_calls=2)
    for n in range(3):
        release(few, n)
    assert len(few) == 2 and few.claim("pay", {"to": "bob", "n": 0}) is None
    found = few.claim("pay", '{"n": 1, "to": "bob"}')  # the same JSON value, written differently
    assert found is not None and (found.call_id, found.run_id, found.outcome) == ("c1", "r1", "verified")
    small = CallLedger(max_bytes=300)  # one call of about 200 bytes fits, two do not
    release(small, 0, "x" * 150)
    release(small, 1, "y" * 150)
    assert len(small) == 1 and small.claim("pay", {"to": "bob", "n": 1}) is not None
    unfinished = CallLedger(max_calls=1)
    for _ in range(3):
        unfinished.watch(SimpleNamespace(calls=[]), SimpleNamespace(messages=[]))  # type: ignore[arg-type]
    assert len(unfinished._watched) == 1
