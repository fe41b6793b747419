"""The one error base of the budget evaluator."""

from __future__ import annotations

from interlock.monitor.errors import ConfigError

__all__ = ["BudgetError", "RecordTimeout"]


class BudgetError(ConfigError):
    """A policy, a record or an option the evaluator cannot use; the message says which and why."""


class RecordTimeout(BudgetError):
    """One record took longer than its deadline to evaluate: it is left out, the batch goes on."""
