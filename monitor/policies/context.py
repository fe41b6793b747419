"""What a rule sees: the call, the conversation before it, and the state of the system (read-only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interlock.monitor.agents.tools import ToolCall
from interlock.monitor.policies.conversation import CallRecord, Event, Message

if TYPE_CHECKING:
    from interlock.monitor.policies.policy import Policy, ToolSpec

__all__ = ["RuleContext"]

_MISSING: Any = object()


@dataclass(frozen=True)
class RuleContext:
    """One call under check.

    - ``call``: the tool call (``name``, ``arguments``, ``id``).
    - ``history``: the conversation before it, in order: :class:`Message` and :class:`CallRecord` (each earlier
      call with the policy's decision and its result, when known).
    - ``state``: the system's state as a read-only view (``ctx.state["orders"]["#W1"]["status"]``); it includes
      the effects of the earlier calls the policy allowed.
    - ``policy``: the policy, for the tools it declares (``ctx.spec``, ``ctx.writes``).
    """

    call: ToolCall
    history: tuple[Event, ...]
    state: Any
    policy: Policy

    @property
    def name(self) -> str:
        return self.call.name

    @property
    def arguments(self) -> Mapping[str, Any]:
        return self.call.arguments

    def argument(self, name: str, default: Any = _MISSING) -> Any:
        """The call's argument ``name``; ``KeyError`` (which makes the rule undecided) when absent and no default."""
        if name in self.call.arguments:
            return self.call.arguments[name]
        if default is _MISSING:
            raise KeyError(f"{self.call.name} has no argument {name!r}")
        return default

    @property
    def spec(self) -> ToolSpec | None:
        """The policy's declaration of this tool (``None`` when it declares none)."""
        return self.policy.tools.get(self.call.name)

    @property
    def writes(self) -> bool:
        """Whether this tool changes the system, as the policy declares it."""
        spec = self.spec
        return spec is not None and spec.writes

    def calls(self, *names: str, allowed: bool | None = True) -> list[CallRecord]:
        """Earlier calls, oldest first: of the tools ``names`` (every tool without names); by default only those
        the policy allowed (``allowed=None``: every call, ``False``: only refused ones)."""
        wanted = set(names)
        return [e for e in self.history if isinstance(e, CallRecord) and (not wanted or e.name in wanted)
                and (allowed is None or e.allowed == allowed)]

    def messages(self, role: str | None = None) -> list[Message]:
        """Earlier messages, oldest first, of one role or all."""
        return [e for e in self.history if isinstance(e, Message) and (role is None or e.role == role)]

    def last_message(self, role: str | None = None) -> Message | None:
        for e in reversed(self.history):
            if isinstance(e, Message) and (role is None or e.role == role):
                return e
        return None

    def since(self, predicate: Callable[[Event], bool]) -> Sequence[Event]:
        """The events after the last one matching ``predicate`` (all of them when none matches)."""
        for i in range(len(self.history) - 1, -1, -1):
            if predicate(self.history[i]):
                return self.history[i + 1:]
        return self.history

    def is_write(self, record: CallRecord | ToolCall) -> bool:
        """Whether an earlier call was of a tool the policy declares as a write."""
        spec = self.policy.tools.get(record.name)
        return spec is not None and spec.writes
