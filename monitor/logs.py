"""structlog logging for runs: one JSON event per line on the standard logger ``interlock``, bound to a run id.

The library never configures logging globally: events reach the ``interlock`` stdlib logger, which is silent
until an application (or ``interlock --log-level debug``) gives it a handler and a level.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["debug_enabled", "get_logger", "info_enabled", "setup_cli_logging"]

_STDLIB = logging.getLogger("interlock")


def get_logger(**bound: Any) -> Any:
    """A structlog logger that renders JSON and drops events below the stdlib logger's level cheaply."""
    import structlog  # imported here: it costs ~100 ms, which `import monitor` should not pay

    logger = structlog.wrap_logger(
        _STDLIB,
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(default=str),
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger.bind(**bound)


def debug_enabled() -> bool:
    return _STDLIB.isEnabledFor(logging.DEBUG)


def info_enabled() -> bool:
    """Whether an info event would be logged: when not, the monitor does not build the record to log."""
    return _STDLIB.isEnabledFor(logging.INFO)


def setup_cli_logging(level: str) -> None:
    """Send the ``interlock`` logger to stderr at ``level`` (used by the command line)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    _STDLIB.handlers[:] = [handler]
    _STDLIB.setLevel(level.upper())
    _STDLIB.propagate = False
