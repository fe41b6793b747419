"""``interlock mcp`` with the MCP SDK's own client and servers: a real retail MCP server (tests/retail_mcp_server.py)
behind the front, over stdio (the front as a subprocess, as an agent starts it) and streamable HTTP (both served on
loopback), and behind interlock proxy's released-calls ledger. A call that breaks the policy comes back as a tool
error whose text says why; an allowed call comes back with the tool's own result."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest
from interlock.monitor.mcp import MESSAGES_META, PolicyFront, ReasoningCheck, Upstream
from interlock.monitor.policies import State, load_policy
from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app, serving
from interlock.monitor.proxy.ledger import CallLedger
from mcp import Client, StdioServerParameters

from tests.retail_fixture import small_retail_db
from tests.retail_mcp_server import build
from tests.scripted_upstream import ScriptedUpstream, Turn

ROOT = Path(__file__).resolve().parent.parent
RETAIL = ROOT / "examples" / "policies" / "tau2_retail.py"
SERVER = ROOT / "tests" / "retail_mcp_server.py"
CANCEL = {"order_id": "#W0000001", "reason": "no longer needed"}
CONFIRMED = [{"role": "user", "content": "Cancel #W0000001, I no longer need it."},
             {"role": "assistant", "content": "I will cancel order #W0000001 (no longer needed). Confirm?"},
             {"role": "user", "content": "Yes."}]


def text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "db.json"
    path.write_text(json.dumps(small_retail_db()), encoding="utf-8")
    return path


async def walk_through(client: Client, meta: dict[str, Any] | None = None) -> None:
    """The same conversation over any transport: refusals with reasons, results otherwise, effects modelled."""
    meta = meta or {}
    tools = await client.list_tools()
    assert [t.name for t in tools.tools] == ["find_user_id_by_email", "get_user_details", "get_order_details",
                                            "cancel_pending_order", "return_delivered_order_items"]
    early = await client.call_tool("get_order_details", {"order_id": "#W0000001"}, meta=meta)
    assert early.is_error
    assert text(early).startswith("Refused by interlock (tau2-retail, rule authenticate_first): the user is not "
                                  "authenticated yet: before get_order_details, find their user id")
    assert early.structured_content["rule"] == "authenticate_first"
    found = await client.call_tool("find_user_id_by_email", {"email": "ann.lee@example.com"}, meta=meta)
    assert (found.is_error, text(found)) == (False, "ann_lee_1")
    other = await client.call_tool("get_order_details", {"order_id": "#W0000004"}, meta=meta)
    assert text(other) == ("Refused by interlock (tau2-retail, rule own_orders_only): order #W0000004 does not belong "
                           "to the authenticated user ann_lee_1: only the authenticated user's own orders can be used "
                           "in this conversation")
    unconfirmed = await client.call_tool("cancel_pending_order", CANCEL, meta=meta)
    assert unconfirmed.is_error and "rule explicit_confirmation" in text(unconfirmed)
    done = await client.call_tool("cancel_pending_order", CANCEL, meta={**meta, MESSAGES_META: CONFIRMED})
    assert not done.is_error, text(done)
    assert json.loads(text(done))["status"] == "cancelled"  # the tool's own result
    again = await client.call_tool("cancel_pending_order", CANCEL, meta={**meta, MESSAGES_META: CONFIRMED})
    assert text(again) == ("Refused by interlock (tau2-retail, rule cancel_pending_order_needs_pending): order "
                           "#W0000001 is 'cancelled': cancel_pending_order needs an order whose status is 'pending'; "
                           "it was cancelled")
    # an error the tool itself returns passes through, as the tool's result
    returned = await client.call_tool("get_order_details", {"order_id": "#W0000009"}, meta=meta)
    assert (returned.is_error, text(returned)) == (True, "Error executing tool get_order_details: Order not found")


async def test_stdio_front_of_a_stdio_server(db: Path) -> None:
    front = StdioServerParameters(command=sys.executable, args=[
        "-m", "interlock", "mcp", "--policy", str(RETAIL), "--state", str(db), "--",
        sys.executable, str(SERVER), str(db)])
    async with Client(front, read_timeout_seconds=60) as client:
        await walk_through(client)


@pytest.fixture
async def retail_http(db: Path) -> AsyncIterator[str]:
    server = build(json.loads(db.read_text(encoding="utf-8")))
    async with serving(server.streamable_http_app()) as url:
        yield url + "/mcp"


async def test_http_front_of_an_http_server_keeps_conversations_apart(db: Path, retail_http: str) -> None:
    front = PolicyFront(Upstream(url=retail_http), policy=load_policy(RETAIL), state=State.load(db))
    async with serving(front.http_app()) as url, Client(url + "/mcp", read_timeout_seconds=60) as client:
        nameless = await client.call_tool("find_user_id_by_email", {"email": "ann.lee@example.com"})
        assert nameless.is_error and "interlock mcp cannot tell which conversation this call belongs to" in text(
            nameless)
        await walk_through(client, {"interlock/conversation": "one"})
        fresh = await client.call_tool("get_order_details", {"order_id": "#W0000002"},
                                       meta={"interlock/conversation": "two"})
        assert "rule authenticate_first" in text(fresh)
    assert front.refused == 6 and front.forwarded == 3


async def test_concurrent_calls_of_one_conversation_are_checked_one_at_a_time(db: Path, retail_http: str) -> None:
    front = PolicyFront(Upstream(url=retail_http), policy=load_policy(RETAIL), state=State.load(db))
    meta = {"interlock/conversation": "c", MESSAGES_META: CONFIRMED}
    async with serving(front.http_app()) as url, Client(url + "/mcp", read_timeout_seconds=60) as client:
        await client.call_tool("find_user_id_by_email", {"email": "ann.lee@example.com"}, meta=meta)
        results: list[Any] = []

        async def cancel() -> None:
            results.append(await client.call_tool("cancel_pending_order", CANCEL, meta=meta))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(cancel)
    assert sorted(r.is_error for r in results) == [False, True, True, True]
    assert {r.structured_content["rule"] for r in results if r.is_error} == {"cancel_pending_order_needs_pending"}


async def test_a_legacy_client_s_mcp_session_is_its_conversation(db: Path, retail_http: str) -> None:
    front = PolicyFront(Upstream(url=retail_http), policy=load_policy(RETAIL), state=State.load(db))
    async with serving(front.http_app()) as url:
        async with Client(url + "/mcp", mode="legacy") as client:
            await client.call_tool("find_user_id_by_email", {"email": "ann.lee@example.com"})
            seen = await client.call_tool("get_order_details", {"order_id": "#W0000002"})
            assert not seen.is_error and json.loads(text(seen))["status"] == "delivered"
        async with Client(url + "/mcp", mode="legacy") as other:
            fresh = await other.call_tool("get_order_details", {"order_id": "#W0000002"})
            assert "rule authenticate_first" in text(fresh)


async def test_behind_the_proxy_only_released_calls_run_in_their_own_conversation(db: Path,
                                                                                  retail_http: str) -> None:
    def model(body: dict[str, Any]) -> Turn:
        last = body["messages"][-1]
        if last["role"] == "user" and last["content"].startswith("Hi"):
            return Turn("Let me find you.", [("c1", "find_user_id_by_email", {"email": "ann.lee@example.com"})])
        if last["role"] == "user" and last["content"] == "Yes.":
            return Turn("", [("c2", "cancel_pending_order", CANCEL)])
        return Turn("I will cancel order #W0000001 (no longer needed). Confirm?")

    tools: Any = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
                  for n in ("find_user_id_by_email", "cancel_pending_order")]
    upstream = ScriptedUpstream(model)
    ledger = CallLedger()
    async with serving(upstream.app()) as up_url:
        proxy_app = create_app(ProxyConfig(UpstreamBackend(up_url + "/v1"), verifiers=[], released_calls=ledger))
        async with serving(proxy_app) as proxy_url:
            front = PolicyFront(Upstream(url=retail_http), policy=load_policy(RETAIL), state=State.load(db),
                                reasoning=ReasoningCheck(proxy_url))
            async with serving(front.http_app()) as front_url, \
                    Client(front_url + "/mcp", read_timeout_seconds=60) as mcp_client, \
                    openai.AsyncOpenAI(base_url=proxy_url + "/v1", api_key="none", max_retries=0) as llm:
                history: list[Any] = [{"role": "user", "content": "Hi, I'm ann.lee@example.com"}]
                first = (await llm.chat.completions.create(model="m", messages=history, tools=tools)).choices[0]
                (call,) = first.message.tool_calls
                found = await mcp_client.call_tool(call.function.name, json.loads(call.function.arguments))
                assert text(found) == "ann_lee_1"
                replay = await mcp_client.call_tool(call.function.name, json.loads(call.function.arguments))
                assert text(replay).startswith("Refused by interlock (tau2-retail, rule reasoning): interlock proxy "
                                               "did not release a call of find_user_id_by_email with these arguments")
                unreleased = await mcp_client.call_tool("cancel_pending_order", CANCEL)
                assert "rule reasoning" in text(unreleased) and unreleased.structured_content is not None
                history += [first.message.model_dump(exclude_none=True),
                            {"role": "tool", "tool_call_id": call.id, "content": "ann_lee_1"}]
                ask = (await llm.chat.completions.create(model="m", messages=history, tools=tools)).choices[0]
                history += [{"role": "assistant", "content": ask.message.content}, {"role": "user", "content": "Yes."}]
                final = (await llm.chat.completions.create(model="m", messages=history, tools=tools)).choices[0]
                (cancel,) = final.message.tool_calls
                done = await mcp_client.call_tool(cancel.function.name, json.loads(cancel.function.arguments))
                assert not done.is_error and json.loads(text(done))["status"] == "cancelled"
            async with httpx.AsyncClient() as http:
                gone = await http.post(proxy_url + "/v1/interlock/released-calls/claim",
                                       json={"name": "cancel_pending_order", "arguments": CANCEL})
            assert gone.status_code == 404 and gone.json()["claimed"] is False


async def test_the_front_refuses_to_start_without_anything_to_check() -> None:
    from interlock.monitor.errors import ConfigError

    with pytest.raises(ConfigError, match="needs a policy"):
        PolicyFront(Upstream(url="http://127.0.0.1:1/mcp"))
    with pytest.raises(ConfigError, match="either a command"):
        Upstream()
    front = PolicyFront(Upstream(url="http://127.0.0.1:1/mcp"), policy=load_policy(RETAIL))
    with pytest.raises(ConfigError, match=r"cannot connect to the upstream MCP server http://127\.0\.0\.1:1/mcp"):
        async with front.connected():
            pass


def test_the_command_names_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from interlock.monitor.cli.main import main

    for args, message in ((("--policy", str(RETAIL)), "name the upstream MCP server: a command after `--`, or "
                                                      "--upstream-url (not both)"),
                          (("--", "true"), "interlock mcp needs --policy, --proxy, or both"),
                          (("--state", "db.json", "--proxy", "http://x", "--", "true"),
                           "--state is the state a policy reads: give --policy too"),
                          (("--policy", str(tmp_path / "none.py"), "--", "true"), "no policy file at")):
        assert main(["mcp", *args]) == 2
        assert message in capsys.readouterr().err, args


async def test_the_http_command_serves_one_conversation_when_asked(db: Path, retail_http: str) -> None:
    import subprocess

    from interlock.monitor.proxy import free_port

    port = free_port("127.0.0.1")
    process = subprocess.Popen([sys.executable, "-m", "interlock", "mcp", "--policy", str(RETAIL), "--state", str(db),
                                "--http", "--port", str(port), "--single-conversation", "--upstream-url", retail_http],
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        banner = await anyio.to_thread.run_sync(process.stderr.readline)
        assert banner.startswith(f"interlock mcp: http://127.0.0.1:{port}/mcp -> {retail_http}; every call checked: "
                                 f"policy tau2-retail")
        async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=60) as client:
            found = await client.call_tool("find_user_id_by_email", {"email": "ann.lee@example.com"})
            seen = await client.call_tool("get_order_details", {"order_id": "#W0000002"})
        assert text(found) == "ann_lee_1" and json.loads(text(seen))["status"] == "delivered"
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
