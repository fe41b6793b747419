"""The library of governors: token budgets, a budget shared by a batch, early stops, the loop guard, the
thinking budget and answer probes.

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
from interlock.monitor.governors.answer_probe import AnswerProbe
from interlock.monitor.governors.budget import TokenBudget
from interlock.monitor.governors.budget_pool import BudgetPool, PoolShare, estimate_difficulty
from interlock.monitor.governors.early_stop import AnswerConvergence, EntropyStop
from interlock.monitor.governors.loop_guard import LoopGuard
from interlock.monitor.governors.probe_rules import Agreement, Confident, EntropySettled, ProbeAnswer, StopRules
from interlock.monitor.governors.thinking_budget import DEFAULT_BUDGET_MESSAGE, ThinkingBudget

__all__ = [
    "DEFAULT_BUDGET_MESSAGE",
    "Agreement",
    "AnswerConvergence",
    "AnswerProbe",
    "BudgetPool",
    "Confident",
    "EntropySettled",
    "EntropyStop",
    "ForceAnswer",
    "Governor",
    "GovernorDecision",
    "InterventionLimit",
    "LoopGuard",
    "OscillationGuard",
    "PoolShare",
    "ProbeAnswer",
    "RunContext",
    "StopRules",
    "ThinkingBudget",
    "TokenBudget",
    "estimate_difficulty",
]
