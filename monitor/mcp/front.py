"""``interlock mcp``: an MCP server in front of another, that checks every ``tools/call`` before forwarding it.

The front lists the upstream server's tools as they are. For each call it

1. finds the conversation the call belongs to: with a proxy (:class:`~interlock.monitor.mcp.reasoning.
   ReasoningCheck`), the conversation of the model request that released the call, which also shows that the
   reasoning behind it passed the proxy's checks (a call the proxy did not release is refused); without one, the
   front's own record of the conversation, found by the ``_meta`` key ``interlock/conversation``, the header
   ``x-interlock-conversation``, the legacy ``mcp-session-id``, or the one stdio connection; the user's messages
   come from the ``_meta`` key ``interlock/messages`` (a list of ``{"role", "content"}``) when the client sends
   them;
2. checks the call against the policy (:class:`~interlock.monitor.policies.PolicySession`), in that
   conversation, against the state with the effects of the calls allowed before it;
3. forwards an allowed call and records its result (an error result records no effect), or answers a refused
   call with an MCP tool error (``isError: true``) whose text gives the reason, so the agent can recover.

Calls of one conversation are checked and run one at a time, in the order they arrive.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from interlock.monitor.agents.tools import ToolCall
from interlock.monitor.errors import ConfigError
from interlock.monitor.logs import get_logger
from interlock.monitor.mcp.reasoning import Claimed, ReasoningCheck
from interlock.monitor.policies.conversation import NO_RESULT
from interlock.monitor.policies.errors import ConversationError
from interlock.monitor.policies.outcomes import Decision
from interlock.monitor.policies.policy import Policy
from interlock.monitor.policies.proxy import conversation_session
from interlock.monitor.policies.session import PolicySession
from interlock.monitor.policies.state import State, StateSource
from interlock.monitor.textout import scrub

if TYPE_CHECKING:
    from mcp import Client
    from mcp.server.lowlevel import Server

__all__ = ["CONVERSATION_HEADER", "CONVERSATION_META", "MESSAGES_META", "PolicyFront", "Upstream"]

CONVERSATION_META = "interlock/conversation"
MESSAGES_META = "interlock/messages"
CONVERSATION_HEADER = "x-interlock-conversation"
MAX_MESSAGES = 10_000

_log = get_logger(component="mcp")


@dataclass(frozen=True)
class Upstream:
    """The MCP server behind the front: a command to start (stdio) or a streamable-HTTP URL."""

    command: tuple[str, ...] = ()
    url: str | None = None
    env: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if bool(self.command) == bool(self.url):
            raise ConfigError("the upstream MCP server is either a command (stdio) or a URL (streamable HTTP)")

    def describe(self) -> str:
        return self.url if self.url else " ".join(self.command)

    def client(self, *, timeout: float) -> Client:
        from mcp import Client, StdioServerParameters

        if self.url:
            return Client(self.url, read_timeout_seconds=timeout, cache=None)
        params = StdioServerParameters(command=self.command[0], args=list(self.command[1:]),
                                       env=dict(self.env) if self.env is not None else None)
        return Client(params, read_timeout_seconds=timeout, cache=None)


@dataclass
class _Conversation:
    session: PolicySession
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    used: float = field(default_factory=time.monotonic)


def _messages(meta: Mapping[str, Any] | None) -> list[dict[str, Any]] | str | None:
    """The conversation messages a client sent in ``_meta`` (None: none sent; a string: why they are unusable)."""
    if not meta or MESSAGES_META not in meta:
        return None
    found = meta[MESSAGES_META]
    if not isinstance(found, list) or len(found) > MAX_MESSAGES or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in found):
        return (f"the _meta key {MESSAGES_META!r} must be a list of at most {MAX_MESSAGES} "
                f"{{\"role\": ..., \"content\": ...}} objects")
    return found


def _value(result: Any) -> Any:
    """What a tool returned, as the policy records it: its structured content, else its text."""
    if result.structured_content is not None:
        return result.structured_content
    texts = [getattr(block, "text", None) for block in result.content]
    text = "".join(t for t in texts if isinstance(t, str))
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


class PolicyFront:
    """The front: an MCP server (stdio or streamable HTTP) that checks calls, then forwards them upstream.

    - ``policy``/``state``: the policy every call must pass, and the state it reads (a file's, or live).
    - ``reasoning``: ask ``interlock proxy`` that the call came from checked reasoning (and take its conversation).
    - ``single_conversation``: treat every call without a conversation key as one conversation (one agent);
      otherwise an HTTP call without a key is refused, so two agents never share a conversation.
    - ``call_timeout``: seconds an upstream call may take.
    """

    def __init__(self, upstream: Upstream, *, policy: Policy | None = None, state: StateSource | None = None,
                 reasoning: ReasoningCheck | None = None, single_conversation: bool = False,
                 call_timeout: float = 300.0, max_conversations: int = 1000,
                 idle_timeout: float = 3600.0, name: str = "interlock-mcp") -> None:
        if policy is None and reasoning is None:
            raise ConfigError("interlock mcp needs a policy (--policy), a proxy to ask (--proxy), or both")
        if policy is not None:
            policy.validate()
        self.upstream = upstream
        self.policy = policy
        self.state: StateSource = state if state is not None else State({})
        self.reasoning = reasoning
        self.single_conversation = single_conversation
        self.call_timeout = call_timeout
        self.max_conversations = max_conversations
        self.idle_timeout = idle_timeout
        self.name = name
        self.conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self.client: Client | None = None
        self.refused = 0
        self.forwarded = 0

    # -- connection -----------------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[PolicyFront]:
        """Connect to the upstream server (and open the proxy client) for the block."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                self.client = await stack.enter_async_context(self.upstream.client(timeout=self.call_timeout))
            except Exception as exc:
                raise ConfigError(f"cannot connect to the upstream MCP server {self.upstream.describe()}: "
                                  f"{type(exc).__name__}: {exc}") from None
            if self.reasoning is not None:
                await stack.enter_async_context(self.reasoning)
            try:
                yield self
            finally:
                self.client = None

    def server(self) -> Server:
        """The MCP server (the SDK's low-level ``Server``) with the front's handlers."""
        from mcp.server.lowlevel import Server

        return Server(self.name, on_list_tools=self._list_tools, on_call_tool=self._call_tool,
                      instructions="Tool calls are checked against a policy before they run; a refused call "
                                   "answers with the reason.")

    async def serve_stdio(self) -> None:
        """Serve on this process's stdin and stdout until the client closes them."""
        from mcp.server.stdio import stdio_server

        server = self.server()
        async with self.connected(), stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    def http_app(self, *, path: str = "/mcp", host: str = "127.0.0.1", connect: bool = True) -> Any:
        """The front as a Starlette app serving streamable HTTP at ``path``. ``connect``: connect upstream when
        the app starts (``False`` when the caller holds :meth:`connected` around serving it)."""
        app = self.server().streamable_http_app(streamable_http_path=path, host=host)
        if not connect:
            return app
        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(application: Any) -> AsyncIterator[None]:
            async with self.connected(), inner(application):
                yield

        app.router.lifespan_context = lifespan
        return app

    # -- handlers -------------------------------------------------------------------------------------------------
    async def _list_tools(self, ctx: Any, params: Any) -> Any:
        import mcp_types as types

        client = self._client()
        page = await client.list_tools(cursor=getattr(params, "cursor", None))
        return types.ListToolsResult(tools=page.tools, next_cursor=page.next_cursor)

    def _client(self) -> Client:
        if self.client is None:
            raise RuntimeError("the front is not connected to its upstream server")
        return self.client

    async def _call_tool(self, ctx: Any, params: Any) -> Any:
        name = params.name
        arguments = dict(params.arguments or {})
        call = ToolCall(name, arguments)
        meta = ctx.meta if isinstance(ctx.meta, Mapping) else None
        if self.reasoning is not None:
            claimed = await self.reasoning.claim(name, arguments)
            if isinstance(claimed, str):
                return self._refusal(call, "reasoning", claimed)
            try:
                conversation = await self._from_proxy(claimed)
            except ConversationError as exc:
                return self._refusal(call, "conversation", f"the conversation the proxy gave cannot be read: {exc}")
        else:
            found = self._conversation(ctx, meta)
            if isinstance(found, str):
                return self._refusal(call, "conversation", found)
            conversation = found
        messages = _messages(meta)
        if isinstance(messages, str):
            return self._refusal(call, "conversation", messages)
        async with conversation.lock:
            conversation.used = time.monotonic()
            session = conversation.session
            if messages is not None:
                session.observe(messages)
            decision = await session.check(call) if self.policy is not None else Decision(call)
            if not decision.allowed:
                session.record(call, decision)
                return self._refusal(call, decision.rule or "policy", decision.reason)
            return await self._forward(session, call, decision)

    async def _forward(self, session: PolicySession, call: ToolCall, decision: Decision) -> Any:
        import mcp_types as types

        client = self._client()
        try:
            with anyio.fail_after(self.call_timeout):
                result = await client.call_tool(call.name, dict(call.arguments),
                                                read_timeout_seconds=self.call_timeout)
        except Exception as exc:  # the upstream's failure: the call did not run (as far as the front can tell)
            detail = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            session.record(call, decision, error=f"the upstream server failed: {detail}")
            _log.warning("upstream call failed", tool=call.name, error=detail)
            return types.CallToolResult(content=[types.TextContent(type="text", text=f"{call.name} failed upstream: "
                                                                                     f"{detail}")], is_error=True)
        value = _value(result)
        session.record(call, decision, value if value is not None else NO_RESULT,
                       error=str(value) if result.is_error else None)
        self.forwarded += 1
        return types.CallToolResult(content=result.content, structured_content=result.structured_content,
                                    is_error=result.is_error)

    def _refusal(self, call: ToolCall, rule: str, reason: str) -> Any:
        import mcp_types as types

        self.refused += 1
        policy = self.policy.name if self.policy is not None else "interlock"
        text, _ = scrub(f"Refused by interlock ({policy}, rule {rule}): {reason}")  # lone surrogates cannot be sent
        reason, _ = scrub(reason)
        _log.info("tool call refused", tool=call.name, rule=rule, reason=reason)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structured_content={"refused": True, "tool": call.name, "rule": rule,
                                                        "reason": reason},
                                    is_error=True)

    # -- conversations --------------------------------------------------------------------------------------------
    async def _from_proxy(self, claimed: Claimed) -> _Conversation:
        """A conversation rebuilt from the request that released the call (not kept: the proxy holds it)."""
        if self.policy is None:
            return _Conversation(PolicySession(Policy("none", unknown_tools="allow"), State({})))
        session = await conversation_session(self.policy, self.state, claimed.messages)
        return _Conversation(session)

    def _key(self, ctx: Any, meta: Mapping[str, Any] | None) -> str | None:
        named = meta.get(CONVERSATION_META) if meta else None
        if isinstance(named, str) and named:
            return "meta:" + named
        request = getattr(ctx, "request", None)
        headers = getattr(request, "headers", None)
        if headers is not None:
            for header, prefix in ((CONVERSATION_HEADER, "header:"), ("mcp-session-id", "session:")):
                value = headers.get(header)
                if isinstance(value, str) and value:
                    return prefix + value
            return "single" if self.single_conversation else None
        return "stdio"  # no HTTP request: the one stdio connection

    def _conversation(self, ctx: Any, meta: Mapping[str, Any] | None) -> _Conversation | str:
        key = self._key(ctx, meta)
        if key is None:
            return (f"interlock mcp cannot tell which conversation this call belongs to: send the _meta key "
                    f"{CONVERSATION_META!r} or the header {CONVERSATION_HEADER!r} with a conversation id (or start "
                    f"the front with --single-conversation for one agent)")
        now = time.monotonic()
        for old in [k for k, c in self.conversations.items() if now - c.used > self.idle_timeout]:
            del self.conversations[old]
        found = self.conversations.get(key)
        if found is None:
            policy = self.policy if self.policy is not None else Policy("none", unknown_tools="allow")
            found = _Conversation(PolicySession(policy, self.state))
            self.conversations[key] = found
            while len(self.conversations) > self.max_conversations:
                self.conversations.popitem(last=False)
        self.conversations.move_to_end(key)
        return found
