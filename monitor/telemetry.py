"""OpenTelemetry tracing of monitored runs: off by default, one switch to turn it on, nothing paid while it is off.

interlock never configures OpenTelemetry behind an application's back. Tracing starts when the application asks:

    import interlock.telemetry
    interlock.telemetry.enable()                       # spans go to the global TracerProvider
    interlock.telemetry.enable(tracer_provider=mine)   # or to this one

or, for one monitor only, ``Monitor(..., tracer_provider=mine)`` (the proxy: ``ProxyConfig(tracer_provider=...)``).
The command line's ``--otel`` (``interlock run``, ``interlock proxy``) builds an SDK provider from the standard
``OTEL_*`` variables with :func:`setup_sdk` and enables it.

What is traced (see :mod:`interlock.monitor.spans`): a span per monitored run following the OpenTelemetry GenAI
semantic conventions (``chat {model}``), a child span per check and per intervention, and ``execute_tool`` spans
for guarded tool calls. The OpenTelemetry packages are the ``otel`` extra (``pip install 'interlock[otel]'``);
this module imports them only when tracing is turned on, so ``import interlock`` and every run without tracing
behave as if they did not exist.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interlock.monitor.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
    from opentelemetry.trace import Tracer, TracerProvider

__all__ = ["CAPTURE_CONTENT_ENV", "INSTRUMENTATION_NAME", "capture_content", "disable", "enable", "get_tracer",
           "is_enabled", "setup_sdk"]

INSTRUMENTATION_NAME = "interlock"
# The GenAI conventions' switch for recording prompts, answers and tool arguments on spans (opt-in: they may hold
# personal data). ``enable(capture_content=...)`` overrides it.
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_MISSING = "OpenTelemetry tracing needs the otel extra: pip install 'interlock[otel]'"


@dataclass
class _State:
    enabled: bool = False
    provider: Any = None  # None: the global TracerProvider, looked up when a tracer is made
    capture: bool | None = None  # None: read CAPTURE_CONTENT_ENV


_STATE = _State()


def _require_api() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        raise ConfigError(_MISSING) from None
    return trace


def enable(tracer_provider: TracerProvider | None = None, *, capture_content: bool | None = None) -> None:
    """Trace every monitored run, guarded tool call and proxied request from now on.

    ``tracer_provider``: where the spans go; ``None`` means OpenTelemetry's global provider (whatever the
    application, or an auto-instrumentation agent, registered with ``trace.set_tracer_provider``).
    ``capture_content``: also record prompts, answers, removed text and tool arguments and results (the GenAI
    conventions' opt-in attributes); ``None`` reads ``$OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
    """
    _require_api()
    _STATE.enabled = True
    _STATE.provider = tracer_provider
    _STATE.capture = capture_content


def disable() -> None:
    """Stop tracing (runs already started keep their spans)."""
    _STATE.enabled = False
    _STATE.provider = None
    _STATE.capture = None


def is_enabled() -> bool:
    """Whether :func:`enable` turned tracing on for every run."""
    return _STATE.enabled


def capture_content() -> bool:
    """Whether spans record content (prompts, answers, tool arguments): :func:`enable`'s choice, else the
    environment's."""
    if _STATE.capture is not None:
        return _STATE.capture
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"


def get_tracer(tracer_provider: TracerProvider | None = None) -> Tracer | None:
    """interlock's tracer from ``tracer_provider``, else from the provider :func:`enable` chose; ``None`` when
    neither is given, which is how every caller knows tracing is off (and pays nothing more)."""
    provider = tracer_provider
    if provider is None:
        if not _STATE.enabled:
            return None
        provider = _STATE.provider
    trace = _require_api()
    from interlock._version import __version__

    tracer: Tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__, tracer_provider=provider)
    return tracer


def setup_sdk(*, service_name: str = "interlock", set_global: bool = True) -> SDKTracerProvider | None:
    """An OpenTelemetry SDK provider configured from the environment, as the SDK's own tools read it (``--otel``).

    - ``OTEL_SDK_DISABLED=true``: no provider (``None``): tracing stays off.
    - ``OTEL_TRACES_EXPORTER``: comma-separated exporters, default ``otlp``; ``console`` writes spans to stderr
      (stdout stays the command's), ``none`` exports nothing, any other name is looked up in the SDK's
      ``opentelemetry_traces_exporter`` entry points.
    - ``otlp`` speaks ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` (default
      ``http/protobuf``; ``grpc`` needs opentelemetry-exporter-otlp-proto-grpc) to
      ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` (default localhost:4318), with
      ``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT`` and the rest read by the exporter itself.
    - ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` name the service (default ``service_name``);
      ``OTEL_TRACES_SAMPLER``/``_ARG`` pick the sampler and ``OTEL_BSP_*`` tune the batch processor.

    With ``set_global`` the provider becomes OpenTelemetry's global one (so other instrumentations in the process,
    httpx for one, join the same traces). Spans are exported in batches; ``provider.shutdown()`` flushes them (the
    SDK also does at exit).
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    trace = _require_api()
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider as SDKProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(_MISSING) from None
    exporters = [_exporter(name) for name in _exporter_names()]
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = SDKProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def _exporter_names() -> list[str]:
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "").strip() or "otlp"
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    return [] if "none" in names else names


def _exporter(name: str) -> Any:
    """One span exporter by its ``OTEL_TRACES_EXPORTER`` name."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)
    if name in ("otlp", "otlp_proto_http", "otlp_proto_grpc"):
        protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
                    or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip() or "http/protobuf").lower()
        if name == "otlp_proto_grpc" or (name == "otlp" and protocol == "grpc"):
            try:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
            except ImportError:
                raise ConfigError("OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc; or set "
                                  "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (the default)") from None
            return GrpcExporter()
        if protocol != "http/protobuf" and name == "otlp":
            raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: use http/protobuf or "
                              f"grpc")
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError("the OTLP exporter needs opentelemetry-exporter-otlp-proto-http: "
                              "pip install 'interlock[otel]'") from None
        return OTLPSpanExporter()
    from importlib.metadata import entry_points

    group = "opentelemetry_traces_exporter"
    found = list(entry_points(group=group, name=name))
    if not found:
        known = sorted({"console", "none", "otlp", *(e.name for e in entry_points(group=group))})
        raise ConfigError(f"OTEL_TRACES_EXPORTER names {name!r}, which is not installed; known: {', '.join(known)}")
    try:
        return found[0].load()()
    except Exception as exc:
        raise ConfigError(f"the span exporter {name!r} could not be made: {type(exc).__name__}: {exc}") from None
