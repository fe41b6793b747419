"""Errors raised by the monitor runtime; every one derives from :class:`InterlockError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interlock.monitor.verdicts import Verdict

__all__ = [
    "ConfigError",
    "GeneratorError",
    "InterlockError",
    "RegistryError",
    "TraceFileError",
    "ViolationError",
]


class InterlockError(Exception):
    """Base of every error the ``monitor`` package raises."""


class ConfigError(InterlockError, ValueError):
    """A monitor, verifier, trigger or governor was configured with a value it cannot use."""


class RegistryError(InterlockError, LookupError):
    """A verifier name is unknown, registered twice, or its entry point failed to load."""


class GeneratorError(InterlockError):
    """A generator failed in a way the monitor cannot recover from (bad script, backend crash)."""


class TraceFileError(InterlockError, ValueError):
    """A trace file could not be read; the message names the file, the line and the field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class ViolationError(InterlockError):
    """Raised by :meth:`Run.barrier` when a check of the trace so far failed."""

    def __init__(self, verdicts: Sequence[Verdict]) -> None:
        self.verdicts = tuple(verdicts)
        parts = [f"{v.verifier or 'verifier'}: {getattr(v, 'message', '') or getattr(v, 'reason', '')}"
                 for v in self.verdicts]
        super().__init__("checks failed: " + "; ".join(parts))
