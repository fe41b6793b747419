"""Tool-call policies: written rules checked before a tool runs, against the conversation and the system's state.

A :class:`Policy` declares its tools (``policy.tool``), its rules (``@policy.rule``: plain functions of a
:class:`RuleContext` returning :data:`ALLOW`/``None``, :class:`Refuse` or :class:`Undecided`) and the effects of
the writes it allows (``@policy.effect``). A :class:`PolicySession` checks one conversation call by call against a
:class:`State` (loaded from a file, or :class:`LiveState` queried from the system), applying the effects of the
calls it allowed to its own copy-on-write layer. The shapes written policies keep using are in :mod:`.shapes`
(``only_after``, ``belongs_to_user``, ``status_is``, ``one_of``, ``confirmed``) and :func:`holds` (z3).

Where it plugs in: ``session.guard(tool)`` (a :func:`~interlock.monitor.agents.guard_tool` whose calls the policy
checks and records), ``Agent(..., policy=session)``, ``interlock proxy --policy``, ``interlock mcp --policy``,
``interlock policy check``. See docs/policies.md.
"""

from __future__ import annotations

from interlock.monitor.policies.constraints import holds
from interlock.monitor.policies.context import RuleContext
from interlock.monitor.policies.conversation import (
    NO_RESULT,
    CallEntry,
    CallRecord,
    Conversation,
    Message,
    parse_conversation,
    read_conversation,
)
from interlock.monitor.policies.errors import (
    ConversationError,
    DraftError,
    PolicyDefinitionError,
    PolicyError,
    PolicyLoadError,
    StateError,
)
from interlock.monitor.policies.outcomes import ALLOW, Allow, Decision, Outcome, Refusal, Refuse, Undecided
from interlock.monitor.policies.policy import Policy, Rule, ToolSpec, load_policy
from interlock.monitor.policies.session import PolicySession
from interlock.monitor.policies.shapes import (
    belongs_to_user,
    confirmed,
    explicit_yes,
    one_of,
    only_after,
    status_is,
)
from interlock.monitor.policies.state import LiveState, State, StateView, thaw

__all__ = [
    "ALLOW",
    "NO_RESULT",
    "Allow",
    "CallEntry",
    "CallRecord",
    "Conversation",
    "ConversationError",
    "Decision",
    "DraftError",
    "LiveState",
    "Message",
    "Outcome",
    "Policy",
    "PolicyDefinitionError",
    "PolicyError",
    "PolicyLoadError",
    "PolicySession",
    "Refusal",
    "Refuse",
    "Rule",
    "RuleContext",
    "State",
    "StateError",
    "StateView",
    "ToolSpec",
    "Undecided",
    "belongs_to_user",
    "confirmed",
    "explicit_yes",
    "holds",
    "load_policy",
    "one_of",
    "only_after",
    "parse_conversation",
    "read_conversation",
    "status_is",
    "thaw",
]
