"""The library of governors: token budgets, a budget shared by a batch, early stops and the loop guard.

Each builds on the protocol in :mod:`interlock.monitor.governor` and composes with the others and with the
verifiers. The two governors every run has (``InterventionLimit``, ``OscillationGuard``) live in the core.
"""

from __future__ import annotations

from interlock.monitor.governor import (
    ForceAnswer,
    Governor,
    GovernorDecision,
    InterventionLimit,
    OscillationGuard,
    RunContext,
)
from interlock.monitor.governors.budget import TokenBudget
from interlock.monitor.governors.budget_pool import BudgetPool, PoolShare, estimate_difficulty
from interlock.monitor.governors.early_stop import AnswerConvergence, EntropyStop
from interlock.monitor.governors.loop_guard import LoopGuard

__all__ = [
    "AnswerConvergence",
    "BudgetPool",
    "EntropyStop",
    "ForceAnswer",
    "Governor",
    "GovernorDecision",
    "InterventionLimit",
    "LoopGuard",
    "OscillationGuard",
    "PoolShare",
    "RunContext",
    "TokenBudget",
    "estimate_difficulty",
]
