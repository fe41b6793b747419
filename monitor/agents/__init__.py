"""Agent loops under the monitor: guarded tools (a side effect runs only after the reasoning behind it passed)
and a generic tool-calling agent loop built on them."""

from __future__ import annotations

from interlock.monitor.agents.agent import (
    Agent,
    AgentResult,
    AgentTurn,
    MalformedToolCall,
    StopAt,
    ToolOutcome,
    ToolPolicy,
    parse_tool_calls,
    tools_prompt,
)
from interlock.monitor.agents.tools import (
    ArgumentCheck,
    CheckRaised,
    GuardedTool,
    RefusalReason,
    ToolCall,
    ToolRefusal,
    ToolRefused,
    active_run,
    guard_tool,
    use_run,
)

__all__ = [
    "Agent",
    "AgentResult",
    "AgentTurn",
    "ArgumentCheck",
    "CheckRaised",
    "GuardedTool",
    "MalformedToolCall",
    "RefusalReason",
    "StopAt",
    "ToolCall",
    "ToolOutcome",
    "ToolPolicy",
    "ToolRefusal",
    "ToolRefused",
    "active_run",
    "guard_tool",
    "parse_tool_calls",
    "tools_prompt",
    "use_run",
]
