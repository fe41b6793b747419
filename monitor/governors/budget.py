"""``TokenBudget``: hard caps on kept and total tokens, optionally forcing an answer when they are spent."""

from __future__ import annotations

from interlock.monitor.errors import ConfigError
from interlock.monitor.governor import (
    ForceAnswer,
    Governor,
    GovernorDecision,
    RunContext,
    force_answer_option,
)
from interlock.monitor.result import StopReason

__all__ = ["TokenBudget"]


class TokenBudget(Governor):
    """Hard caps: generated tokens kept in the trace, and total tokens (kept + discarded + fork).

    The monitor never lets the trace exceed the cap: it asks the generator for at most the remaining tokens and
    stops before a chunk that would cross it. With ``force_answer`` the run does not end mid-sentence: the
    budget keeps ``force_answer.tokens`` in reserve and, when the rest is spent, the monitor injects the answer
    prefix and lets the model answer within the reserve, so the caps hold with the answer included.
    """

    name = "token_budget"

    def __init__(self, max_kept: int | None = None, max_total: int | None = None, *,
                 force_answer: ForceAnswer | bool = False) -> None:
        for label, value in (("max_kept", max_kept), ("max_total", max_total)):
            if value is not None and value < 1:
                raise ConfigError(f"TokenBudget: {label} must be >= 1, got {value}")
        if max_kept is None and max_total is None:
            raise ConfigError("TokenBudget needs max_kept or max_total")
        self.max_kept = max_kept
        self.max_total = max_total
        self.force_answer = force_answer_option(force_answer)
        reserve = self.reserve
        for label, value in (("max_kept", max_kept), ("max_total", max_total)):
            if value is not None and value <= reserve:
                raise ConfigError(f"TokenBudget: {label}={value} leaves nothing for reasoning once "
                                  f"{reserve} tokens are reserved for the forced answer")

    @property
    def reserve(self) -> int:
        """Tokens held back for the forced answer (0 without ``force_answer``)."""
        return self.force_answer.tokens if self.force_answer is not None else 0

    def token_allowance(self, ctx: RunContext) -> int | None:
        limits = []
        if self.max_kept is not None:
            limits.append(self.max_kept - ctx.tokens.kept)
        if self.max_total is not None:
            limits.append(self.max_total - ctx.tokens.total)
        held = 0 if ctx.forcing_answer else self.reserve  # the reserve is for whichever answer gets forced
        return max(0, min(limits) - held)

    def on_exhausted(self, ctx: RunContext) -> GovernorDecision | None:
        if self.force_answer is None:
            return None
        caps = ", ".join(f"{k}={v}" for k, v in (("max_kept", self.max_kept), ("max_total", self.max_total))
                         if v is not None)
        return self.force_answer.decision(f"token budget ({caps}) spent: answering now",
                                          stop_reason=StopReason.BUDGET, tokens_saved=0)
