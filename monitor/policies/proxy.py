"""A policy in ``interlock proxy``: each tool call a model makes is checked against the policy, in the conversation
the request carries, before the call can reach the client.

``ProxyPolicy(policy, state).checks(request)`` gives the argument checks of one chat request, one per tool it
offers (``ProxyConfig(request_tool_checks=proxy_policy.checks)``). The first check that runs replays the
request's conversation through a fresh session (its messages; its earlier tool calls, each checked and, when
allowed and not answered with an error, applied to the session's layer of the state), then each call the model
makes in its answer is checked against that history. A refused call is a failed check: the proxy rolls it back
and the model reads the policy's reason as feedback. Calls of one answer are each checked against the
conversation before the answer, not against each other.

A request whose messages cannot be read as a conversation is refused whole (fail-closed), with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from interlock.monitor.agents.tools import ToolCall
from interlock.monitor.policies.conversation import parse_conversation
from interlock.monitor.policies.errors import ConversationError
from interlock.monitor.policies.policy import Policy
from interlock.monitor.policies.session import PolicySession
from interlock.monitor.policies.state import State, StateSource
from interlock.monitor.verdicts import Fail

if TYPE_CHECKING:
    from interlock.monitor.proxy.models import ChatRequest

__all__ = ["ProxyPolicy", "conversation_session"]

Check = Callable[[Mapping[str, Any]], Awaitable[Fail | None]]


async def conversation_session(policy: Policy, state: StateSource | None, messages: Sequence[Mapping[str, Any]],
                               *, check_timeout: float | None = None) -> PolicySession:
    """A session that has gone through ``messages`` (OpenAI chat messages, or conversation-file lines)."""
    session = policy.session(state if state is not None else State({}), check_timeout=check_timeout)
    await session.run(parse_conversation(messages, source="the request's messages"))
    return session


class ProxyPolicy:
    """Checks by tool name for each chat request the proxy monitors (see the module's docstring)."""

    def __init__(self, policy: Policy, state: StateSource | None = None, *,
                 check_timeout: float | None = None) -> None:
        policy.validate()
        self.policy = policy
        self.state = state if state is not None else State({})
        self.check_timeout = check_timeout

    def checks(self, request: ChatRequest) -> dict[str, list[Check]]:
        messages = [m.to_dict() for m in request.messages]
        lock = anyio.Lock()
        box: dict[str, Any] = {}

        async def session() -> PolicySession | str:
            async with lock:
                if "session" not in box:
                    try:
                        box["session"] = await conversation_session(self.policy, self.state, messages,
                                                                    check_timeout=self.check_timeout)
                    except ConversationError as exc:
                        box["session"] = f"the conversation could not be read: {exc}"
                found: PolicySession | str = box["session"]
                return found

        def check_for(tool: str) -> Check:
            async def policy_check(arguments: Mapping[str, Any]) -> Fail | None:
                found = await session()
                if isinstance(found, str):
                    return Fail(found, verifier=f"policy:{self.policy.name}")
                decision = await found.check(ToolCall(tool, dict(arguments)))
                if decision.allowed:
                    return None
                advice = decision.refusal.feedback if decision.refusal is not None else ""
                return Fail(decision.reason, verifier=f"policy:{decision.rule}",
                            feedback=f"The call {tool} was refused by the policy: {decision.reason}."
                                     + (f" {advice}" if advice else ""))

            policy_check.__name__ = f"policy-{tool}"
            return policy_check

        return {name: [check_for(name)] for name in request.tool_names}
