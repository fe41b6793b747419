"""Errors raised by the monitor runtime; every one derives from :class:`InterlockError`.

::

    InterlockError                  base of everything interlock.monitor raises
    ├── ConfigError (ValueError)    a monitor, verifier, trigger or governor got a value it cannot use
    ├── RegistryError (LookupError) a verifier name unknown, registered twice, or failing to load
    ├── GeneratorError              a generator failed in a way the monitor cannot recover from
    ├── TraceFileError (ValueError) a trace file could not be read (names the file, line and field)
    └── ViolationError              ``Run.barrier()`` found a failed check (defined in ``verdicts``, as it
                                    carries verdicts; exported from ``interlock.monitor``)

Applications add their own under this base (``ProxyError``, ``ToolRefused``); ``interlock.verifiers`` and
``interlock.generators`` have their own bases (``VerifiersError``, ``BackendError``).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "GeneratorError",
    "InterlockError",
    "RegistryError",
    "TraceFileError",
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
