"""Errors of the ``interlock.verifiers`` package; all derive from :class:`VerifiersError`.

::

    interlock.monitor.errors.InterlockError
    └── VerifiersError                         base of every error the built-in verifiers raise
        ├── VerifierConfigError (ConfigError)  a verifier was given a configuration it cannot use
        │   └── constraints.expr.ExpressionError   a constraint expression that cannot be parsed
        ├── game24.arith.ExpressionError       a Game of 24 expression that cannot be read
        └── arithmetic.errors.NotChecked       a claim the arithmetic verifier will not judge (reported as Unknown)
"""

from __future__ import annotations

from interlock.monitor.errors import ConfigError, InterlockError

__all__ = ["VerifierConfigError", "VerifiersError"]


class VerifiersError(InterlockError):
    """Base of every error the built-in verifiers raise."""


class VerifierConfigError(VerifiersError, ConfigError):
    """A built-in verifier was given a configuration it cannot use (bad constraint file, bad puzzle)."""
