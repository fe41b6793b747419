"""Errors of the arithmetic verifier; all derive from :class:`interlock.verifiers.errors.VerifiersError`."""

from __future__ import annotations

from interlock.verifiers.errors import VerifiersError

__all__ = ["NotChecked", "TooComplex"]


class NotChecked(VerifiersError):
    """A claim that cannot be judged exactly (division by zero, a non-real value): it is reported as unknown."""


class TooComplex(NotChecked):
    """An expression past a size, nesting, exponent or time limit: it is ``Unknown``, never a hang."""
