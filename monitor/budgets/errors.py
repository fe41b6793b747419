"""The one error base of the budget evaluator."""

from __future__ import annotations

from interlock.monitor.errors import ConfigError

__all__ = ["BudgetError"]


class BudgetError(ConfigError):
    """A policy, a record or an option the evaluator cannot use; the message says which and why."""
