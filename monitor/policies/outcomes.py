"""What a rule says about one tool call (:class:`Allow`, :class:`Refuse`, :class:`Undecided`), and what the policy
decides from all of them (:class:`Decision`).

A rule returns ``None`` or :data:`ALLOW` to let the call through, ``Refuse(reason)`` to stop it with a reason the
agent can act on, or ``Undecided(reason)`` when it cannot tell (a record it needs is missing, a value has the wrong
type). A rule is fail-closed unless it says otherwise: its ``Undecided`` refuses the call, and so does an exception
it raises or a value that is none of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interlock.monitor.agents.tools import ToolCall

__all__ = ["ALLOW", "Allow", "Decision", "Outcome", "Refusal", "Refuse", "Undecided"]


@dataclass(frozen=True)
class Allow:
    """The rule lets the call through (returning ``None`` says the same)."""


ALLOW = Allow()


@dataclass(frozen=True)
class Refuse:
    """The rule stops the call. ``reason`` is written for the agent: what is wrong and, where it can, what to do
    instead ("order #W1 is delivered: only pending orders can be cancelled; a delivered order can be returned").
    ``feedback``: a separate instruction when the reason alone does not say what to do."""

    reason: str
    feedback: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise TypeError("Refuse needs a reason: a non-empty string the agent can act on")


@dataclass(frozen=True)
class Undecided:
    """The rule cannot tell whether the call is allowed; a fail-closed rule (the default) refuses it."""

    reason: str = ""


Outcome = Allow | Refuse | Undecided | None


@dataclass(frozen=True)
class Refusal:
    """Why a call was refused: the rule, its reason, and whether the rule refused or could not decide."""

    rule: str
    reason: str
    feedback: str = ""
    undecided: bool = False

    @property
    def text(self) -> str:
        """The reason as the agent reads it."""
        if self.undecided:
            return f"the policy could not decide ({self.rule}): {self.reason}" if self.reason else \
                f"the policy could not decide ({self.rule})"
        return self.reason

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "reason": self.reason, "feedback": self.feedback, "undecided": self.undecided}


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one tool call: allowed, or refused with the first rule that refused it.

    Rules are checked in the order the policy declares them and the first refusal decides, so a call is refused
    for one reason at a time, the most basic first (not authenticated, before: the order is not pending).
    ``notes``: what rules that are not fail-closed could not decide (the call went through anyway).
    """

    call: ToolCall
    refusal: Refusal | None = None
    rules: tuple[str, ...] = ()  # the rules that were checked, in order
    notes: tuple[Refusal, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def reason(self) -> str:
        """Why the call was refused ("" when it was allowed)."""
        return "" if self.refusal is None else self.refusal.text

    @property
    def rule(self) -> str | None:
        return None if self.refusal is None else self.refusal.rule

    @property
    def feedback(self) -> str:
        """What the agent should do, in words: the refusal's feedback, else its reason."""
        if self.refusal is None:
            return ""
        return self.refusal.feedback or self.refusal.text

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.call.name, "arguments": dict(self.call.arguments), "allowed": self.allowed,
                "reason": self.reason, "rule": self.rule, "feedback": self.feedback}

    def __str__(self) -> str:
        return f"{self.call.name}: allowed" if self.allowed else f"{self.call.name} refused: {self.reason}"
