"""Prometheus metrics of the proxy (``GET /metrics``): what it answered, what the monitor did, what it cost.

One :class:`ProxyMetrics` per app, on its own registry (apps in one process do not share counters). With several
worker processes (``interlock proxy --workers N``) the figures are shared through prometheus-client's
multiprocess mode: each worker writes its values to files in ``$PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` on any
worker adds up all of them. prometheus-client is the ``proxy`` extra (``pip install interlock[proxy]``); without it
the proxy serves as usual, records nothing, and ``/metrics`` says what to install.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from interlock.monitor.events import Event, Intervened, VerdictReceived

if TYPE_CHECKING:
    from interlock.monitor.proxy.release import ReleasedRun

__all__ = ["MAX_LABEL_CHARS", "MAX_REQUEST_TOOLS", "OTHER_TOOL", "UNDECLARED_TOOL", "ProxyMetrics", "bounded",
           "metrics_available"]


def metrics_available() -> bool:
    """Whether prometheus-client is installed."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class _Nothing:
    """Stands for a metric when prometheus-client is not installed: every call does nothing."""

    def labels(self, *values: str) -> _Nothing:
        return self

    def inc(self, amount: float = 1) -> None:
        return None

    def dec(self, amount: float = 1) -> None:
        return None

    def observe(self, value: float) -> None:
        return None

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


MAX_LABEL_CHARS = 64  # a label value longer than this is cut (its series stays one series)
MAX_REQUEST_TOOLS = 32  # tool names that only requests declared (not the operator) get a label of their own
OTHER_TOOL = "(other)"  # a declared tool past MAX_REQUEST_TOOLS distinct names, or a name over MAX_LABEL_CHARS
UNDECLARED_TOOL = "(undeclared)"  # a call of a tool neither the request nor the operator named


def bounded(value: str) -> str:
    """A label value of at most :data:`MAX_LABEL_CHARS` characters."""
    return value if len(value) <= MAX_LABEL_CHARS else value[:MAX_LABEL_CHARS - 3] + "..."


class ProxyMetrics:
    """The counters and histograms, and how to fill them from a run.

    Label values are bounded, so that no client can grow the page: every value is at most
    :data:`MAX_LABEL_CHARS` characters, and the ``tool`` label keeps the names the operator configured checks for
    (``tools``), the first :data:`MAX_REQUEST_TOOLS` other names requests declared, and folds the rest into
    ``(other)``, and calls of tools no one declared into ``(undeclared)``.
    """

    def __init__(self, tools: Iterable[str] = ()) -> None:
        self.configured_tools = frozenset(tools)
        self._request_tools: set[str] = set()
        self.available = metrics_available()
        if not self.available:
            nothing: Any = _Nothing()
            self.requests = self.in_flight = self.interventions = self.verdicts = self.tokens = nothing
            self.check_seconds = self.held_seconds = self.upstream_errors = self.tool_calls = nothing
            self.phase_tokens = nothing
            return
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("interlock_proxy_requests", "Requests answered, by endpoint, streaming and outcome "
                                "(verified, unchecked, violation, budget, cut, error; an HTTP error status; "
                                "disconnected)", ["endpoint", "stream", "outcome"],
                                registry=r)
        self.in_flight = Gauge("interlock_proxy_requests_in_flight", "Requests being answered now", registry=r,
                               multiprocess_mode="livesum")
        self.interventions = Counter("interlock_proxy_interventions", "Interventions by source (verifier or "
                                     "governor) and action", ["source", "action"], registry=r)
        self.verdicts = Counter("interlock_proxy_verdicts", "Verdicts by verifier and kind (pass, fail, unknown)",
                                ["verifier", "kind"], registry=r)
        self.tokens = Counter("interlock_proxy_tokens", "Generated tokens: kept (in the answers), discarded (rolled "
                              "back), fork (side questions of governors)", ["kind"], registry=r)
        self.phase_tokens = Counter("interlock_proxy_phase_tokens", "Kept tokens by phase: thinking (a reasoning "
                                    "model's thinking) or answer; they add up to the kept tokens", ["phase"],
                                    registry=r)
        self.check_seconds = Histogram("interlock_proxy_check_seconds", "Seconds one check took, by verifier",
                                       ["verifier"], buckets=_LATENCY, registry=r)
        self.held_seconds = Histogram("interlock_proxy_held_seconds", "Seconds released text waited after it was "
                                      "generated (the release policy's hold)", buckets=_LATENCY, registry=r)
        self.upstream_errors = Counter("interlock_proxy_upstream_errors", "Backend failures, by HTTP status "
                                       "('none': no status, e.g. a broken connection)", ["status"], registry=r)
        self.tool_calls = Counter("interlock_proxy_tool_calls", "Tool calls the model made, by tool and outcome "
                                  "(released to the client, or withheld); tools past the label bound are "
                                  "(other), calls of tools no one declared (undeclared)", ["tool", "outcome"],
                                  registry=r)

    def observe(self, event: Event) -> None:
        """One event of a run (called for every event the release sees)."""
        if isinstance(event, VerdictReceived) and event.verdict is not None and not event.stale:
            verifier = bounded(event.verdict.verifier or "unknown")
            self.verdicts.labels(verifier, event.verdict.kind).inc()
            self.check_seconds.labels(verifier).observe(event.seconds)
        elif isinstance(event, Intervened) and event.intervention is not None:
            i = event.intervention
            self.interventions.labels(bounded(i.source), i.action.value).inc()

    def tool_label(self, name: str, declared: Collection[str]) -> str:
        """The ``tool`` label of a call of ``name`` in a request that declared ``declared``."""
        if name in self.configured_tools:
            return bounded(name)
        if name not in declared:
            return UNDECLARED_TOOL
        if len(name) > MAX_LABEL_CHARS:
            return OTHER_TOOL
        if name not in self._request_tools:
            if len(self._request_tools) >= MAX_REQUEST_TOOLS:
                return OTHER_TOOL
            self._request_tools.add(name)
        return name

    def finished(self, run: ReleasedRun, declared: Collection[str] = ()) -> None:
        """A run has ended: its tokens and tool calls (``declared``: the tools its request declared)."""
        tokens = run.result.tokens
        for kind, n in (("kept", tokens.kept), ("discarded", tokens.discarded), ("fork", tokens.fork)):
            if n:
                self.tokens.labels(kind).inc(n)
        for phase, n in (("thinking", tokens.thinking), ("answer", tokens.answer)):
            if n > 0:
                self.phase_tokens.labels(phase).inc(n)
        for call, released in run.call_outcomes():
            self.tool_calls.labels(self.tool_label(call.name, declared), "released" if released else "withheld").inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text: this process's registry, or all workers' figures in multiprocess mode."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client import multiprocess as _multiprocess
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
