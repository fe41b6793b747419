"""Built-in verifiers. Each is registered by name in the ``interlock.verifiers`` entry-point group."""

from __future__ import annotations

from verifiers.errors import VerifierConfigError, VerifiersError

__all__ = ["VerifierConfigError", "VerifiersError"]
