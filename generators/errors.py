"""Errors of the ``generators`` package; all derive from :class:`BackendError` (a ``monitor.GeneratorError``)."""

from __future__ import annotations

from monitor.errors import GeneratorError

__all__ = ["BackendError", "ScriptError"]


class BackendError(GeneratorError):
    """Base of every error a generator backend raises."""


class ScriptError(BackendError):
    """A scripted generator has no continuation for the prefix it was asked to resume from."""
