"""Verdicts a verifier returns, the spans they point at, and the actions the monitor can take."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from interlock.monitor.errors import ConfigError, InterlockError

__all__ = ["Action", "Fail", "Pass", "Span", "Unknown", "Verdict", "ViolationError"]


class Action(enum.Enum):
    """What the monitor does about a violation; ``strength`` orders them for arbitration."""

    WARN = "warn"
    ROLLBACK = "rollback"
    RESTART = "restart"  # end this attempt; start afresh from the question and the verified state (governors)
    STOP = "stop"
    INTERRUPT = "interrupt"

    @property
    def strength(self) -> int:
        return _STRENGTH[self]

    @classmethod
    def parse(cls, value: Action | str) -> Action:
        """Accept an :class:`Action` or its name (``"rollback"``), with an error that lists the choices."""
        if isinstance(value, Action):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            choices = ", ".join(a.value for a in cls)
            raise ConfigError(f"unknown action {value!r}; expected one of: {choices}") from None


_STRENGTH = {Action.WARN: 1, Action.ROLLBACK: 2, Action.RESTART: 3, Action.STOP: 4, Action.INTERRUPT: 5}


@dataclass(frozen=True, order=True)
class Span:
    """A half-open character range ``[start, end)`` in the trace text (not counting the prompt)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ConfigError(f"invalid span [{self.start}, {self.end}): need 0 <= start <= end")

    def __len__(self) -> int:
        return self.end - self.start

    def shift(self, offset: int) -> Span:
        return Span(self.start + offset, self.end + offset)

    def contains(self, other: Span) -> bool:
        return self.start <= other.start and other.end <= self.end

    def to_list(self) -> list[int]:
        return [self.start, self.end]


@dataclass(frozen=True)
class _VerdictBase:
    # Filled in by the monitor (or by ``scan``) so that a verdict says where it came from.
    span: Span | None = field(default=None, kw_only=True)
    verifier: str = field(default="", kw_only=True)
    epoch: int = field(default=0, kw_only=True)

    def with_context(self, *, verifier: str, epoch: int, span: Span | None) -> Any:
        return replace(self, verifier=self.verifier or verifier, epoch=epoch,
                       span=self.span if self.span is not None else span)


@dataclass(frozen=True)
class Pass(_VerdictBase):
    """The checked text is fine (or held nothing this verifier checks: then ``checked=False``, so that a run
    whose every pass is vacuous reads as *unchecked*, not *verified*)."""

    note: str = ""
    checked: bool = True
    kind: Literal["pass"] = field(default="pass", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "pass", "verifier": self.verifier, "epoch": self.epoch,
                "span": self.span.to_list() if self.span else None, "note": self.note, "checked": self.checked}


@dataclass(frozen=True)
class Fail(_VerdictBase):
    """A violation: what is wrong, where (``span``), what to do (``action``) and what to tell the model.

    ``action`` ``None`` means "the verifier's configured default"; ``feedback`` ``None`` means "the message".
    ``claim`` is a normalised statement of the error (e.g. ``"16-3-4=11"``) that the oscillation guard uses to
    recognise the same violation coming back after a rollback.
    """

    message: str = ""
    action: Action | None = None
    feedback: str | None = None
    claim: str | None = None
    kind: Literal["fail"] = field(default="fail", init=False)

    def __post_init__(self) -> None:
        if self.action is not None and not isinstance(self.action, Action):
            object.__setattr__(self, "action", Action.parse(self.action))

    @property
    def feedback_text(self) -> str:
        return self.feedback if self.feedback is not None else self.message

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "fail", "verifier": self.verifier, "epoch": self.epoch,
                "span": self.span.to_list() if self.span else None, "message": self.message,
                "action": self.action.value if self.action else None, "feedback": self.feedback_text,
                "claim": self.claim}


@dataclass(frozen=True)
class Unknown(_VerdictBase):
    """The verifier could not decide (timeout, unparsable, too large, it raised): never a silent pass."""

    reason: str = ""
    kind: Literal["unknown"] = field(default="unknown", init=False)

    @property
    def message(self) -> str:
        return self.reason

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "unknown", "verifier": self.verifier, "epoch": self.epoch,
                "span": self.span.to_list() if self.span else None, "reason": self.reason}


Verdict = Pass | Fail | Unknown


class ViolationError(InterlockError):
    """Raised by :meth:`Run.barrier` when a check of the trace so far failed."""

    def __init__(self, verdicts: Sequence[Verdict]) -> None:
        self.verdicts = tuple(verdicts)
        parts = [f"{v.verifier or 'verifier'}: {getattr(v, 'message', '') or getattr(v, 'reason', '')}"
                 for v in self.verdicts]
        super().__init__("checks failed: " + "; ".join(parts))
