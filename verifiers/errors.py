"""Errors of the ``verifiers`` package; all derive from :class:`VerifiersError`."""

from __future__ import annotations

from interlock.monitor.errors import ConfigError, InterlockError

__all__ = ["VerifierConfigError", "VerifiersError"]


class VerifiersError(InterlockError):
    """Base of every error the built-in verifiers raise."""


class VerifierConfigError(VerifiersError, ConfigError):
    """A built-in verifier was given a configuration it cannot use (bad constraint file, bad puzzle)."""
