"""``interlock.telemetry``: OpenTelemetry tracing of monitored runs (see :mod:`interlock.monitor.telemetry`).

    import interlock.telemetry
    interlock.telemetry.enable()          # every run, guarded tool call and proxied request, to the global provider
"""

from __future__ import annotations

from interlock.monitor.telemetry import (
    CAPTURE_CONTENT_ENV,
    INSTRUMENTATION_NAME,
    capture_content,
    disable,
    enable,
    get_tracer,
    is_enabled,
    setup_sdk,
)

__all__ = ["CAPTURE_CONTENT_ENV", "INSTRUMENTATION_NAME", "capture_content", "disable", "enable", "get_tracer",
           "is_enabled", "setup_sdk"]
