"""An OpenTelemetry SDK provider with an in-memory exporter, and ways to read its spans as a tree."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TIMINGS = frozenset({"interlock.check.seconds", "interlock.check_seconds", "gen_ai.response.time_to_first_chunk"})


class Recorder:
    """A provider whose finished spans are kept in memory, in the order they ended."""

    def __init__(self, **options: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(**options)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def spans(self) -> Sequence[ReadableSpan]:
        return self.exporter.get_finished_spans()

    def named(self, name: str) -> ReadableSpan:
        (found,) = [s for s in self.spans if s.name == name]
        return found

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """The spans whose parent is ``parent``, in the order they started."""
        assert parent.context is not None
        kids = [s for s in self.spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
        return sorted(kids, key=lambda s: (s.start_time or 0, s.end_time or 0))

    def roots(self) -> list[ReadableSpan]:
        ids = {s.context.span_id for s in self.spans if s.context is not None}
        return [s for s in self.spans if s.parent is None or s.parent.span_id not in ids]


def attrs(span: ReadableSpan, *, drop: Iterable[str] = TIMINGS) -> dict[str, Any]:
    """A span's attributes as plain values (sequences as lists), without the timing ones."""
    out = {}
    for key, value in (span.attributes or {}).items():
        if key in drop:
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def events(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.attributes or {})) for e in span.events]
