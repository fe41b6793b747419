"""``--otel`` for ``interlock run`` and ``interlock proxy``: trace to an OpenTelemetry SDK configured from the
standard ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_EXPORTER`` ...),
as :func:`interlock.monitor.telemetry.setup_sdk` reads them; the spans are flushed before the command exits."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["add_otel", "start_otel", "traced"]


def add_otel(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--otel", action="store_true",
                        help="trace with OpenTelemetry (GenAI spans; needs interlock[otel]), exporting as the OTEL_* "
                             "variables say: OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318), "
                             "OTEL_SERVICE_NAME, OTEL_TRACES_EXPORTER (otlp, console, none)")


def start_otel(args: argparse.Namespace, service_name: str) -> Any:
    """With ``--otel``: the SDK provider, made the global one, and tracing turned on; else ``None``."""
    if not getattr(args, "otel", False):
        return None
    from interlock.monitor import telemetry

    provider = telemetry.setup_sdk(service_name=service_name)
    if provider is not None:
        telemetry.enable(provider)
    return provider


@contextlib.contextmanager
def traced(args: argparse.Namespace, service_name: str) -> Iterator[None]:
    """Tracing on for the block (with ``--otel``), its spans exported before the block ends."""
    provider = start_otel(args, service_name)
    try:
        yield
    finally:
        if provider is not None:
            from interlock.monitor import telemetry

            telemetry.disable()
            provider.shutdown()  # flushes the batch processor: the last spans leave before the process does
