"""``interlock mcp``: an MCP server in front of another that checks every tool call against a policy (and, when the
agent's model traffic goes through ``interlock proxy``, that the reasoning behind it passed) before forwarding it,
and answers a refused call with an MCP tool error that says why. Importing this package does not import the
``mcp`` SDK; using it needs ``pip install 'interlock[mcp]'``."""

from __future__ import annotations

from interlock.monitor.mcp.front import (
    CONVERSATION_HEADER,
    CONVERSATION_META,
    MESSAGES_META,
    PolicyFront,
    Upstream,
)
from interlock.monitor.mcp.reasoning import Claimed, ReasoningCheck

__all__ = ["CONVERSATION_HEADER", "CONVERSATION_META", "MESSAGES_META", "Claimed", "PolicyFront", "ReasoningCheck",
           "Upstream"]
