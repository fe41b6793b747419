"""Typed events, one per thing that happens in a run; structlog logs them and the recorder writes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from interlock.monitor.chunks import Chunk
from interlock.monitor.phases import ANSWER, Phase
from interlock.monitor.verdicts import Verdict

if TYPE_CHECKING:
    from interlock.monitor.result import Intervention, RunResult

__all__ = ["ChunkAppended", "Event", "FeedbackInjected", "GovernorDecided", "Intervened", "RunFinished",
           "RunStarted", "VerdictReceived", "VerifierError"]


@dataclass(frozen=True)
class Event:
    """Base of all events: ``t`` is seconds since the run started."""

    kind: ClassVar[str] = "event"
    t: float = field(default=0.0, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "t": round(self.t, 6)}


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    run_id: str = ""
    prompt: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "run_id": self.run_id, "prompt": self.prompt}


@dataclass(frozen=True)
class ChunkAppended(Event):
    """Generated text entered the trace at ``position`` in ``epoch``."""

    kind: ClassVar[str] = "chunk"
    chunk: Chunk = field(default_factory=lambda: Chunk(""))
    position: int = 0
    epoch: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), **self.chunk.to_dict(), "position": self.position, "epoch": self.epoch}


@dataclass(frozen=True)
class VerdictReceived(Event):
    """A check came back; ``stale`` when a rollback had removed the text it was about."""

    kind: ClassVar[str] = "verdict"
    verdict: Verdict | None = None
    seconds: float = 0.0
    stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        base = self.verdict.to_dict() if self.verdict is not None else {}
        return {**super().to_dict(), **{f"verdict_{k}" if k == "kind" else k: v for k, v in base.items()},
                "seconds": round(self.seconds, 6), "stale": self.stale}


@dataclass(frozen=True)
class VerifierError(Event):
    """A verifier raised, timed out or returned garbage: its verdict is ``Unknown``."""

    kind: ClassVar[str] = "verifier_error"
    verifier: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "verifier": self.verifier, "error": self.error}


@dataclass(frozen=True)
class Intervened(Event):
    """The monitor warned, rolled back, interrupted or stopped (``intervention.applied`` says if it could)."""

    kind: ClassVar[str] = "intervention"
    intervention: Intervention | None = None

    def to_dict(self) -> dict[str, Any]:
        base = self.intervention.to_dict() if self.intervention is not None else {}
        return {**super().to_dict(), **base}


@dataclass(frozen=True)
class FeedbackInjected(Event):
    """The monitor wrote ``text`` into the trace at ``position`` (feedback, a nudge, an answer prefix), in
    ``phase`` (the thinking, when it rolled back into the thinking or ended it)."""

    kind: ClassVar[str] = "inject"
    text: str = ""
    position: int = 0
    epoch: int = 0
    phase: Phase = ANSWER

    def to_dict(self) -> dict[str, Any]:
        out = {**super().to_dict(), "text": self.text, "position": self.position, "epoch": self.epoch}
        if self.phase != ANSWER:
            out["phase"] = self.phase
        return out


@dataclass(frozen=True)
class GovernorDecided(Event):
    """A governor acted: what, why, and how many tokens it estimates it saved."""

    kind: ClassVar[str] = "governor"
    governor: str = ""
    action: str = ""
    reason: str = ""
    tokens_saved: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "governor": self.governor, "action": self.action, "reason": self.reason,
                "tokens_saved": self.tokens_saved}


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "end"
    result: RunResult | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.result is None:
            return super().to_dict()
        r = self.result
        return {**super().to_dict(), "outcome": r.outcome.value, "stop_reason": r.stop_reason.value,
                "detail": r.detail, "passed": r.passed, "tokens": r.tokens.to_dict(),
                "interventions": len(r.interventions), "wall_seconds": round(r.wall_seconds, 6)}
