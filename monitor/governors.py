"""Governors watch the same stream as the verifiers and keep a run from running away.

A governor may cap the tokens a run can still generate (:meth:`Governor.token_allowance`), look at each chunk
(:meth:`Governor.on_chunk`), say what to do when its allowance is used up (:meth:`Governor.on_exhausted`,
e.g. force an answer) and veto or escalate an intervention (:meth:`Governor.on_intervention`). Every decision
becomes an event with its reason and the tokens it saved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from monitor.chunks import Chunk
from monitor.errors import ConfigError
from monitor.generation import Capabilities
from monitor.result import Intervention, StopReason, TokenCounts
from monitor.verdicts import Action

__all__ = ["Governor", "GovernorDecision", "InterventionLimit", "OscillationGuard", "RunContext",
           "TokenBudget", "normalise_claim"]


class RunContext(Protocol):
    """A read-only view of the run for governors."""

    @property
    def run_id(self) -> str: ...
    @property
    def prompt(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def epoch(self) -> int: ...
    @property
    def tokens(self) -> TokenCounts: ...
    @property
    def interventions(self) -> tuple[Intervention, ...]: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def capabilities(self) -> Capabilities: ...


@dataclass(frozen=True)
class GovernorDecision:
    """What a governor asks for.

    - ``WARN``: an event only. ``STOP``: end generation (after ``inject`` and at most ``allow_tokens`` more).
    - ``INTERRUPT``: end now; ``abstain`` marks the answer as withheld.
    - ``ROLLBACK``: cut the trace at ``position`` (default: the current end) and inject ``inject``.
    - ``feedback``/``repeat``, returned from :meth:`Governor.on_intervention`, replace the intervention's
      feedback (escalation) without changing its action.
    """

    action: Action
    reason: str
    position: int | None = None
    inject: str | None = None
    allow_tokens: int | None = None
    tokens_saved: int | None = None
    abstain: bool = False
    feedback: str | None = None
    stop_reason: StopReason = StopReason.GOVERNOR


class Governor:
    """Base class: every hook does nothing by default."""

    name: str = "governor"

    def start(self, ctx: RunContext) -> None:
        """A run starts (a governor instance may serve several runs one after another)."""

    def token_allowance(self, ctx: RunContext) -> int | None:
        """How many more generated tokens this governor allows (``None``: no limit)."""
        return None

    def on_chunk(self, ctx: RunContext, chunk: Chunk) -> GovernorDecision | None:
        return None

    def on_exhausted(self, ctx: RunContext) -> GovernorDecision | None:
        """This governor's allowance reached zero; return a decision (e.g. force the answer) or stop plainly."""
        return None

    def on_intervention(self, ctx: RunContext, proposal: Intervention) -> GovernorDecision | None:
        """The monitor is about to intervene; return a decision to escalate it, or ``None`` to let it be."""
        return None

    def on_end(self, ctx: RunContext) -> None:
        """The run ended."""


class TokenBudget(Governor):
    """Hard caps: generated tokens kept in the trace, and total tokens (kept + discarded + fork).

    The monitor never lets the trace exceed the cap: it asks the generator for at most the remaining tokens and
    stops before a chunk that would cross it.
    """

    name = "token_budget"

    def __init__(self, max_kept: int | None = None, max_total: int | None = None) -> None:
        for label, value in (("max_kept", max_kept), ("max_total", max_total)):
            if value is not None and value < 1:
                raise ConfigError(f"TokenBudget: {label} must be >= 1, got {value}")
        if max_kept is None and max_total is None:
            raise ConfigError("TokenBudget needs max_kept or max_total")
        self.max_kept = max_kept
        self.max_total = max_total

    def token_allowance(self, ctx: RunContext) -> int | None:
        limits = []
        if self.max_kept is not None:
            limits.append(self.max_kept - ctx.tokens.kept)
        if self.max_total is not None:
            limits.append(self.max_total - ctx.tokens.total)
        return max(0, min(limits))


class InterventionLimit(Governor):
    """Bounds the number of interventions (rollbacks and injected nudges) in one run; past it, interrupt."""

    name = "intervention_limit"

    def __init__(self, max_interventions: int = 8) -> None:
        if max_interventions < 0:
            raise ConfigError(f"InterventionLimit: max_interventions must be >= 0, got {max_interventions}")
        self.max_interventions = max_interventions

    def on_intervention(self, ctx: RunContext, proposal: Intervention) -> GovernorDecision | None:
        if proposal.action is not Action.ROLLBACK:
            return None
        done = sum(1 for i in ctx.interventions if i.applied and i.action is Action.ROLLBACK)
        if done >= self.max_interventions:
            return GovernorDecision(Action.INTERRUPT, f"{done} interventions already: the limit is "
                                    f"{self.max_interventions}", abstain=True,
                                    stop_reason=StopReason.INTERVENTION_LIMIT)
        return None


_NUMBER_SPACES = re.compile(r"\s+")


def normalise_claim(source: str, claim: str) -> tuple[str, str]:
    """Key under which the oscillation guard counts a violation: case and spacing do not matter."""
    return source, _NUMBER_SPACES.sub("", claim).lower()


class OscillationGuard(Governor):
    """Counts the same violation (same source, same normalised claim) coming back after a rollback.

    The first return gets stronger feedback; past ``limit`` returns the run is interrupted with an abstention,
    so a run can never loop between an error and its correction.
    """

    name = "oscillation_guard"

    def __init__(self, limit: int = 2,
                 escalation: str = "You made this same mistake before. {feedback} Do not repeat it.") -> None:
        if limit < 0:
            raise ConfigError(f"OscillationGuard: limit must be >= 0, got {limit}")
        self.limit = limit
        self.escalation = escalation

    def on_intervention(self, ctx: RunContext, proposal: Intervention) -> GovernorDecision | None:
        if proposal.action is not Action.ROLLBACK or proposal.repeat == 0:
            return None
        if proposal.repeat > self.limit:
            return GovernorDecision(Action.INTERRUPT, f"the same violation came back {proposal.repeat} times "
                                    f"after rollback: {proposal.message}", abstain=True,
                                    stop_reason=StopReason.OSCILLATION)
        return GovernorDecision(Action.ROLLBACK, "repeated violation: stronger feedback",
                                feedback=self.escalation.format(feedback=proposal.feedback.strip(),
                                                                message=proposal.message))
